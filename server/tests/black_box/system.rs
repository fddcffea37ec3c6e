//! Health, readiness, metrics, the OpenAPI document and the demo page.

use reqwest::StatusCode;

use crate::support::{backend, eventually, Backend, TestApp};

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_prometheus_text_and_count_what_happens() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    app.follow(&bob, &alice).await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "pulse_sockets_open",
        "pulse_bus_lag_seconds_count",
        "pulse_notifications_created_total",
        "pulse_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "metric {name} missing:\n{text}");
    }
    let created = text
        .lines()
        .find(|l| l.starts_with("pulse_notifications_created_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(created, Some(1.0));
}

/// One `pulse_db_connections` gauge.
fn db_connections(metrics: &str, state: &str) -> Option<u64> {
    let prefix = format!("pulse_db_connections{{state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
}

/// On PostgreSQL each worker has a pool of its own (`Db::for_worker`): `PULSE_DB_POOL_SIZE` is
/// split between them, the background jobs keep what is left (at least one), and the gauges
/// add every pool up. SQLite keeps its shared readers plus the one writer.
#[tokio::test(flavor = "multi_thread")]
async fn the_pool_size_is_split_among_workers_and_reported_whole() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 2;
        s.limits.db_pool_size = 7;
    })
    .await;
    let users = futures_util::future::join_all((0..8).map(|i| {
        let app = &app;
        async move { app.register(&format!("pool{i}")).await }
    }))
    .await;
    futures_util::future::join_all(users.iter().map(|u| app.get("/me", &u.token))).await;
    let text = app.metrics_text().await;
    let (max, open) = (db_connections(&text, "max"), db_connections(&text, "open"));
    match backend() {
        // 3 per worker, and 7 - 6 = 1 for the background jobs.
        Backend::Postgres => {
            assert_eq!(max, Some(7), "{text}");
            // The migration's connection stays in the shared pool; requests opened others in
            // the workers' pools.
            assert!(open.is_some_and(|n| n >= 2), "{text}");
        }
        Backend::Sqlite => assert_eq!(max, Some(8), "7 readers and the writer: {text}"),
    }
}

/// On PostgreSQL each worker opens its whole pool as it starts and plans the like's statements
/// on every connection (`pulse_schema::likes::warm`), so that no early like waits for either;
/// the like that plans them is rolled back and leaves nothing. On SQLite nothing is readied,
/// and likes work from the first as well.
#[tokio::test(flavor = "multi_thread")]
async fn workers_ready_their_connections_before_the_first_like() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 2;
        s.limits.db_pool_size = 7;
    })
    .await;
    if matches!(backend(), Backend::Postgres) {
        // 3 per worker, readied with no request at all, and the migration's connection.
        eventually("every connection of the workers' pools open", || async {
            let text = app.metrics_text().await;
            (db_connections(&text, "open") == Some(7)).then_some(())
        })
        .await;
    }
    let author = app.register("ready").await;
    let fan = app.register("readyfan").await;
    let post = app.create_post(&author, "first").await["id"]
        .as_i64()
        .unwrap();
    let reply = app.like(&fan, post).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["like_count"], 1);
    assert_eq!(app.rows_of_post("likes", post).await, 1);
    assert_eq!(
        app.rows_of_post("likes", 0).await,
        0,
        "the planning like stayed"
    );
    assert_eq!(app.all_notifications(&author).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_describes_every_endpoint_and_problem_type() {
    let app = TestApp::spawn().await;
    let reply = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let doc: serde_json::Value = reply.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, verb) in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/ws-ticket", "post"),
        ("/api/v1/me", "get"),
        ("/api/v1/users/{username}", "get"),
        ("/api/v1/users/{id}/follow", "put"),
        ("/api/v1/users/{id}/follow", "delete"),
        ("/api/v1/users/{id}/posts", "get"),
        ("/api/v1/posts", "post"),
        ("/api/v1/posts/{id}", "get"),
        ("/api/v1/posts/{id}", "delete"),
        ("/api/v1/feed", "get"),
        ("/api/v1/posts/{id}/like", "put"),
        ("/api/v1/posts/{id}/like", "delete"),
        ("/api/v1/posts/{id}/comments", "get"),
        ("/api/v1/posts/{id}/comments", "post"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/notifications/read", "post"),
        ("/api/v1/ws", "get"),
        ("/media/{key}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(verb)).is_some(),
            "{verb} {path} missing from the OpenAPI document"
        );
    }
    let text = doc.to_string();
    for problem in [
        "/problems/validation",
        "/problems/not-found",
        "/problems/unauthorized",
        "/problems/too-large",
        "/problems/rate-limited",
    ] {
        assert!(
            text.contains(problem),
            "problem type {problem} not documented"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_page_is_served_with_types_and_security_headers() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers.contains_key("content-security-policy"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script"), "the page loads its script");
    let script = app.http.get(app.url("/client.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_its_turns_an_instance_refuses_fast_with_503_and_counts_what_it_shed() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(|s| {
        s.limits.max_in_flight = 1;
        s.limits.max_queued_requests = 4;
        s.limits.request_queue_timeout_ms = 20;
    })
    .await;
    let user = app.register("busy").await;
    // An upload whose body never finishes holds the instance's only turn.
    let mut upload = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/posts HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: multipart/form-data; boundary=b\r\ncontent-length: 100000\r\n\r\n--b\r\n",
        user.token
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    crate::support::eventually("the upload holds the turn", || async {
        let held = app.metrics_text().await.contains("pulse_requests_queued 0")
            && app.get("/me", &user.token).await.status == StatusCode::SERVICE_UNAVAILABLE;
        held.then_some(())
    })
    .await;
    let replies =
        futures_util::future::join_all((0..12).map(|_| app.get("/feed", &user.token))).await;
    for reply in &replies {
        reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "/problems/unavailable");
        assert_eq!(reply.headers["retry-after"], "1");
    }
    // Nothing outside the API is shed, and logins have their own gate.
    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
    app.login(&user).await.assert_status(StatusCode::OK);
    let metrics = app.metrics_text().await;
    let shed: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("pulse_requests_shed_total "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        shed >= 13,
        "{shed} shed; the 12 feeds and the probe at least"
    );
    // The turn is free again once the upload is gone.
    drop(upload);
    crate::support::eventually("the instance serves again", || async {
        (app.get("/me", &user.token).await.status == StatusCode::OK).then_some(())
    })
    .await;
}

//! Health, readiness, metrics, the OpenAPI document and the demo page.

use reqwest::StatusCode;

use crate::support::TestApp;

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

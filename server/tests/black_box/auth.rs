//! Register, login, logout, tokens and socket tickets.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Store, TestApp, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn register_folds_case_and_returns_a_working_token() {
    let app = TestApp::spawn().await;
    let name = format!("Alice_{}", &crate::support::random_suffix()[..6]);
    let reply = app
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": name, "password": PASSWORD, "display_name": "Alice A."})),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let user = &reply.body["user"];
    assert_eq!(user["username"], name.to_lowercase());
    assert_eq!(user["display_name"], "Alice A.");
    assert_eq!(user["follower_count"], 0);
    assert_eq!(user["post_count"], 0);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let token = reply.body["token"].as_str().unwrap();
    let me = app.get("/me", token).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["id"], user["id"]);

    // Same name in another case is taken; login works with any case.
    let again = app
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": name.to_uppercase(), "password": PASSWORD})),
        )
        .await;
    again.assert_problem(StatusCode::CONFLICT, "/problems/conflict");
    let login = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": name.to_uppercase(), "password": PASSWORD})),
        )
        .await;
    login.assert_status(StatusCode::OK);
    assert_eq!(login.body["user"]["id"], user["id"]);
    assert_eq!(
        app.get("/me", login.body["token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn display_name_defaults_to_username() {
    let app = TestApp::spawn().await;
    let user = app.register("dora").await;
    let me = app.get("/me", &user.token).await;
    assert_eq!(me.body["display_name"], user.username);
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_validates_every_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"username": "ab", "password": PASSWORD}), "username"),
        (
            json!({"username": "x".repeat(31), "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": ".alice", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "alice.", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "al ice", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "alicé", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "valid_name", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "valid_name", "password": "p".repeat(129)}),
            "password",
        ),
        (
            json!({"username": "valid_name", "password": PASSWORD, "display_name": "d".repeat(65)}),
            "display_name",
        ),
        (
            json!({"username": "valid_name", "password": PASSWORD, "display_name": "bad\u{7}bell"}),
            "display_name",
        ),
    ];
    for (body, field) in cases {
        let reply = app
            .call(Method::POST, "/auth/register", None, Some(body.clone()))
            .await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
        assert!(
            reply.error_fields().contains(&field.to_owned()),
            "{body} should blame {field}: {}",
            reply.body
        );
    }
    // Boundaries that are valid: 3 and 30 chars, 8 and 128 char passwords, dots inside.
    for (username, password) in [
        ("a.b".to_owned(), "p".repeat(8)),
        ("z".repeat(30), "p".repeat(128)),
    ] {
        let reply = app
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        reply.assert_status(StatusCode::CREATED);
    }
    // Nothing invalid was stored: the invalid names are still free... and "valid_name" never registered.
    let lookup = app
        .call(
            Method::GET,
            "/users/valid_name",
            Some(&app.register("probe").await.token),
            None,
        )
        .await;
    lookup.assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_answers_unknown_user_and_wrong_password_identically() {
    let app = TestApp::spawn().await;
    let user = app.register("bob").await;
    let wrong = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": user.username, "password": "not-the-password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": "nobody_here", "password": "not-the-password"})),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    unknown.assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    assert_eq!(wrong.bytes, unknown.bytes, "identical bodies");
    // Same work for both: each runs one argon2 verification (timing is measured, not asserted,
    // beyond a gross bound that would catch a skipped hash).
    let time = |username: String| {
        let app = &app;
        async move {
            let started = Instant::now();
            app.call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": username, "password": "not-the-password"})),
            )
            .await;
            started.elapsed()
        }
    };
    let wrong_time = time(user.username.clone()).await;
    let unknown_time = time("nobody_here".into()).await;
    let (fast, slow) = if wrong_time < unknown_time {
        (wrong_time, unknown_time)
    } else {
        (unknown_time, wrong_time)
    };
    assert!(
        slow < fast * 4 + std::time::Duration::from_millis(50),
        "wrong {wrong_time:?} vs unknown {unknown_time:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_garbage_and_revoked_tokens_are_401() {
    let app = TestApp::spawn().await;
    app.call(Method::GET, "/me", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    app.get("/me", "garbage")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    let raw = app
        .http
        .get(app.url("/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);

    let user = app.register("carol").await;
    let other_session = app.login(&user).await;
    let other_token = other_session.body["token"].as_str().unwrap().to_owned();
    app.call(Method::POST, "/auth/logout", Some(&user.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get("/me", &user.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    // Logging out is per token: the other session still works.
    app.get("/me", &other_token)
        .await
        .assert_status(StatusCode::OK);
}

/// `pulse_auth_checks_total{answered_in="<place>"}` of an instance.
async fn auth_checks(app: &TestApp, place: &str) -> u64 {
    let metric = format!("pulse_auth_checks_total{{answered_in=\"{place}\"}} ");
    let text = app.metrics_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with(&metric))
        .unwrap_or_else(|| panic!("no {metric} in {text}"));
    line[metric.len()..].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_in_memory_and_revocations_survive_a_restart() {
    let store = Store::fresh().await;
    let app = TestApp::spawn_on(&store, |_| {}).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    app.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let database_before = auth_checks(&app, "database").await;
    let memory_before = auth_checks(&app, "memory").await;
    for _ in 0..5 {
        app.get("/me", &bob.token)
            .await
            .assert_status(StatusCode::OK);
        app.get("/me", &alice.token)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    }
    assert_eq!(auth_checks(&app, "memory").await, memory_before + 10);
    assert_eq!(
        auth_checks(&app, "database").await,
        database_before,
        "no round trip"
    );
    app.stop().await;

    // A new instance on the same store loads the revocations before it serves.
    let again = TestApp::spawn_on(&store, |_| {}).await;
    again
        .get("/me", &alice.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    let me = again.get("/me", &bob.token).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["username"], bob.username.as_str());
    assert_eq!(auth_checks(&again, "memory").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_opens_no_socket_and_leaves_nothing_registered() {
    let app = TestApp::spawn().await;
    let user = app.register("revoked").await;
    let live = crate::support::Socket::open(&app.ws_url(""), Some(&user.token), None)
        .await
        .unwrap();
    assert_eq!(live.hello["user_id"], user.id);
    app.call(Method::POST, "/auth/logout", Some(&user.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // The socket is registered before its revocation check: a refused one must not stay in
    // the hub (it would count against the user's socket limit and receive notifications).
    for _ in 0..3 {
        let refused = crate::support::Socket::open(&app.ws_url(""), Some(&user.token), None).await;
        let (status, body) = refused.err().expect("a revoked token opens no socket");
        assert_eq!(status, 401);
        assert!(body.contains("/problems/unauthorized"), "{body}");
    }
    let mut live = live;
    assert_eq!(live.closed().await, Some(4401));
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    while app.state.hub.socket_count() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} sockets still registered",
            app.state.hub.socket_count()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.state
            .metrics
            .sockets_open
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_another_root_key_is_rejected() {
    let one = TestApp::spawn().await;
    let two = TestApp::spawn().await;
    let user = one.register("eve").await;
    two.get("/me", &user.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_401() {
    let app = TestApp::spawn_with(|s| s.limits.token_ttl_secs = 1).await;
    let user = app.register("brief").await;
    app.get("/me", &user.token)
        .await
        .assert_status(StatusCode::OK);
    crate::support::eventually("the token to expire", || async {
        (app.get("/me", &user.token).await.status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_opens_one_socket_and_nothing_else() {
    let app = TestApp::spawn().await;
    let user = app.register("tix").await;
    let reply = app.post("/auth/ws-ticket", &user.token, json!({})).await;
    reply.assert_status(StatusCode::OK);
    let ticket = reply.body["ticket"].as_str().unwrap().to_owned();
    assert!(reply.body["expires_at"].as_str().unwrap().ends_with('Z'));
    // Not a REST credential.
    app.get("/me", &ticket)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
    // Opens a socket once.
    let encoded = urlencode(&ticket);
    let socket =
        crate::support::Socket::open(&app.ws_url(&format!("?ticket={encoded}")), None, None)
            .await
            .unwrap();
    assert_eq!(socket.hello["user_id"], user.id);
    let again =
        crate::support::Socket::open(&app.ws_url(&format!("?ticket={encoded}")), None, None).await;
    assert_eq!(
        again.err().map(|e| e.0),
        Some(401),
        "a ticket is single-use"
    );
    // A full token in ?ticket= is refused.
    let full = crate::support::Socket::open(
        &app.ws_url(&format!("?ticket={}", urlencode(&user.token))),
        None,
        None,
    )
    .await;
    assert_eq!(full.err().map(|e| e.0), Some(401));
    // No credentials at all: 401 problem before the upgrade.
    let none = crate::support::Socket::open(&app.ws_url(""), None, None).await;
    let (status, body) = none.err().unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("/problems/unauthorized"), "{body}");
}

pub fn urlencode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

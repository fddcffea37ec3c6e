//! Rate limits: 429 problem+json with `Retry-After`, per user and per IP, and login throttling
//! that expires. (Shared counting across instances is in the cluster suite.)

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{eventually, Reply, Socket, TestApp, PASSWORD};

#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    reply.assert_problem(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // At most the rest of the longest window (an hour) and the time its count takes to fade.
    assert!(
        (1..=7200).contains(&retry_after),
        "Retry-After {retry_after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_defaults_are_what_a_person_never_hits() {
    let limits = pulse_server::config::Limits::default();
    assert!(
        limits.rate_likes_per_min >= 120,
        "two likes a second, for a minute"
    );
    assert!(limits.rate_comments_per_min >= 10);
    assert!(limits.rate_posts_per_min >= 5);
    assert!(
        limits.rate_login_failures >= 5 && limits.rate_login_window_secs <= 3600,
        "no lock-out for good"
    );
    assert!(
        limits.rate_ip_writes_per_min >= limits.rate_likes_per_min,
        "one person never trips the IP limit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn likes_over_the_per_user_limit_are_429_and_change_nothing() {
    let app = TestApp::spawn_with(|s| s.limits.rate_likes_per_min = 3).await;
    let (author, fan, other) = (
        app.register("author").await,
        app.register("fan").await,
        app.register("other").await,
    );
    let posts: Vec<i64> = [0, 1, 2, 3].iter().map(|_| 0).collect();
    let mut ids = Vec::new();
    for _ in &posts {
        ids.push(app.create_post(&author, "p").await["id"].as_i64().unwrap());
    }
    for post in &ids[..3] {
        app.like(&fan, *post).await.assert_status(StatusCode::OK);
    }
    assert_rate_limited(&app.like(&fan, ids[3]).await);
    assert_eq!(
        app.get(&format!("/posts/{}", ids[3]), &author.token)
            .await
            .body["like_count"],
        0
    );
    assert_eq!(app.all_notifications(&author).await.len(), 3);
    // Another user is not affected.
    app.like(&other, ids[3]).await.assert_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_posts_follows_and_socket_connects_are_limited_per_user() {
    let app = TestApp::spawn_with(|s| {
        s.limits.rate_comments_per_min = 1;
        s.limits.rate_posts_per_min = 1;
        s.limits.rate_follows_per_min = 1;
        s.limits.rate_socket_connects_per_min = 1;
    })
    .await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    assert_rate_limited(
        &app.upload(&alice.token, crate::support::png(8, 8), "a.png", "")
            .await,
    );
    let path = format!("/posts/{post}/comments");
    app.post(&path, &bob.token, json!({"text": "one"}))
        .await
        .assert_status(StatusCode::CREATED);
    assert_rate_limited(&app.post(&path, &bob.token, json!({"text": "two"})).await);
    app.follow(&bob, &alice).await;
    assert_rate_limited(
        &app.put(&format!("/users/{}/follow", carol.id), &bob.token)
            .await,
    );
    let _first = app.socket(&bob, "").await;
    let second = Socket::open(&app.ws_url(""), Some(&bob.token), None).await;
    let (status, body) = second.err().unwrap();
    assert_eq!(status, 429);
    assert!(body.contains("/problems/rate-limited"));
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_limited_per_ip_and_reads_are_not() {
    let app = TestApp::spawn_with(|s| s.limits.rate_ip_writes_per_min = 5).await;
    let alice = app.register("alice").await; // 1 write
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap(); // 2
    for _ in 0..3 {
        app.like(&alice, post).await.assert_status(StatusCode::OK); // 3, 4, 5
    }
    assert_rate_limited(&app.like(&alice, post).await);
    assert_rate_limited(&app.login(&alice).await);
    for _ in 0..10 {
        app.get("/feed", &alice.token)
            .await
            .assert_status(StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registrations_are_limited_per_ip() {
    let app = TestApp::spawn_with(|s| s.limits.rate_registrations_per_hour = 2).await;
    app.register("one").await;
    app.register("two").await;
    let third = app
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": "three_x", "password": PASSWORD})),
        )
        .await;
    assert_rate_limited(&third);
    let probe = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": "three_x", "password": PASSWORD})),
        )
        .await;
    probe.assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn password_guessing_is_throttled_then_the_real_user_gets_back_in() {
    let app = TestApp::spawn_with(|s| {
        s.limits.rate_login_failures = 3;
        s.limits.rate_login_window_secs = 4;
    })
    .await;
    let alice = app.register("alice").await;
    let attempt = |password: &'static str, username: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await
        }
    };
    // Guess until throttled, at a moment with at least 2 s of the fixed window left (a window
    // may end mid-sequence: then its failures start counting again).
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    let mut failures = 0;
    loop {
        assert!(std::time::Instant::now() < deadline, "never throttled");
        let reply = attempt("wrong-password", alice.username.clone()).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            failures += 1;
            continue;
        }
        assert_rate_limited(&reply);
        let retry_after: u64 = reply.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if retry_after >= 2 {
            break;
        }
    }
    assert!(failures >= 3, "throttled only after the allowed failures");
    // Throttled now, even with the right password and another case of the name.
    assert_rate_limited(&attempt(PASSWORD, alice.username.to_uppercase()).await);
    // Other users are unaffected.
    let bob = app.register("bob").await;
    attempt(PASSWORD, bob.username.clone())
        .await
        .assert_status(StatusCode::OK);
    // The window ends; the real user logs in.
    eventually("the login window to end", || async {
        (attempt(PASSWORD, alice.username.clone()).await.status == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(|s| s.allowed_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.http
                .request(Method::OPTIONS, app.url("/feed"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight("https://app.example").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await;
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

fn retry_after(reply: &Reply) -> u64 {
    assert_rate_limited(reply);
    reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_never_extend_their_own_wait() {
    let app = TestApp::spawn_with(|s| s.limits.rate_likes_per_min = 3).await;
    let (author, fan) = (app.register("author").await, app.register("fan").await);
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    for _ in 0..3 {
        app.like(&fan, post).await.assert_status(StatusCode::OK);
    }
    let first = retry_after(&app.like(&fan, post).await);
    let mut last = first;
    for _ in 0..30 {
        last = retry_after(&app.like(&fan, post).await);
    }
    // Not counted, the wait is at most the rest of this window and a third of the next (the
    // three likes fading to two); counted, each refusal would lengthen it.
    assert!(
        first <= 81 && last <= first,
        "Retry-After {first} then {last}"
    );
}

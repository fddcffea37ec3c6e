//! Bad input of every shape gets a clear 4xx problem+json and changes nothing; never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn path_ids_that_are_not_ids_are_404() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for id in [
        "0",
        "-1",
        "abc",
        "9007199254740992",
        "99999999999999999999999",
        "1.5",
        "%00",
    ] {
        for path in [
            format!("/posts/{id}"),
            format!("/posts/{id}/comments"),
            format!("/users/{id}/posts"),
        ] {
            let reply = app.get(&path, &alice.token).await;
            assert!(
                reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST,
                "{path}: {}",
                reply.status
            );
            assert!(
                reply.body["type"].is_string(),
                "{path}: problem+json expected"
            );
        }
        let reply = app.put(&format!("/posts/{id}/like"), &alice.token).await;
        assert!(
            reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST,
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_that_are_broken_big_or_wrong() {
    let app = TestApp::spawn_with(|s| s.limits.max_json_bytes = 4096).await;
    let register = |body: Vec<u8>, content_type: &'static str| {
        let app = &app;
        async move {
            app.raw(Method::POST, "/auth/register", None, content_type, body)
                .await
        }
    };
    register(b"{not json".to_vec(), "application/json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "/problems/bad-request");
    register(b"".to_vec(), "application/json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "/problems/bad-request");
    register(vec![0xff, 0xfe, b'{', b'}'], "application/json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "/problems/bad-request");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let reply = register(deep.into_bytes(), "application/json").await;
    assert!(
        reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.status
    );
    let huge = json!({"username": "x".repeat(5000), "password": "p".repeat(10)}).to_string();
    register(huge.into_bytes(), "application/json")
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "/problems/too-large");
    let unknown =
        json!({"username": "ok_name", "password": "password1", "admin": true}).to_string();
    register(unknown.into_bytes(), "application/json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "/problems/bad-request");
    let wrong_type = json!({"username": 5, "password": "password1"}).to_string();
    register(wrong_type.into_bytes(), "application/json")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "/problems/bad-request");
    let form = b"username=a&password=b".to_vec();
    let reply = register(form, "application/x-www-form-urlencoded").await;
    reply.assert_problem(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "/problems/unsupported-media-type",
    );
    // None of that registered anyone.
    let probe = app.register("probe").await;
    app.get("/users/ok_name", &probe.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_methods() {
    let app = TestApp::spawn().await;
    let reply = app.call(Method::GET, "/api/v1/nope", None, None).await;
    reply.assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    let reply = app.call(Method::PATCH, "/posts/1", None, None).await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_multipart_parts_are_413_without_reading_forever() {
    let app = TestApp::spawn_with(|s| s.limits.max_image_bytes = 256 * 1024).await;
    let alice = app.register("alice").await;
    let caption = "c".repeat(1024 * 1024);
    let reply = app
        .upload(&alice.token, crate::support::png(10, 10), "a.png", &caption)
        .await;
    assert!(
        reply.status == StatusCode::PAYLOAD_TOO_LARGE
            || reply.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.status
    );
    let bytes = vec![0u8; 2 * 1024 * 1024];
    app.upload(&alice.token, bytes, "a.png", "")
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "/problems/too-large");
    assert_eq!(app.get("/me", &alice.token).await.body["post_count"], 0);
}

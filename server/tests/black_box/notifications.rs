//! The inbox: listing, unread filtering, marking read.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, User};

/// Gives `recipient` `n` comment notifications from `actor` on one post; returns their ids, oldest first.
async fn comment_notifications(
    app: &TestApp,
    recipient: &User,
    actor: &User,
    n: usize,
) -> Vec<i64> {
    let post = app.create_post(recipient, "p").await["id"]
        .as_i64()
        .unwrap();
    app.comment_n(actor, post, n, 0).await;
    app.notification_ids(recipient).await
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_pages_newest_first_with_unread_count() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let ids = comment_notifications(&app, &alice, &bob, 5).await;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let first = app.get("/notifications?limit=3", &alice.token).await;
    first.assert_status(StatusCode::OK);
    assert_eq!(first.body["unread_count"], 5);
    let got: Vec<i64> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4], ids[3], ids[2]]);
    let n = &first.body["items"][0];
    assert_eq!(n["kind"], "comment");
    assert_eq!(n["actor"]["username"], bob.username);
    assert_eq!(n["read"], false);
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread")]
async fn marking_read_by_id_and_up_to() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let ids = comment_notifications(&app, &alice, &bob, 4).await;
    let reply = app
        .post(
            "/notifications/read",
            &alice.token,
            json!({"ids": [ids[3]]}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["unread_count"], json!(3));
    let unread = app
        .get("/notifications?unread_only=true", &alice.token)
        .await;
    let got: Vec<i64> = unread.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2], ids[1], ids[0]]);
    let reply = app
        .post(
            "/notifications/read",
            &alice.token,
            json!({"up_to_id": ids[1]}),
        )
        .await;
    assert_eq!(reply.body["unread_count"], json!(1));
    // Someone else's ids change nothing of theirs.
    let other = app
        .post("/notifications/read", &bob.token, json!({"ids": [ids[2]]}))
        .await;
    other.assert_status(StatusCode::OK);
    assert_eq!(other.body["unread_count"], json!(0));
    assert_eq!(
        app.get("/notifications", &alice.token).await.body["unread_count"],
        1
    );
    // Idempotent.
    let again = app
        .post(
            "/notifications/read",
            &alice.token,
            json!({"up_to_id": ids[1]}),
        )
        .await;
    assert_eq!(again.body["unread_count"], json!(1));
    let all = app
        .post(
            "/notifications/read",
            &alice.token,
            json!({"up_to_id": ids[3]}),
        )
        .await;
    assert_eq!(
        all.body,
        json!({"unread_count": 0, "unread_group_count": 0})
    );
    assert_eq!(
        app.get("/notifications?unread_only=true", &alice.token)
            .await
            .body["items"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mark_read_validates_its_body() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for bad in [
        json!({}),
        json!({"up_to_id": 0}),
        json!({"up_to_id": -5}),
        json!({"ids": [0]}),
        json!({"up_to_id": 1, "ids": [1]}),
        json!({"ids": (1..=1001).collect::<Vec<i64>>()}),
    ] {
        app.post("/notifications/read", &alice.token, bad.clone())
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    }
    for bad in [
        json!({"up_to_id": "7"}),
        json!({"ids": "1,2"}),
        json!({"up_to_id": 1, "extra": true}),
        json!([1]),
    ] {
        let reply = app
            .post("/notifications/read", &alice.token, bad.clone())
            .await;
        assert!(
            reply.status == StatusCode::BAD_REQUEST
                || reply.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            reply.status
        );
        assert!(reply.body["type"].is_string());
    }
    app.get("/notifications?unread_only=maybe", &alice.token)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "/problems/bad-request");
}

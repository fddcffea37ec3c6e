//! Users and follows.

use reqwest::StatusCode;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn follow_is_idempotent_counts_and_notifies_once() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    for _ in 0..2 {
        let reply = app
            .put(&format!("/users/{}/follow", bob.id), &alice.token)
            .await;
        reply.assert_status(StatusCode::OK);
        assert_eq!(reply.body["id"], bob.id);
        assert_eq!(reply.body["follower_count"], 1);
        assert_eq!(reply.body["followed_by_me"], true);
    }
    let seen_by_alice = app
        .get(&format!("/users/{}", bob.username), &alice.token)
        .await;
    assert_eq!(seen_by_alice.body["followed_by_me"], true);
    let seen_by_bob = app.get("/me", &bob.token).await;
    assert_eq!(seen_by_bob.body["follower_count"], 1);
    assert_eq!(
        app.get("/me", &alice.token).await.body["following_count"],
        1
    );

    // Unfollow twice, follow again: still one notification ever.
    for _ in 0..2 {
        let reply = app
            .delete(&format!("/users/{}/follow", bob.id), &alice.token)
            .await;
        reply.assert_status(StatusCode::OK);
        assert_eq!(reply.body["follower_count"], 0);
        assert_eq!(reply.body["followed_by_me"], false);
    }
    app.follow(&alice, &bob).await;
    let inbox = app.all_notifications(&bob).await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0]["kind"], "follow");
    assert_eq!(inbox[0]["actor"]["id"], alice.id);
    assert_eq!(
        inbox[0]["text"],
        format!("{} started following you.", alice.username)
    );
    assert_eq!(inbox[0]["post_id"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn following_yourself_or_nobody_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    app.put(&format!("/users/{}/follow", alice.id), &alice.token)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    app.put("/users/999999999/follow", &alice.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    app.delete("/users/999999999/follow", &alice.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    app.get("/users/no_such_user", &alice.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    assert_eq!(app.all_notifications(&alice).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn user_posts_are_newest_first_and_keyset_paginated() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.create_post(&alice, &format!("post {n}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let first = app
        .get(&format!("/users/{}/posts?limit=2", alice.id), &bob.token)
        .await;
    first.assert_status(StatusCode::OK);
    let page_ids = |body: &serde_json::Value| -> Vec<i64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(page_ids(&first.body), vec![ids[4], ids[3]]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    // A post inserted while paging causes no duplicate and no skip.
    app.create_post(&alice, "late").await;
    let second = app
        .get(
            &format!("/users/{}/posts?limit=2&cursor={cursor}", alice.id),
            &bob.token,
        )
        .await;
    assert_eq!(page_ids(&second.body), vec![ids[2], ids[1]]);
    let cursor = second.body["next_cursor"].as_str().unwrap().to_owned();
    let third = app
        .get(
            &format!("/users/{}/posts?limit=2&cursor={cursor}", alice.id),
            &bob.token,
        )
        .await;
    assert_eq!(page_ids(&third.body), vec![ids[0]]);
    assert_eq!(third.body["next_cursor"], serde_json::Value::Null);

    assert_eq!(
        app.get(&format!("/users/{}", alice.username), &bob.token)
            .await
            .body["post_count"],
        6
    );
    app.get("/users/999999999/posts", &bob.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn page_parameters_are_validated() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for bad in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
    ] {
        let reply = app.get(&format!("/feed?{bad}"), &alice.token).await;
        assert!(
            reply.status == StatusCode::BAD_REQUEST
                || reply.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.body["type"].as_str().is_some(),
            "{bad}: problem+json expected"
        );
    }
    app.get("/feed?limit=100", &alice.token)
        .await
        .assert_status(StatusCode::OK);
    app.get("/feed?limit=1", &alice.token)
        .await
        .assert_status(StatusCode::OK);
}

//! Concurrent writes: counts and notifications stay exact.

use futures_util::future::join_all;
use reqwest::StatusCode;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_users_liking_at_once_give_fifty_likes_and_fifty_notifications() {
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let post = app.create_post(&author, "popular").await["id"]
        .as_i64()
        .unwrap();
    let likers = join_all((0..50).map(|i| {
        let app = &app;
        async move { app.register(&format!("fan{i}")).await }
    }))
    .await;
    let replies = join_all(likers.iter().map(|liker| app.like(liker, post))).await;
    for reply in &replies {
        reply.assert_status(StatusCode::OK);
    }
    let counts: Vec<i64> = replies
        .iter()
        .map(|r| r.body["like_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts.iter().max(), Some(&50));
    assert_eq!(
        app.get(&format!("/posts/{post}"), &author.token).await.body["like_count"],
        50
    );
    let inbox = app.all_notifications(&author).await;
    assert_eq!(inbox.len(), 50);
    let mut actors: Vec<i64> = inbox
        .iter()
        .map(|n| n["actor"]["id"].as_i64().unwrap())
        .collect();
    actors.sort_unstable();
    actors.dedup();
    assert_eq!(actors.len(), 50, "one notification per liker");
    assert_eq!(
        app.get("/notifications", &author.token).await.body["unread_count"],
        50
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_identical_likes_at_once_give_one() {
    let app = TestApp::spawn().await;
    let (author, fan) = (app.register("author").await, app.register("fan").await);
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    let replies = join_all((0..20).map(|_| app.like(&fan, post))).await;
    for reply in &replies {
        reply.assert_status(StatusCode::OK);
        assert_eq!(reply.body["like_count"], 1);
    }
    assert_eq!(app.all_notifications(&author).await.len(), 1);
    // And twenty concurrent unlike/like flips end consistent with the final state.
    let flips = join_all((0..20).map(|i| {
        let app = &app;
        let (fan, path) = (&fan, format!("/posts/{post}/like"));
        async move {
            if i % 2 == 0 {
                app.delete(&path, &fan.token).await
            } else {
                app.put(&path, &fan.token).await
            }
        }
    }))
    .await;
    assert!(flips.iter().all(|r| r.status == StatusCode::OK));
    let post_now = app.get(&format!("/posts/{post}"), &fan.token).await.body;
    let liked = post_now["liked_by_me"].as_bool().unwrap();
    assert_eq!(post_now["like_count"], if liked { 1 } else { 0 });
    assert_eq!(
        app.all_notifications(&author).await.len(),
        1,
        "like, unlike, like again notifies once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_to_one_recipient_commit_ids_in_order() {
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    let fans = join_all((0..10).map(|i| {
        let app = &app;
        async move { app.register(&format!("c{i}")).await }
    }))
    .await;
    join_all(fans.iter().flat_map(|fan| {
        let app = &app;
        (0..3).map(move |n| async move {
            app.post(
                &format!("/posts/{post}/comments"),
                &fan.token,
                serde_json::json!({"text": format!("#{n}")}),
            )
            .await
            .assert_status(StatusCode::CREATED);
        })
    }))
    .await;
    let ids: Vec<i64> = app
        .all_notifications(&author)
        .await
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 30);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, strictly: {ids:?}"
    );
}

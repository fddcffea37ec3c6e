//! Block and mute: who may reach whom. Every rule on both backends, and a block racing the
//! blocked user's writes (real concurrent requests; on PostgreSQL they really overlap).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{TestApp, User};

async fn block(app: &TestApp, by: &User, whom: &User) -> Value {
    let reply = app
        .put(&format!("/users/{}/block", whom.id), &by.token)
        .await;
    reply.assert_status(StatusCode::OK);
    reply.body
}

async fn mute(app: &TestApp, by: &User, whom: &User) -> Value {
    let reply = app
        .put(&format!("/users/{}/mute", whom.id), &by.token)
        .await;
    reply.assert_status(StatusCode::OK);
    reply.body
}

async fn comment(app: &TestApp, by: &User, post: i64, text: &str) -> StatusCode {
    let path = format!("/posts/{post}/comments");
    app.post(&path, &by.token, json!({ "text": text }))
        .await
        .status
}

/// The ids of `actor`'s notifications in `recipient`'s inbox.
async fn notifications_from(app: &TestApp, recipient: &User, actor: &User) -> Vec<i64> {
    app.all_notifications(recipient)
        .await
        .iter()
        .filter(|n| n["actor"]["id"] == json!(actor.id))
        .map(|n| n["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_and_mutes_are_idempotent_and_refuse_yourself_and_unknown_users() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    for (kind, field) in [("block", "blocked_by_me"), ("mute", "muted_by_me")] {
        let path = format!("/users/{}/{kind}", bob.id);
        for _ in 0..2 {
            let reply = app.put(&path, &alice.token).await;
            reply.assert_status(StatusCode::OK);
            assert_eq!(reply.body[field], json!(true), "{kind}: {}", reply.body);
        }
        let seen = app
            .get(&format!("/users/{}", bob.username), &alice.token)
            .await;
        assert_eq!(seen.body[field], json!(true), "{kind}");
        for _ in 0..2 {
            let reply = app.delete(&path, &alice.token).await;
            reply.assert_status(StatusCode::OK);
            assert_eq!(reply.body[field], json!(false), "{kind}");
        }
        app.put(&format!("/users/{}/{kind}", alice.id), &alice.token)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
        app.put(&format!("/users/999999/{kind}"), &alice.token)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
        app.put(&format!("/users/x/{kind}"), &alice.token)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_ends_the_follows_both_ways_and_they_cannot_be_made_again() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    app.follow(&alice, &bob).await;
    app.follow(&bob, &alice).await;
    let blocked = block(&app, &alice, &bob).await;
    assert_eq!(blocked["followed_by_me"], json!(false));
    assert_eq!(blocked["follower_count"], json!(0));
    let me = app.get("/me", &alice.token).await.body;
    assert_eq!(
        (me["follower_count"].clone(), me["following_count"].clone()),
        (json!(0), json!(0))
    );
    app.put(&format!("/users/{}/follow", alice.id), &bob.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    app.put(&format!("/users/{}/follow", bob.id), &alice.token)
        .await
        .assert_problem(StatusCode::CONFLICT, "/problems/conflict");
}

#[tokio::test(flavor = "multi_thread")]
async fn to_the_blocked_user_the_blocker_and_what_is_theirs_do_not_exist() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "mine").await["id"]
        .as_i64()
        .unwrap();
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    block(&app, &alice, &bob).await;

    let not_found = |reply: crate::support::Reply| {
        reply.assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    };
    not_found(
        app.get(&format!("/users/{}", alice.username), &bob.token)
            .await,
    );
    not_found(
        app.get(&format!("/users/{}/posts", alice.id), &bob.token)
            .await,
    );
    not_found(app.get(&format!("/posts/{post}"), &bob.token).await);
    not_found(
        app.get(&format!("/posts/{post}/comments"), &bob.token)
            .await,
    );
    not_found(app.like(&bob, post).await);
    not_found(app.delete(&format!("/posts/{post}/like"), &bob.token).await);
    not_found(
        app.post(
            &format!("/posts/{post}/comments"),
            &bob.token,
            json!({"text": "hi"}),
        )
        .await,
    );
    not_found(
        app.delete(&format!("/users/{}/follow", alice.id), &bob.token)
            .await,
    );
    for kind in ["block", "mute"] {
        not_found(
            app.put(&format!("/users/{}/{kind}", alice.id), &bob.token)
                .await,
        );
    }
    for list in ["/blocks", "/mutes"] {
        assert_eq!(
            app.get(list, &bob.token).await.body["items"],
            json!([]),
            "{list}"
        );
    }
    // Her posts' like counts are not his to watch either.
    let own = app.create_post(&bob, "his").await["id"].as_i64().unwrap();
    let mut socket = app.socket(&bob, "").await;
    socket
        .send_json(json!({"type": "subscribe", "post_ids": [post, own]}))
        .await;
    assert_eq!(
        socket.next().await,
        json!({"type": "subscribed", "post_ids": [own]})
    );
    // Nothing changed on alice's side: still one like, no comment.
    let seen = app.get(&format!("/posts/{post}"), &alice.token).await.body;
    assert_eq!(
        (seen["like_count"].clone(), seen["comment_count"].clone()),
        (json!(1), json!(0))
    );
    // Bob still sees himself, and alice still sees bob.
    app.get(&format!("/users/{}", bob.username), &alice.token)
        .await
        .assert_status(StatusCode::OK);
    app.get("/me", &bob.token)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_removes_the_blocked_users_notifications_from_the_inbox_and_open_screens() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "mine").await["id"]
        .as_i64()
        .unwrap();
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    assert_eq!(comment(&app, &bob, post, "nice").await, StatusCode::CREATED);
    app.like(&carol, post).await.assert_status(StatusCode::OK);
    let from_bob = notifications_from(&app, &alice, &bob).await;
    assert_eq!(from_bob.len(), 2);
    let mut socket = app.socket(&alice, "").await;

    block(&app, &alice, &bob).await;

    let removed = socket.next_of("notifications_removed", &["read"]).await;
    let mut ids: Vec<i64> = serde_json::from_value(removed["notification_ids"].clone()).unwrap();
    ids.sort_unstable();
    let mut expected = from_bob.clone();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(removed["unread_count"], json!(1), "carol's like is left");
    assert!(notifications_from(&app, &alice, &bob).await.is_empty());
    assert_eq!(notifications_from(&app, &alice, &carol).await.len(), 1);
    // A reconnecting client replays nothing of bob's.
    let mut again = app.socket(&alice, "?since=0").await;
    let replayed = again.next_of("notification", &[]).await;
    assert_eq!(replayed["notification"]["actor"]["id"], json!(carol.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_blockers_feed_drops_the_blocked_users_posts_and_the_blocked_user_notifies_nothing() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    app.follow(&alice, &bob).await;
    let bobs = app.create_post(&bob, "bob's").await["id"].as_i64().unwrap();
    let feed = app.get("/feed", &alice.token).await.body;
    assert_eq!(feed["items"][0]["id"], json!(bobs));
    block(&app, &alice, &bob).await;
    let feed = app.get("/feed", &alice.token).await.body;
    assert!(feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != json!(bobs)));

    // Unblocked, bob's actions reach alice again; blocked, none did.
    let alices = app.create_post(&alice, "alice's").await["id"]
        .as_i64()
        .unwrap();
    let mut socket = app.socket(&alice, "").await;
    app.delete(&format!("/users/{}/block", bob.id), &alice.token)
        .await
        .assert_status(StatusCode::OK);
    app.like(&bob, alices).await.assert_status(StatusCode::OK);
    let frame = socket.next_of("notification", &["read"]).await;
    assert_eq!(frame["notification"]["actor"]["id"], json!(bob.id));
    block(&app, &alice, &bob).await;
    app.delete(&format!("/users/{}/block", bob.id), &alice.token)
        .await
        .assert_status(StatusCode::OK);
    app.like(&carol, alices).await.assert_status(StatusCode::OK);
    let frame = socket
        .next_of("notification", &["read", "notifications_removed"])
        .await;
    assert_eq!(frame["notification"]["actor"]["id"], json!(carol.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_muted_user_notifies_nothing_and_everything_else_is_unchanged() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "mine").await["id"]
        .as_i64()
        .unwrap();
    let mut socket = app.socket(&alice, "").await;
    mute(&app, &alice, &bob).await;

    app.like(&bob, post).await.assert_status(StatusCode::OK);
    assert_eq!(
        comment(&app, &bob, post, "hello").await,
        StatusCode::CREATED
    );
    app.follow(&bob, &alice).await;
    app.like(&carol, post).await.assert_status(StatusCode::OK);
    // The first frame alice's socket gets is carol's: nothing of bob's went out.
    let frame = socket.next_of("notification", &[]).await;
    assert_eq!(frame["notification"]["actor"]["id"], json!(carol.id));
    assert!(notifications_from(&app, &alice, &bob).await.is_empty());
    // Everything else is as before: bob's like and comment count, he follows her.
    let seen = app.get(&format!("/posts/{post}"), &bob.token).await.body;
    assert_eq!(
        (seen["like_count"].clone(), seen["comment_count"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(
        app.get("/me", &alice.token).await.body["follower_count"],
        json!(1)
    );

    app.delete(&format!("/users/{}/mute", bob.id), &alice.token)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        comment(&app, &bob, post, "again").await,
        StatusCode::CREATED
    );
    let frame = socket.next_of("notification", &["like_count"]).await;
    assert_eq!(frame["notification"]["actor"]["id"], json!(bob.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_and_mutes_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut others = Vec::new();
    for name in ["one", "two", "three"] {
        let other = app.register(name).await;
        block(&app, &alice, &other).await;
        mute(&app, &alice, &other).await;
        others.push(other);
    }
    for list in ["/blocks", "/mutes"] {
        let first = app.get(&format!("{list}?limit=2"), &alice.token).await.body;
        let cursor = first["next_cursor"].as_str().unwrap();
        let second = app
            .get(&format!("{list}?limit=2&cursor={cursor}"), &alice.token)
            .await
            .body;
        let ids: Vec<Value> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["items"].as_array().unwrap())
            .map(|u| u["id"].clone())
            .collect();
        let newest_first: Vec<Value> = others.iter().rev().map(|u| json!(u.id)).collect();
        assert_eq!(ids, newest_first, "{list}");
        assert!(second["next_cursor"].is_null(), "{list}");
    }
    let nobody = app.register("nobody").await;
    let empty = app.get("/blocks", &nobody.token).await.body;
    assert_eq!(empty["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_and_mutes_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(|s| s.limits.rate_blocks_per_min = 3).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    block(&app, &alice, &bob).await;
    mute(&app, &alice, &bob).await;
    app.delete(&format!("/users/{}/mute", bob.id), &alice.token)
        .await
        .assert_status(StatusCode::OK);
    let refused = app
        .put(&format!("/users/{}/mute", bob.id), &alice.token)
        .await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited");
    assert!(!app
        .get(&format!("/users/{}", bob.username), &alice.token)
        .await
        .body["muted_by_me"]
        .as_bool()
        .unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_racing_the_blocked_users_likes_comments_and_follows_leaves_no_notification() {
    let app = TestApp::spawn().await;
    for round in 0..12 {
        let (alice, bob) = (app.register("alice").await, app.register("bob").await);
        let posts: Vec<i64> =
            futures_util::future::join_all((0..3).map(|_| app.create_post(&alice, "p")))
                .await
                .iter()
                .map(|p| p["id"].as_i64().unwrap())
                .collect();
        let follow_path = format!("/users/{}/follow", alice.id);
        let writes = async {
            let likes = futures_util::future::join_all(posts.iter().map(|p| app.like(&bob, *p)));
            let comments = futures_util::future::join_all(
                posts.iter().map(|p| comment(&app, &bob, *p, "race")),
            );
            let follow = app.put(&follow_path, &bob.token);
            futures_util::join!(likes, comments, follow)
        };
        let blocking = async {
            // Staggered across rounds so the block lands before, among and after the writes.
            tokio::time::sleep(std::time::Duration::from_millis(round % 4)).await;
            block(&app, &alice, &bob).await
        };
        let ((likes, comments, follow), _) = futures_util::join!(writes, blocking);
        for reply in &likes {
            assert!(
                matches!(reply.status.as_u16(), 200 | 404),
                "{}",
                reply.status
            );
        }
        for status in &comments {
            assert!(matches!(status.as_u16(), 201 | 404), "{status}");
        }
        assert!(
            matches!(follow.status.as_u16(), 200 | 404),
            "{}",
            follow.status
        );
        let left = notifications_from(&app, &alice, &bob).await;
        assert!(
            left.is_empty(),
            "round {round}: notifications {left:?} survived the block"
        );
    }
}

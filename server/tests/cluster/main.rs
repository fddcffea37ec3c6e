//! Two instances sharing one PostgreSQL and one Redis: the production shape. Always runs on
//! PostgreSQL and Redis (see `support` for the URLs); a missing service fails these tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod events;
mod redis_cluster;
mod redis_process;
mod revocations;
mod sharded;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pulse_server::telemetry::Metrics;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use support::socket::Ended;
use support::{Store, TestApp};

async fn pair() -> (TestApp, TestApp) {
    let store = Store::fresh_postgres().await;
    let a = TestApp::spawn_on(&store, |_| {}).await;
    let b = TestApp::spawn_on(&store, |_| {}).await;
    (a, b)
}

/// Two instances on a Redis process of the test's own (to kill and restart), reconnecting fast.
async fn pair_on_own_redis() -> (redis_process::RedisProcess, TestApp, TestApp) {
    let redis = redis_process::RedisProcess::start().await;
    let mut store = Store::fresh_postgres().await;
    store.redis_url = Some(redis.url());
    store.redis_cluster_urls.clear();
    let fast_reconnect =
        |s: &mut pulse_server::config::Settings| s.limits.redis_max_backoff_ms = 200;
    let a = TestApp::spawn_on(&store, fast_reconnect).await;
    let b = TestApp::spawn_on(&store, fast_reconnect).await;
    (redis, a, b)
}

fn id(frame: &serde_json::Value) -> i64 {
    frame["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_like_through_one_instance_reaches_a_socket_on_the_other() {
    let (a, b) = pair().await;
    let alice = a.register("alice").await;
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut socket = a.socket(&alice, "").await;
    let mut latencies = Vec::new();
    for round in 0..5 {
        let liker = b.register(&format!("liker{round}")).await;
        let started = Instant::now();
        b.like(&liker, post).await.assert_status(StatusCode::OK);
        let notification = socket.notification().await;
        latencies.push(started.elapsed());
        assert_eq!(notification["actor"]["id"], liker.id);
    }
    latencies.sort();
    println!("delivery latency (Redis, like via B -> frame on A), 5 likes: {latencies:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_of_one_user_on_both_instances_each_get_it_once() {
    let (a, b) = pair().await;
    let (alice, bob, carol) = (
        a.register("alice").await,
        a.register("bob").await,
        a.register("carol").await,
    );
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut on_a = a.socket(&alice, "").await;
    let mut on_b = b.socket(&alice, "").await;
    b.like(&bob, post).await.assert_status(StatusCode::OK);
    a.follow(&carol, &alice).await; // sentinel: the next frame after the like must be this
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.notification().await["kind"], "like");
        assert_eq!(
            socket.notification().await["kind"],
            "follow",
            "no duplicate"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn like_counts_and_read_state_cross_instances() {
    let (a, b) = pair().await;
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut watcher_a = a.socket(&bob, "").await;
    let mut watcher_b = b.socket(&bob, "").await;
    for socket in [&mut watcher_a, &mut watcher_b] {
        socket
            .send_json(json!({"type": "subscribe", "post_ids": [post]}))
            .await;
        assert_eq!(
            socket.next().await,
            json!({"type": "subscribed", "post_ids": [post]})
        );
    }
    let fans = join_all((0..6).map(|i| {
        let a = &a;
        async move { a.register(&format!("f{i}")).await }
    }))
    .await;
    join_all(fans.iter().enumerate().map(|(i, fan)| {
        if i % 2 == 0 {
            a.like(fan, post)
        } else {
            b.like(fan, post)
        }
    }))
    .await;
    for socket in [&mut watcher_a, &mut watcher_b] {
        let mut last = 0;
        while last != 6 {
            let frame = socket.next_of("like_count", &[]).await;
            let count = frame["like_count"].as_i64().unwrap();
            assert!(count >= last, "counts never go back");
            last = count;
        }
    }

    // Read on B is pushed to Alice's sockets on A and B.
    let mut alice_a = a.socket(&alice, "").await;
    let mut alice_b = b.socket(&alice, "").await;
    let newest = a.all_notifications(&alice).await[0]["id"].as_i64().unwrap();
    b.post(
        "/notifications/read",
        &alice.token,
        json!({"up_to_id": newest}),
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(
        alice_a.next().await,
        json!({"type": "read", "unread_count": 0})
    );
    assert_eq!(
        alice_b.next().await,
        json!({"type": "read", "unread_count": 0})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_closes_the_tokens_sockets_on_every_instance_within_a_second() {
    let (a, b) = pair().await;
    let alice = a.register("alice").await;
    let mut on_a = a.socket(&alice, "").await;
    let mut on_b = b.socket(&alice, "").await;
    let started = Instant::now();
    b.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(on_a.closed().await, Some(4401));
    assert_eq!(on_b.closed().await, Some(4401));
    let took = started.elapsed();
    println!("logout via B -> 4401 on A and B: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    a.get("/me", &alice.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnect_storm_ends_with_exactly_the_database_set() {
    let (a, b) = pair().await;
    let alice = a.register("alice").await;
    let post = a.create_post(&alice, "storm").await["id"].as_i64().unwrap();
    let fans = join_all((0..30).map(|i| {
        let a = &a;
        async move { a.register(&format!("s{i}")).await }
    }))
    .await;

    let likes = async {
        join_all(fans.iter().enumerate().map(|(i, fan)| {
            let (a, b) = (&a, &b);
            async move {
                let app = if i % 2 == 0 { a } else { b };
                app.like(fan, post).await.assert_status(StatusCode::OK);
            }
        }))
        .await;
    };
    let client = async {
        let mut seen: Vec<i64> = Vec::new();
        let mut connects = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 30 {
            assert!(
                Instant::now() < deadline,
                "storm client stuck with {} of 30",
                seen.len()
            );
            let app = if connects % 2 == 0 { &a } else { &b };
            let since = seen.last().copied().unwrap_or(0);
            let mut socket = app.socket(&alice, &format!("?since={since}")).await;
            connects += 1;
            // Read a couple of frames (or briefly nothing), then drop the connection.
            for _ in 0..2 {
                match socket.next_within(Duration::from_millis(150)).await {
                    Ok(frame) if frame["type"] == "notification" => {
                        let n = id(&frame["notification"]);
                        assert!(
                            seen.last().is_none_or(|last| n > *last),
                            "ids strictly increase: {n} after {seen:?}"
                        );
                        seen.push(n);
                    }
                    Ok(frame) => panic!("unexpected {frame}"),
                    Err(Ended::TimedOut) => break,
                    Err(Ended::Closed(code)) => panic!("closed {code:?}"),
                }
            }
            drop(socket);
        }
        (seen, connects)
    };
    let ((), (seen, connects)) = tokio::join!(likes, client);
    let in_db = a.notification_ids(&alice).await;
    assert_eq!(
        seen, in_db,
        "exactly the database set, in order, no duplicate"
    );
    println!(
        "reconnect storm: {} notifications over {connects} connections",
        seen.len()
    );
}

/// Likes of one author's posts through both instances at once (each instance writes the likes
/// for one author that arrive together in one transaction): per post every like its own count,
/// one notification per like, and the author's sockets on both instances get them all once, in
/// id order.
#[tokio::test(flavor = "multi_thread")]
async fn likes_of_one_authors_posts_through_both_instances_at_once_stay_exact() {
    const LIKERS: usize = 40;
    let (a, b) = pair().await;
    let author = a.register("author").await;
    let posts = a.create_posts(&author, 3).await;
    let likers = a.register_many("v", LIKERS).await;
    let mut sockets = [a.socket(&author, "").await, b.socket(&author, "").await];
    let likes: Vec<(i64, &support::User)> = likers
        .iter()
        .flat_map(|liker| posts.iter().map(move |post| (*post, liker)))
        .collect();
    let replies = join_all(likes.iter().enumerate().map(|(i, (post, liker))| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.like(liker, *post)
    }))
    .await;
    for post in &posts {
        let of_post = likes.iter().zip(&replies).filter(|((p, _), _)| p == post);
        assert_eq!(
            support::sorted_like_counts(of_post.map(|(_, reply)| reply)),
            (1..=LIKERS as i64).collect::<Vec<_>>(),
            "post {post}"
        );
    }
    let in_db = a.notification_ids(&author).await;
    assert_eq!(in_db.len(), likes.len(), "one notification per like");
    for socket in &mut sockets {
        let mut seen = Vec::new();
        while seen.len() < in_db.len() {
            seen.push(id(&socket.notification().await));
        }
        assert_eq!(seen, in_db, "every notification once, in order");
    }
}

/// A publish that fails while both subscribers stay connected (Redis refuses `PUBLISH` for a
/// while): the like reaches the socket on its own instance at once, and the other instance's
/// socket as soon as Redis takes the publish again, with no later event to reveal the gap;
/// each socket gets it once.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_that_failed_reaches_the_other_instance_when_redis_takes_it() {
    let (redis, a, b) = pair_on_own_redis().await;
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut on_a = a.socket(&alice, "").await;
    let mut on_b = b.socket(&alice, "").await;
    let count = |app: &TestApp, pick: fn(&Metrics) -> &AtomicU64| {
        pick(&app.state.metrics).load(Ordering::Relaxed)
    };

    redis.allow_publish(false).await;
    a.like(&bob, post).await.assert_status(StatusCode::OK);
    let liked = on_a.notification().await;
    assert_eq!(liked["actor"]["id"], bob.id);
    // The notification (its group change travels with it) and the like count.
    assert_eq!(count(&a, |m| &m.publish_failures), 2);
    assert_eq!(count(&a, |m| &m.republished), 0, "nothing goes through yet");
    redis.allow_publish(true).await;
    let on_other = on_b.notification().await;
    assert_eq!(id(&on_other), id(&liked));
    // The republisher counts a publish once Redis answered it, which can come after B's
    // subscriber was handed the message.
    support::eventually("A counts the publish sent again", || async {
        (count(&a, |m| &m.republished) >= 1).then_some(())
    })
    .await;
    assert_eq!(count(&a, |m| &m.republish_abandoned), 0);
    assert_eq!(
        count(&b, |m| &m.redis_reconnects),
        0,
        "B's subscriber never dropped"
    );

    // Nothing more is queued (A's subscriber heard the copy too, and dropped it): the next
    // frame on each socket is a fresh sentinel.
    let carol = b.register("carol").await;
    b.follow(&carol, &alice).await;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.notification().await["kind"], "follow");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_mid_test_loses_nothing() {
    let (mut redis, a, b) = pair_on_own_redis().await;
    let alice = a.register("alice").await;
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut on_a = a.socket(&alice, "").await;
    let mut on_b = b.socket(&alice, "").await;
    let fans = join_all((0..12).map(|i| {
        let a = &a;
        async move { a.register(&format!("r{i}")).await }
    }))
    .await;

    // Before: works.
    b.like(&fans[0], post).await.assert_status(StatusCode::OK);
    // Redis dies; REST keeps working on both instances.
    redis.kill();
    for (i, fan) in fans[1..6].iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        app.like(fan, post).await.assert_status(StatusCode::OK);
    }
    // Redis comes back (empty, on the same port); more likes.
    redis.restart().await;
    support::eventually("both instances resubscribed", || async {
        let reconnects = |app: &TestApp| {
            app.state
                .metrics
                .redis_reconnects
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        (reconnects(&a) >= 1
            && reconnects(&b) >= 1
            && a.state.bus.is_connected()
            && b.state.bus.is_connected())
        .then_some(())
    })
    .await;
    for (i, fan) in fans[6..].iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        app.like(fan, post).await.assert_status(StatusCode::OK);
    }
    let in_db = a.notification_ids(&alice).await;
    assert_eq!(in_db.len(), 12);
    for (name, socket) in [("A", &mut on_a), ("B", &mut on_b)] {
        let mut seen = Vec::new();
        while seen.len() < in_db.len() {
            let n = socket.notification().await;
            seen.push(id(&n));
        }
        assert_eq!(
            seen, in_db,
            "socket on {name}: every notification once, in order"
        );
    }
    // Nothing more is queued: the next frame on each socket is a fresh sentinel.
    let sentinel = a.register("sentinel").await;
    b.follow(&sentinel, &alice).await;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.notification().await["kind"], "follow");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_a_stopped_instance_resume_on_the_other_without_loss() {
    let (a, b) = pair().await;
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut on_a = a.socket(&alice, "").await;
    b.post(
        &format!("/posts/{post}/comments"),
        &bob.token,
        json!({"text": "one"}),
    )
    .await;
    let last_seen = id(&on_a.notification().await);
    let stopping = tokio::spawn(a.stop());
    assert_eq!(on_a.closed().await, Some(1001));
    // Written while the client is between instances.
    b.post(
        &format!("/posts/{post}/comments"),
        &bob.token,
        json!({"text": "two"}),
    )
    .await;
    b.like(&bob, post).await;
    let mut on_b = b.socket(&alice, &format!("?since={last_seen}")).await;
    let replayed: Vec<String> = vec![
        on_b.notification().await["kind"]
            .as_str()
            .unwrap()
            .to_owned(),
        on_b.notification().await["kind"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    assert_eq!(replayed, vec!["comment", "like"]);
    stopping.await.unwrap();
    let all: BTreeSet<i64> = b.all_notifications(&alice).await.iter().map(id).collect();
    assert_eq!(all.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_shared_by_the_instances_through_redis() {
    let store = Store::fresh_postgres().await;
    let limit_likes = |s: &mut pulse_server::config::Settings| s.limits.rate_likes_per_min = 3;
    let a = TestApp::spawn_on(&store, limit_likes).await;
    let b = TestApp::spawn_on(&store, limit_likes).await;
    let (author, fan) = (a.register("author").await, a.register("fan").await);
    let post = a.create_post(&author, "p").await["id"].as_i64().unwrap();
    a.like(&fan, post).await.assert_status(StatusCode::OK);
    b.delete(&format!("/posts/{post}/like"), &fan.token)
        .await
        .assert_status(StatusCode::OK);
    a.like(&fan, post).await.assert_status(StatusCode::OK);
    // The fourth in this minute is refused by the other instance too.
    b.like(&fan, post)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited");
}

/// `user`'s groups as the server lists them: id -> (actor_count, read).
async fn listed_groups(app: &TestApp, user: &support::User) -> BTreeMap<i64, (i64, bool)> {
    let listed = app
        .get("/notifications/groups?limit=100", &user.token)
        .await;
    listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let state = (
                g["actor_count"].as_i64().unwrap(),
                g["read"].as_bool().unwrap(),
            );
            (g["id"].as_i64().unwrap(), state)
        })
        .collect()
}

/// Folds `group`/`group_removed` frames into id -> (actor_count, read); returns the version.
fn fold_group(state: &mut BTreeMap<i64, (i64, bool)>, frame: &serde_json::Value) -> i64 {
    if frame["type"] == "group_removed" {
        state.remove(&frame["group_id"].as_i64().unwrap());
        return frame["version"].as_i64().unwrap();
    }
    let g = &frame["group"];
    state.insert(
        g["id"].as_i64().unwrap(),
        (
            g["actor_count"].as_i64().unwrap(),
            g["read"].as_bool().unwrap(),
        ),
    );
    g["version"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn group_sockets_on_both_instances_converge_through_a_redis_restart() {
    let (mut redis, a, b) = pair_on_own_redis().await;
    let alice = a.register("alice").await;
    let posts = [
        a.create_post(&alice, "p").await["id"].as_i64().unwrap(),
        a.create_post(&alice, "q").await["id"].as_i64().unwrap(),
    ];
    let mut sockets = [
        a.socket(&alice, "?groups=1").await,
        b.socket(&alice, "?groups=1").await,
    ];
    let fans = join_all((0..8).map(|i| {
        let a = &a;
        async move { a.register(&format!("g{i}")).await }
    }))
    .await;
    let round = |range: std::ops::Range<usize>| {
        let (a, b, fans) = (&a, &b, &fans);
        join_all(range.map(move |i| async move {
            let app = if i % 2 == 0 { a } else { b };
            for post in posts {
                app.like(&fans[i], post).await.assert_status(StatusCode::OK);
            }
            if i % 3 == 0 {
                app.call(
                    Method::DELETE,
                    &format!("/posts/{}/like", posts[0]),
                    Some(&fans[i].token),
                    None,
                )
                .await
                .assert_status(StatusCode::OK);
            }
        }))
    };
    round(0..3).await;
    redis.kill();
    round(3..6).await;
    redis.restart().await;
    support::eventually("both instances resubscribed", || async {
        (a.state.bus.is_connected() && b.state.bus.is_connected()).then_some(())
    })
    .await;
    round(6..8).await;
    // A last change after both are back, as in the test above: a socket that missed anything
    // while its instance resubscribed sees the version jump and reads what it missed.
    let sentinel = a.register("sentinel").await;
    b.like(&sentinel, posts[1])
        .await
        .assert_status(StatusCode::OK);
    let expected = listed_groups(&a, &alice).await;
    assert_eq!(expected.len(), 2);
    for (name, socket) in ["A", "B"].into_iter().zip(sockets.iter_mut()) {
        let mut state = BTreeMap::new();
        let mut last = 0;
        while state != expected {
            let frame = socket.next().await;
            if !matches!(frame["type"].as_str(), Some("group" | "group_removed")) {
                continue;
            }
            let version = fold_group(&mut state, &frame);
            assert!(version > last, "socket on {name}: versions increase");
            last = version;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_push_each_notification_to_each_device_exactly_once() {
    use support::push_service::PushService;
    let store = Store::fresh_postgres().await;
    let settings = |s: &mut pulse_server::config::Settings| {
        s.push_allow_private = true;
        s.limits.push_delay_ms = 50;
        s.limits.push_poll_ms = 20;
        s.limits.push_batch = 4;
    };
    let a = TestApp::spawn_on(&store, settings).await;
    let b = TestApp::spawn_on(&store, settings).await;
    let service = PushService::start(None);
    let alice = a.register("alice").await;
    let laptop = b.login(&alice).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (token, path) in [(alice.token.clone(), "phone"), (laptop, "laptop")] {
        a.subscribe_push(&token, &service, path).await;
    }
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let fans = join_all((0..30).map(|i| {
        let a = &a;
        async move { a.register(&format!("p{i}")).await }
    }))
    .await;
    join_all(fans.iter().enumerate().map(|(i, fan)| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            app.like(fan, post).await.assert_status(StatusCode::OK);
        }
    }))
    .await;
    for path in ["phone", "laptop"] {
        let pushed = service.wait_for(path, 30, Duration::from_secs(20)).await;
        let ids: BTreeSet<i64> = pushed
            .iter()
            .map(|d| d.payload["notification"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 30, "{path}: every notification");
        assert_eq!(service.attempts(path), 30, "{path}: none sent twice");
    }
    service.assert_no_rejections();
}

/// Groups changed through one instance (a join, a group made and its post deleted, a read, a new
/// group after the read) are replayed to a socket resuming on the other from its last version,
/// removals included, in increasing versions, then live; a plain socket on either instance
/// sees no group frame.
#[tokio::test(flavor = "multi_thread")]
async fn a_groups_socket_resumes_on_the_other_instance_with_what_changed_while_away() {
    let store = Store::fresh_postgres().await;
    let a = TestApp::spawn_on(&store, |_| {}).await;
    let b = TestApp::spawn_on(&store, |_| {}).await;
    let users = a.register_many("g", 4).await;
    let (alice, bob, carol, dan) = (&users[0], &users[1], &users[2], &users[3]);
    let posts = a.create_posts(alice, 2).await;
    let mut plain = [a.socket(alice, "").await, b.socket(alice, "").await];
    let mut on_a = a.socket(alice, "?groups=1").await;
    b.like(bob, posts[0]).await.assert_status(StatusCode::OK);
    let mut state = BTreeMap::new();
    let seen = loop {
        let frame = on_a.next().await;
        if frame["type"] == "group" {
            break fold_group(&mut state, &frame);
        }
    };
    on_a.close().await;
    // While away, through both instances.
    a.like(carol, posts[0]).await.assert_status(StatusCode::OK);
    b.like(bob, posts[1]).await.assert_status(StatusCode::OK);
    a.delete(&format!("/posts/{}", posts[1]), &alice.token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let listed = b.get("/notifications/groups", &alice.token).await;
    let first = listed.body["items"][0]["id"].as_i64().unwrap();
    b.post(
        "/notifications/read",
        &alice.token,
        json!({"group_ids": [first]}),
    )
    .await
    .assert_status(StatusCode::OK);
    a.like(dan, posts[0]).await.assert_status(StatusCode::OK);

    let mut on_b = b
        .socket(alice, &format!("?groups=1&groups_since={seen}"))
        .await;
    let expected = listed_groups(&a, alice).await;
    assert_eq!(
        expected.len(),
        2,
        "the read group of two, and dan's new one"
    );
    let (mut last, mut removals) = (seen, 0);
    while state != expected {
        let frame = on_b.next().await;
        if !matches!(frame["type"].as_str(), Some("group" | "group_removed")) {
            continue;
        }
        removals += usize::from(frame["type"] == "group_removed");
        let version = fold_group(&mut state, &frame);
        assert!(version > last, "versions increase: {version} after {last}");
        last = version;
    }
    assert_eq!(removals, 1, "the deleted post's group");
    // Then live, from the other instance.
    a.delete(&format!("/posts/{}/like", posts[0]), &dan.token)
        .await
        .assert_status(StatusCode::OK);
    loop {
        let frame = on_b.next().await;
        if matches!(frame["type"].as_str(), Some("group" | "group_removed")) {
            assert!(fold_group(&mut state, &frame) > last);
            break;
        }
    }
    // The plain sockets saw notifications and reads, never a group frame.
    let sentinel = a.register("sentinel").await;
    b.follow(&sentinel, alice).await;
    for socket in &mut plain {
        loop {
            let frame = socket.next().await;
            let kind = frame["type"].as_str().unwrap_or_default().to_owned();
            assert!(!kind.starts_with("group"), "a plain socket got {frame}");
            if kind == "notification" && frame["notification"]["kind"] == "follow" {
                break;
            }
        }
    }
}

/// Two instances with the default push delay and poll: an offline device gets its push within
/// a second of the like; errors are retried until it is delivered once; a 410 drops the
/// subscription for both instances; both pushes of one group carry its Topic; preferences saved
/// through one instance apply to likes through the other.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_push_promptly_retry_drop_and_follow_preferences_saved_on_either() {
    use support::push_service::PushService;
    let store = Store::fresh_postgres().await;
    let settings = |s: &mut pulse_server::config::Settings| s.push_allow_private = true;
    let a = TestApp::spawn_on(&store, settings).await;
    let b = TestApp::spawn_on(&store, settings).await;
    let service = PushService::start(None);
    let users = a.register_many("u", 5).await;
    let (alice, carol, bob, dave, erin) = (&users[0], &users[1], &users[2], &users[3], &users[4]);
    a.subscribe_push(&alice.token, &service, "alice").await;
    b.subscribe_push(&carol.token, &service, "carol").await;
    let (post_a, post_c) = (
        a.create_post(alice, "a").await["id"].as_i64().unwrap(),
        b.create_post(carol, "c").await["id"].as_i64().unwrap(),
    );

    let liked = Instant::now();
    b.like(bob, post_a).await.assert_status(StatusCode::OK);
    let first = service.wait_for("alice", 1, Duration::from_secs(10)).await;
    let took = first[0].received_at.duration_since(liked);
    println!("two instances, default delay: like -> push {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    service.script("alice", vec![500, 429]);
    a.like(dave, post_a).await.assert_status(StatusCode::OK);
    let both = service.wait_for("alice", 2, Duration::from_secs(10)).await;
    assert_eq!(service.attempts("alice"), 4, "1, then 500, 429, 201");
    let group = both[1].payload["group"]["id"].as_i64().unwrap();
    assert_eq!(both[1].payload["group"]["actor_count"], 2);
    for delivery in &both {
        assert_eq!(
            delivery.topic.as_deref(),
            Some(format!("g{group}").as_str())
        );
    }

    service.gone("carol");
    a.like(bob, post_c).await.assert_status(StatusCode::OK);
    support::eventually("the gone subscription dropped for both", || async {
        let on_a = a.get("/push/subscription", &carol.token).await.status;
        let on_b = b.get("/push/subscription", &carol.token).await.status;
        (on_a == StatusCode::NOT_FOUND && on_b == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert_eq!(service.attempts("carol"), 1);

    b.call(
        Method::PUT,
        "/notifications/preferences",
        Some(&alice.token),
        Some(json!({"like": {"push": false}})),
    )
    .await
    .assert_status(StatusCode::OK);
    a.like(erin, post_a).await.assert_status(StatusCode::OK);
    a.post(
        &format!("/posts/{post_a}/comments"),
        &erin.token,
        json!({"text": "hi"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let all = service.wait_for("alice", 3, Duration::from_secs(10)).await;
    assert_eq!(all[2].payload["notification"]["kind"], "comment");
    support::eventually("the queue empty", || async {
        let left = pulse_schema::push::queue_stats(&a.state.db).await.ok()?.0;
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(service.attempts("alice"), 5, "erin's like was not pushed");
    service.assert_no_rejections();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_shown_on_a_socket_of_one_instance_is_not_pushed_by_either() {
    use support::push_service::PushService;
    let store = Store::fresh_postgres().await;
    let settings = |s: &mut pulse_server::config::Settings| {
        s.push_allow_private = true;
        s.limits.push_delay_ms = 300;
        s.limits.push_poll_ms = 20;
    };
    let a = TestApp::spawn_on(&store, settings).await;
    let b = TestApp::spawn_on(&store, settings).await;
    let service = PushService::start(None);
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    a.subscribe_push(&alice.token, &service, "alice").await;
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut on_a = a.socket(&alice, "").await;
    b.like(&bob, post).await.assert_status(StatusCode::OK);
    on_a.notification().await;
    support::eventually("the push cancelled by instance A", || async {
        let cancelled = a
            .state
            .metrics
            .push
            .cancelled_live
            .load(std::sync::atomic::Ordering::Relaxed);
        let left = pulse_schema::push::queue_stats(&a.state.db)
            .await
            .unwrap()
            .0;
        (cancelled == 1 && left == 0).then_some(())
    })
    .await;
    assert_eq!(service.attempts("alice"), 0);
}

//! The live socket on one instance: every guarantee of the socket section of docs/API.md.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::socket::Ended;
use crate::support::{eventually, Socket, TestApp, User};

/// A sentinel: `from` follows `to` (a first follow notifies). The next notification frame `to`'s
/// socket reads must be this one, proving nothing (no duplicate) was queued before it.
async fn sentinel(app: &TestApp, from: &User, to: &User) {
    app.follow(from, to).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_first_then_live_notifications() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut socket = app.socket(&alice, "").await;
    assert_eq!(socket.hello["user_id"], alice.id);
    assert!(socket.hello["connection_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert_eq!(socket.hello["heartbeat_s"], 20);

    let started = Instant::now();
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    let notification = socket.notification().await;
    let latency = started.elapsed();
    println!("delivery latency (in-process, like request start -> frame): {latency:?}");
    assert_eq!(notification["kind"], "like");
    assert_eq!(notification["post_id"], post);
    assert_eq!(notification["actor"]["id"], bob.id);
    assert_eq!(
        notification["text"],
        format!("{} liked your photo.", bob.username)
    );
    // The pushed notification is exactly the stored one.
    assert_eq!(app.all_notifications(&alice).await[0], notification);

    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.next().await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_socket_of_the_recipient_gets_each_notification_once() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut phone = app.socket(&alice, "").await;
    let mut laptop = app.socket(&alice, "").await;
    let mut bystander = app.socket(&carol, "").await;
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    sentinel(&app, &carol, &alice).await;
    for socket in [&mut phone, &mut laptop] {
        assert_eq!(socket.notification().await["kind"], "like");
        assert_eq!(
            socket.notification().await["kind"],
            "follow",
            "no duplicate before the sentinel"
        );
    }
    // Carol's socket got nothing of Alice's: her next notification is her own sentinel.
    sentinel(&app, &bob, &carol).await;
    let own = bystander.notification().await;
    assert_eq!(own["actor"]["id"], bob.id);
}

/// Many writers notifying one recipient at once: each notification's `seq` is allocated and its
/// row inserted in one pipelined round trip, and the socket trusts `seq` to spot gaps and
/// duplicates. So every notification must arrive exactly once, in id order, with no replayed
/// extra before the sentinel.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_likes_reach_the_authors_socket_once_each_in_id_order() {
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    let fans = join_all((0..40).map(|i| {
        let app = &app;
        async move { app.register(&format!("fan{i}")).await }
    }))
    .await;
    let mut socket = app.socket(&author, "").await;
    // Each fan also likes twice at once: the repeat must not notify again.
    join_all(
        fans.iter()
            .flat_map(|fan| [app.like(fan, post), app.like(fan, post)]),
    )
    .await
    .iter()
    .for_each(|reply| {
        reply.assert_status(StatusCode::OK);
    });
    let mut received = Vec::new();
    for _ in &fans {
        let frame = socket.notification().await;
        assert_eq!(frame["kind"], "like");
        received.push((
            frame["id"].as_i64().unwrap(),
            frame["actor"]["id"].as_i64().unwrap(),
        ));
    }
    assert!(
        received.windows(2).all(|w| w[0].0 < w[1].0),
        "strictly increasing ids: {received:?}"
    );
    let mut actors: Vec<i64> = received.iter().map(|(_, actor)| *actor).collect();
    actors.sort_unstable();
    actors.dedup();
    assert_eq!(actors.len(), fans.len(), "one notification per fan");
    let pushed: Vec<i64> = received.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        app.notification_ids(&author).await,
        pushed,
        "pushed = stored"
    );
    sentinel(&app, &fans[0], &author).await;
    assert_eq!(
        socket.notification().await["kind"],
        "follow",
        "nothing repeated before the sentinel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn since_replays_missed_notifications_oldest_first_then_live() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    app.comment_n(&bob, post, 4, 3).await;
    let ids = app.notification_ids(&alice).await;
    let mut socket = app.socket(&alice, &format!("?since={}", ids[0])).await;
    for expected in &ids[1..] {
        assert_eq!(socket.notification().await["id"], *expected);
    }
    sentinel(&app, &carol, &alice).await;
    let live = socket.notification().await;
    assert_eq!(live["kind"], "follow");
    assert!(live["id"].as_i64().unwrap() > ids[3]);

    // since=0 replays everything; a since beyond the newest replays nothing.
    let mut everything = app.socket(&alice, "?since=0").await;
    for expected in ids.iter().chain([live["id"].as_i64().unwrap()].iter()) {
        assert_eq!(everything.notification().await["id"], *expected);
    }
    let mut nothing = app.socket(&alice, "?since=999999999").await;
    sentinel(&app, &bob, &alice).await;
    assert_eq!(nothing.notification().await["actor"]["id"], bob.id);

    for bad in [
        "?since=abc",
        "?since=-1",
        "?since=1.5",
        "?since=99999999999999999999",
    ] {
        let refused = Socket::open(&app.ws_url(bad), Some(&alice.token), None).await;
        assert_eq!(refused.err().map(|e| e.0), Some(400), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_the_replay_limit_missing_sends_a_gap_then_the_newest() {
    let app = TestApp::spawn_with(|s| s.limits.ws_replay_limit = 5).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    app.comment_n(&bob, post, 8, 3).await;
    let ids = app.notification_ids(&alice).await;
    let mut socket = app.socket(&alice, "?since=0").await;
    let gap = socket.next().await;
    assert_eq!(gap, json!({"type": "gap", "before_id": ids[3]}));
    for expected in &ids[3..] {
        assert_eq!(socket.notification().await["id"], *expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watchers_get_like_counts_and_the_last_one_is_final() {
    let app = TestApp::spawn_with(|s| s.limits.like_count_interval_ms = 100).await;
    let author = app.register("author").await;
    let watcher = app.register("watcher").await;
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    let mut socket = app.socket(&watcher, "").await;
    socket
        .send_json(json!({"type": "subscribe", "post_ids": [post, post]}))
        .await;
    assert_eq!(
        socket.next().await,
        json!({"type": "subscribed", "post_ids": [post]})
    );

    let fans = join_all((0..12).map(|i| {
        let app = &app;
        async move { app.register(&format!("fan{i}")).await }
    }))
    .await;
    join_all(fans.iter().map(|fan| app.like(fan, post))).await;
    // Coalesced: fewer messages than likes, counts never go backwards, and the last is 12.
    let mut counts = Vec::new();
    while counts.last() != Some(&12) {
        let frame = socket.next_of("like_count", &[]).await;
        assert_eq!(frame["post_id"], post);
        counts.push(frame["like_count"].as_i64().unwrap());
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    println!(
        "12 concurrent likes reported as {} like_count frames: {counts:?}",
        counts.len()
    );

    // Unsubscribed: no more counts. The next frame is the pong, not a count.
    socket
        .send_json(json!({"type": "unsubscribe", "post_ids": [post]}))
        .await;
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.next().await, json!({"type": "pong"}));
    app.like(&watcher, post).await.assert_status(StatusCode::OK);
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.next().await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn marking_read_is_pushed_to_every_socket_of_the_user() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    sentinel(&app, &bob, &alice).await;
    let mut one = app.socket(&alice, "").await;
    let mut two = app.socket(&alice, "").await;
    let id = app.all_notifications(&alice).await[0]["id"]
        .as_i64()
        .unwrap();
    app.post("/notifications/read", &alice.token, json!({"up_to_id": id}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(one.next().await, json!({"type": "read", "unread_count": 0}));
    assert_eq!(two.next().await, json!({"type": "read", "unread_count": 0}));
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_closes_that_tokens_sockets_with_4401_only() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let second = app.login(&alice).await;
    let other_token = second.body["token"].as_str().unwrap().to_owned();
    let mut doomed = app.socket(&alice, "").await;
    let ticket = app.ticket(&alice).await;
    let mut doomed_by_ticket = Socket::open(
        &app.ws_url(&format!("?ticket={}", crate::auth::urlencode(&ticket))),
        None,
        None,
    )
    .await
    .unwrap();
    let mut survivor = Socket::open(&app.ws_url(""), Some(&other_token), None)
        .await
        .unwrap();

    let started = Instant::now();
    app.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(doomed.closed().await, Some(4401));
    assert_eq!(
        doomed_by_ticket.closed().await,
        Some(4401),
        "a ticket's socket belongs to its token"
    );
    println!(
        "logout -> 4401 on the same instance: {:?}",
        started.elapsed()
    );
    survivor.send_json(json!({"type": "ping"})).await;
    assert_eq!(survivor.next().await, json!({"type": "pong"}));
    let refused = Socket::open(&app.ws_url(""), Some(&alice.token), None).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_is_closed_with_4401_when_its_token_expires() {
    let app = TestApp::spawn_with(|s| s.limits.token_ttl_secs = 2).await;
    let alice = app.register("alice").await;
    let mut socket = app.socket(&alice, "").await;
    let started = Instant::now();
    assert_eq!(socket.closed().await, Some(4401));
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "closed at expiry, took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_client_frames_get_error_frames_then_1008() {
    let app = TestApp::spawn_with(|s| {
        s.limits.ws_max_bad_frames = 3;
        s.limits.ws_max_subscriptions = 2;
    })
    .await;
    let alice = app.register("alice").await;
    let mut socket = app.socket(&alice, "").await;
    for garbage in [
        "not json",
        r#"{"type":"dance"}"#,
        r#"{"type":"subscribe","post_ids":"x"}"#,
    ] {
        socket.send_text(garbage).await;
        let frame = socket.next().await;
        assert_eq!(frame["type"], "error", "{garbage}: {frame}");
        assert!(frame["code"].as_str().is_some() && frame["message"].as_str().is_some());
    }
    // A good frame resets the count.
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.next().await["type"], "pong");
    socket.send_binary(vec![1, 2, 3]).await;
    assert_eq!(socket.next().await["type"], "error");
    socket
        .send_json(json!({"type": "subscribe", "post_ids": [1, 2, 3]}))
        .await;
    assert_eq!(socket.next().await["code"], "too_many_subscriptions");
    socket.send_text("{").await;
    assert_eq!(socket.next().await["type"], "error");
    socket.send_text("{").await;
    assert_eq!(socket.closed().await, Some(1008));

    // A frame over the size limit closes with 1009.
    let mut big = app.socket(&alice, "").await;
    big.send_text(&"x".repeat(64 * 1024)).await;
    assert_eq!(big.closed().await, Some(1009));
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_per_user_are_limited_and_origins_checked() {
    let app = TestApp::spawn_with(|s| {
        s.limits.ws_max_sockets_per_user = 2;
        s.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let alice = app.register("alice").await;
    let _one = app.socket(&alice, "").await;
    let two = app.socket(&alice, "").await;
    let third = Socket::open(&app.ws_url(""), Some(&alice.token), None).await;
    let (status, body) = third.err().unwrap();
    assert_eq!(status, 429);
    assert!(body.contains("/problems/rate-limited"), "{body}");
    two.close().await;
    eventually("a freed slot", || async {
        Socket::open(&app.ws_url(""), Some(&alice.token), None)
            .await
            .ok()
    })
    .await;

    let bob = app.register("bob").await;
    let evil = Socket::open(
        &app.ws_url(""),
        Some(&bob.token),
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(evil.err().map(|e| e.0), Some(403));
    let allowed = Socket::open(
        &app.ws_url(""),
        Some(&bob.token),
        Some("https://app.example"),
    )
    .await;
    assert!(allowed.is_ok());
    let same_origin = Socket::open(&app.ws_url(""), Some(&bob.token), Some(&app.base)).await;
    assert!(same_origin.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_delays_nobody_and_later_gets_everything() {
    let app = TestApp::spawn_with(|s| s.limits.ws_queue_len = 8).await;
    let (slow, fast, actor) = (
        app.register("slow").await,
        app.register("fast").await,
        app.register("actor").await,
    );
    let slow_post = app.create_post(&slow, "p").await["id"].as_i64().unwrap();
    let fast_post = app.create_post(&fast, "p").await["id"].as_i64().unwrap();
    let mut stalled = Socket::open_small_buffer(&app.ws_url(""), &slow.token).await;
    let mut healthy = app.socket(&fast, "").await;

    // Baseline latency for the healthy client.
    let started = Instant::now();
    app.post(
        &format!("/posts/{fast_post}/comments"),
        &actor.token,
        json!({"text": "baseline"}),
    )
    .await;
    healthy.notification().await;
    let baseline = started.elapsed();

    // Flood the stalled client with large notifications until its queue overflows.
    let mut sent = 0;
    while app
        .state
        .metrics
        .queue_overflows
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        app.comment_n(&actor, slow_post, 10, 2000).await;
        sent += 10;
        assert!(sent <= 2000, "the queue never overflowed");
    }
    app.comment_n(&actor, slow_post, 10, 2000).await;

    let started = Instant::now();
    app.like(&actor, fast_post)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(healthy.notification().await["kind"], "like");
    let during = started.elapsed();
    println!(
        "healthy client latency: baseline {baseline:?}, while another socket is stalled {during:?}"
    );
    assert!(
        during < baseline + Duration::from_millis(250),
        "baseline {baseline:?}, stalled {during:?}"
    );

    // The stalled client now reads: it receives every notification, in order, no duplicate.
    let expected = app.notification_ids(&slow).await;
    let mut received = Vec::new();
    while received.len() < expected.len() {
        match stalled.next_within(crate::support::DEADLINE).await {
            Ok(frame) if frame["type"] == "notification" => {
                received.push(frame["notification"]["id"].as_i64().unwrap())
            }
            Ok(frame) => panic!("unexpected frame {frame}"),
            Err(Ended::TimedOut) => panic!(
                "stalled client got {} of {}",
                received.len(),
                expected.len()
            ),
            Err(ended) => panic!("socket ended: {ended:?}"),
        }
    }
    assert_eq!(received, expected, "in order, no gap, no duplicate");
    println!(
        "stalled client received all {} notifications after overflow",
        received.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_accepts_nothing_is_closed_with_4008() {
    let app = TestApp::spawn_with(|s| {
        s.limits.ws_queue_len = 8;
        s.limits.ws_stall_timeout_secs = 1;
    })
    .await;
    let (slow, actor) = (app.register("slow").await, app.register("actor").await);
    let post = app.create_post(&slow, "p").await["id"].as_i64().unwrap();
    let mut stalled = Socket::open_small_buffer(&app.ws_url(""), &slow.token).await;
    // The kernel's send buffer on loopback grows to megabytes before the server's writes block,
    // so keep writing until the stall timeout fires, bounded by time rather than by a count
    // that a fast machine gets through before the buffers fill.
    let started = std::time::Instant::now();
    while app
        .state
        .metrics
        .slow_disconnects
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        app.comment_n(&actor, post, 10, 2000).await;
        assert!(
            started.elapsed() < 3 * crate::support::DEADLINE,
            "never closed for slowness"
        );
    }
    assert_eq!(stalled.closed().await, Some(4008));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_sockets_with_1001() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(app.socket(&alice, "").await);
    }
    let stopping = tokio::spawn(app.stop());
    for socket in &mut sockets {
        assert_eq!(socket.closed().await, Some(1001));
    }
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_keep_an_answering_client_and_drop_a_silent_one() {
    let app = TestApp::spawn_with(|s| {
        s.limits.ws_heartbeat_secs = 1;
        s.limits.ws_client_timeout_secs = 2;
    })
    .await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let mut answering = app.socket(&alice, "").await;
    let mut silent = Socket::open_small_buffer(&app.ws_url(""), &bob.token).await;
    // Reading answers the server's pings; for twice the timeout nothing but pings arrives.
    assert!(matches!(
        answering.next_within(Duration::from_secs(4)).await,
        Err(Ended::TimedOut)
    ));
    answering.send_json(json!({"type": "ping"})).await;
    assert_eq!(answering.next().await, json!({"type": "pong"}));
    // The client that answered nothing was dropped.
    let closed_1001 = || {
        let text = app.state.metrics.render((0, 0, 0));
        text.contains("pulse_sockets_closed_total{code=\"1001\"} 1")
    };
    eventually("the silent socket to be dropped", || async {
        closed_1001().then_some(())
    })
    .await;
    // The server sent 1001 (counted above); a client that read nothing may instead see the
    // connection reset, which discards what its kernel had buffered, the close frame included.
    let seen = silent.closed().await;
    assert!(matches!(seen, Some(1001) | None), "{seen:?}");
}

/// Client frames of every size up to the limit arrive whole, also after the connection has sat
/// idle: the vendored actix-http copies small frames out of its read buffer, splits large ones
/// off it, and releases the buffer whenever the connection waits (server/vendor/README.md).
#[tokio::test(flavor = "multi_thread")]
async fn client_frames_of_every_size_arrive_whole_after_idle_periods() {
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let watcher = app.register("watcher").await;
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    let mut socket = app.socket(&watcher, "").await;
    // Padding (JSON whitespace) around 1 KiB, where the patch switches from copying to
    // splitting, and up to just under the 16 KiB frame limit.
    for padding in [0, 900, 1_000, 1_100, 8 * 1024, 16 * 1024 - 100] {
        let frame = format!(
            r#"{{"type":"subscribe","post_ids":[{post}]{}}}"#,
            " ".repeat(padding)
        );
        socket.send_text(&frame).await;
        assert_eq!(
            socket.next().await,
            json!({"type": "subscribed", "post_ids": [post]}),
            "frame of {} bytes",
            frame.len()
        );
        // The connection waited before that answer went out, so the server had released its
        // buffers; the next frame finds none.
        socket.send_json(json!({"type": "ping"})).await;
        assert_eq!(socket.next().await["type"], "pong");
    }
    // Delivery still works on the same connection afterwards.
    assert_eq!(app.like(&watcher, post).await.status, 200);
    assert_eq!(
        socket.next().await,
        json!({"type": "like_count", "post_id": post, "like_count": 1})
    );
}

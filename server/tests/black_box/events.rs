//! The event stream (`GET /api/v1/events`) on one instance: the socket's guarantees, as
//! server-sent events (the "Server-sent events" section of docs/API.md).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::events::{EventStream, Request};
use crate::support::socket::Ended;
use crate::support::{TestApp, User};

/// The ids of the next `n` notification events, checking each event's id is its notification's.
async fn next_ids(stream: &mut EventStream, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let (event_id, notification) = stream.notification().await;
        let id = notification["id"].as_i64().unwrap();
        assert_eq!(event_id, Some(id.to_string()), "a notification event's id");
        ids.push(id);
    }
    ids
}

/// `from` follows `to`: a notification that proves nothing else was queued before it.
async fn sentinel(app: &TestApp, from: &User, to: &User) -> i64 {
    app.follow(from, to).await;
    *app.notification_ids(to).await.last().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_says_hello_then_sends_notifications_and_watched_like_counts() {
    let app = TestApp::spawn_with(|s| s.limits.like_count_interval_ms = 50).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut stream = app.events(&alice, &format!("?post_ids={post}")).await;
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-store"));
    assert_eq!(stream.header("x-accel-buffering"), Some("no"));
    assert_eq!(stream.hello["user_id"], alice.id);
    assert_eq!(stream.hello["heartbeat_s"], 15);
    let subscribed = stream.next().await;
    assert_eq!(subscribed.kind, "subscribed");
    assert_eq!(
        subscribed.data,
        json!({"type": "subscribed", "post_ids": [post]})
    );

    app.like(&bob, post).await.assert_status(StatusCode::OK);
    // The notification and the count, in either order (on a Redis Cluster the user's channel
    // and the post's may live on different shards).
    let (first, second) = (stream.next().await, stream.next().await);
    let (notification, count) = if first.kind == "notification" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(notification.kind, "notification");
    let stored = app.all_notifications(&alice).await[0].clone();
    assert_eq!(
        notification.data["notification"], stored,
        "the stored notification"
    );
    assert_eq!(notification.id, Some(stored["id"].to_string()));
    assert_eq!(count.kind, "like_count");
    assert_eq!(
        count.id, None,
        "only notification and group events carry ids"
    );
    assert_eq!(count.data["like_count"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resumes_with_no_gap_and_no_duplicate() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut first = app.events(&alice, "").await;
    app.comment_n(&bob, post, 3, 3).await;
    let seen = next_ids(&mut first, 3).await;
    drop(first);
    // Missed while away, then resumed the way a browser's EventSource reconnects: the URL it
    // first used (here with an older ?since=) and the id it last saw, which wins.
    app.comment_n(&bob, post, 4, 3).await;
    let last = seen[2].to_string();
    let mut resumed = app
        .events_with(Some(&alice.token), "?since=0", &[("Last-Event-ID", &last)])
        .await
        .unwrap();
    let all = app.notification_ids(&alice).await;
    assert_eq!(next_ids(&mut resumed, 4).await, all[3..].to_vec());
    let live = sentinel(&app, &carol, &alice).await;
    assert_eq!(
        next_ids(&mut resumed, 1).await,
        vec![live],
        "then live, nothing twice"
    );

    // ?since= alone resumes the same way.
    let mut by_query = app.events(&alice, &format!("?since={}", all[5])).await;
    assert_eq!(next_ids(&mut by_query, 2).await, vec![all[6], live]);
}

#[tokio::test(flavor = "multi_thread")]
async fn group_events_carry_the_group_version_and_resume_from_it() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut stream = app.events(&alice, "?groups=1").await;
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    let (_, notification) = stream.notification().await;
    let group = stream.next().await;
    assert_eq!(group.kind, "group");
    let version = group.data["group"]["version"].as_i64().unwrap();
    assert_eq!(group.id, Some(format!("{}:{version}", notification["id"])));
    drop(stream);

    app.like(&carol, post).await.assert_status(StatusCode::OK);
    let last = group.id.unwrap();
    let mut resumed = app
        .events_with(Some(&alice.token), "?groups=1", &[("Last-Event-ID", &last)])
        .await
        .unwrap();
    let (_, missed) = resumed.notification().await;
    assert_eq!(missed["actor"]["id"], carol.id);
    let changed = resumed.next().await;
    assert_eq!(changed.kind, "group");
    assert_eq!(changed.data["group"]["actor_count"], 2);
    assert_eq!(changed.data["group"]["version"], version + 1);

    // Resumed from a notification's id only (no version known): the recent group changes are
    // sent again, so the client's groups are current.
    let mut from_notification = app
        .events_with(
            Some(&alice.token),
            "?groups=1",
            &[("Last-Event-ID", &missed["id"].to_string())],
        )
        .await
        .unwrap();
    let again = from_notification.next().await;
    assert_eq!(again.kind, "group");
    assert_eq!(again.data["group"]["actor_count"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_that_tokens_streams_with_a_4401_close_event() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let other = app.login(&alice).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut doomed = app.events(&alice, "").await;
    let ticket = app.ticket(&alice).await;
    let by_ticket = format!("?ticket={}", crate::auth::urlencode(&ticket));
    let mut doomed_by_ticket = app.events_with(None, &by_ticket, &[]).await.unwrap();
    let mut survivor = app.events_with(Some(&other), "", &[]).await.unwrap();
    app.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(doomed.closed().await, Some(4401));
    assert_eq!(doomed_by_ticket.closed().await, Some(4401));
    assert!(matches!(
        survivor.next_within(Duration::from_millis(300)).await,
        Err(Ended::TimedOut)
    ));
    // A revoked token and a used ticket cannot open a stream again.
    let again = app.events_with(Some(&alice.token), "", &[]).await;
    assert_eq!(again.err().map(|e| e.0), Some(401));
    let reused = app.events_with(None, &by_ticket, &[]).await;
    assert_eq!(reused.err().map(|e| e.0), Some(401));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_problems_and_open_nothing() {
    let app = TestApp::spawn_with(|s| s.limits.ws_max_subscriptions = 3).await;
    let alice = app.register("alice").await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16);
    let cases: [Case; 9] = [
        ("?since=abc", &[], 400),
        ("?post_ids=1,,2", &[], 400),
        ("?post_ids=0", &[], 400),
        ("?post_ids=1,2,3,4", &[], 400),
        ("?groups=maybe", &[], 400),
        ("?groups_since=3", &[], 400),
        ("", &[("Last-Event-ID", "yesterday")], 400),
        ("", &[("Last-Event-ID", "5:")], 400),
        ("", &[("Origin", "http://evil.example")], 403),
    ];
    for (query, headers, status) in cases {
        let refused = app.events_with(Some(&alice.token), query, headers).await;
        let (got, body) = refused.err().expect("refused");
        assert_eq!(got, status, "{query} {headers:?}: {body}");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], status);
    }
    let no_token = app.events_with(None, "", &[]).await;
    assert_eq!(no_token.err().map(|e| e.0), Some(401));
    let token_as_ticket = format!("?ticket={}", crate::auth::urlencode(&alice.token));
    let refused = app.events_with(None, &token_as_ticket, &[]).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401));
    let metrics = app.state.metrics.render((0, 0, 0));
    assert!(
        metrics.contains("pulse_sockets_open 0"),
        "nothing stayed open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_sockets_share_the_per_user_limit() {
    let app = TestApp::spawn_with(|s| s.limits.ws_max_sockets_per_user = 2).await;
    let alice = app.register("alice").await;
    let _socket = app.socket(&alice, "").await;
    let _stream = app.events(&alice, "").await;
    let third = app.events_with(Some(&alice.token), "", &[]).await;
    assert_eq!(third.err().map(|e| e.0), Some(429));
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_sockets_share_the_open_rate_limits_per_user_and_per_ip() {
    let app = TestApp::spawn_with(|s| s.limits.rate_socket_connects_per_min = 2).await;
    let alice = app.register("alice").await;
    let _socket = app.socket(&alice, "").await;
    let _stream = app.events(&alice, "").await;
    let third = app.events_with(Some(&alice.token), "", &[]).await;
    assert_eq!(
        third.err().map(|e| e.0),
        Some(429),
        "a user's third open in a minute"
    );

    let app = TestApp::spawn_with(|s| s.limits.rate_ip_writes_per_min = 3).await;
    // Registering is the first write from this IP; a socket and a stream are the next two.
    let bob = app.register("bob").await;
    let _socket = app.socket(&bob, "").await;
    let _stream = app.events(&bob, "").await;
    let fourth = app.events_with(Some(&bob.token), "", &[]).await;
    assert_eq!(
        fourth.err().map(|e| e.0),
        Some(429),
        "the IP's fourth write or open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_comments_keep_an_idle_stream_open() {
    let app = TestApp::spawn_with(|s| s.limits.sse_heartbeat_secs = 1).await;
    let alice = app.register("alice").await;
    let mut stream = app.events(&alice, "").await;
    assert_eq!(stream.hello["heartbeat_s"], 1);
    // Three seconds idle: nothing but comment lines.
    assert!(matches!(
        stream.next_within(Duration::from_secs(3)).await,
        Err(Ended::TimedOut)
    ));
    assert!(stream.comments >= 2, "{} comment lines", stream.comments);
}

/// An event stream of `user` with a 4 KiB receive buffer, so that a reader that stops
/// reading soon leaves its frames queued in the server.
async fn stalled_stream(app: &TestApp, user: &crate::support::User) -> EventStream {
    EventStream::open(Request {
        port: app.port,
        path: "/events",
        token: Some(&user.token),
        headers: &[],
        recv_buffer: Some(4096),
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_whose_queue_overflowed_gets_everything_from_the_database_once_it_reads() {
    // A short queue and a long stall timeout: the stream overflows but is not ended.
    let app = TestApp::spawn_with(|s| {
        s.limits.ws_queue_len = 8;
        s.limits.ws_stall_timeout_secs = 60;
    })
    .await;
    let (slow, actor) = (app.register("slow").await, app.register("actor").await);
    let post = app.create_post(&slow, "p").await["id"].as_i64().unwrap();
    let mut stalled = stalled_stream(&app, &slow).await;
    let overflows = || {
        app.state
            .metrics
            .queue_overflows
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let mut sent = 0;
    while overflows() == 0 {
        app.comment_n(&actor, post, 10, 2000).await;
        sent += 10;
        assert!(sent <= 2000, "the stream's queue never overflowed");
    }
    app.comment_n(&actor, post, 10, 2000).await;
    // It reads now: every notification, in order, once, and the stream stays open.
    let expected = app.notification_ids(&slow).await;
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let event = stalled.next().await;
        match event.kind.as_str() {
            "notification" => received.push(event.data["notification"]["id"].as_i64().unwrap()),
            "unread_count" => {}
            _ => panic!("unexpected {event:?}"),
        }
    }
    assert_eq!(received, expected, "in order, no gap, no duplicate");
    assert_eq!(
        app.state
            .metrics
            .slow_disconnects
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let sentinel = app.register("sentinel").await;
    app.follow(&sentinel, &slow).await;
    loop {
        let event = stalled.next().await;
        if event.kind == "notification" {
            assert_eq!(event.data["notification"]["kind"], "follow");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_stops_reading_is_ended_with_4008_and_resumes_from_the_database() {
    let app = TestApp::spawn_with(|s| {
        s.limits.ws_queue_len = 8;
        s.limits.ws_stall_timeout_secs = 1;
    })
    .await;
    let (slow, actor) = (app.register("slow").await, app.register("actor").await);
    let post = app.create_post(&slow, "p").await["id"].as_i64().unwrap();
    let mut stalled = stalled_stream(&app, &slow).await;
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
            "never ended for slowness"
        );
    }
    assert_eq!(stalled.closed().await, Some(4008));
    // Reopened: the newest notifications from the database, once, in order.
    let expected = app.notification_ids(&slow).await;
    let mut resumed = app.events(&slow, "?since=0").await;
    let newest = *expected.last().unwrap();
    let mut received = Vec::new();
    while received.last() != Some(&newest) {
        match resumed.next().await {
            event if event.kind == "notification" => {
                received.push(event.data["notification"]["id"].as_i64().unwrap())
            }
            event if event.kind == "gap" => assert!(received.is_empty(), "a gap comes first"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let newest: Vec<i64> = expected[expected.len() - received.len()..].to_vec();
    assert_eq!(received, newest, "in order, no duplicate");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_streams_with_a_1001_close_event() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.events(&alice, "").await);
    }
    let stopping = tokio::spawn(app.stop());
    for stream in &mut streams {
        assert_eq!(stream.closed().await, Some(1001));
    }
    stopping.await.unwrap();
}

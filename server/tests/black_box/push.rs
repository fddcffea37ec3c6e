//! Web Push against the loopback push service of `support::push_service`, which checks VAPID
//! and decrypts every push as a browser's push service and user agent would. Both backends.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::push_service::{PushService, Subscriber};
use crate::support::{eventually, Reply, TestApp, User};

/// How long a test waits for a push it expects.
const PUSH_WAIT: Duration = Duration::from_secs(10);

/// An app that may push to loopback, with pushes due 100 ms after their notification.
async fn app() -> TestApp {
    app_with(|_| {}).await
}

/// [`app`], with `adjust` applied after its push settings.
async fn app_with(adjust: impl FnOnce(&mut pulse_server::config::Settings)) -> TestApp {
    TestApp::spawn_with(|s| {
        s.push_allow_private = true;
        s.limits.push_delay_ms = 100;
        s.limits.push_poll_ms = 50;
        adjust(s);
    })
    .await
}

/// Subscribes `user`'s token to `service` at `/push/<path>`; returns the subscriber.
async fn subscribe(app: &TestApp, user: &User, service: &PushService, path: &str) -> Subscriber {
    app.subscribe_push(&user.token, service, path).await
}

async fn post_of(app: &TestApp, author: &User) -> i64 {
    app.create_post(author, "p").await["id"].as_i64().unwrap()
}

/// `user` saves `body` as their notification preferences.
async fn save_preferences(app: &TestApp, user: &User, body: Value) -> Reply {
    app.call(
        reqwest::Method::PUT,
        "/notifications/preferences",
        Some(&user.token),
        Some(body),
    )
    .await
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

async fn vapid_key(app: &TestApp) -> [u8; 65] {
    use base64::Engine as _;
    let reply = app.get("/push/key", "").await;
    reply.assert_status(StatusCode::OK);
    let key = reply.body["vapid_public_key"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .unwrap();
    bytes.try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_without_a_socket_gets_the_push_within_a_second() {
    let app = app().await;
    let service = PushService::start(Some(vapid_key(&app).await));
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    subscribe(&app, &alice, &service, "alice-phone").await;
    let post = post_of(&app, &alice).await;
    let liked = Instant::now();
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    let pushed = service.wait_for("alice-phone", 1, PUSH_WAIT).await;
    let took = pushed[0].received_at.duration_since(liked);
    println!("like -> push received: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let payload = &pushed[0].payload;
    assert_eq!(
        payload["notification"]["text"],
        json!(format!("{} liked your photo.", bob.username))
    );
    assert_eq!(payload["unread_count"], json!(1));
    assert_eq!(payload["group"]["actor_count"], json!(1));
    let group = payload["group"]["id"].as_i64().unwrap();
    assert_eq!(
        pushed[0].topic.as_deref(),
        Some(format!("g{group}").as_str())
    );
    assert!(pushed[0].ttl > 0 && pushed[0].ttl <= 86_400);
    assert_eq!(pushed[0].urgency.as_deref(), Some("normal"));
    assert!(pushed[0].vapid_sub.starts_with("mailto:"));
    service.assert_no_rejections();
    // The service records the push as it answers; the server counts it once the answer is read.
    eventually("the push counted", || async {
        let text = app.metrics_text().await;
        (metric(&text, "pulse_push_sent_total") == 1.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_shown_on_a_socket_is_not_pushed() {
    let app = app().await;
    let service = PushService::start(None);
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    subscribe(&app, &alice, &service, "alice-phone").await;
    let mut socket = app.socket(&alice, "").await;
    let post = post_of(&app, &alice).await;
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    socket.notification().await;
    eventually("the push cancelled", || async {
        let text = app.metrics_text().await;
        (metric(&text, "pulse_push_cancelled_live_total") == 1.0
            && metric(&text, "pulse_push_queue_depth") == 0.0)
            .then_some(())
    })
    .await;
    assert_eq!(service.attempts("alice-phone"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gone_subscription_is_deleted_and_errors_are_retried_until_delivered_once() {
    let app = app().await;
    let service = PushService::start(None);
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    subscribe(&app, &alice, &service, "flaky").await;
    subscribe(&app, &carol, &service, "gone").await;
    service.script("flaky", vec![500, 429]);
    service.gone("gone");
    let (post_a, post_c) = (post_of(&app, &alice).await, post_of(&app, &carol).await);
    app.like(&bob, post_a).await.assert_status(StatusCode::OK);
    app.like(&bob, post_c).await.assert_status(StatusCode::OK);
    let delivered = service.wait_for("flaky", 1, PUSH_WAIT).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(service.attempts("flaky"), 3, "500, 429, then 201");
    eventually("the gone subscription deleted", || async {
        let status = app.get("/push/subscription", &carol.token).await.status;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let text = app.metrics_text().await;
    assert_eq!(metric(&text, "pulse_push_retried_total"), 2.0);
    assert_eq!(metric(&text, "pulse_push_subscriptions_dropped_total"), 1.0);
    assert_eq!(service.deliveries_for("flaky").len(), 1, "exactly once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_push_service_does_not_delay_another() {
    // Four sends at once per instance, two per push service: the slow service's twelve pushes
    // outnumber both, and must hold neither the others' turns nor the claim loop.
    let app = app_with(|s| {
        s.limits.push_concurrency = 4;
        s.limits.push_per_origin = 2;
    })
    .await;
    let (slow, fast) = (PushService::start(None), PushService::start(None));
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    subscribe(&app, &alice, &slow, "slow").await;
    subscribe(&app, &carol, &fast, "fast").await;
    slow.set_delay("slow", Duration::from_secs(1));
    let (post_a, post_c) = (post_of(&app, &alice).await, post_of(&app, &carol).await);
    for fan in app.register_many("fan", 12).await {
        app.like(&fan, post_a).await.assert_status(StatusCode::OK);
    }
    eventually("the slow service busy", || async {
        (slow.attempts("slow") >= 2).then_some(())
    })
    .await;
    let liked = Instant::now();
    app.like(&bob, post_c).await.assert_status(StatusCode::OK);
    let pushed = fast.wait_for("fast", 1, PUSH_WAIT).await;
    let took = pushed[0].received_at.duration_since(liked);
    println!("fast push beside a slow service: {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "the fast service waited {took:?}"
    );
    // Two at a time, a second each: every slow push arrives, each sent once.
    slow.wait_for("slow", 12, Duration::from_secs(30)).await;
    assert_eq!(
        slow.attempts("slow"),
        12,
        "a deferred push is not an attempt"
    );
    let text = app.metrics_text().await;
    assert!(metric(&text, "pulse_push_deferred_total") > 0.0);
    assert_eq!(metric(&text, "pulse_push_retried_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_service_asking_to_wait_is_not_asked_again_before_its_retry_after() {
    // The back-off is capped at 1 s; the push service's own Retry-After (3 s) is honoured.
    let app = app_with(|s| {
        s.limits.push_max_backoff_secs = 1;
    })
    .await;
    let service = PushService::start(None);
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    subscribe(&app, &alice, &service, "busy").await;
    service.script("busy", vec![429]);
    service.set_retry_after("busy", "3");
    let post = post_of(&app, &alice).await;
    let liked = Instant::now();
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    let pushed = service.wait_for("busy", 1, PUSH_WAIT).await;
    let took = pushed[0].received_at.duration_since(liked);
    println!("like -> push after a 429 with Retry-After: 3: {took:?}");
    assert!(took >= Duration::from_secs(3), "asked again after {took:?}");
    assert_eq!(service.attempts("busy"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_push_is_sent_again_and_one_past_its_ttl_is_dropped() {
    // Requests time out after 300 ms; pushes live 2 s; the back-off starts at 1 s.
    let app = app_with(|s| {
        s.limits.push_timeout_ms = 300;
        s.limits.push_ttl_secs = 2;
    })
    .await;
    let service = PushService::start(None);
    let (alice, carol, bob) = (
        app.register("alice").await,
        app.register("carol").await,
        app.register("bob").await,
    );
    subscribe(&app, &alice, &service, "slow").await;
    subscribe(&app, &carol, &service, "down").await;
    service.set_delay("slow", Duration::from_secs(2));
    service.script("down", vec![503, 503, 503, 503]);
    let (post_a, post_c) = (post_of(&app, &alice).await, post_of(&app, &carol).await);
    app.like(&bob, post_a).await.assert_status(StatusCode::OK);
    app.like(&bob, post_c).await.assert_status(StatusCode::OK);
    // The slow service's first answer comes too late (the second retry counted: the other
    // service's first 503 is the first); the second attempt gets through.
    eventually("the first attempt timed out", || async {
        (metric(&app.metrics_text().await, "pulse_push_retried_total") == 2.0).then_some(())
    })
    .await;
    assert_eq!(service.attempts("slow"), 1);
    service.set_delay("slow", Duration::ZERO);
    let delivered = service.wait_for("slow", 1, PUSH_WAIT).await;
    assert_eq!(delivered.len(), 1);
    // The other is refused at 0.1 s and 1.1 s; the next try (3.1 s) would be past its TTL.
    eventually("the push past its TTL dropped", || async {
        let text = app.metrics_text().await;
        (metric(&text, "pulse_push_expired_total") == 1.0
            && metric(&text, "pulse_push_queue_depth") == 0.0)
            .then_some(())
    })
    .await;
    assert_eq!(service.attempts("down"), 2);
    assert!(service.deliveries_for("down").is_empty());
    assert_eq!(service.attempts("slow"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_is_not_public_at_send_time_is_never_sent_to() {
    // Saved by an instance that allows private endpoints (as if the name resolved to a public
    // address then); sent by one that does not: by name (resolved as it is sent) and by address.
    let store = crate::support::Store::fresh().await;
    let service = PushService::start(None);
    let saver = TestApp::spawn_on(&store, |s| s.push_allow_private = true).await;
    let (alice, carol, bob) = (
        saver.register("alice").await,
        saver.register("carol").await,
        saver.register("bob").await,
    );
    let by_name = Subscriber::new();
    let endpoint = service
        .endpoint(&by_name, "by-name")
        .replace("127.0.0.1", "localhost");
    saver
        .put_push_subscription(&alice.token, &by_name, &endpoint)
        .await;
    subscribe(&saver, &carol, &service, "by-address").await;
    let posts = [post_of(&saver, &alice).await, post_of(&saver, &carol).await];
    saver.stop().await;
    let sender = TestApp::spawn_on(&store, |s| {
        s.limits.push_delay_ms = 100;
        s.limits.push_poll_ms = 50;
    })
    .await;
    for post in posts {
        sender.like(&bob, post).await.assert_status(StatusCode::OK);
    }
    eventually("both subscriptions dropped", || async {
        let text = sender.metrics_text().await;
        (metric(&text, "pulse_push_subscriptions_dropped_total") == 2.0
            && metric(&text, "pulse_push_queue_depth") == 0.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        service.attempts("by-name") + service.attempts("by-address"),
        0
    );
    for user in [&alice, &carol] {
        sender
            .get("/push/subscription", &user.token)
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_push_when_live_a_notification_shown_on_a_socket_is_pushed_too() {
    let app = app_with(|s| s.push_when_live = true).await;
    let service = PushService::start(None);
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    subscribe(&app, &alice, &service, "alice-phone").await;
    let mut socket = app.socket(&alice, "").await;
    let post = post_of(&app, &alice).await;
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    let shown = socket.notification().await;
    let pushed = service.wait_for("alice-phone", 1, PUSH_WAIT).await;
    assert_eq!(pushed[0].payload["notification"]["id"], shown["id"]);
    let text = app.metrics_text().await;
    assert_eq!(metric(&text, "pulse_push_cancelled_live_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_pending_when_the_instance_stops_are_delivered_once_after_the_restart() {
    let store = crate::support::Store::fresh().await;
    let service = PushService::start(None);
    let later = |s: &mut pulse_server::config::Settings| {
        s.push_allow_private = true;
        s.limits.push_delay_ms = 1_500;
        s.limits.push_poll_ms = 50;
    };
    let first = TestApp::spawn_on(&store, later).await;
    let alice = first.register("alice").await;
    subscribe(&first, &alice, &service, "alice").await;
    let post = post_of(&first, &alice).await;
    for _ in 0..5 {
        let fan = first.register("fan").await;
        first.like(&fan, post).await.assert_status(StatusCode::OK);
    }
    first.stop().await;
    assert_eq!(
        service.attempts("alice"),
        0,
        "nothing was due before the stop"
    );
    let second = TestApp::spawn_on(&store, later).await;
    let pushed = service.wait_for("alice", 5, PUSH_WAIT).await;
    let mut ids: Vec<i64> = pushed
        .iter()
        .map(|d| d.payload["notification"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each notification once");
    eventually("the queue empty", || async {
        let text = second.metrics_text().await;
        (metric(&text, "pulse_push_queue_depth") == 0.0).then_some(())
    })
    .await;
    assert_eq!(service.deliveries_for("alice").len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_comment_is_cut_to_fit_four_kilobytes() {
    let app = app().await;
    let service = PushService::start(None);
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    subscribe(&app, &alice, &service, "alice").await;
    let post = post_of(&app, &alice).await;
    let text = "😀".repeat(2200);
    app.post(
        &format!("/posts/{post}/comments"),
        &bob.token,
        json!({ "text": text }),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let pushed = service.wait_for("alice", 1, PUSH_WAIT).await;
    let shown = pushed[0].payload["notification"]["text"].as_str().unwrap();
    assert!(
        shown.ends_with('…') && shown.len() < 4096,
        "{} bytes",
        shown.len()
    );
    service.assert_no_rejections();
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_validated_belong_to_the_token_and_end_with_logout() {
    let app = TestApp::spawn().await; // private endpoints not allowed
    let alice = app.register("alice").await;
    let good = Subscriber::new();
    let put = |body: Value| {
        app.call(
            reqwest::Method::PUT,
            "/push/subscription",
            Some(&alice.token),
            Some(body),
        )
    };
    let keys = json!({"p256dh": good.p256dh_b64(), "auth": good.auth_b64()});
    for (endpoint, keys) in [
        ("https://127.0.0.1/push/x", keys.clone()),
        ("http://push.example.com/x", keys.clone()),
        ("https://10.0.0.1/x", keys.clone()),
        ("not a url", keys.clone()),
        (
            "https://8.8.8.8/x",
            json!({"p256dh": "AAAA", "auth": good.auth_b64()}),
        ),
        (
            "https://8.8.8.8/x",
            json!({"p256dh": good.p256dh_b64(), "auth": "AAAA"}),
        ),
    ] {
        put(json!({"endpoint": endpoint, "keys": keys}))
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    }
    app.get("/push/subscription", &alice.token)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // A public endpoint is accepted (nothing is sent to it here), and replaced by a second PUT.
    let reply = put(json!({"endpoint": "https://8.8.8.8/push/a", "keys": keys})).await;
    reply.assert_status(StatusCode::OK);
    let reply = put(json!({"endpoint": "https://8.8.8.8/push/b", "keys": keys})).await;
    assert_eq!(reply.body["endpoint"], "https://8.8.8.8/push/b");
    let seen = app.get("/push/subscription", &alice.token).await;
    assert_eq!(seen.body["endpoint"], "https://8.8.8.8/push/b");
    // Another device (token) has none of its own.
    let other = app.login(&alice).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/push/subscription", &other)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    app.post("/auth/logout", &alice.token, json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let left: i64 = pulse_schema::push::queue_stats(&app.state.db)
        .await
        .unwrap()
        .0;
    assert_eq!(left, 0);
    let devices = pulse_schema::push::for_user(&app.state.db, pulse_schema::UserId(alice.id))
        .await
        .unwrap();
    assert!(devices.is_empty(), "left after logout: {devices:?}");
    // The other device subscribes, then deletes its subscription.
    app.call(
        reqwest::Method::PUT,
        "/push/subscription",
        Some(&other),
        Some(json!({"endpoint": "https://8.8.8.8/push/c", "keys": keys})),
    )
    .await
    .assert_status(StatusCode::OK);
    app.delete("/push/subscription", &other)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get("/push/subscription", &other)
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn preferences_turn_kinds_off_per_channel_and_can_require_following() {
    let app = app().await;
    let service = PushService::start(None);
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    let defaults = app.get("/notifications/preferences", &alice.token).await;
    assert_eq!(
        defaults.body,
        json!({"like": {"inbox": true, "push": true}, "comment": {"inbox": true, "push": true},
               "follow": {"inbox": true, "push": true}, "from": "everyone"})
    );
    subscribe(&app, &alice, &service, "alice").await;
    let post = post_of(&app, &alice).await;
    let put = |body: Value| save_preferences(&app, &alice, body);
    // Likes: in the inbox, not pushed.
    let saved = put(json!({"like": {"push": false}})).await;
    assert_eq!(saved.body["like"], json!({"inbox": true, "push": false}));
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    assert_eq!(app.all_notifications(&alice).await.len(), 1);
    // Comments: not at all.
    put(json!({"comment": {"inbox": false}}))
        .await
        .assert_status(StatusCode::OK);
    app.post(
        &format!("/posts/{post}/comments"),
        &bob.token,
        json!({"text": "hi"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    assert_eq!(app.all_notifications(&alice).await.len(), 1);
    // Only people alice follows: carol's follow notifies nobody until alice follows carol.
    put(json!({"from": "following"}))
        .await
        .assert_status(StatusCode::OK);
    app.follow(&carol, &alice).await;
    assert_eq!(app.all_notifications(&alice).await.len(), 1);
    app.follow(&alice, &bob).await;
    app.follow(&bob, &alice).await;
    let inbox = app.all_notifications(&alice).await;
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[0]["kind"], "follow");
    // The follow is pushed; the like never was.
    let pushed = service.wait_for("alice", 1, PUSH_WAIT).await;
    assert_eq!(pushed[0].payload["notification"]["kind"], "follow");
    assert_eq!(service.attempts("alice"), 1);
    // Bad input changes nothing.
    for body in [
        json!({"like": {"sms": true}}),
        json!({"from": "friends"}),
        json!({"poke": {}}),
        json!({"like": {"inbox": "yes"}}),
    ] {
        put(body.clone())
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    }
    let now = app.get("/notifications/preferences", &alice.token).await;
    assert_eq!(now.body["from"], "following");
    assert_eq!(now.body["comment"], json!({"inbox": false, "push": true}));
    // Two changes at once both apply.
    for _ in 0..5 {
        let (one, two) = tokio::join!(
            put(json!({"follow": {"push": false}})),
            put(json!({"follow": {"inbox": false}}))
        );
        one.assert_status(StatusCode::OK);
        two.assert_status(StatusCode::OK);
        let both = app.get("/notifications/preferences", &alice.token).await;
        assert_eq!(both.body["follow"], json!({"inbox": false, "push": false}));
        put(json!({"follow": {"inbox": true, "push": true}}))
            .await
            .assert_status(StatusCode::OK);
    }
}

/// A like is checked against its author's preferences however the author got them: an author
/// who never saved any is notified of every like, and after saving them, of exactly the likes
/// they let through; every like counts either way.
#[tokio::test(flavor = "multi_thread")]
async fn likes_follow_the_authors_preferences_from_the_first_save_on() {
    let app = app().await;
    let (alice, bob, carol, dave) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
        app.register("dave").await,
    );
    let posts = [
        post_of(&app, &alice).await,
        post_of(&app, &alice).await,
        post_of(&app, &alice).await,
    ];
    let put = |body: Value| save_preferences(&app, &alice, body);
    let actors = |inbox: Vec<Value>| -> Vec<i64> {
        inbox
            .iter()
            .map(|n| n["actor"]["id"].as_i64().unwrap())
            .collect()
    };
    app.like(&bob, posts[0]).await.assert_status(StatusCode::OK);
    assert_eq!(actors(app.all_notifications(&alice).await), vec![bob.id]);

    put(json!({"like": {"inbox": false}}))
        .await
        .assert_status(StatusCode::OK);
    let liked = app.like(&carol, posts[0]).await;
    liked.assert_status(StatusCode::OK);
    assert_eq!(liked.body["like_count"], json!(2));
    assert_eq!(actors(app.all_notifications(&alice).await), vec![bob.id]);

    put(json!({"like": {"inbox": true}, "from": "following"}))
        .await
        .assert_status(StatusCode::OK);
    app.follow(&alice, &dave).await;
    app.like(&carol, posts[1])
        .await
        .assert_status(StatusCode::OK);
    app.like(&dave, posts[2])
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        actors(app.all_notifications(&alice).await),
        vec![dave.id, bob.id]
    );
    let mut counts = Vec::new();
    for post in posts {
        let seen = app.get(&format!("/posts/{post}"), &alice.token).await;
        counts.push(seen.body["like_count"].clone());
    }
    assert_eq!(counts, vec![json!(2), json!(1), json!(1)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_queued_before_its_device_signed_out_by_expiry_is_not_sent() {
    // Tokens live 2 s; the push waits 2.5 s: by then the device's token has expired.
    let app = TestApp::spawn_with(|s| {
        s.push_allow_private = true;
        s.limits.token_ttl_secs = 2;
        s.limits.push_delay_ms = 2_500;
        s.limits.push_poll_ms = 50;
    })
    .await;
    let service = PushService::start(None);
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    subscribe(&app, &alice, &service, "alice").await;
    let post = post_of(&app, &alice).await;
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    eventually("the expired device's subscription dropped", || async {
        let text = app.metrics_text().await;
        (metric(&text, "pulse_push_subscriptions_dropped_total") == 1.0
            && metric(&text, "pulse_push_queue_depth") == 0.0)
            .then_some(())
    })
    .await;
    assert_eq!(service.attempts("alice"), 0);
}

/// The test's user agent decrypts RFC 8291 Appendix A's message with the RFC's keys, so it
/// and the server cannot share a mistake (the server encrypts the same example to the same
/// bytes: `push::encrypt`'s unit test).
#[test]
fn the_loopback_user_agent_decrypts_the_rfc_8291_example() {
    use base64::Engine as _;
    let bytes = |text: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap()
    };
    let secret =
        p256::SecretKey::from_slice(&bytes("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
    let device = Subscriber::from_keys(secret, bytes("BTBZMqHH6r4Tts7J_aSIgg").try_into().unwrap());
    assert_eq!(
        device.public_key().to_vec(),
        bytes("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4")
    );
    let message = bytes(concat!(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC",
        "YLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXL",
        "WyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    ));
    assert_eq!(
        device.decrypt(&message).unwrap(),
        b"When I grow up, I want to be a watermelon"
    );
}

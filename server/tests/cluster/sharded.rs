//! Two instances on a Redis Cluster of the test's own (`REDIS_CLUSTER_URLS`): fan-out with
//! sharded pub/sub, rate limits in the cluster, and a master failing over mid-test.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::redis_cluster::RedisCluster;
use crate::support::{self, Store, TestApp, User};

/// Two instances sharing one PostgreSQL database and `cluster`, reconnecting fast.
async fn pair_on(
    cluster: &RedisCluster,
    adjust: impl Fn(&mut pulse_server::config::Settings),
) -> (TestApp, TestApp) {
    let store = Store::fresh_postgres_on_cluster(cluster.urls()).await;
    let settings = |s: &mut pulse_server::config::Settings| {
        s.limits.redis_max_backoff_ms = 200;
        adjust(s);
    };
    let a = TestApp::spawn_on(&store, settings).await;
    let b = TestApp::spawn_on(&store, settings).await;
    (a, b)
}

fn id(notification: &serde_json::Value) -> i64 {
    notification["id"].as_i64().unwrap()
}

/// Each socket (on instance A, then B) reads exactly `in_db`'s notifications, in that order;
/// a socket that stops short is an error saying what it saw and every counter that could
/// explain it.
async fn each_saw_once_in_order(
    apps: [&TestApp; 2],
    sockets: &mut [support::Socket],
    in_db: &[i64],
) -> Result<(), String> {
    for (name, socket) in ["A", "B"].into_iter().zip(sockets.iter_mut()) {
        let mut seen = Vec::new();
        while seen.len() < in_db.len() {
            match socket.notification_within(support::DEADLINE).await {
                Ok(notification) => seen.push(id(&notification)),
                Err(ended) => {
                    return Err(format!(
                        "socket on {name} {ended:?} after {seen:?} of {in_db:?}; A: {}; B: {}",
                        apps[0].delivery_counters(),
                        apps[1].delivery_counters()
                    ))
                }
            }
        }
        assert_eq!(
            seen, in_db,
            "socket on {name}: every notification once, in order"
        );
    }
    Ok(())
}

/// How many clients hold `SSUBSCRIBE <channel>` on each node but the one on `down` (port,
/// count).
async fn subscribers_per_node(cluster: &RedisCluster, channel: &str, down: u16) -> Vec<(u16, i64)> {
    let mut held = Vec::new();
    for port in cluster.ports().into_iter().filter(|p| *p != down) {
        held.push((port, cluster.shard_subscribers(port, channel).await));
    }
    held
}

/// The channel name a user's events travel on, with the instance's prefix.
fn user_channel(app: &TestApp, user: &User) -> String {
    format!("{}u:{}", app.state.settings.redis_prefix, user.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_a_like_through_one_instance_reaches_the_other_once_and_counts_cross() {
    let cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |_| {}).await;
    let (alice, carol) = (a.register("alice").await, a.register("carol").await);
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut on_b = b.socket(&alice, "").await;
    let mut latencies = Vec::new();
    for liker in a.register_many("l", 5).await {
        let started = Instant::now();
        a.like(&liker, post).await.assert_status(StatusCode::OK);
        assert_eq!(on_b.notification().await["actor"]["id"], liker.id);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!("delivery latency (cluster, like via A -> frame on B), 5 likes: {latencies:?}");
    b.follow(&carol, &alice).await; // sentinel: the next frame after the likes must be this
    assert_eq!(on_b.notification().await["kind"], "follow", "no duplicate");

    // Like counts of a post watched on both instances, liked through both.
    let mut watchers = [a.socket(&carol, "").await, b.socket(&carol, "").await];
    for socket in &mut watchers {
        socket
            .send_json(json!({"type": "subscribe", "post_ids": [post]}))
            .await;
        assert_eq!(
            socket.next().await,
            json!({"type": "subscribed", "post_ids": [post]})
        );
    }
    let likers = a.register_many("f", 6).await;
    join_all(likers.iter().enumerate().map(|(i, fan)| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            app.like(fan, post).await.assert_status(StatusCode::OK);
        }
    }))
    .await;
    for socket in &mut watchers {
        let mut last = 0;
        while last != 11 {
            let frame = socket.next_of("like_count", &[]).await;
            let count = frame["like_count"].as_i64().unwrap();
            assert!(count >= last, "counts never go back");
            last = count;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_publishes_and_subscriptions_stay_on_the_shard_of_the_channel() {
    let cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |_| {}).await;
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    // Three devices on each instance: still one subscription per instance on the shard.
    let mut sockets = Vec::new();
    for app in [&a, &a, &a, &b, &b, &b] {
        sockets.push(app.socket(&alice, "").await);
    }
    let channel = user_channel(&a, &alice);
    let owner = cluster.master_of(cluster.slot_of(&channel).await).await;
    let post_channel = format!("{}p:{post}", a.state.settings.redis_prefix);
    let post_owner = cluster
        .master_of(cluster.slot_of(&post_channel).await)
        .await;
    for port in cluster.ports() {
        cluster.text_on(port, &["CONFIG", "RESETSTAT"]).await;
    }

    b.like(&bob, post).await.assert_status(StatusCode::OK);
    for socket in &mut sockets {
        assert_eq!(socket.notification().await["kind"], "like");
    }

    let masters: Vec<_> = cluster
        .nodes()
        .await
        .into_iter()
        .filter(|n| n.master)
        .collect();
    assert_eq!(masters.len(), 3);
    for node in &masters {
        let stats = cluster.text_on(node.port, &["INFO", "commandstats"]).await;
        let subscribers = cluster.shard_subscribers(node.port, &channel).await;
        assert!(
            !stats.contains("cmdstat_publish:"),
            "no plain PUBLISH: {stats}"
        );
        if node.id == owner.id {
            assert!(stats.contains("cmdstat_spublish:"), "SPUBLISH on the owner");
            assert_eq!(
                subscribers, 2,
                "each instance subscribes once on the owner, whatever its sockets"
            );
        } else {
            assert_eq!(subscribers, 0, "no subscription on {}", node.port);
            if node.id != post_owner.id {
                assert!(
                    !stats.contains("cmdstat_spublish:"),
                    "no SPUBLISH on {}, which owns neither channel: {stats}",
                    node.port
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_rate_limits_are_shared_by_the_instances() {
    let cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |s| {
        s.limits.rate_likes_per_min = 3;
        s.limits.rate_login_failures = 2;
    })
    .await;
    let (author, fan) = (a.register("author").await, a.register("fan").await);
    let post = a.create_post(&author, "p").await["id"].as_i64().unwrap();
    // Counted by one script (INCR, EXPIRE, GET of the previous window: keys of one slot).
    a.like(&fan, post).await.assert_status(StatusCode::OK);
    b.delete(&format!("/posts/{post}/like"), &fan.token)
        .await
        .assert_status(StatusCode::OK);
    a.like(&fan, post).await.assert_status(StatusCode::OK);
    b.like(&fan, post)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited");
    // Checked with MGET of both windows (one slot), counted on failure.
    let wrong = json!({"username": fan.username, "password": "wrong-password-1"});
    for app in [&a, &b] {
        app.call(Method::POST, "/auth/login", None, Some(wrong.clone()))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    a.call(Method::POST, "/auth/login", None, Some(wrong))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_failing_over_mid_test_loses_nothing_and_duplicates_nothing() {
    fail_over_mid_test(RedisCluster::kill).await;
}

/// A master that hangs (stopped, its connections open) tells nobody that its replica took over:
/// the subscribers notice by their ping, the publishers by their failed publishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_that_hangs_is_failed_over_and_loses_nothing() {
    fail_over_mid_test(RedisCluster::freeze).await;
}

/// Likes through both instances before, during and after the master of the liked author's
/// channel is taken down by `stop`: both sockets get every notification once, in order, and
/// delivery resumes within seconds of the replica's promotion.
async fn fail_over_mid_test(stop: fn(&mut RedisCluster, u16)) {
    let mut cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |_| {}).await;
    let alice = a.register("alice").await;
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut sockets = [a.socket(&alice, "").await, b.socket(&alice, "").await];
    let fans = a.register_many("r", 60).await;
    let slot = cluster.slot_of(&user_channel(&a, &alice)).await;
    let master = cluster.master_of(slot).await;

    // Each like by a new fan, through A and B in turn.
    let next = AtomicUsize::new(0);
    let like = |app: &'static str| {
        let (app, fans, next) = (if app == "A" { &a } else { &b }, &fans, &next);
        async move {
            let i = next.fetch_add(1, Ordering::Relaxed);
            app.like(&fans[i], post).await.assert_status(StatusCode::OK);
        }
    };
    for app in ["A", "B", "A", "B"] {
        like(app).await;
    }
    let killed = Instant::now();
    stop(&mut cluster, master.port);
    // Four clients keep liking while the replica takes over (REST does not need Redis),
    // leaving fans for the likes after it.
    let promoted = AtomicBool::new(false);
    let lane = |app: &'static str| {
        let (like, promoted, next) = (&like, &promoted, &next);
        async move {
            while !promoted.load(Ordering::Relaxed) && next.load(Ordering::Relaxed) < 60 - 12 {
                like(app).await;
            }
        }
    };
    let watch = async {
        let serving = support::eventually("a replica promoted", || async {
            cluster.serving(slot).await.filter(|n| n.id != master.id)
        })
        .await;
        promoted.store(true, Ordering::Relaxed);
        (serving, Instant::now())
    };
    let ((promoted, promoted_at), ..) =
        tokio::join!(watch, lane("A"), lane("B"), lane("A"), lane("B"));
    println!(
        "failover: replica {} serves slot {slot} {:?} after the kill, {} likes meanwhile",
        promoted.port,
        killed.elapsed(),
        next.load(Ordering::Relaxed) - 4
    );
    // Right after the promotion, before the instances are subscribed again.
    for app in ["A", "B", "A", "B"] {
        like(app).await;
    }
    cluster.wait_until_healthy().await;
    support::eventually("both instances resubscribed", || async {
        let reconnects = |app: &TestApp| app.state.metrics.redis_reconnects.load(Ordering::Relaxed);
        (reconnects(&a) >= 1
            && reconnects(&b) >= 1
            && a.state.bus.is_connected()
            && b.state.bus.is_connected())
        .then_some(())
    })
    .await;
    println!(
        "both subscribers back {:?} after the kill, {:?} after the promotion",
        killed.elapsed(),
        promoted_at.elapsed()
    );
    assert!(
        promoted_at.elapsed() < std::time::Duration::from_secs(5),
        "delivery resumes within seconds of the promotion"
    );
    for app in ["A", "B", "A", "B"] {
        like(app).await;
    }

    let in_db = a.notification_ids(&alice).await;
    assert_eq!(in_db.len(), next.load(Ordering::Relaxed));
    for app in [&a, &b] {
        println!("{} notifications; {}", in_db.len(), app.delivery_counters());
    }
    if let Err(why) = each_saw_once_in_order([&a, &b], &mut sockets, &in_db).await {
        let channel = user_channel(&a, &alice);
        let held = subscribers_per_node(&cluster, &channel, master.port).await;
        panic!("{why}; shard subscribers of {channel} per live node: {held:?}");
    }
    // Nothing more is queued: the next frame on each socket is a fresh sentinel.
    let sentinel = a.register("sentinel").await;
    b.follow(&sentinel, &alice).await;
    for socket in &mut sockets {
        assert_eq!(socket.notification().await["kind"], "follow");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_moving_to_another_master_takes_the_subscriptions_along() {
    let cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |_| {}).await;
    let alice = a.register("alice").await;
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut sockets = [a.socket(&alice, "").await, b.socket(&alice, "").await];
    let fans = a.register_many("m", 3).await;
    let channel = user_channel(&a, &alice);
    let slot = cluster.slot_of(&channel).await;
    let from = cluster.master_of(slot).await;
    let nodes = cluster.nodes().await;
    let to = nodes.iter().find(|n| n.master && n.id != from.id).unwrap();

    let moving = Instant::now();
    cluster.move_slot(slot, &from, to).await;
    // Committed while the instances move their subscriptions.
    a.like(&fans[0], post).await.assert_status(StatusCode::OK);
    support::eventually("both instances subscribed on the new owner", || async {
        let moved = cluster.shard_subscribers(to.port, &channel).await == 2;
        let resubscribed = |app: &TestApp| {
            app.state.metrics.redis_reconnects.load(Ordering::Relaxed) == 1
                && app.state.bus.is_connected()
        };
        (moved && resubscribed(&a) && resubscribed(&b)).then_some(())
    })
    .await;
    println!(
        "slot moved: subscriptions followed in {:?}",
        moving.elapsed()
    );
    assert_eq!(cluster.shard_subscribers(from.port, &channel).await, 0);
    b.like(&fans[1], post).await.assert_status(StatusCode::OK);
    a.like(&fans[2], post).await.assert_status(StatusCode::OK);

    let in_db = a.notification_ids(&alice).await;
    assert_eq!(in_db.len(), 3);
    each_saw_once_in_order([&a, &b], &mut sockets, &in_db)
        .await
        .unwrap_or_else(|why| panic!("{why}"));
    let sentinel = a.register("sentinel").await;
    b.follow(&sentinel, &alice).await;
    for socket in &mut sockets {
        assert_eq!(socket.notification().await["kind"], "follow");
    }
}

/// `redis-cli --cluster reshard` moves every slot of one master, keys and all, to another while
/// likes keep coming through both instances: each socket still sees every notification once,
/// in order, and a rate limit counted before the move still holds after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_reshard_with_redis_cli_while_likes_flow_loses_nothing() {
    let cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |s| s.limits.rate_likes_per_min = 1).await;
    let alice = a.register("alice").await;
    let posts = a.create_posts(&alice, 2).await;
    let mut sockets = [a.socket(&alice, "").await, b.socket(&alice, "").await];
    let fans = a.register_many("r", 60).await;
    let slot = cluster.slot_of(&user_channel(&a, &alice)).await;
    let from = cluster.master_of(slot).await;
    let nodes = cluster.nodes().await;
    let to = nodes.iter().find(|n| n.master && n.id != from.id).unwrap();
    let every_slot: usize = from
        .slots
        .iter()
        .map(|(lo, hi)| usize::from(hi - lo) + 1)
        .sum();

    // Each fan likes the first post (counted against a limit of one like a minute), one every
    // 40 ms, while the slots move...
    let (moved, during) = (AtomicBool::new(false), AtomicUsize::new(0));
    let likes = async {
        let mut pace = tokio::time::interval(std::time::Duration::from_millis(40));
        for (i, fan) in fans.iter().enumerate() {
            pace.tick().await;
            let via = if i % 2 == 0 { &a } else { &b };
            via.like(fan, posts[0]).await.assert_status(StatusCode::OK);
            if !moved.load(Ordering::Relaxed) {
                during.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let moving = Instant::now();
    let resharded = async {
        cluster.reshard(&from, to, every_slot).await;
        moved.store(true, Ordering::Relaxed);
        println!("{every_slot} slots moved in {:?}", moving.elapsed());
    };
    tokio::join!(likes, resharded);
    let during = during.load(Ordering::Relaxed);
    println!(
        "{during} of {} likes answered while the slots moved",
        fans.len()
    );
    assert!(
        during >= fans.len() / 2,
        "the likes overlapped the reshard: {during}"
    );
    assert_eq!(
        cluster.master_of(slot).await.id,
        to.id,
        "the channel's slot moved"
    );

    let in_db = a.notification_ids(&alice).await;
    assert_eq!(in_db.len(), fans.len());
    each_saw_once_in_order([&a, &b], &mut sockets, &in_db)
        .await
        .unwrap_or_else(|why| panic!("{why}"));
    // ...and none of them may like the second within the minute, whichever instance asks.
    for (i, fan) in fans.iter().enumerate() {
        let via = if i % 2 == 0 { &b } else { &a };
        via.like(fan, posts[1])
            .await
            .assert_problem(StatusCode::TOO_MANY_REQUESTS, "/problems/rate-limited");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_a_logout_closes_the_tokens_sockets_on_both_instances() {
    let cluster = RedisCluster::start().await;
    let (a, b) = pair_on(&cluster, |_| {}).await;
    let alice = a.register("alice").await;
    let mut on_a = a.socket(&alice, "").await;
    let mut on_b = b.socket(&alice, "").await;
    b.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(on_a.closed().await, Some(4401));
    assert_eq!(on_b.closed().await, Some(4401));
    a.get("/me", &alice.token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "/problems/unauthorized");
}

/// Both `REDIS_URL` and `REDIS_CLUSTER_URLS`: the application refuses to start.
#[tokio::test(flavor = "multi_thread")]
async fn redis_and_a_redis_cluster_together_are_a_startup_error() {
    let mut store = Store::fresh_postgres().await;
    store.redis_url = Some(support::redis_url());
    store.redis_cluster_urls = vec!["redis://127.0.0.1:1".into()];
    let error = match pulse_server::startup::Application::build(store.settings()).await {
        Ok(_) => panic!("started with both REDIS_URL and REDIS_CLUSTER_URLS"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("REDIS_CLUSTER_URLS"), "{error}");
}

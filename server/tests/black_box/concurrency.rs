//! Concurrent writes and socket opens: counts, notifications and admission checks stay exact.

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};

use crate::support::{sorted_like_counts, Socket, TestApp};

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

/// Likes of one post that arrive together are written together (one transaction per batch,
/// `server/src/like_queue.rs`): each still gets its own count, every liker one notification, ids
/// in commit order, and a socket that resumes while they commit misses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_likers_of_one_post_at_once_each_get_their_own_count_and_notification() {
    const LIKERS: usize = 200;
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let post = app.create_post(&author, "viral").await["id"]
        .as_i64()
        .unwrap();
    let likers = app.register_many("v", LIKERS).await;
    let mut live = app.socket(&author, "").await;

    let liking = join_all(likers.iter().map(|liker| app.like(liker, post)));
    // While they commit: a socket resuming after the first notification it sees.
    let resuming = async {
        let first = live.notification().await["id"].as_i64().unwrap();
        let socket = app.socket(&author, &format!("?since={first}")).await;
        (first, socket)
    };
    let (replies, (first, mut resumed)) = tokio::join!(liking, resuming);

    assert_eq!(
        sorted_like_counts(&replies),
        (1..=LIKERS as i64).collect::<Vec<_>>(),
        "each like its own count"
    );
    assert_eq!(
        app.get(&format!("/posts/{post}"), &author.token).await.body["like_count"],
        LIKERS
    );
    let mut inbox: Vec<(i64, i64)> = app
        .all_notifications(&author)
        .await
        .iter()
        .map(|n| {
            (
                n["id"].as_i64().unwrap(),
                n["actor"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    inbox.reverse(); // oldest first
    let ids: Vec<i64> = inbox.iter().map(|(id, _)| *id).collect();
    let mut actors: Vec<i64> = inbox.iter().map(|(_, actor)| *actor).collect();
    actors.sort_unstable();
    actors.dedup();
    assert_eq!(actors.len(), LIKERS, "one notification per liker");
    assert_eq!(ids[0], first);
    assert_eq!(
        app.notification_seqs(&author).await,
        (1..=LIKERS as i64).collect::<Vec<_>>(),
        "in id order, seq counts 1, 2, 3, ... with no repeat and no hole"
    );

    // The socket open throughout and the one that resumed: every id, once, in order.
    let mut seen = vec![first];
    while seen.len() < LIKERS {
        seen.push(live.notification().await["id"].as_i64().unwrap());
    }
    assert_eq!(seen, ids);
    let mut after = Vec::new();
    while after.len() < LIKERS - 1 {
        after.push(resumed.notification().await["id"].as_i64().unwrap());
    }
    assert_eq!(after, ids[1..]);
    let together = &app.state.metrics.likes_together;
    println!(
        "{} of {LIKERS} likes written together with others",
        together.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Likes of several posts of one author at once (written together per post): per post each
/// like its own count, one notification per like, and the author's socket gets them all once,
/// in id order.
#[tokio::test(flavor = "multi_thread")]
async fn sixty_likers_of_five_posts_of_one_author_at_once_stay_exact() {
    const LIKERS: usize = 60;
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let posts = app.create_posts(&author, 5).await;
    let likers = app.register_many("h", LIKERS).await;
    let mut live = app.socket(&author, "").await;
    let likes: Vec<(i64, &crate::support::User)> = likers
        .iter()
        .flat_map(|liker| posts.iter().map(move |post| (*post, liker)))
        .collect();
    let replies = join_all(likes.iter().map(|(post, liker)| app.like(liker, *post))).await;
    for post in &posts {
        let of_post = likes.iter().zip(&replies).filter(|((p, _), _)| p == post);
        assert_eq!(
            sorted_like_counts(of_post.map(|(_, reply)| reply)),
            (1..=LIKERS as i64).collect::<Vec<_>>(),
            "post {post}"
        );
    }
    let ids = app.notification_ids(&author).await;
    assert_eq!(ids.len(), likes.len(), "one notification per like");
    let mut seen = Vec::new();
    while seen.len() < ids.len() {
        seen.push(live.notification().await["id"].as_i64().unwrap());
    }
    assert_eq!(seen, ids, "every notification once, in id order");
}

/// Likes of one author's posts written at once (together, and published by their own requests
/// in any order): a notification that arrives ahead of one still on its way is held until that
/// one arrives, not read from the database. With a wait of a minute, every notification still
/// reaches the socket at once, once, in order, and no read was needed.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_published_out_of_order_reach_the_socket_in_order_without_a_database_read() {
    const LIKERS: usize = 40;
    let app = TestApp::spawn_with(|s| s.limits.ws_gap_wait_ms = 60_000).await;
    let author = app.register("author").await;
    let posts = app.create_posts(&author, 3).await;
    let likers = app.register_many("o", LIKERS).await;
    let mut live = app.socket(&author, "?groups=1").await;
    let likes: Vec<(i64, &crate::support::User)> = likers
        .iter()
        .flat_map(|liker| posts.iter().map(move |post| (*post, liker)))
        .collect();
    join_all(likes.iter().map(|(post, liker)| app.like(liker, *post))).await;
    let ids = app.notification_ids(&author).await;
    assert_eq!(ids.len(), likes.len(), "one notification per like");
    // Notifications and group changes (one per like, the user's group version counting up).
    let (mut seen, mut versions) = (Vec::new(), Vec::new());
    while seen.len() < ids.len() || versions.len() < ids.len() {
        let frame = match live.next_within(std::time::Duration::from_secs(5)).await {
            Ok(frame) => frame,
            Err(ended) => panic!(
                "stuck ({ended:?}) after {} of {} notifications and {} group versions, the last {:?} ({})",
                seen.len(),
                ids.len(),
                versions.len(),
                &versions[versions.len().saturating_sub(5)..],
                app.delivery_counters(),
            ),
        };
        match frame["type"].as_str() {
            Some("notification") => seen.push(frame["notification"]["id"].as_i64().unwrap()),
            Some("group") => versions.push(frame["group"]["version"].as_i64().unwrap()),
            _ => {}
        }
    }
    assert_eq!(seen, ids, "every notification once, in id order");
    assert!(
        versions.windows(2).all(|w| w[0] + 1 == w[1]),
        "group versions in order, none missing: {versions:?}"
    );
    let metrics = &app.state.metrics;
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        load(&metrics.gap_reads),
        0,
        "nothing was read from the database"
    );
    assert_eq!(load(&metrics.replays), 0);
    println!(
        "{} deliveries held a notification or group change",
        load(&metrics.gaps_held)
    );
}

/// A like that fails inside a batch (its liker is blocked by the author, or its post was just
/// deleted) fails alone: the batch is written again one like at a time, so every other like
/// keeps its exact count and notification, and nothing answers 500.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_like_among_likes_written_together_fails_alone() {
    const LIKERS: usize = 40;
    let app = TestApp::spawn().await;
    let (author, blocked) = (app.register("author").await, app.register("blocked").await);
    app.put(&format!("/users/{}/block", blocked.id), &author.token)
        .await
        .assert_status(StatusCode::OK);
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    let likers = app.register_many("f", LIKERS).await;
    // The blocked liker's likes go in among the others.
    let likes = likers.iter().enumerate().flat_map(|(i, liker)| {
        let extra = (i % 8 == 0).then_some(&blocked);
        std::iter::once(liker).chain(extra)
    });
    let app = &app;
    let replies =
        join_all(likes.map(|liker| async move { (liker.id, app.like(liker, post).await) })).await;
    let mut counts = Vec::new();
    for (liker, reply) in &replies {
        if *liker == blocked.id {
            reply.assert_status(StatusCode::NOT_FOUND);
        } else {
            reply.assert_status(StatusCode::OK);
            counts.push(reply.body["like_count"].as_i64().unwrap());
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=LIKERS as i64).collect::<Vec<_>>());
    assert_eq!(app.all_notifications(&author).await.len(), LIKERS);

    // Likes of a post deleted while they are being written: each 200 or 404, nothing else.
    let doomed = app.create_post(&author, "doomed").await["id"]
        .as_i64()
        .unwrap();
    let liking = join_all(likers.iter().map(|liker| app.like(liker, doomed)));
    let path = format!("/posts/{doomed}");
    let deleting = app.delete(&path, &author.token);
    let (replies, deleted) = tokio::join!(liking, deleting);
    deleted.assert_status(StatusCode::NO_CONTENT);
    for reply in &replies {
        assert!(
            [StatusCode::OK, StatusCode::NOT_FOUND].contains(&reply.status),
            "a like of a post being deleted: {} {}",
            reply.status,
            reply.body
        );
    }
    // And none of their rows stays behind: likes or notifications of the gone post.
    for table in ["likes", "notifications"] {
        assert_eq!(app.rows_of_post(table, doomed).await, 0, "{table}");
    }
    assert_eq!(app.all_notifications(&author).await.len(), LIKERS);
    // Likes after the deletion: the workers remember the post's author, so each like's
    // statement runs, finds no post to count, and must take back the row it wrote.
    for reply in join_all(likers.iter().map(|liker| app.like(liker, doomed))).await {
        reply.assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    }
    assert_eq!(app.rows_of_post("likes", doomed).await, 0);
}

/// Sockets opening together are checked in batches (`server/src/admission.rs`): each must still
/// get the verdict of its own token and the replay of its own user's notifications.
#[tokio::test(flavor = "multi_thread")]
async fn sockets_opening_at_once_each_get_their_own_token_checked_and_their_own_replay() {
    let app = TestApp::spawn().await;
    let liker = app.register("opener").await;
    let users = join_all((0..16).map(|i| {
        let app = &app;
        async move { app.register(&format!("open{i}")).await }
    }))
    .await;
    // User i has i % 3 notifications: likes of their posts.
    for (i, user) in users.iter().enumerate() {
        for n in 0..i % 3 {
            let post = app.create_post(user, &format!("p{n}")).await["id"]
                .as_i64()
                .unwrap();
            app.like(&liker, post).await.assert_status(StatusCode::OK);
        }
    }
    let mut expected = Vec::new();
    for user in &users {
        expected.push(app.notification_ids(user).await);
    }
    // Users 0, 4, 8 and 12 log out (their tokens are revoked); users 2, 6, 10 and 14 log in
    // again and then log out of the first login, so their new token is good but the first
    // is not; the odd users keep their only token.
    let mut tokens = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut token = user.token.clone();
        if i % 2 == 0 {
            if i % 4 == 2 {
                let login = app.login(user).await;
                login.assert_status(StatusCode::OK);
                token = login.body["token"].as_str().unwrap().to_owned();
            }
            app.call(Method::POST, "/auth/logout", Some(&user.token), None)
                .await
                .assert_status(StatusCode::NO_CONTENT);
        }
        tokens.push(token);
    }
    let both = |i: usize| (i % 4 == 2).then(|| users[i].token.clone());
    let mut opening: Vec<(usize, String)> = tokens.iter().cloned().enumerate().collect();
    opening.extend((0..users.len()).filter_map(|i| both(i).map(|old| (i, old))));
    let url = app.ws_url("?since=0");
    let opened = join_all(
        opening
            .iter()
            .map(|(_, token)| Socket::open(&url, Some(token), None)),
    )
    .await;
    let mut admitted = 0;
    for ((i, token), result) in opening.iter().zip(opened) {
        let revoked = *token == users[*i].token && i % 2 == 0;
        match result {
            Err((status, body)) => {
                assert!(revoked, "user {i}: refused ({status}) {body}");
                assert_eq!(status, 401, "user {i}: {body}");
            }
            Ok(mut socket) => {
                assert!(!revoked, "user {i}: a revoked token opened a socket");
                assert_eq!(socket.hello["user_id"], users[*i].id);
                let mut replayed = Vec::new();
                for _ in 0..i % 3 {
                    let notification = socket.notification().await;
                    replayed.push(notification["id"].as_i64().unwrap());
                }
                assert_eq!(replayed, expected[*i], "user {i}");
                admitted += 1;
            }
        }
    }
    // 8 odd users, and the 4 second logins.
    assert_eq!(admitted, 12);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("\npulse_socket_admission_checks_total 20\n"),
        "{metrics}"
    );
    // How many batches the 20 checks took depends on timing; printed, not asserted.
    let batches = metrics
        .lines()
        .find_map(|line| line.strip_prefix("pulse_socket_admission_batches_total "))
        .unwrap_or("?");
    eprintln!("20 socket admission checks in {batches} batches");
}

/// The likes of one author's posts written together answer exactly as the same likes written
/// one by one on a twin store: counts, notification ids and seqs, each like's group as it stood
/// after it, push jobs, blocks, mutes, self-likes, a like again, a missing post and a pair twice.
/// On PostgreSQL they are one call of `pulse_like_batch`, in a transaction that locks the
/// posts first; on SQLite each is written alone.
#[tokio::test(flavor = "multi_thread")]
async fn likes_of_two_posts_written_together_answer_as_likes_written_one_by_one() {
    likes_written_together_answer_as_likes_written_one_by_one(Twin::TwoPosts).await;
}

/// The same for the likes of one post, handed over once their post's row is held (as the queue
/// writes them when likes arrive faster than they are written): on PostgreSQL the post locked,
/// then the statement, in one transaction.
#[tokio::test(flavor = "multi_thread")]
async fn likes_of_one_post_written_together_answer_as_likes_written_one_by_one() {
    likes_written_together_answer_as_likes_written_one_by_one(Twin::OnePost).await;
}

/// The same for an author who never blocked, muted or saved preferences (on PostgreSQL, the
/// author's row is then updated with no check), whose post's group already holds two likers:
/// the earlier likes of the batch show them among its newest actors.
#[tokio::test(flavor = "multi_thread")]
async fn likes_of_one_post_of_a_quiet_author_written_together_answer_as_likes_written_one_by_one() {
    likes_written_together_answer_as_likes_written_one_by_one(Twin::QuietAuthor).await;
}

/// Which likes [`twin_likes`] makes.
#[derive(Clone, Copy, PartialEq)]
enum Twin {
    /// Likes of two posts, a missing post among them, by an author who mutes and blocks.
    TwoPosts,
    /// The likes of the first post only.
    OnePost,
    /// Likes of one post by an author who mutes and blocks nobody, after two likes of it (by
    /// `muted` and `blocked`, who like nothing in the batch).
    QuietAuthor,
}

async fn likes_written_together_answer_as_likes_written_one_by_one(twin: Twin) {
    let one_post = twin != Twin::TwoPosts;
    let spawn = || TestApp::spawn_with(|s| s.push_allow_private = true);
    let (together, one_by_one) = (spawn().await, spawn().await);
    let (likes, _services) = join_all([&together, &one_by_one].map(|app| twin_likes(app, twin)))
        .await
        .into_iter()
        .unzip::<_, _, Vec<_>, Vec<_>>();
    assert_eq!(
        likes[0]
            .iter()
            .map(|(actor, post)| (actor.id, *post))
            .collect::<Vec<_>>(),
        likes[1]
            .iter()
            .map(|(actor, post)| (actor.id, *post))
            .collect::<Vec<_>>(),
        "the twins hold the same users and posts"
    );
    let batch = if one_post {
        let db = &together.state.db;
        let (taken, outcomes) =
            pulse_schema::likes::like_together_when_locked(db, likes[0][0].1, || likes[0].clone())
                .await;
        assert_eq!(
            taken.len(),
            likes[0].len(),
            "every like handed over is written"
        );
        outcomes
    } else {
        pulse_schema::likes::like_together(&together.state.db, &likes[0]).await
    };
    let mut alone = Vec::new();
    for (actor, post) in &likes[1] {
        alone.push(pulse_schema::likes::like(&one_by_one.state.db, actor, *post).await);
    }
    if crate::support::backend() == crate::support::Backend::Postgres {
        // One statement: one time for all its notifications (likes written again one by one,
        // should the batch fail, would each have their own).
        let mut times: Vec<_> = batch
            .iter()
            .flatten()
            .filter_map(|o| o.delivery.notification.as_ref().map(|(n, _)| n.created_at))
            .collect();
        times.dedup();
        assert_eq!(times.len(), 1, "{times:?}");
    }
    let (batch, alone): (Vec<_>, Vec<_>) = (
        batch.iter().map(like_summary).collect(),
        alone.iter().map(like_summary).collect(),
    );
    for (i, (batch, alone)) in batch.iter().zip(&alone).enumerate() {
        assert_eq!(batch, alone, "like {i}");
    }
    assert!(
        batch.iter().filter(|s| s.contains("notification")).count() >= 5,
        "{batch:#?}"
    );
}

/// A twin's users and posts, and the likes to write: author `a` (one push subscription) with
/// posts p1 and p2 mutes `muted`, blocks `blocked`; `again` liked and unliked p1 before. With
/// [`Twin::OnePost`], the likes of p1 only; with [`Twin::QuietAuthor`], `muted` and `blocked`
/// like p1 before instead (the author mutes and blocks nobody).
async fn twin_likes(
    app: &TestApp,
    twin: Twin,
) -> (
    Vec<(pulse_schema::users::UserSummaryRow, pulse_schema::PostId)>,
    crate::support::push_service::PushService,
) {
    let author = app.register("a").await;
    let names = [
        "f1", "f2", "f3", "f4", "f5", "f6", "f7", "muted", "blocked", "again",
    ];
    let mut fans = Vec::new();
    for name in names {
        fans.push(app.register(name).await);
    }
    let (p1, p2) = (
        app.create_post(&author, "p1").await["id"].as_i64().unwrap(),
        app.create_post(&author, "p2").await["id"].as_i64().unwrap(),
    );
    if twin == Twin::QuietAuthor {
        for fan in &fans[7..9] {
            app.like(fan, p1).await.assert_status(StatusCode::OK);
        }
    } else {
        app.put(&format!("/users/{}/mute", fans[7].id), &author.token)
            .await
            .assert_status(StatusCode::OK);
        app.put(&format!("/users/{}/block", fans[8].id), &author.token)
            .await
            .assert_status(StatusCode::OK);
    }
    app.like(&fans[9], p1).await.assert_status(StatusCode::OK);
    app.delete(&format!("/posts/{p1}/like"), &fans[9].token)
        .await
        .assert_status(StatusCode::OK);
    let service = crate::support::push_service::PushService::start(None);
    app.subscribe_push(&author.token, &service, "a").await;
    let summary = |user: &crate::support::User| pulse_schema::users::UserSummaryRow {
        id: pulse_schema::UserId(user.id),
        username: user.username.clone(),
        display_name: user.username.clone(),
    };
    let order: [(&crate::support::User, i64); 13] = [
        (&fans[0], p1),
        (&fans[1], p1),
        (&author, p1),
        (&fans[7], p1),
        (&fans[8], p1),
        (&fans[2], p2),
        (&fans[3], p1),
        (&fans[4], i64::MAX),
        (&fans[4], p2),
        (&fans[5], p1),
        (&fans[6], p1),
        (&fans[9], p1),
        (&fans[0], p1),
    ];
    let likes = order
        .iter()
        .filter(|(_, post)| twin == Twin::TwoPosts || *post == p1)
        // A like already there answers the post's count when it is answered: after the whole
        // batch, not after the likes before it.
        .filter(|(user, _)| {
            twin != Twin::QuietAuthor || !fans[7..9].iter().any(|fan| fan.id == user.id)
        })
        .map(|(user, post)| (summary(user), pulse_schema::PostId(*post)))
        .collect();
    (likes, service)
}

/// What a like answered, without its times and with each group named by its post (a batch
/// draws fewer group ids than likes one by one, each of which tries to insert a group).
fn like_summary(
    outcome: &Result<pulse_schema::likes::LikeOutcome, pulse_schema::db::DbError>,
) -> String {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => return format!("{error:?}"),
    };
    let delivery = &outcome.delivery;
    // Usernames end in a random suffix of their twin's: the sentence keeps the name's prefix.
    let sentence = |text: &str| -> String {
        let words = text.split(' ').map(|w| w.split('_').next().unwrap_or(w));
        words.collect::<Vec<_>>().join(" ")
    };
    let notification = delivery.notification.as_ref().map(|(n, actor)| {
        format!(
            "notification {} seq {} to {} from {} {:?} of {:?}: {:?}",
            n.id.0,
            n.seq,
            n.recipient_id.0,
            actor.id.0,
            n.kind,
            n.post_id,
            sentence(&n.text)
        )
    });
    let groups: Vec<String> = delivery
        .groups
        .iter()
        .map(|g| {
            let actors: Vec<i64> = serde_json::from_str::<Vec<serde_json::Value>>(&g.actors)
                .unwrap()
                .iter()
                .map(|a| a["id"].as_i64().unwrap())
                .collect();
            format!(
                "group of {:?} for {}: {} actors {actors:?}, version {}, latest {}, removed {}",
                g.post_id,
                g.recipient_id.0,
                g.actor_count,
                g.version,
                g.latest_notification_id.0,
                g.removed
            )
        })
        .collect();
    format!(
        "liked {} count {} seq {} changed {} {notification:?} {groups:?} pushes {}",
        outcome.liked, outcome.like_count, outcome.like_seq, outcome.changed, delivery.pushes
    )
}

/// Readying the connections for likes (on PostgreSQL, each step of the like's functions run
/// for rows of its own, rolled back) succeeds however often it runs, leaves no row behind and
/// changes nothing a like then answers.
#[tokio::test(flavor = "multi_thread")]
async fn readying_the_connections_for_likes_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    let author = app.register("author").await;
    let fan = app.register("fan").await;
    let post = app.create_post(&author, "p").await["id"].as_i64().unwrap();
    for _ in 0..2 {
        pulse_schema::likes::warm(&app.state.db)
            .await
            .expect("readying the connections");
    }
    let liked = app.like(&fan, post).await;
    liked.assert_status(StatusCode::OK);
    assert_eq!(liked.body["like_count"], 1, "{}", liked.body);
    let inbox = app.get("/notifications", &author.token).await;
    inbox.assert_status(StatusCode::OK);
    let items = inbox.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["actor"]["id"], fan.id, "{items:?}");
    // The readying's rows all have negative ids; none stays.
    let readied = [
        ("users", "id"),
        ("posts", "id"),
        ("push_subscriptions", "id"),
        ("likes", "user_id"),
    ];
    for (table, id) in readied {
        assert_eq!(
            app.rows_where(table, &format!("{id} < 0")).await,
            0,
            "{table}"
        );
    }
}

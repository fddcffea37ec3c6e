//! Grouped notifications: the joining rule and its window, the rendered text, leaving and
//! coming back, reading, post deletion, and the live `group` frames with resume by version.
//! Every test runs on both backends (see `support`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{Socket, TestApp, User};

/// `user`'s groups, newest first (one page of 100).
async fn groups(app: &TestApp, user: &User) -> Vec<Value> {
    let reply = app
        .get("/notifications/groups?limit=100", &user.token)
        .await;
    reply.assert_status(StatusCode::OK);
    reply.body["items"].as_array().unwrap().clone()
}

async fn post_of(app: &TestApp, author: &User) -> i64 {
    app.create_post(author, "p").await["id"].as_i64().unwrap()
}

async fn unlike(app: &TestApp, user: &User, post: i64) {
    app.delete(&format!("/posts/{post}/like"), &user.token)
        .await
        .assert_status(StatusCode::OK);
}

async fn like(app: &TestApp, user: &User, post: i64) {
    app.like(user, post).await.assert_status(StatusCode::OK);
}

async fn read_groups(app: &TestApp, user: &User, ids: &[i64]) -> Value {
    let reply = app
        .post(
            "/notifications/read",
            &user.token,
            json!({ "group_ids": ids }),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    reply.body
}

async fn users(app: &TestApp, names: &[&str]) -> Vec<User> {
    join_all(names.iter().map(|n| app.register(n))).await
}

fn text(group: &Value) -> &str {
    group["text"].as_str().unwrap()
}

/// The next `group` or `group_removed` frame, skipping notifications and reads.
async fn group_change(socket: &mut Socket) -> Value {
    loop {
        let frame = socket.next().await;
        match frame["type"].as_str() {
            Some("group" | "group_removed") => return frame,
            Some("notification" | "read" | "like_count") => continue,
            _ => panic!("unexpected frame {frame}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn likes_of_one_post_become_one_line_and_its_text_counts_them() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let likers = users(&app, &["bob", "carol", "dan", "erin"]).await;
    let post = post_of(&app, &alice).await;
    let name = |i: usize| likers[i].username.clone();
    let expected = [
        format!("{} liked your photo.", name(0)),
        format!("{} and {} liked your photo.", name(1), name(0)),
        format!("{}, {} and 1 other liked your photo.", name(2), name(1)),
        format!("{}, {} and 2 others liked your photo.", name(3), name(2)),
    ];
    for (i, liker) in likers.iter().enumerate() {
        like(&app, liker, post).await;
        let all = groups(&app, &alice).await;
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(text(&all[0]), expected[i]);
        assert_eq!(all[0]["actor_count"], json!(i + 1));
    }
    let group = &groups(&app, &alice).await[0];
    let shown: Vec<i64> = group["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(shown, [likers[3].id, likers[2].id, likers[1].id]);
    assert_eq!(group["kind"], "like");
    assert_eq!(group["post_id"], json!(post));
    assert_eq!(group["read"], json!(false));
    // The v1 inbox is unchanged: one notification per like, each naming its group.
    let inbox = app.all_notifications(&alice).await;
    assert_eq!(inbox.len(), 4);
    assert!(
        inbox.iter().all(|n| n["group_id"] == group["id"]),
        "{inbox:?}"
    );
    assert_eq!(group["latest_notification_id"], inbox[0]["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_follows_and_other_posts_group_apart() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let (first, second) = (post_of(&app, &alice).await, post_of(&app, &alice).await);
    app.comment_n(&bob, first, 2, 3).await;
    app.comment_n(&carol, first, 1, 3).await;
    app.follow(&bob, &alice).await;
    app.follow(&carol, &alice).await;
    like(&app, &bob, first).await;
    like(&app, &bob, second).await;
    let all = groups(&app, &alice).await;
    let by_text: Vec<&str> = all.iter().map(text).collect();
    let (b, c) = (&bob.username, &carol.username);
    assert_eq!(
        by_text,
        [
            format!("{b} liked your photo."),
            format!("{b} liked your photo."),
            format!("{c} and {b} started following you."),
            format!("{c} and {b} commented on your photo."),
        ],
        "newest first; two comments by bob count once"
    );
    assert_eq!(all[3]["actor_count"], json!(2));
    assert_eq!(all[2]["post_id"], Value::Null);
    assert_eq!(groups_unread(&app, &alice).await, 4);
}

async fn groups_unread(app: &TestApp, user: &User) -> i64 {
    let reply = app.get("/notifications/groups", &user.token).await;
    reply.body["unread_count"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn unliking_leaves_the_group_and_liking_again_comes_back_silently() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let post = post_of(&app, &alice).await;
    like(&app, &bob, post).await;
    like(&app, &carol, post).await;
    unlike(&app, &carol, post).await;
    let all = groups(&app, &alice).await;
    assert_eq!(
        (all[0]["actor_count"].clone(), text(&all[0])),
        (json!(1), &*format!("{} liked your photo.", bob.username))
    );
    let first_id = all[0]["id"].clone();
    unlike(&app, &bob, post).await;
    assert!(
        groups(&app, &alice).await.is_empty(),
        "nobody left: removed"
    );
    let mut socket = app.socket(&alice, "?groups=1").await;
    like(&app, &bob, post).await;
    let all = groups(&app, &alice).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["actor_count"], json!(1));
    assert_eq!(
        all[0]["id"], first_id,
        "back in the group of the first like"
    );
    // Silently: the group comes back on the socket, and the next notification is a later one.
    let back = socket.next().await;
    assert_eq!(
        (back["type"].as_str(), &back["group"]["id"]),
        (Some("group"), &first_id)
    );
    let dan = app.register("dan").await;
    app.follow(&dan, &alice).await;
    loop {
        let frame = socket.next().await;
        if frame["type"] == "notification" {
            assert_eq!(
                frame["notification"]["kind"], "follow",
                "no notification for the like again"
            );
            break;
        }
    }
    app.delete(&format!("/users/{}/follow", alice.id), &dan.token)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        app.all_notifications(&alice).await.len(),
        3,
        "bob's and carol's likes and dan's follow: none for the like again"
    );
    // Follows likewise.
    app.follow(&bob, &alice).await;
    app.delete(&format!("/users/{}/follow", alice.id), &bob.token)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        groups(&app, &alice).await.len(),
        1,
        "the follow group left with its follower"
    );
    app.follow(&bob, &alice).await;
    let all = groups(&app, &alice).await;
    assert_eq!(all.len(), 2);
    let follows = all.iter().find(|g| g["kind"] == "follow").unwrap();
    assert_eq!(
        text(follows),
        format!("{} started following you.", bob.username)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_a_group_reads_its_notifications_and_the_next_like_starts_a_new_group() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol, dan]: [User; 3] = users(&app, &["bob", "carol", "dan"])
        .await
        .try_into()
        .unwrap();
    let post = post_of(&app, &alice).await;
    like(&app, &bob, post).await;
    like(&app, &carol, post).await;
    let first = groups(&app, &alice).await[0]["id"].as_i64().unwrap();
    let counts = read_groups(&app, &alice, &[first]).await;
    assert_eq!(counts, json!({"unread_count": 0, "unread_group_count": 0}));
    like(&app, &dan, post).await;
    let all = groups(&app, &alice).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0]["actor_count"].clone(), all[0]["read"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(
        (all[1]["actor_count"].clone(), all[1]["read"].clone()),
        (json!(2), json!(true))
    );
    let unread = app
        .get("/notifications/groups?unread_only=true", &alice.token)
        .await;
    assert_eq!(unread.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(unread.body["unread_count"], json!(1));
    // Reading the notifications themselves (v1) reads their group.
    let newest = app.all_notifications(&alice).await[0]["id"]
        .as_i64()
        .unwrap();
    let reply = app
        .post(
            "/notifications/read",
            &alice.token,
            json!({"up_to_id": newest}),
        )
        .await;
    assert_eq!(
        reply.body,
        json!({"unread_count": 0, "unread_group_count": 0})
    );
    assert!(groups(&app, &alice)
        .await
        .iter()
        .all(|g| g["read"] == json!(true)));
    // Bad requests change nothing.
    for body in [
        json!({"group_ids": [0]}),
        json!({"group_ids": [1], "ids": [1]}),
        json!({"group_ids": "x"}),
    ] {
        let status = app
            .post("/notifications/read", &alice.token, body.clone())
            .await
            .status;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{body}: {status}"
        );
    }
    // Someone else's group ids change nothing of theirs, read or unread.
    let counts = read_groups(&app, &bob, &[first]).await;
    assert_eq!(counts["unread_count"], json!(0));
    let erin = app.register("erin").await;
    like(&app, &erin, post).await;
    let unread = groups(&app, &alice).await[0]["id"].as_i64().unwrap();
    read_groups(&app, &bob, &[unread]).await;
    assert_eq!(
        groups_unread(&app, &alice).await,
        1,
        "alice's group is still unread"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_of_groups_follow_next_cursor_newest_change_first() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    for post in app.create_posts(&alice, 5).await {
        like(&app, &bob, post).await;
    }
    let everything: Vec<Value> = groups(&app, &alice).await;
    assert_eq!(everything.len(), 5);
    let mut paged = Vec::new();
    let mut path = "/notifications/groups?limit=2".to_owned();
    loop {
        let page = app.get(&path, &alice.token).await;
        page.assert_status(StatusCode::OK);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        paged.extend(items.iter().map(|g| g["id"].clone()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/notifications/groups?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<Value> = everything.iter().map(|g| g["id"].clone()).collect();
    assert_eq!(paged, ids, "every group once, newest change first");
    let versions: Vec<i64> = everything
        .iter()
        .map(|g| g["version"].as_i64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] > w[1]), "{versions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_post_removes_its_unread_group_from_the_list_and_the_count() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let posts = app.create_posts(&alice, 2).await;
    for post in &posts {
        like(&app, &bob, *post).await;
    }
    assert_eq!(groups_unread(&app, &alice).await, 2);
    app.delete(&format!("/posts/{}", posts[0]), &alice.token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let left = groups(&app, &alice).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["post_id"], json!(posts[1]));
    assert_eq!(groups_unread(&app, &alice).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_like_after_the_window_starts_a_new_group() {
    let app = TestApp::spawn_with(|s| s.limits.group_window_secs = 1).await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let post = post_of(&app, &alice).await;
    like(&app, &bob, post).await;
    // The window is one second of wall-clock time; let it pass.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    like(&app, &carol, post).await;
    let all = groups(&app, &alice).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|g| g["actor_count"] == json!(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_likers_of_one_post_make_one_group_counting_each_once() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let post = post_of(&app, &alice).await;
    let names: Vec<String> = (0..40).map(|i| format!("fan{i}")).collect();
    let fans = join_all(names.iter().map(|n| app.register(n))).await;
    join_all(fans.iter().map(|f| like(&app, f, post))).await;
    let all = groups(&app, &alice).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["actor_count"], json!(40));
    let inbox = app.all_notifications(&alice).await;
    assert!(inbox.iter().all(|n| n["group_id"] == all[0]["id"]));
    assert_eq!(all[0]["latest_notification_id"], inbox[0]["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_groups_socket_sees_every_change_and_a_plain_socket_none() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let post = post_of(&app, &alice).await;
    let mut plain = app.socket(&alice, "").await;
    let mut grouped = app.socket(&alice, "?groups=1").await;
    like(&app, &bob, post).await;
    let created = group_change(&mut grouped).await;
    assert_eq!(created["type"], "group");
    assert_eq!(created["group"]["actor_count"], json!(1));
    like(&app, &carol, post).await;
    let joined = group_change(&mut grouped).await;
    assert_eq!(joined["group"]["actor_count"], json!(2));
    assert!(joined["group"]["version"].as_i64() > created["group"]["version"].as_i64());
    unlike(&app, &carol, post).await;
    let left = group_change(&mut grouped).await;
    assert_eq!(
        left["group"]["text"],
        json!(format!("{} liked your photo.", bob.username))
    );
    let id = created["group"]["id"].as_i64().unwrap();
    read_groups(&app, &alice, &[id]).await;
    let read = group_change(&mut grouped).await;
    assert_eq!(read["group"]["read"], json!(true));
    let counts = grouped.next_of("read", &[]).await;
    assert_eq!(
        counts,
        json!({"type": "read", "unread_count": 0, "unread_group_count": 0})
    );
    app.delete(&format!("/posts/{post}"), &alice.token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let removed = group_change(&mut grouped).await;
    assert_eq!(removed["type"], "group_removed");
    assert_eq!(removed["group_id"], json!(id));
    // The plain socket: two notifications and a read, then the pong that proves nothing else
    // was on its way.
    plain.send_json(json!({"type": "ping"})).await;
    let mut kinds = Vec::new();
    loop {
        let frame = plain.next().await;
        if frame["type"] == "pong" {
            break;
        }
        kinds.push(frame["type"].as_str().unwrap().to_owned());
        if frame["type"] == "read" {
            assert_eq!(frame, json!({"type": "read", "unread_count": 0}));
        }
    }
    kinds.retain(|k| k != "pong");
    assert!(
        kinds.iter().all(|k| k == "notification" || k == "read"),
        "{kinds:?}"
    );
}

/// Folds `group`/`group_removed` frames into id -> (actor_count, read, version).
fn fold(state: &mut BTreeMap<i64, (i64, bool, i64)>, frame: &Value) -> i64 {
    if frame["type"] == "group_removed" {
        state.remove(&frame["group_id"].as_i64().unwrap());
        return frame["version"].as_i64().unwrap();
    }
    let g = &frame["group"];
    let version = g["version"].as_i64().unwrap();
    state.insert(
        g["id"].as_i64().unwrap(),
        (
            g["actor_count"].as_i64().unwrap(),
            g["read"].as_bool().unwrap(),
            version,
        ),
    );
    version
}

/// Reads group changes from `socket` into `state` until it is `expected`, each version above the
/// one before (starting after `last`); returns the frames read and the last version.
async fn converge(
    socket: &mut Socket,
    state: &mut BTreeMap<i64, (i64, bool, i64)>,
    expected: &BTreeMap<i64, (i64, bool, i64)>,
    mut last: i64,
) -> (Vec<Value>, i64) {
    let mut frames = Vec::new();
    while state != expected {
        let frame = group_change(socket).await;
        let version = fold(state, &frame);
        assert!(version > last, "versions increase: {version} after {last}");
        last = version;
        frames.push(frame);
    }
    (frames, last)
}

async fn server_state(app: &TestApp, user: &User) -> BTreeMap<i64, (i64, bool, i64)> {
    groups(app, user)
        .await
        .iter()
        .map(|g| {
            (
                g["id"].as_i64().unwrap(),
                (
                    g["actor_count"].as_i64().unwrap(),
                    g["read"].as_bool().unwrap(),
                    g["version"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_from_a_version_replays_what_changed_including_removals() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let (first, second) = (post_of(&app, &alice).await, post_of(&app, &alice).await);
    let mut socket = app.socket(&alice, "?groups=1").await;
    like(&app, &bob, first).await;
    let mut state = BTreeMap::new();
    let seen = fold(&mut state, &group_change(&mut socket).await);
    socket.close().await;
    // While away: the group changes, another is made and removed, a third is made.
    like(&app, &carol, first).await;
    like(&app, &bob, second).await;
    unlike(&app, &bob, second).await;
    app.follow(&carol, &alice).await;
    let mut resumed = app
        .socket(&alice, &format!("?groups=1&groups_since={seen}"))
        .await;
    let expected = server_state(&app, &alice).await;
    let (frames, last) = converge(&mut resumed, &mut state, &expected, seen).await;
    let removals = frames
        .iter()
        .filter(|f| f["type"] == "group_removed")
        .count();
    assert_eq!(
        removals, 1,
        "the second post's group was removed while away"
    );
    // Then live.
    unlike(&app, &carol, first).await;
    let frame = group_change(&mut resumed).await;
    assert_eq!(frame["group"]["actor_count"], json!(1));
    assert!(frame["group"]["version"].as_i64().unwrap() > last);
    // A bad version is refused before the upgrade.
    let status = app
        .get("/ws?groups=1&groups_since=x", &alice.token)
        .await
        .status;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sockets_of_one_user_converge_on_the_servers_state() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let fans = users(&app, &["f1", "f2", "f3", "f4", "f5", "f6"]).await;
    let posts = [post_of(&app, &alice).await, post_of(&app, &alice).await];
    let mut sockets = [
        app.socket(&alice, "?groups=1").await,
        app.socket(&alice, "?groups=1").await,
    ];
    let work = fans.iter().enumerate().map(|(i, fan)| {
        let app = &app;
        async move {
            for post in posts {
                like(app, fan, post).await;
            }
            if i % 2 == 0 {
                unlike(app, fan, posts[0]).await;
            }
            if i % 3 == 0 {
                like(app, fan, posts[0]).await;
            }
        }
    });
    join_all(work).await;
    let expected = server_state(&app, &alice).await;
    for socket in &mut sockets {
        converge(socket, &mut BTreeMap::new(), &expected, 0).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_takes_the_blocked_user_out_of_every_group_on_both_sides() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let post = post_of(&app, &alice).await;
    like(&app, &bob, post).await;
    like(&app, &carol, post).await;
    app.follow(&bob, &alice).await;
    app.follow(&alice, &bob).await;
    let mut watching = app.socket(&bob, "?groups=1").await;
    app.put(&format!("/users/{}/block", bob.id), &alice.token)
        .await
        .assert_status(StatusCode::OK);
    let all = groups(&app, &alice).await;
    assert_eq!(all.len(), 1, "the follow group is gone: {all:?}");
    assert_eq!(
        text(&all[0]),
        format!("{} liked your photo.", carol.username)
    );
    assert!(
        groups(&app, &bob).await.is_empty(),
        "alice's follow of bob ended"
    );
    let removed = group_change(&mut watching).await;
    assert_eq!(removed["type"], "group_removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_groups_socket_that_overflowed_converges_once_it_reads() {
    let app = TestApp::spawn_with(|s| s.limits.ws_queue_len = 4).await;
    let alice = app.register("alice").await;
    let [bob, carol]: [User; 2] = users(&app, &["bob", "carol"]).await.try_into().unwrap();
    let posts = [post_of(&app, &alice).await, post_of(&app, &alice).await];
    let mut stalled = Socket::open_small_buffer(&app.ws_url("?groups=1"), &alice.token).await;
    let overflows = || {
        app.state
            .metrics
            .queue_overflows
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let mut rounds = 0;
    while overflows() == 0 {
        for post in posts {
            app.comment_n(&bob, post, 5, 2000).await;
            app.comment_n(&carol, post, 5, 2000).await;
        }
        rounds += 1;
        assert!(rounds <= 100, "the queue never overflowed");
    }
    like(&app, &bob, posts[0]).await;
    unlike(&app, &bob, posts[0]).await;
    let expected = server_state(&app, &alice).await;
    assert_eq!(expected.len(), 2, "two comment groups: {expected:?}");
    converge(&mut stalled, &mut BTreeMap::new(), &expected, 0).await;
}

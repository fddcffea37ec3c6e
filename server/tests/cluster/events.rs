//! The event stream on two instances: what one commits reaches a stream held by the other, and
//! a logout through one ends the token's streams on both.

use reqwest::{Method, StatusCode};

use crate::pair;

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_gets_what_the_other_instance_commits_and_ends_on_logout_there() {
    let (a, b) = pair().await;
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    let post = a.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let mut stream = a
        .events(&alice, &format!("?post_ids={post}&groups=1"))
        .await;
    assert_eq!(stream.next().await.kind, "subscribed");

    b.like(&bob, post).await.assert_status(StatusCode::OK);
    let (id, notification) = stream.notification().await;
    assert_eq!(notification["actor"]["id"], bob.id);
    assert_eq!(id, Some(notification["id"].to_string()));
    let mut rest = Vec::new();
    while rest.len() < 2 {
        rest.push(stream.next().await.kind);
    }
    rest.sort();
    assert_eq!(
        rest,
        ["group", "like_count"],
        "the group and the count follow"
    );

    b.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(stream.closed().await, Some(4401));
}

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
    // The notification, its group and the post's count, in any order: on a Redis Cluster the
    // post's channel and the user's can live on different shards.
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = stream.next().await;
        if event.kind == "notification" {
            let notification = &event.data["notification"];
            assert_eq!(notification["actor"]["id"], bob.id);
            assert_eq!(event.id, Some(notification["id"].to_string()));
        }
        kinds.push(event.kind);
    }
    kinds.sort();
    assert_eq!(kinds, ["group", "like_count", "notification"]);

    b.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(stream.closed().await, Some(4401));
}

//! Revocations on two instances: a logout through one is refused by the other from memory as
//! soon as the bus brings it, and a logout made while Redis is down is refused everywhere (from
//! the database while the copy may be incomplete, from memory again once it was reloaded).

use std::sync::atomic::Ordering;

use reqwest::{Method, StatusCode};

use crate::support::{eventually, TestApp};
use crate::{pair, pair_on_own_redis};

/// (checks answered from memory, checks answered by the database) on `app`.
fn auth_checks(app: &TestApp) -> (u64, u64) {
    let metrics = &app.state.metrics;
    (
        metrics.auth_checks_memory.load(Ordering::Relaxed),
        metrics.auth_checks_database.load(Ordering::Relaxed),
    )
}

async fn status_of_me(app: &TestApp, token: &str) -> StatusCode {
    app.get("/me", token).await.status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_through_one_instance_is_refused_by_the_other_from_memory() {
    let (a, b) = pair().await;
    let alice = a.register("alice").await;
    assert_eq!(status_of_me(&b, &alice.token).await, StatusCode::OK);
    a.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let (_, database_before) = auth_checks(&b);
    eventually("the other instance refuses the token", || async {
        (status_of_me(&b, &alice.token).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert_eq!(auth_checks(&b).1, database_before, "answered from memory");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_while_redis_is_down_is_refused_everywhere_then_from_memory() {
    let (mut redis, a, b) = pair_on_own_redis().await;
    let (alice, bob) = (a.register("alice").await, a.register("bob").await);
    assert_eq!(status_of_me(&b, &alice.token).await, StatusCode::OK);
    let memory_at_start = auth_checks(&b).0;
    assert!(memory_at_start >= 1, "checked in memory while Redis is up");

    redis.kill();
    eventually("both instances notice Redis is gone", || async {
        (!a.state.bus.is_connected() && !b.state.bus.is_connected()).then_some(())
    })
    .await;
    // The logout commits; its publish is lost with Redis.
    a.call(Method::POST, "/auth/logout", Some(&alice.token), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let (memory, database) = auth_checks(&b);
    assert_eq!(
        status_of_me(&b, &alice.token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_of_me(&b, &bob.token).await, StatusCode::OK);
    assert_eq!(
        auth_checks(&b),
        (memory, database + 2),
        "the database answered"
    );

    redis.restart().await;
    eventually(
        "the other instance trusts its reloaded copy again",
        || async {
            let before = auth_checks(&b).0;
            let bob_ok = status_of_me(&b, &bob.token).await == StatusCode::OK;
            (bob_ok && auth_checks(&b).0 > before).then_some(())
        },
    )
    .await;
    let (_, database) = auth_checks(&b);
    assert_eq!(
        status_of_me(&b, &alice.token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        auth_checks(&b).1,
        database,
        "refused from memory: the reload has it"
    );
}

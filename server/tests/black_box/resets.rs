//! Clients that reset their connection mid-request (RST right after sending) never hurt anyone
//! else: no worker panics, every open socket stays open and gets its next notification.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::TestApp;

/// Requests sent and reset; thousands, spread over every read and write route.
const RESETS: usize = 4000;
/// Resets in flight at once.
const CONCURRENCY: usize = 48;
/// Sockets of the watching user, spread over the instance's workers.
const SOCKETS: usize = 8;

/// Panics on the server's worker threads (actix names them `actix-...`), counted by a panic
/// hook that keeps the default report.
static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_worker_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if thread.name().is_some_and(|name| name.starts_with("actix")) {
                WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            report(info);
        }));
    });
}

/// One request written whole, then the connection reset (SO_LINGER 0) after `wait`.
async fn send_and_reset(port: u16, request: String, wait: Duration) {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let _ = stream.set_zero_linger();
    let mut stream = stream;
    if stream.write_all(request.as_bytes()).await.is_ok() {
        tokio::time::sleep(wait).await;
    }
    drop(stream);
}

/// The `n`-th request of the storm: every read and write route in turn.
fn request(n: usize, token: &str, own_post: i64, other: i64, other_name: &str) -> String {
    let (method, path, body) = match n % 12 {
        0 => ("GET", "/api/v1/me".to_owned(), ""),
        1 => ("GET", format!("/api/v1/users/{other_name}"), ""),
        2 => ("GET", format!("/api/v1/users/{other}/posts"), ""),
        3 => ("GET", format!("/api/v1/posts/{own_post}"), ""),
        4 => ("GET", "/api/v1/feed".to_owned(), ""),
        5 => ("GET", "/api/v1/notifications".to_owned(), ""),
        6 => ("GET", format!("/api/v1/posts/{own_post}/comments"), ""),
        7 => ("PUT", format!("/api/v1/posts/{own_post}/like"), ""),
        8 => ("DELETE", format!("/api/v1/posts/{own_post}/like"), ""),
        9 => (
            "POST",
            format!("/api/v1/posts/{own_post}/comments"),
            r#"{"text":"reset"}"#,
        ),
        10 => ("PUT", format!("/api/v1/users/{other}/follow"), ""),
        _ => (
            "POST",
            "/api/v1/notifications/read".to_owned(),
            r#"{"up_to_id":1}"#,
        ),
    };
    format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_requests_reset_mid_flight_panic_nothing_and_close_no_socket() {
    count_worker_panics();
    let panics_before = WORKER_PANICS.load(Ordering::SeqCst);
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let (carol, dave) = (app.register("carol").await, app.register("dave").await);
    let alices = app.create_post(&alice, "watched").await["id"]
        .as_i64()
        .unwrap();
    let carols = app.create_post(&carol, "own").await["id"].as_i64().unwrap();
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(app.socket(&alice, "").await);
    }

    // Carol's storm touches only her own post and dave: nothing in it notifies alice.
    let storm = futures_util::stream::iter(0..RESETS).for_each_concurrent(CONCURRENCY, |n| {
        let request = request(n, &carol.token, carols, dave.id, &dave.username);
        send_and_reset(
            app.port,
            request,
            Duration::from_micros((n % 7) as u64 * 150),
        )
    });
    storm.await;

    // The requests of reset connections still running may hold every turn for a moment (then
    // the instance answers 503 with Retry-After); it takes requests again once they are done.
    crate::support::eventually("the instance takes requests again", || async {
        (app.get("/me", &carol.token).await.status == StatusCode::OK).then_some(())
    })
    .await;
    // Every socket is still open, and the next notification reaches each of them.
    let liked = app.like(&bob, alices).await;
    liked.assert_status(StatusCode::OK);
    for socket in &mut sockets {
        let notification = socket.notification().await;
        assert_eq!(notification["kind"], json!("like"), "{notification}");
        assert_eq!(notification["post_id"], json!(alices), "{notification}");
    }
    assert_eq!(
        WORKER_PANICS.load(Ordering::SeqCst),
        panics_before,
        "a worker panicked while requests were reset"
    );
    // And the instance still answers everyone else.
    app.get("/me", &carol.token)
        .await
        .assert_status(StatusCode::OK);
}

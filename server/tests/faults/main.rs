//! Fault tests: real processes and real connections cut mid-load. PostgreSQL "stops" behind a
//! TCP proxy this test controls (the shared server is never touched); instances are real `pulse`
//! processes killed with SIGKILL or stopped with SIGTERM. Always on PostgreSQL + Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod process;
mod proxy;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use process::Instance;
use support::socket::Ended;
use support::{Store, TestApp, DEADLINE};

#[tokio::test(flavor = "multi_thread")]
async fn database_outage_answers_503_serves_what_it_can_and_recovers_without_restart() {
    let mut store = Store::fresh_postgres().await;
    let upstream = store.database_url.clone().unwrap();
    let proxy = proxy::Proxy::start(5432).await;
    store.database_url = Some(proxy.rewrite(&upstream));
    let app = TestApp::spawn_on(&store, |s| s.limits.db_acquire_timeout_ms = 1000).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await;
    let post_id = post["id"].as_i64().unwrap();
    let image_url = post["image_url"].as_str().unwrap().to_owned();
    let mut socket = app.socket(&alice, "").await;

    proxy.set_down();
    // Writes and database reads: 503 problem+json, never 500.
    for reply in [
        app.like(&bob, post_id).await,
        app.get("/feed", &bob.token).await,
        app.post(
            &format!("/posts/{post_id}/comments"),
            &bob.token,
            json!({"text": "hi"}),
        )
        .await,
    ] {
        reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "/problems/unavailable");
    }
    // What needs no database is still served.
    assert_eq!(app.status_of(&image_url).await, StatusCode::OK);
    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
    assert_eq!(app.status_of("/").await, StatusCode::OK);
    assert_eq!(
        app.status_of("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("status=\"500\""),
        "no 500 during the outage:\n{metrics}"
    );

    // PostgreSQL is back: the same process recovers.
    proxy.set_up();
    support::eventually("writes to succeed again", || async {
        (app.like(&bob, post_id).await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(socket.notification().await["kind"], "like");
    assert_eq!(app.status_of("/readyz").await, StatusCode::OK);
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("status=\"500\""),
        "no 500 at all:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_killed_or_stopped_mid_load_lose_nothing() {
    let store = Store::fresh_postgres().await;
    let one = process::Instance::start(&store).await;
    let two = process::Instance::start(&store).await;
    let three = process::Instance::start(&store).await;
    let api = |instance: &process::Instance| instance.base.clone();
    let calls = Api::new();
    let http = calls.http.clone();
    let (_, alice_token) = calls.register(&one.base, "alice").await;
    let post = calls.post(&one.base, &alice_token).await;
    let fans = join_all((0..40).map(|i| {
        let (calls, base) = (&calls, &three.base);
        async move { calls.register(base, &format!("k{i}")).await }
    }))
    .await;

    // Alice listens on instance one; likes flow through instance three.
    let ws = |instance: &process::Instance, since: i64| {
        format!("ws://127.0.0.1:{}/api/v1/ws?since={since}", instance.port)
    };
    let mut socket = support::Socket::open(&ws(&one, 0), Some(&alice_token), None)
        .await
        .unwrap();
    let likes = {
        let (http, base) = (http.clone(), api(&three));
        let fans = fans.clone();
        tokio::spawn(async move {
            for (_, token) in fans {
                let status = http
                    .put(format!("{base}/api/v1/posts/{post}/like"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, StatusCode::OK);
            }
        })
    };
    let mut seen: Vec<i64> = Vec::new();
    // A few arrive, then instance one dies without warning.
    assert_eq!(read_until(&mut socket, &mut seen, 5).await, None);
    let mut one = one;
    one.kill();
    let _ = read_until(&mut socket, &mut seen, usize::MAX).await; // reads what was buffered, then the cut
    let since = seen.last().copied().unwrap();
    // The client resumes on instance two; then instance two is stopped gracefully (SIGTERM).
    let mut socket = support::Socket::open(&ws(&two, since), Some(&alice_token), None)
        .await
        .unwrap();
    let target = seen.len() + 5;
    assert_eq!(read_until(&mut socket, &mut seen, target).await, None);
    let mut two = two;
    two.terminate();
    assert_eq!(
        read_until(&mut socket, &mut seen, usize::MAX).await,
        Some(Some(1001)),
        "SIGTERM closes sockets with 1001"
    );
    let since = seen.last().copied().unwrap();
    let mut socket = support::Socket::open(&ws(&three, since), Some(&alice_token), None)
        .await
        .unwrap();
    likes.await.unwrap();
    assert_eq!(read_until(&mut socket, &mut seen, 40).await, None);
    assert_eq!(seen.len(), 40);
    assert!(two.wait_exit().await.success(), "SIGTERM exits cleanly");
}

/// Every instance SIGKILLed while pushes are being sent (the push service answering slowly) and
/// while others wait: after a restart each notification reaches the device exactly once. A send
/// cut off by the kill delivered nothing (the push service had not answered), and the job is
/// claimed again once its lease runs out.
#[tokio::test(flavor = "multi_thread")]
async fn pushes_in_flight_or_waiting_when_every_instance_is_killed_arrive_once_after_restart() {
    let store = Store::fresh_postgres().await;
    let service = support::push_service::PushService::start(None);
    let settings = [
        ("PULSE_PUSH_ALLOW_PRIVATE", "true"),
        ("PULSE_PUSH_DELAY_MS", "100"),
        ("PULSE_PUSH_POLL_MS", "50"),
        ("PULSE_PUSH_PER_ORIGIN", "2"),
        ("PULSE_PUSH_LEASE_SECS", "2"),
        ("PULSE_PUSH_TIMEOUT_MS", "1500"),
    ];
    let start = || Instance::start_with(&store, std::process::Stdio::inherit(), &settings);
    let (mut one, mut two) = (start().await, start().await);
    let api = Api::new();
    let (_, alice) = api.register(&one.base, "alice").await;
    let device = support::push_service::Subscriber::new();
    let endpoint = service.endpoint(&device, "alice");
    let body = json!({"endpoint": endpoint,
        "keys": {"p256dh": device.p256dh_b64(), "auth": device.auth_b64()}});
    let reply = api
        .http
        .put(format!("{}/api/v1/push/subscription", one.base))
        .bearer_auth(&alice)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let post = api.post(&one.base, &alice).await;
    service.set_delay("alice", std::time::Duration::from_secs(3));
    for i in 0..6 {
        let base = if i % 2 == 0 { &one.base } else { &two.base };
        let (_, fan) = api.register(base, &format!("fan{i}")).await;
        let status = api
            .http
            .put(format!("{base}/api/v1/posts/{post}/like"))
            .bearer_auth(&fan)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    support::eventually("pushes in flight", || async {
        (service.attempts("alice") >= 2).then_some(())
    })
    .await;
    one.kill();
    two.kill();
    assert!(
        service.deliveries_for("alice").is_empty(),
        "no send was answered"
    );
    service.set_delay("alice", std::time::Duration::ZERO);
    let (three, _four) = (start().await, start().await);
    let delivered = service.wait_for("alice", 6, DEADLINE * 2).await;
    let mut ids: Vec<i64> = delivered
        .iter()
        .map(|d| d.payload["notification"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each notification once: {ids:?}");
    assert!(delivered
        .iter()
        .all(|d| d.payload["notification"]["kind"] == "like"));
    // Nothing more is sent: the queue is empty once the last push is recorded.
    support::eventually("the queue empty", || async {
        let text = api
            .http
            .get(format!("{}/metrics", three.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| l == "pulse_push_queue_depth 0")
            .then_some(())
    })
    .await;
    assert_eq!(service.deliveries_for("alice").len(), 6);
}

/// Raw HTTP calls to real instances.
struct Api {
    http: reqwest::Client,
}

impl Api {
    fn new() -> Api {
        Api {
            http: reqwest::Client::new(),
        }
    }

    /// Registers a user whose name starts with `prefix`; (id, token).
    async fn register(&self, base: &str, prefix: &str) -> (i64, String) {
        let name = format!("{prefix}_{}", &support::random_suffix()[..6]);
        let body = json!({"username": name, "password": support::PASSWORD});
        let reply: serde_json::Value = self
            .http
            .post(format!("{base}/api/v1/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            reply["user"]["id"].as_i64().unwrap(),
            reply["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Posts a small image; its id.
    async fn post(&self, base: &str, token: &str) -> i64 {
        let form = reqwest::multipart::Form::new().text("caption", "p").part(
            "image",
            reqwest::multipart::Part::bytes(support::png(16, 16)).file_name("p.png"),
        );
        let reply: serde_json::Value = self
            .http
            .post(format!("{base}/api/v1/posts"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["id"].as_i64().unwrap()
    }
}

/// Malformed requests are the client's problem: each gets a 4xx and none is logged as an
/// ERROR (an operator alerts on those).
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_answered_4xx_and_never_logged_as_errors() {
    let store = Store::fresh_postgres().await;
    let log_path = store.data_dir.join("pulse.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut instance = Instance::start_logging(&store, log).await;
    let requests: [&[u8]; 6] = [
        b"GARBAGE\r\n\r\n",
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}",
        b"BREW /api/v1/me HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/posts/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for request in requests {
        let status = raw_status(instance.port, request).await;
        assert!((400..500).contains(&status), "{status} for {request:?}");
    }
    instance.terminate();
    instance.wait_exit().await;
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !logged.contains("ERROR"),
        "malformed requests logged as errors:\n{logged}"
    );
}

/// Sends `request` on a new connection and returns the status code of the answer.
async fn raw_status(port: u16, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(DEADLINE, stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..read]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// Reads notifications into `seen` (asserting strictly increasing ids) until it holds `count`
/// (`None`) or the socket closes (`Some(close code)`).
async fn read_until(
    socket: &mut support::Socket,
    seen: &mut Vec<i64>,
    count: usize,
) -> Option<Option<u16>> {
    loop {
        if seen.len() >= count {
            return None;
        }
        match socket.next_within(support::DEADLINE).await {
            Ok(frame) if frame["type"] == "notification" => {
                let id = frame["notification"]["id"].as_i64().unwrap();
                assert!(
                    seen.last().is_none_or(|last| id > *last),
                    "no duplicate, in order"
                );
                seen.push(id);
            }
            Ok(frame) => panic!("unexpected {frame}"),
            Err(Ended::Closed(code)) => return Some(code),
            Err(Ended::TimedOut) => panic!("stuck at {} notifications", seen.len()),
        }
    }
}

//! Test support shared by the black-box suites: starts the real application on port 0 against a
//! fresh store, and talks to it over real HTTP and real WebSockets.
//!
//! The store comes from `PULSE_TEST_BACKEND`: `sqlite` (default: a SQLite file in a fresh temp
//! directory, in-process fan-out) or `postgres` (a fresh database `pulse_test_<random>` on
//! `PULSE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`, and Redis
//! at `PULSE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`, under a random channel prefix).
//! A missing service fails the test; nothing is skipped.
//!
//! Every wait is bounded: reads have timeouts, and conditions are polled against a deadline.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod events;
pub mod push_service;
pub mod socket;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use pulse_server::config::Settings;
use pulse_server::startup::{Application, Shutdown};
use pulse_server::state::AppState;
use reqwest::{multipart, Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

pub use socket::Socket;

/// How long any single expected thing may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);
pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("PULSE_TEST_BACKEND")
        .unwrap_or_default()
        .as_str()
    {
        "" | "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => panic!("PULSE_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

pub fn random_suffix() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

pub fn admin_database_url() -> String {
    std::env::var("PULSE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `PULSE_TEST_REDIS_CLUSTER_URLS`: seed nodes of a Redis Cluster that PostgreSQL stores fan out
/// through instead of Redis (`.ci/test.sh` runs the suites once more that way); unset: none.
pub fn redis_cluster_urls() -> Vec<String> {
    std::env::var("PULSE_TEST_REDIS_CLUSTER_URLS")
        .unwrap_or_default()
        .split(',')
        .filter(|url| !url.trim().is_empty())
        .map(|url| url.trim().to_owned())
        .collect()
}

pub fn redis_url() -> String {
    std::env::var("PULSE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Where a deployment keeps its data; several instances may share one store.
#[derive(Clone, Debug)]
pub struct Store {
    pub backend: Backend,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Seed nodes of a Redis Cluster (instead of `redis_url`); empty: none.
    pub redis_cluster_urls: Vec<String>,
    pub redis_prefix: String,
    pub data_dir: PathBuf,
    pub root_key: String,
    /// Removes `data_dir` and the database once no store or instance uses them any more.
    dir: Arc<Scratch>,
}

/// A test's data directory and, on PostgreSQL, its database: removed when the last store or
/// instance holding them is dropped, so that test runs leave nothing behind in the cluster.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
    database: Option<String>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.database.take() {
            drop_database(name);
        }
    }
}

/// Drops a test's database, closing whatever is still connected to it. On a thread and runtime
/// of its own: a drop cannot wait on the test's runtime. Best effort: a database left behind
/// costs disk space, not a test.
fn drop_database(name: String) {
    let admin = admin_database_url();
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let mut conn = AsyncPgConnection::establish(&admin).await.ok()?;
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .ok()
        })
    })
    .join();
}

impl Store {
    /// A fresh store for the backend chosen by the environment.
    pub async fn fresh() -> Store {
        Store::fresh_for(backend()).await
    }

    /// A fresh PostgreSQL database and Redis namespace (the production shape).
    pub async fn fresh_postgres() -> Store {
        Store::fresh_for(Backend::Postgres).await
    }

    /// A fresh PostgreSQL database, with fan-out and rate limits on the Redis Cluster whose
    /// seed nodes are `urls` (instead of the shared Redis).
    pub async fn fresh_postgres_on_cluster(urls: Vec<String>) -> Store {
        let mut store = Store::fresh_postgres().await;
        store.redis_url = None;
        store.redis_cluster_urls = urls;
        store
    }

    pub async fn fresh_for(backend: Backend) -> Store {
        let suffix = random_suffix();
        let data_dir = std::env::temp_dir().join(format!("pulse-test-{suffix}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let root_key = pulse_server::auth::Keys::generate_hex();
        let scratch = |database| {
            Arc::new(Scratch {
                dir: data_dir.clone(),
                database,
            })
        };
        match backend {
            Backend::Sqlite => {
                let dir = scratch(None);
                Store {
                    backend,
                    database_url: None,
                    redis_url: None,
                    redis_cluster_urls: Vec::new(),
                    redis_prefix: String::new(),
                    data_dir,
                    root_key,
                    dir,
                }
            }
            Backend::Postgres => {
                let name = format!("pulse_test_{suffix}");
                let admin = admin_database_url();
                let mut conn = AsyncPgConnection::establish(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is required for this test: {e}")
                    });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let dir = scratch(Some(name.clone()));
                let base = admin
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(&admin);
                Store {
                    backend,
                    database_url: Some(format!("{base}/{name}")),
                    redis_url: redis_cluster_urls().is_empty().then(redis_url),
                    redis_cluster_urls: redis_cluster_urls(),
                    redis_prefix: format!("test-{suffix}:"),
                    data_dir,
                    root_key,
                    dir,
                }
            }
        }
    }

    pub fn settings(&self) -> Settings {
        let mut settings = Settings::defaults();
        settings.addr = "127.0.0.1:0".parse().unwrap();
        settings.database_url = self.database_url.clone();
        settings.redis_url = self.redis_url.clone();
        settings.redis_cluster_urls = self.redis_cluster_urls.clone();
        settings.redis_prefix = self.redis_prefix.clone();
        settings.data_dir = self.data_dir.clone();
        settings.root_key = Some(self.root_key.clone());
        settings.workers = 2;
        settings.limits.db_pool_size = 8;
        settings.limits.drain_ms = 200;
        settings.limits.shutdown_timeout_secs = 2;
        // Tests are scripts: they register and write far faster than people. Rate limits are
        // off here and switched on by the tests that exercise them.
        let limits = &mut settings.limits;
        limits.rate_likes_per_min = 0;
        limits.rate_comments_per_min = 0;
        limits.rate_posts_per_min = 0;
        limits.rate_follows_per_min = 0;
        limits.rate_socket_connects_per_min = 0;
        limits.rate_ip_writes_per_min = 0;
        limits.rate_registrations_per_hour = 0;
        limits.rate_login_failures = 0;
        // Scripts also burst far beyond what a person sends: load shedding is off here too
        // (a turn for every request) and exercised by its own test.
        limits.max_in_flight = 4096;
        settings
    }
}

/// One running instance of the real application, on a random loopback port.
pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
    _dir: Arc<Scratch>,
}

impl TestApp {
    /// Every counter of the instance that tells how a socket could have missed something or
    /// fallen behind, for failure messages.
    pub fn delivery_counters(&self) -> String {
        let m = &self.state.metrics;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "published {}, queue overflows {}, publish failures {}, sent again {}, given up {}, likes written together {}, deliveries that held {}, database reads for a gap {}, catch-ups {}, Redis reconnects {}, slow closes {}",
            get(&m.notifications_created),
            get(&m.queue_overflows),
            get(&m.publish_failures),
            get(&m.republished),
            get(&m.republish_abandoned),
            get(&m.likes_together),
            get(&m.gaps_held),
            get(&m.gap_reads),
            get(&m.replays),
            get(&m.redis_reconnects),
            get(&m.slow_disconnects),
        )
    }

    /// An instance on a fresh store of the environment's backend, with default settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_on(&Store::fresh().await, |_| {}).await
    }

    /// An instance on a fresh store with adjusted settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::spawn_on(&Store::fresh().await, adjust).await
    }

    /// An instance on `store` (several instances may share one store).
    pub async fn spawn_on(store: &Store, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        if std::env::var_os("PULSE_TEST_LOG").is_some() {
            pulse_server::telemetry::init_logging(); // RUST_LOG filters it
        }
        let mut settings = store.settings();
        adjust(&mut settings);
        let app = Application::build(settings)
            .await
            .expect("application starts");
        let port = app.port();
        let state = app.state().clone();
        let shutdown = app.shutdown_handle();
        let server = tokio::spawn(app.run_until_stopped());
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            port,
            state,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // Below the server's keep-alive (actix-web's 5 s): a pooled connection is
                // never reused just as the server closes it (`IncompleteMessage`).
                .pool_idle_timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
            shutdown,
            server,
            _dir: store.dir.clone(),
        }
    }

    /// Graceful stop: sockets are closed with 1001, in-flight requests finish.
    pub async fn stop(self) {
        tokio::time::timeout(DEADLINE, self.shutdown.shutdown())
            .await
            .expect("shutdown finishes");
        let _ = tokio::time::timeout(DEADLINE, self.server)
            .await
            .expect("server exits");
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/api/") || !path.starts_with('/') || is_outside_api(path) {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        }
    }

    /// The status of an unauthenticated GET (health, media, the demo page).
    pub async fn status_of(&self, path: &str) -> StatusCode {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the server")
            .status()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request reaches the server");
        response.text().await.expect("metrics body")
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/api/v1/ws{query}", self.port)
    }

    /// Sends a request; `path` is under `/api/v1` unless it is one of the outside paths.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str) -> Reply {
        self.call(Method::PUT, path, Some(token), None).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Sends raw bytes with a content type (for malformed-input tests).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Reply::from(request.send().await.expect("request reaches the server")).await
    }

    /// Logs `user` in again (a second login): the answer, which carries a new token on 200.
    pub async fn login(&self, user: &User) -> Reply {
        self.call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": user.username, "password": PASSWORD})),
        )
        .await
    }

    /// Registers a fresh user named `<prefix>_<random>`.
    pub async fn register(&self, prefix: &str) -> User {
        let username = format!("{prefix}_{}", &random_suffix()[..8]);
        let reply = self
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        reply.assert_status(StatusCode::CREATED);
        User {
            id: reply.body["user"]["id"].as_i64().unwrap(),
            username,
            token: reply.body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Uploads a post with a generated PNG of the given size.
    pub async fn create_post(&self, author: &User, caption: &str) -> Value {
        let reply = self
            .upload(&author.token, png(64, 48), "photo.png", caption)
            .await;
        reply.assert_status(StatusCode::CREATED);
        reply.body
    }

    pub async fn upload(
        &self,
        token: &str,
        bytes: Vec<u8>,
        filename: &str,
        caption: &str,
    ) -> Reply {
        let form = multipart::Form::new()
            .text("caption", caption.to_owned())
            .part(
                "image",
                multipart::Part::bytes(bytes)
                    .file_name(filename.to_owned())
                    .mime_str("image/png")
                    .unwrap(),
            );
        let request = self
            .http
            .post(self.url("/posts"))
            .bearer_auth(token)
            .multipart(form);
        Reply::from(request.send().await.expect("request reaches the server")).await
    }

    pub async fn follow(&self, follower: &User, followed: &User) {
        self.put(&format!("/users/{}/follow", followed.id), &follower.token)
            .await
            .assert_status(StatusCode::OK);
    }

    /// `n` users registered at once, named `<prefix><i>`.
    pub async fn register_many(&self, prefix: &str, n: usize) -> Vec<User> {
        join_all((0..n).map(|i| async move { self.register(&format!("{prefix}{i}")).await })).await
    }

    /// `n` posts by `author`, one after the other; their ids.
    pub async fn create_posts(&self, author: &User, n: usize) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let post = self.create_post(author, &format!("post {i}")).await;
            ids.push(post["id"].as_i64().expect("a post has an id"));
        }
        ids
    }

    pub async fn like(&self, liker: &User, post_id: i64) -> Reply {
        self.put(&format!("/posts/{post_id}/like"), &liker.token)
            .await
    }

    /// All of a user's notifications, newest first, across every page.
    pub async fn all_notifications(&self, user: &User) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/notifications?limit=100&cursor={c}"),
                None => "/notifications?limit=100".to_owned(),
            };
            let reply = self.get(&path, &user.token).await;
            reply.assert_status(StatusCode::OK);
            items.extend(reply.body["items"].as_array().unwrap().iter().cloned());
            match reply.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    /// Runs `sql` (statements separated by `;`, no results) on the instance's database.
    pub async fn execute_sql(&self, sql: &str) {
        let executed = async {
            pulse_schema::run!(self.state.db.write(), conn => {
                use diesel_async::SimpleAsyncConnection as _;
                conn.batch_execute(sql).await.map_err(pulse_schema::db::DbError::from)
            })
        };
        let executed: Result<(), pulse_schema::db::DbError> = executed.await;
        executed.unwrap();
    }

    /// Rows of the store's `table` whose `post_id` is `post`, read from the database itself:
    /// what the API cannot show once a post is gone.
    pub async fn rows_of_post(&self, table: &str, post: i64) -> i64 {
        self.rows_where(table, &format!("post_id = {post}")).await
    }

    /// Rows of the store's `table` that meet `condition` (SQL), read from the database itself.
    pub async fn rows_where(&self, table: &str, condition: &str) -> i64 {
        let sql = format!("SELECT count(*) AS n FROM {table} WHERE {condition}");
        self.column_n(&sql).await[0]
    }

    /// The `seq` of each of `user`'s notifications, in id order, read from the database itself
    /// (the API does not show `seq`).
    pub async fn notification_seqs(&self, user: &User) -> Vec<i64> {
        let sql = format!(
            "SELECT seq AS n FROM notifications WHERE recipient_id = {} ORDER BY id",
            user.id
        );
        self.column_n(&sql).await
    }

    /// The BIGINT column `n` of every row `sql` returns, read on the instance's database.
    async fn column_n(&self, sql: &str) -> Vec<i64> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let read = async {
            pulse_schema::run!(self.state.db.write(), conn => {
                diesel::sql_query(sql).load::<Row>(conn).await.map_err(Into::into)
            })
        };
        let read: Result<Vec<Row>, pulse_schema::db::DbError> = read.await;
        read.unwrap().into_iter().map(|row| row.n).collect()
    }

    /// All of a user's notification ids, oldest first.
    pub async fn notification_ids(&self, user: &User) -> Vec<i64> {
        let newest_first = self.all_notifications(user).await;
        newest_first
            .iter()
            .rev()
            .map(|n| n["id"].as_i64().unwrap())
            .collect()
    }

    /// `actor` comments `n` times on `post` (each comment notifies the post's author); each
    /// text is its number and `text_len` filler characters.
    pub async fn comment_n(&self, actor: &User, post: i64, n: usize, text_len: usize) {
        for i in 0..n {
            let text = format!("{i}:{}", "x".repeat(text_len));
            self.post(
                &format!("/posts/{post}/comments"),
                &actor.token,
                serde_json::json!({"text": text}),
            )
            .await
            .assert_status(StatusCode::CREATED);
        }
    }

    /// Opens a socket with the bearer token, and reads the `hello`.
    pub async fn socket(&self, user: &User, query: &str) -> Socket {
        Socket::open(&self.ws_url(query), Some(&user.token), None)
            .await
            .expect("socket opens")
    }

    /// Opens an event stream (`GET /api/v1/events<query>`) with the bearer token, and reads
    /// the `hello`.
    pub async fn events(&self, user: &User, query: &str) -> events::EventStream {
        self.events_with(Some(&user.token), query, &[])
            .await
            .expect("the stream opens")
    }

    /// Opens an event stream with any token and extra headers; `Err((status, body))` if refused.
    pub async fn events_with(
        &self,
        token: Option<&str>,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<events::EventStream, (u16, String)> {
        let path = format!("/events{query}");
        events::EventStream::open(events::Request {
            port: self.port,
            path: &path,
            token,
            headers,
            recv_buffer: None,
        })
        .await
    }

    /// Subscribes the device holding `token` to `service` at `/push/<path>` (a new key pair, as
    /// a browser makes); returns the subscriber that decrypts its pushes.
    pub async fn subscribe_push(
        &self,
        token: &str,
        service: &push_service::PushService,
        path: &str,
    ) -> push_service::Subscriber {
        let subscriber = push_service::Subscriber::new();
        let endpoint = service.endpoint(&subscriber, path);
        self.put_push_subscription(token, &subscriber, &endpoint)
            .await;
        subscriber
    }

    /// Saves `subscriber`'s keys at `endpoint` as the token's push subscription.
    pub async fn put_push_subscription(
        &self,
        token: &str,
        subscriber: &push_service::Subscriber,
        endpoint: &str,
    ) {
        let body = json!({
            "endpoint": endpoint,
            "keys": {"p256dh": subscriber.p256dh_b64(), "auth": subscriber.auth_b64()},
        });
        self.call(Method::PUT, "/push/subscription", Some(token), Some(body))
            .await
            .assert_status(StatusCode::OK);
    }

    pub async fn ticket(&self, user: &User) -> String {
        let reply = self.post("/auth/ws-ticket", &user.token, json!({})).await;
        reply.assert_status(StatusCode::OK);
        reply.body["ticket"].as_str().unwrap().to_owned()
    }
}

fn is_outside_api(path: &str) -> bool {
    [
        "/media/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/two",
        "/app.",
        "/client.js",
    ]
    .iter()
    .any(|p| path.starts_with(p))
        || path == "/"
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub token: String,
}

/// The `like_count` of each like's answer (each must be 200), smallest first: likes of one post
/// that each got their own count are `1..=n`.
pub fn sorted_like_counts<'a>(replies: impl IntoIterator<Item = &'a Reply>) -> Vec<i64> {
    let mut counts: Vec<i64> = replies
        .into_iter()
        .map(|reply| {
            reply.assert_status(StatusCode::OK);
            reply.body["like_count"]
                .as_i64()
                .expect("a like answers its count")
        })
        .collect();
    counts.sort_unstable();
    counts
}

/// A response: status, headers and the body parsed as JSON (Null when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body reads").to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            bytes,
        }
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.bytes)
        );
        self
    }

    /// Asserts a problem+json answer with this status and problem type.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, problem_type: &str) -> &Self {
        self.assert_status(status);
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            content_type.starts_with("application/problem+json"),
            "content type {content_type:?}"
        );
        assert_eq!(self.body["type"], problem_type, "problem: {}", self.body);
        assert_eq!(
            self.body["status"],
            status.as_u16(),
            "problem: {}",
            self.body
        );
        assert!(
            self.body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "problem: {}",
            self.body
        );
        self
    }

    /// The field names listed in a validation problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A real PNG of `width`×`height` with a gradient.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A real JPEG.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, 64, (y % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Polls `check` until it returns `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

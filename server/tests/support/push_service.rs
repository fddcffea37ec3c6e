//! A loopback Web Push service for black-box tests: it stands where FCM, Mozilla's autopush or
//! Apple's push service would, and puts each push request the server sends through the checks
//! those services and the receiving browser make. A stub that answers 201 to anything would let a
//! wrong `aud`, a DER-encoded signature or a mis-derived key pass every test and then fail,
//! silently, on every real phone; here a test passes only if a browser would have shown the
//! notification.
//!
//! For each `POST /push/<id>` it checks, in this order:
//!
//! 1. VAPID (RFC 8292): `Authorization: vapid t=<JWT>, k=<key>`. The JWT is ES256 (`alg`
//!    ES256, `typ` JWT) and its raw `r || s` signature verifies with `k`, an uncompressed P-256
//!    point in base64url without padding; `aud` is this service's origin
//!    (`http://127.0.0.1:<port>`, no path); `exp` is in the future and at most 24 hours ahead;
//!    `sub` starts with `mailto:` or `https:`. Any failure answers 401. A `k` that is not the
//!    expected application server key (when [`PushService::start`] was given one) answers 403,
//!    as a service does when the key differs from the subscription's `applicationServerKey`.
//! 2. The push headers (RFC 8030 §5): `TTL` is a non-negative integer; `Content-Encoding` is
//!    `aes128gcm`; `Urgency`, if present, is `very-low`, `low`, `normal` or `high`; `Topic`, if
//!    present, is 1 to 32 characters of the base64url alphabet. Any failure answers 400. A body
//!    over 4096 bytes answers 413.
//! 3. The payload, as the user agent decrypts it (RFC 8291 §3.4 over RFC 8188): a header of
//!    salt (16), record size (4, big-endian), key id length (1) and key id (the sender's 65-byte
//!    ephemeral public key), then exactly one record sealed with AES-128-GCM, whose plaintext ends
//!    in the last-record delimiter `0x02` and zero bytes of padding. The plaintext must be JSON
//!    (what a service worker's `event.data.json()` needs). Any failure answers 400.
//!
//! A request that fails a check, is not a POST (405) or goes to a `/push/<id>` no subscriber was
//! registered for (404) is recorded in [`PushService::rejections`] with its reason, and answered
//! with the reason as a text body. A request that passes is answered, after any delay
//! set with [`PushService::set_delay`], with 410 if the path was made [`PushService::gone`],
//! else with the next status scripted by [`PushService::script`] (a 429 also carries
//! `Retry-After: 1`, or what [`PushService::set_retry_after`] set), else with 201 Created and a `Location`. A 2xx answer records a
//! [`Delivery`] when it is made, so a sender that hung up during the delay delivered nothing.
//! Every request to `/push/<id>` counts as an attempt, whatever its answer.
//!
//! The service runs on the test's Tokio runtime (on `#[tokio::test]`'s one thread it serves
//! while the test awaits) and stops when the last clone of its [`PushService`] is dropped.
//! [`PushService::wait_for`] is bounded, and wakes on each delivery rather than polling.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The largest body a push service must accept (RFC 8030 §7.2); larger ones answer 413.
pub const MAX_BODY: usize = 4096;
/// How far ahead a VAPID JWT's `exp` may be (RFC 8292 §2).
pub const MAX_VAPID_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Length of an uncompressed P-256 point: `0x04 || x || y`.
const POINT_LEN: usize = 65;
const SALT_LEN: usize = 16;
const AUTH_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// salt, record size, key id length (RFC 8188 §2.1).
const FIXED_HEADER_LEN: usize = SALT_LEN + 4 + 1;
/// The smallest record size RFC 8188 allows: a tag and a delimiter.
const MIN_RECORD_SIZE: u32 = (TAG_LEN + 1) as u32;
/// The padding delimiter of the last record (RFC 8188 §2).
const LAST_RECORD: u8 = 0x02;
const URGENCIES: [&str; 4] = ["very-low", "low", "normal", "high"];
const MAX_TOPIC_LEN: usize = 32;

/// A browser's push subscription keys: a P-256 key pair and a 16-byte auth secret.
#[derive(Clone, Debug)]
pub struct Subscriber {
    secret: SecretKey,
    public: [u8; POINT_LEN],
    auth: [u8; AUTH_LEN],
}

impl Subscriber {
    /// Fresh random keys, as `PushManager.subscribe()` makes them.
    pub fn new() -> Subscriber {
        let mut auth = [0u8; AUTH_LEN];
        OsRng.fill_bytes(&mut auth);
        Subscriber::from_keys(SecretKey::random(&mut OsRng), auth)
    }

    /// Known keys (for test vectors).
    pub fn from_keys(secret: SecretKey, auth: [u8; AUTH_LEN]) -> Subscriber {
        let public = uncompressed(&secret.public_key());
        Subscriber {
            secret,
            public,
            auth,
        }
    }

    /// The public key, uncompressed (65 bytes).
    pub fn public_key(&self) -> [u8; POINT_LEN] {
        self.public
    }

    pub fn auth_secret(&self) -> [u8; AUTH_LEN] {
        self.auth
    }

    /// `keys.p256dh` of `PushSubscription.toJSON()`: base64url without padding.
    pub fn p256dh_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }

    /// `keys.auth` of `PushSubscription.toJSON()`: base64url without padding.
    pub fn auth_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.auth)
    }

    /// The whole `PushSubscription.toJSON()` a page would post for `endpoint`.
    pub fn subscription_json(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": self.p256dh_b64(), "auth": self.auth_b64()},
        })
    }

    /// Decrypts an `aes128gcm` push message body as the user agent does, returning the
    /// plaintext without its delimiter and padding.
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let header = parse_header(body)?;
        let ecdh = ecdh_secret(&self.secret, header.key_id)?;
        let ikm = derive_ikm(&ecdh, &self.auth, &self.public, header.key_id);
        let (cek, nonce) = derive_cek_and_nonce(header.salt, &ikm);
        let record = open_record(&cek, &nonce, header.ciphertext)?;
        strip_padding(record)
    }
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber::new()
    }
}

/// One push message the service accepted (answered with a 2xx).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path_id: String,
    /// The decrypted plaintext, parsed as JSON.
    pub payload: Value,
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    /// When the request arrived (before any delay).
    pub received_at: Instant,
    /// The VAPID JWT's `sub` claim.
    pub vapid_sub: String,
    /// The VAPID `k` parameter as sent (base64url).
    pub vapid_key: String,
}

/// The loopback push service; clones share it, and it stops when the last one is dropped.
#[derive(Clone)]
pub struct PushService {
    shared: Arc<Shared>,
    port: u16,
    _server: Arc<AbortOnDrop>,
}

impl PushService {
    /// Binds 127.0.0.1 on a free port and serves there; must be called inside a Tokio runtime.
    /// With `Some(key)`, VAPID `k` must be that uncompressed public key (else 403).
    pub fn start(expected_vapid_public_key: Option<[u8; POINT_LEN]>) -> PushService {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("push service binds a loopback port");
        listener
            .set_nonblocking(true)
            .expect("push service listener is non-blocking");
        let listener = TcpListener::from_std(listener)
            .expect("PushService::start is called inside a Tokio runtime");
        let port = listener
            .local_addr()
            .expect("push service listener has an address")
            .port();
        let (delivered, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            origin: format!("http://127.0.0.1:{port}"),
            expected_vapid_key: expected_vapid_public_key,
            state: Mutex::new(State::default()),
            delivered,
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        PushService {
            shared,
            port,
            _server: Arc::new(AbortOnDrop(server)),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: what a VAPID `aud` must be.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// Registers `subscriber`'s keys for `path_id` and returns its endpoint URL.
    pub fn endpoint(&self, subscriber: &Subscriber, path_id: &str) -> String {
        check_path_id(path_id);
        self.shared
            .lock()
            .subscribers
            .insert(path_id.to_owned(), subscriber.clone());
        format!("{}/push/{path_id}", self.shared.origin)
    }

    /// The next valid requests to `path_id` answer these statuses in order (queued after any
    /// still scripted); then the default 201 again. A 2xx here records a delivery too.
    pub fn script(&self, path_id: &str, statuses: Vec<u16>) {
        for &status in &statuses {
            assert!(
                (200..=599).contains(&status),
                "push service: scripted status {status} for {path_id} is not 2xx-5xx"
            );
        }
        self.shared
            .lock()
            .scripts
            .entry(path_id.to_owned())
            .or_default()
            .extend(statuses);
    }

    /// The `Retry-After` value of 429 answers for `path_id` (seconds or an HTTP date).
    pub fn set_retry_after(&self, path_id: &str, value: &str) {
        self.shared
            .lock()
            .retry_after
            .insert(path_id.to_owned(), value.to_owned());
    }

    /// Every answer for `path_id` waits this long first; `Duration::ZERO` removes the delay.
    pub fn set_delay(&self, path_id: &str, delay: Duration) {
        let mut state = self.shared.lock();
        if delay.is_zero() {
            state.delays.remove(path_id);
        } else {
            state.delays.insert(path_id.to_owned(), delay);
        }
    }

    /// From now on, valid requests to `path_id` answer 410 Gone (an expired subscription).
    pub fn gone(&self, path_id: &str) {
        self.shared.lock().gone.insert(path_id.to_owned());
    }

    /// Every accepted message so far, in the order they were answered.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    pub fn deliveries_for(&self, path_id: &str) -> Vec<Delivery> {
        self.shared.lock().deliveries_for(path_id)
    }

    /// How many requests `/push/<path_id>` has received, whatever their answer.
    pub fn attempts(&self, path_id: &str) -> usize {
        self.shared
            .lock()
            .attempts
            .get(path_id)
            .copied()
            .unwrap_or(0)
    }

    /// `(path, reason)` of every refused request (a failed check, 404 or 405), in order; `path`
    /// is the path id for `/push/<id>` and the whole request path otherwise.
    pub fn rejections(&self) -> Vec<(String, String)> {
        self.shared.lock().rejections.clone()
    }

    #[track_caller]
    pub fn assert_no_rejections(&self) {
        let rejections = self.rejections();
        assert!(
            rejections.is_empty(),
            "push service rejected requests: {rejections:#?}"
        );
    }

    /// Waits until `path_id` has at least `n` deliveries and returns all of them; panics after
    /// `timeout` with what did arrive.
    pub async fn wait_for(&self, path_id: &str, n: usize, timeout: Duration) -> Vec<Delivery> {
        let mut changes = self.shared.delivered.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.deliveries_for(path_id);
            if found.len() >= n {
                return found;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => unreachable!("the sender lives as long as the service"),
                Err(_) => panic!("{}", self.timeout_report(path_id, n, timeout)),
            }
        }
    }

    fn timeout_report(&self, path_id: &str, n: usize, timeout: Duration) -> String {
        let state = self.shared.lock();
        let found = state.deliveries_for(path_id);
        format!(
            "push service: waited {timeout:?} for {n} deliveries to {path_id:?}, got {}; \
             attempts {}; payloads {:?}; rejections {:?}",
            found.len(),
            state.attempts.get(path_id).copied().unwrap_or(0),
            found.iter().map(|d| &d.payload).collect::<Vec<_>>(),
            state.rejections,
        )
    }
}

/// Aborts the accept loop, and with it every connection task, when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Shared {
    origin: String,
    expected_vapid_key: Option<[u8; POINT_LEN]>,
    state: Mutex<State>,
    /// Bumped after each delivery is recorded; `wait_for` watches it.
    delivered: watch::Sender<usize>,
}

impl Shared {
    /// The state, even after a panic elsewhere poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    subscribers: HashMap<String, Subscriber>,
    scripts: HashMap<String, VecDeque<u16>>,
    delays: HashMap<String, Duration>,
    retry_after: HashMap<String, String>,
    gone: HashSet<String>,
    attempts: HashMap<String, usize>,
    deliveries: Vec<Delivery>,
    rejections: Vec<(String, String)>,
    messages: u64,
}

impl State {
    fn deliveries_for(&self, path_id: &str) -> Vec<Delivery> {
        self.deliveries
            .iter()
            .filter(|d| d.path_id == path_id)
            .cloned()
            .collect()
    }
}

/// Path ids go into the URL as they are, so they are made of unreserved characters.
fn check_path_id(path_id: &str) {
    let unreserved = |b: u8| is_base64url_byte(b) || b == b'.' || b == b'~';
    assert!(
        !path_id.is_empty() && path_id.bytes().all(unreserved),
        "push service: path id {path_id:?} must be non-empty [A-Za-z0-9._~-]"
    );
}

// ---- HTTP ----

type Body = Full<Bytes>;

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: the sender sees a refused connection.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            // Keep-alive is on (hyper's default) and idle connections stay open until the
            // service stops: no header-read timeout to race a sender's connection pool.
            let _ = http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// What a valid request carried.
struct Accepted {
    payload: Value,
    ttl: u64,
    urgency: Option<String>,
    topic: Option<String>,
    vapid: Vapid,
}

/// Why a request was refused, and with which status.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    reason: String,
}

impl Rejection {
    fn new(status: StatusCode, reason: impl Into<String>) -> Rejection {
        Rejection {
            status,
            reason: reason.into(),
        }
    }

    fn bad_request(reason: impl Into<String>) -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, reason)
    }

    fn unauthorized(reason: impl Into<String>) -> Rejection {
        Rejection::new(StatusCode::UNAUTHORIZED, reason)
    }
}

/// The answer to one request, with its bookkeeping.
async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let received_at = Instant::now();
    let path = request.uri().path().to_owned();
    let Some(path_id) = path.strip_prefix("/push/") else {
        let rejection = Rejection::new(StatusCode::NOT_FOUND, "not a push path");
        return reject(shared, &path, rejection);
    };
    *shared
        .lock()
        .attempts
        .entry(path_id.to_owned())
        .or_default() += 1;
    match admit(shared, path_id, request).await {
        Err(rejection) => {
            let response = reject(shared, path_id, rejection);
            pause(shared, path_id).await;
            response
        }
        Ok(accepted) => {
            let status = next_status(shared, path_id);
            pause(shared, path_id).await;
            accept(shared, path_id, status, accepted, received_at)
        }
    }
}

/// A POST to a registered path that passes every check.
async fn admit(
    shared: &Shared,
    path_id: &str,
    request: Request<Incoming>,
) -> Result<Accepted, Rejection> {
    if request.method() != Method::POST {
        let reason = format!("method {} (push messages are POSTed)", request.method());
        return Err(Rejection::new(StatusCode::METHOD_NOT_ALLOWED, reason));
    }
    let subscriber = shared.lock().subscribers.get(path_id).cloned();
    let subscriber = subscriber
        .ok_or_else(|| Rejection::new(StatusCode::NOT_FOUND, "no subscription at this endpoint"))?;
    check_request(shared, &subscriber, request).await
}

/// The answer to a valid request: a 2xx records the delivery, a 429 asks to retry in 1 s (or as
/// set for the path).
fn accept(
    shared: &Shared,
    path_id: &str,
    status: StatusCode,
    accepted: Accepted,
    received_at: Instant,
) -> Response<Body> {
    let mut response = text(status, "");
    if status.is_success() {
        let location = record_delivery(shared, path_id, accepted, received_at);
        set_header(&mut response, "location", &location);
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        let after = shared.lock().retry_after.get(path_id).cloned();
        set_header(
            &mut response,
            "retry-after",
            after.as_deref().unwrap_or("1"),
        );
    }
    response
}

/// Gone, else the next scripted status, else 201.
fn next_status(shared: &Shared, path_id: &str) -> StatusCode {
    let mut state = shared.lock();
    if state.gone.contains(path_id) {
        return StatusCode::GONE;
    }
    let scripted = state.scripts.get_mut(path_id).and_then(VecDeque::pop_front);
    scripted
        .map(|s| StatusCode::from_u16(s).expect("scripted statuses are checked in script()"))
        .unwrap_or(StatusCode::CREATED)
}

async fn pause(shared: &Shared, path_id: &str) {
    let delay = shared.lock().delays.get(path_id).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
}

/// Records the delivery, wakes the waiters, and returns the message's `Location`.
fn record_delivery(
    shared: &Shared,
    path_id: &str,
    accepted: Accepted,
    received_at: Instant,
) -> String {
    let location = {
        let mut state = shared.lock();
        state.messages += 1;
        state.deliveries.push(Delivery {
            path_id: path_id.to_owned(),
            payload: accepted.payload,
            ttl: accepted.ttl,
            urgency: accepted.urgency,
            topic: accepted.topic,
            received_at,
            vapid_sub: accepted.vapid.sub,
            vapid_key: accepted.vapid.key_b64,
        });
        format!("{}/message/{}", shared.origin, state.messages)
    };
    shared.delivered.send_modify(|count| *count += 1);
    location
}

fn reject(shared: &Shared, path: &str, rejection: Rejection) -> Response<Body> {
    shared
        .lock()
        .rejections
        .push((path.to_owned(), rejection.reason.clone()));
    let mut response = text(rejection.status, &rejection.reason);
    match rejection.status {
        StatusCode::METHOD_NOT_ALLOWED => set_header(&mut response, "allow", "POST"),
        // The body was left unread, so the connection cannot carry another request.
        StatusCode::PAYLOAD_TOO_LARGE => set_header(&mut response, "connection", "close"),
        _ => {}
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    if !body.is_empty() {
        set_header(&mut response, "content-type", "text/plain; charset=utf-8");
    }
    response
}

fn set_header(response: &mut Response<Body>, name: &'static str, value: &str) {
    let value = HeaderValue::from_str(value).expect("header values made here are visible ASCII");
    response.headers_mut().insert(name, value);
}

/// VAPID, then the push headers, then the body: the order a push service and then the user
/// agent would see them in.
async fn check_request(
    shared: &Shared,
    subscriber: &Subscriber,
    request: Request<Incoming>,
) -> Result<Accepted, Rejection> {
    let headers = request.headers();
    let vapid = verify_vapid(
        headers,
        &shared.origin,
        shared.expected_vapid_key.as_ref(),
        unix_now(),
    )?;
    let push = check_push_headers(headers).map_err(Rejection::bad_request)?;
    let body = read_body(request).await?;
    let plaintext = subscriber.decrypt(&body).map_err(Rejection::bad_request)?;
    let payload = serde_json::from_slice(&plaintext).map_err(|e| {
        Rejection::bad_request(format!(
            "decrypted payload is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&plaintext)
        ))
    })?;
    Ok(Accepted {
        payload,
        ttl: push.ttl,
        urgency: push.urgency,
        topic: push.topic,
        vapid,
    })
}

/// The body, at most [`MAX_BODY`] bytes (else 413).
async fn read_body(request: Request<Incoming>) -> Result<Vec<u8>, Rejection> {
    let too_large = || {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body over {MAX_BODY} bytes"),
        )
    };
    let declared = header_str(request.headers(), "content-length")
        .map_err(Rejection::bad_request)?
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|_| Rejection::bad_request("Content-Length is not a number"))?;
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(Rejection::bad_request(format!("body unreadable: {e}"))),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// A header as text; `Ok(None)` when absent, `Err` when repeated or not visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("{name} header sent more than once"));
    }
    let value = value
        .to_str()
        .map_err(|_| format!("{name} header is not visible ASCII"))?;
    Ok(Some(value.trim()))
}

// ---- RFC 8030 push headers ----

struct PushHeaders {
    ttl: u64,
    urgency: Option<String>,
    topic: Option<String>,
}

fn check_push_headers(headers: &HeaderMap) -> Result<PushHeaders, String> {
    check_content_encoding(header_str(headers, "content-encoding")?)?;
    Ok(PushHeaders {
        ttl: parse_ttl(header_str(headers, "ttl")?)?,
        urgency: check_urgency(header_str(headers, "urgency")?)?,
        topic: check_topic(header_str(headers, "topic")?)?,
    })
}

fn check_content_encoding(value: Option<&str>) -> Result<(), String> {
    match value {
        Some(v) if v.eq_ignore_ascii_case("aes128gcm") => Ok(()),
        Some(v) => Err(format!(
            "Content-Encoding {v:?}, must be aes128gcm (RFC 8291)"
        )),
        None => Err("no Content-Encoding (must be aes128gcm)".into()),
    }
}

/// `TTL`: delta-seconds, digits only (RFC 8030 §5.2).
fn parse_ttl(value: Option<&str>) -> Result<u64, String> {
    let value = value.ok_or("no TTL header (required, RFC 8030 §5.2)")?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("TTL {value:?} is not a non-negative integer"));
    }
    value
        .parse()
        .map_err(|_| format!("TTL {value:?} is out of range"))
}

fn check_urgency(value: Option<&str>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(v) if URGENCIES.contains(&v) => Ok(Some(v.to_owned())),
        Some(v) => Err(format!("Urgency {v:?}, must be one of {URGENCIES:?}")),
    }
}

/// `Topic`: at most 32 characters of the base64url alphabet (RFC 8030 §5.4).
fn check_topic(value: Option<&str>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(v) if (1..=MAX_TOPIC_LEN).contains(&v.len()) && v.bytes().all(is_base64url_byte) => {
            Ok(Some(v.to_owned()))
        }
        Some(v) => Err(format!(
            "Topic {v:?} must be 1 to {MAX_TOPIC_LEN} characters of [A-Za-z0-9_-]"
        )),
    }
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

// ---- RFC 8292 VAPID ----

/// What a valid VAPID header proved.
struct Vapid {
    key_b64: String,
    sub: String,
}

/// Checks `Authorization: vapid t=…, k=…` for a request to `audience` at unix time `now`.
fn verify_vapid(
    headers: &HeaderMap,
    audience: &str,
    expected_key: Option<&[u8; POINT_LEN]>,
    now: u64,
) -> Result<Vapid, Rejection> {
    let value = header_str(headers, "authorization")
        .map_err(Rejection::unauthorized)?
        .ok_or_else(|| Rejection::unauthorized("no Authorization header (VAPID required)"))?;
    let (token, key_b64) = parse_vapid_authorization(value).map_err(Rejection::unauthorized)?;
    let key = decode_public_key(&key_b64)
        .map_err(|e| Rejection::unauthorized(format!("VAPID k: {e}")))?;
    let sub = verify_jwt(&token, &key, audience, now)
        .map_err(|e| Rejection::unauthorized(format!("VAPID JWT: {e}")))?;
    if let Some(expected) = expected_key {
        if key != *expected {
            return Err(Rejection::new(
                StatusCode::FORBIDDEN,
                format!(
                    "VAPID k {key_b64} is not the expected key {}",
                    URL_SAFE_NO_PAD.encode(expected)
                ),
            ));
        }
    }
    Ok(Vapid { key_b64, sub })
}

/// `(t, k)` from `vapid t=<jwt>, k=<key>` (RFC 8292 §3; either order, values may be quoted).
fn parse_vapid_authorization(value: &str) -> Result<(String, String), String> {
    let (scheme, params) = value
        .split_once(' ')
        .ok_or_else(|| format!("Authorization {value:?} is not `vapid t=…, k=…`"))?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!(
            "Authorization scheme {scheme:?}, must be vapid (RFC 8292)"
        ));
    }
    let (mut token, mut key) = (None, None);
    for param in params.split(',') {
        let (name, raw) = param
            .split_once('=')
            .ok_or_else(|| format!("Authorization parameter {param:?} has no value"))?;
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "t" => &mut token,
            "k" => &mut key,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("Authorization parameter {} repeated", name.trim()));
        }
        *slot = Some(unquote(raw.trim()).to_owned());
    }
    match (token, key) {
        (Some(t), Some(k)) => Ok((t, k)),
        _ => Err("Authorization vapid needs both t= and k=".into()),
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Checks an ES256 JWT signed by `key` and its claims; returns `sub`.
fn verify_jwt(
    token: &str,
    key: &[u8; POINT_LEN],
    audience: &str,
    now: u64,
) -> Result<String, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(format!("{} parts, a JWS has 3", parts.len()));
    };
    check_jwt_header(&decode_json(header, "header")?)?;
    verify_signature(key, &format!("{header}.{claims}"), signature)?;
    check_claims(&decode_json(claims, "claims")?, audience, now)
}

fn check_jwt_header(header: &Value) -> Result<(), String> {
    if header["alg"] != "ES256" {
        return Err(format!("header alg {}, must be \"ES256\"", header["alg"]));
    }
    if header["typ"] != "JWT" {
        return Err(format!("header typ {}, must be \"JWT\"", header["typ"]));
    }
    Ok(())
}

/// JWS ES256: the signature is `r || s`, 64 bytes, not DER (RFC 7518 §3.4).
fn verify_signature(
    key: &[u8; POINT_LEN],
    signing_input: &str,
    signature: &str,
) -> Result<(), String> {
    let raw = decode_b64url(signature).map_err(|e| format!("signature: {e}"))?;
    if raw.len() != 64 {
        return Err(format!(
            "signature is {} bytes, ES256 needs raw r||s of 64 (not DER)",
            raw.len()
        ));
    }
    let signature = Signature::from_slice(&raw).map_err(|_| "signature r or s out of range")?;
    let verifier = VerifyingKey::from_sec1_bytes(key).map_err(|_| "k is not a P-256 point")?;
    verifier
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| "signature does not verify with k".to_owned())
}

/// `aud` is the origin, `exp` within (now, now + 24 h], `sub` a mailto: or https: URI.
fn check_claims(claims: &Value, audience: &str, now: u64) -> Result<String, String> {
    if !claims.is_object() {
        return Err(format!("claims {claims} are not an object"));
    }
    if claims["aud"] != audience {
        return Err(format!(
            "aud {}, must be the endpoint's origin {audience:?}",
            claims["aud"]
        ));
    }
    let exp = claims["exp"]
        .as_u64()
        .ok_or_else(|| format!("exp {} is not an integer of seconds", claims["exp"]))?;
    if exp <= now {
        return Err(format!("expired: exp {exp} is {}s before now", now - exp));
    }
    let max = MAX_VAPID_LIFETIME.as_secs();
    if exp - now > max {
        return Err(format!(
            "exp {exp} is {}s ahead, more than {max}s",
            exp - now
        ));
    }
    match claims["sub"].as_str() {
        Some(sub) if sub.starts_with("mailto:") || sub.starts_with("https:") => Ok(sub.to_owned()),
        _ => Err(format!(
            "sub {}, must be a mailto: or https: URI",
            claims["sub"]
        )),
    }
}

fn decode_json(part: &str, what: &str) -> Result<Value, String> {
    let bytes = decode_b64url(part).map_err(|e| format!("{what}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// Base64url without padding, as RFC 7515 and the Push API use it.
fn decode_b64url(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("not base64url without padding ({e})"))
}

fn decode_public_key(text: &str) -> Result<[u8; POINT_LEN], String> {
    let bytes = decode_b64url(text)?;
    let key = parse_point(&bytes)?;
    Ok(uncompressed(&key))
}

/// An uncompressed P-256 point on the curve.
fn parse_point(bytes: &[u8]) -> Result<PublicKey, String> {
    if bytes.len() != POINT_LEN || bytes[0] != 0x04 {
        return Err(format!(
            "{} bytes, need an uncompressed P-256 point (65 bytes from 0x04)",
            bytes.len()
        ));
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| "not a point on P-256".to_owned())
}

fn uncompressed(key: &PublicKey) -> [u8; POINT_LEN] {
    key.to_encoded_point(false)
        .as_bytes()
        .try_into()
        .expect("an uncompressed P-256 point is 65 bytes")
}

// ---- RFC 8291 / RFC 8188 decryption ----

/// The `aes128gcm` header and the single record after it.
struct Header<'a> {
    salt: &'a [u8],
    key_id: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse_header(body: &[u8]) -> Result<Header<'_>, String> {
    if body.len() < FIXED_HEADER_LEN {
        return Err(format!(
            "body of {} bytes has no aes128gcm header",
            body.len()
        ));
    }
    let (salt, rest) = body.split_at(SALT_LEN);
    let (rs, rest) = rest.split_at(4);
    let record_size = u32::from_be_bytes(rs.try_into().expect("4 bytes"));
    let id_len = usize::from(rest[0]);
    let rest = &rest[1..];
    if id_len != POINT_LEN {
        return Err(format!(
            "key id is {id_len} bytes; RFC 8291 puts the sender's 65-byte public key there"
        ));
    }
    if rest.len() < id_len {
        return Err("body ends inside the key id".into());
    }
    let (key_id, ciphertext) = rest.split_at(id_len);
    check_single_record(record_size, ciphertext.len())?;
    Ok(Header {
        salt,
        key_id,
        ciphertext,
    })
}

/// RFC 8291 §4: one record, which fits in the record size.
fn check_single_record(record_size: u32, ciphertext_len: usize) -> Result<(), String> {
    if record_size < MIN_RECORD_SIZE {
        return Err(format!(
            "record size {record_size} is under {MIN_RECORD_SIZE}"
        ));
    }
    if ciphertext_len < TAG_LEN + 1 {
        return Err(format!(
            "record of {ciphertext_len} bytes is shorter than a tag and a delimiter"
        ));
    }
    if ciphertext_len as u64 > u64::from(record_size) {
        return Err(format!(
            "{ciphertext_len} bytes of records with record size {record_size}: \
             a push message must be a single record"
        ));
    }
    Ok(())
}

/// `ecdh_secret = ECDH(ua_private, as_public)`.
fn ecdh_secret(ua_secret: &SecretKey, as_public: &[u8]) -> Result<[u8; 32], String> {
    let as_public = parse_point(as_public).map_err(|e| format!("sender key id: {e}"))?;
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    Ok((*shared.raw_secret_bytes()).into())
}

/// RFC 8291 §3.4: `IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0 ua_public as_public, 32)`.
fn derive_ikm(ecdh_secret: &[u8; 32], auth: &[u8], ua_public: &[u8], as_public: &[u8]) -> [u8; 32] {
    let prk_key = hkdf_extract(auth, ecdh_secret);
    hkdf_expand(&prk_key, &[b"WebPush: info\0", ua_public, as_public])
}

/// RFC 8188 §2.2-2.3: the content-encryption key and the nonce of record 0.
fn derive_cek_and_nonce(salt: &[u8], ikm: &[u8; 32]) -> ([u8; 16], [u8; 12]) {
    let prk = hkdf_extract(salt, ikm);
    let cek = hkdf_expand(&prk, &[b"Content-Encoding: aes128gcm\0"]);
    let nonce = hkdf_expand(&prk, &[b"Content-Encoding: nonce\0"]);
    (cek, nonce)
}

fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
    prk.into()
}

fn hkdf_expand<const N: usize>(prk: &[u8; 32], info: &[&[u8]]) -> [u8; N] {
    let hkdf = Hkdf::<Sha256>::from_prk(prk).expect("a 32-byte PRK is long enough");
    let mut out = [0u8; N];
    hkdf.expand_multi_info(info, &mut out)
        .expect("N is far below HKDF-SHA256's 8160-byte limit");
    out
}

/// AES-128-GCM open of the only record (sequence number 0, so the nonce is used as is).
fn open_record(cek: &[u8; 16], nonce: &[u8; 12], ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = Aes128Gcm::new_from_slice(cek).expect("a 16-byte key");
    cipher
        .decrypt(&Nonce::from(*nonce), ciphertext)
        .map_err(|_| "AES-GCM authentication failed (wrong keys, salt or derivation)".to_owned())
}

/// RFC 8188 §2: the last record's plaintext is `data || 0x02 || 0x00*`.
fn strip_padding(mut record: Vec<u8>) -> Result<Vec<u8>, String> {
    let end = record
        .iter()
        .rposition(|&b| b != 0)
        .ok_or("record is all zeros: no padding delimiter")?;
    match record[end] {
        LAST_RECORD => {
            record.truncate(end);
            Ok(record)
        }
        0x01 => Err("delimiter 0x01 marks a record that is not the last one, \
                     but a push message has exactly one record"
            .into()),
        other => Err(format!(
            "padding ends in 0x{other:02x}; the record must end in 0x02 then zero bytes"
        )),
    }
}

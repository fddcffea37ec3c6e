//! Settings from the environment. Every limit is declared once below with its name, environment
//! variable, default and meaning; `pulse --help` prints the same table. Secrets are redacted in
//! `Debug`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Declares the limits once: the struct, its defaults, the environment parsing and the help text.
macro_rules! limits {
    ($( #[doc = $doc:literal] $field:ident : $ty:ty = $default:expr => $env:literal; )*) => {
        /// Every tunable limit, each with a named default and an environment override.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Limits { $( #[doc = $doc] pub $field: $ty, )* }

        impl Default for Limits {
            fn default() -> Self { Self { $( $field: $default, )* } }
        }

        impl Limits {
            /// (environment variable, default value, meaning) for every limit.
            pub fn help() -> Vec<(&'static str, String, &'static str)> {
                let defaults = Self::default();
                vec![ $( ($env, defaults.$field.to_string(), $doc) ),* ]
            }

            /// (environment variable, value) of every limit set to something else than its
            /// default.
            pub fn changed(&self) -> Vec<(&'static str, String)> {
                let defaults = Self::default();
                let mut changed = Vec::new();
                $( if self.$field != defaults.$field {
                    changed.push(($env, self.$field.to_string()));
                } )*
                changed
            }

            fn from_env() -> Result<Self, String> {
                let defaults = Self::default();
                Ok(Self { $( $field: parse_env($env, defaults.$field)?, )* })
            }
        }
    };
}

limits! {
    /// Largest JSON request body, in bytes (413 beyond).
    max_json_bytes: usize = 64 * 1024 => "PULSE_MAX_JSON_BYTES";
    /// Largest uploaded image, in bytes (413 beyond).
    max_image_bytes: usize = 10 * 1024 * 1024 => "PULSE_MAX_IMAGE_BYTES";
    /// Largest image side, in pixels, checked from the header before decoding (422 beyond).
    max_image_side: u32 = 8192 => "PULSE_MAX_IMAGE_SIDE";
    /// Most pixels (width × height) in an uploaded image, checked from the header before decoding (422 beyond); one decode may allocate 4 bytes per pixel of this, plus 128 MiB.
    max_image_pixels: u64 = 8192 * 8192 => "PULSE_MAX_IMAGE_PIXELS";
    /// Longest side, in pixels, of the display image `image_url` serves (uploads are shrunk to it, never enlarged).
    display_max_side: u32 = 2048 => "PULSE_DISPLAY_MAX_SIDE";
    /// Longest side, in pixels, of the thumbnail `thumbnail_url` serves.
    thumbnail_max_side: u32 = 640 => "PULSE_THUMBNAIL_MAX_SIDE";
    /// Image decodes running at once (each up to the memory PULSE_MAX_IMAGE_PIXELS allows; a large progressive JPEG takes two places); further uploads wait.
    image_decode_concurrency: usize = 2 => "PULSE_IMAGE_DECODE_CONCURRENCY";
    /// Uploads waiting for an image decode before the next gets 503 with Retry-After.
    image_decode_queue_len: usize = 8 => "PULSE_IMAGE_DECODE_QUEUE_LEN";
    /// Page size when `?limit=` is absent.
    default_page_size: i64 = 20 => "PULSE_DEFAULT_PAGE_SIZE";
    /// Largest `?limit=` accepted (the API documents 100).
    max_page_size: i64 = 100 => "PULSE_MAX_PAGE_SIZE";
    /// Most ids one `POST /notifications/read {"ids"|"group_ids": [...]}` may name (422 beyond).
    max_read_ids: usize = 1000 => "PULSE_MAX_READ_IDS";
    /// A notification joins its unread group only if the group's newest member is younger than this (seconds).
    group_window_secs: i64 = 86_400 => "PULSE_GROUP_WINDOW_SECS";
    /// A push waits this long after its notification's commit, so a socket that shows it live can cancel it (ms).
    push_delay_ms: i64 = 300 => "PULSE_PUSH_DELAY_MS";
    /// A push not delivered this long after its notification is dropped; also its `TTL` header (seconds).
    push_ttl_secs: i64 = 86_400 => "PULSE_PUSH_TTL_SECS";
    /// How often each instance looks for due pushes when it was not woken (ms).
    push_poll_ms: u64 = 250 => "PULSE_PUSH_POLL_MS";
    /// Pushes one instance claims at a time.
    push_batch: i64 = 64 => "PULSE_PUSH_BATCH";
    /// How long a claimed push stays with the instance that claimed it before another may take it (seconds).
    push_lease_secs: i64 = 60 => "PULSE_PUSH_LEASE_SECS";
    /// One request to a push service may take this long before it counts as failed (ms).
    push_timeout_ms: u64 = 10_000 => "PULSE_PUSH_TIMEOUT_MS";
    /// Requests to push services in flight at once per instance.
    push_concurrency: usize = 64 => "PULSE_PUSH_CONCURRENCY";
    /// Requests in flight at once to one push service (origin), so a slow one cannot hold up the rest.
    push_per_origin: usize = 8 => "PULSE_PUSH_PER_ORIGIN";
    /// Longest wait between two attempts of one push (seconds).
    push_max_backoff_secs: i64 = 300 => "PULSE_PUSH_MAX_BACKOFF_SECS";
    /// Lifetime of a login token, in seconds (30 days).
    token_ttl_secs: u64 = 30 * 24 * 3600 => "PULSE_TOKEN_TTL_SECS";
    /// Verified login tokens remembered per instance (0: verify signature and Datalog every time).
    token_cache_size: usize = 100_000 => "PULSE_TOKEN_CACHE_SIZE";
    /// Users whose names are kept in memory (for requests' callers and notifications' actors).
    user_cache_size: usize = 100_000 => "PULSE_USER_CACHE_SIZE";
    /// Seconds between merges of the database's revoked tokens into each instance's copy.
    revocations_refresh_secs: u64 = 60 => "PULSE_REVOCATIONS_REFRESH_SECS";
    /// Password hashes (argon2id, 19 MiB each) running at once; further logins and registrations wait.
    password_hash_concurrency: usize = 4 => "PULSE_PASSWORD_HASH_CONCURRENCY";
    /// Logins and registrations waiting for a password hash before the next gets 503.
    password_hash_queue_len: usize = 256 => "PULSE_PASSWORD_HASH_QUEUE_LEN";
    /// Lifetime of a socket ticket, in seconds.
    ticket_ttl_secs: u64 = 60 => "PULSE_TICKET_TTL_SECS";
    /// Database connections per instance (PostgreSQL: split among the workers, the rest, at least one, for background jobs; SQLite: readers, plus one writer). More connections than cores cost PostgreSQL CPU per like.
    db_pool_size: usize = 8 => "PULSE_DB_POOL_SIZE";
    /// How long a request waits for a database connection before 503, in ms.
    db_acquire_timeout_ms: u64 = 3000 => "PULSE_DB_ACQUIRE_TIMEOUT_MS";
    /// API requests (under /api/v1; socket opens, logins and registrations aside) running at once per instance; more wait for a turn. Twice the database connections: more only contend for them.
    max_in_flight: usize = 16 => "PULSE_MAX_IN_FLIGHT";
    /// API requests waiting for a turn before the next is refused at once with 503.
    max_queued_requests: usize = 512 => "PULSE_MAX_QUEUED_REQUESTS";
    /// Longest wait for a turn, in ms, before 503 with Retry-After, while the queue is a burst.
    request_queue_timeout_ms: u64 = 100 => "PULSE_REQUEST_QUEUE_TIMEOUT_MS";
    /// The queue has not emptied for this many ms: the instance is overloaded, not absorbing a burst.
    overload_after_ms: u64 = 100 => "PULSE_OVERLOAD_AFTER_MS";
    /// Longest wait for a turn, in ms, while overloaded: a request further back in the queue is refused at once.
    overloaded_queue_timeout_ms: u64 = 30 => "PULSE_OVERLOADED_QUEUE_TIMEOUT_MS";
    /// Largest client socket frame, in bytes (larger frames close the socket with 1009).
    ws_max_frame_bytes: usize = 16 * 1024 => "PULSE_WS_MAX_FRAME_BYTES";
    /// Socket admission checks (revocation and newest notification) queued per worker before an open gets 503.
    admission_queue_len: usize = 8192 => "PULSE_ADMISSION_QUEUE_LEN";
    /// Most opening sockets one admission batch checks (two statements per batch; at most 4096).
    admission_batch_size: usize = 256 => "PULSE_ADMISSION_BATCH_SIZE";
    /// Admission batches in flight per worker, each on one database connection.
    admission_concurrent_batches: usize = 2 => "PULSE_ADMISSION_CONCURRENT_BATCHES";
    /// Notifications queued per socket before overflow (then replayed from the database); also the most a socket holds back while it waits for a missing one.
    ws_queue_len: usize = 256 => "PULSE_WS_QUEUE_LEN";
    /// Milliseconds a socket holds notifications that arrived ahead of one still on its way (another instance's, or another request's of the same batch) before reading the missing one from the database (0: read at once).
    ws_gap_wait_ms: u64 = 10 => "PULSE_WS_GAP_WAIT_MS";
    /// Open sockets per user on one instance (the next is refused with 429).
    ws_max_sockets_per_user: usize = 32 => "PULSE_WS_MAX_SOCKETS_PER_USER";
    /// Posts one socket may watch at once.
    ws_max_subscriptions: usize = 500 => "PULSE_WS_MAX_SUBSCRIPTIONS";
    /// Seconds between server pings.
    ws_heartbeat_secs: u64 = 20 => "PULSE_WS_HEARTBEAT_SECS";
    /// Seconds without any frame from the client before the socket is dropped.
    ws_client_timeout_secs: u64 = 60 => "PULSE_WS_CLIENT_TIMEOUT_SECS";
    /// Seconds between the comment lines of an event stream (GET /events; socket limits apply to streams too).
    sse_heartbeat_secs: u64 = 15 => "PULSE_SSE_HEARTBEAT_SECS";
    /// Bytes of encoded frames a socket's task may queue for its connection before it waits.
    ws_outbox_bytes: usize = 16 * 1024 => "PULSE_WS_OUTBOX_BYTES";
    /// Seconds a socket may accept nothing before it is closed with 4008.
    ws_stall_timeout_secs: u64 = 30 => "PULSE_WS_STALL_TIMEOUT_SECS";
    /// Most notifications replayed on connect; older ones are announced with a `gap` frame.
    ws_replay_limit: i64 = 1000 => "PULSE_WS_REPLAY_LIMIT";
    /// Bad client frames in a row tolerated before closing with 1008.
    ws_max_bad_frames: u32 = 10 => "PULSE_WS_MAX_BAD_FRAMES";
    /// Like counts for one post are sent at most once per this many ms per instance.
    like_count_interval_ms: u64 = 100 => "PULSE_LIKE_COUNT_INTERVAL_MS";
    /// Longest like-count interval a post backs off to while its watchers' sockets fall behind.
    like_count_max_interval_ms: u64 = 2000 => "PULSE_LIKE_COUNT_MAX_INTERVAL_MS";
    /// Pending socket subscription changes queued for the Redis subscriber.
    bus_command_queue_len: usize = 65536 => "PULSE_BUS_COMMAND_QUEUE_LEN";
    /// Longest back-off between Redis reconnection attempts, in ms.
    redis_max_backoff_ms: u64 = 5000 => "PULSE_REDIS_MAX_BACKOFF_MS";
    /// The Redis subscriber checks the server this often, in ms (on a cluster, every master and the shard subscriptions it holds there); one silent for a second (hung, partitioned), or subscriptions missing, and every channel is subscribed again where its slot is served now.
    redis_ping_ms: u64 = 1000 => "PULSE_REDIS_PING_MS";
    /// A publish that failed (delivered here at once) is tried again on Redis for this many ms, for the other instances' sockets.
    republish_window_ms: u64 = 30_000 => "PULSE_REPUBLISH_WINDOW_MS";
    /// Failed publishes waiting to be tried again; more are given up (other instances catch up when their subscriber reconnects, or at the next notification).
    republish_queue_len: usize = 10_000 => "PULSE_REPUBLISH_QUEUE_LEN";
    /// On shutdown, sockets are closed (1001) in batches spread over this many ms.
    drain_ms: u64 = 3000 => "PULSE_DRAIN_MS";
    /// On shutdown, how long in-flight requests get to finish, in seconds.
    shutdown_timeout_secs: u64 = 10 => "PULSE_SHUTDOWN_TIMEOUT_SECS";
    /// Most likes written by one statement: likes of one post that wait behind another like for its author at an instance go together with one commit (1: each alone).
    like_batch_max: usize = 64 => "PULSE_LIKE_BATCH_MAX";
    /// Posts whose author an instance remembers, so that one author's likes are written one after another.
    like_author_cache_size: usize = 100_000 => "PULSE_LIKE_AUTHOR_CACHE_SIZE";
    /// Likes and unlikes per user per minute (0: no limit).
    rate_likes_per_min: u64 = 300 => "PULSE_RATE_LIKES_PER_MIN";
    /// Comments per user per minute (0: no limit).
    rate_comments_per_min: u64 = 30 => "PULSE_RATE_COMMENTS_PER_MIN";
    /// Posts per user per minute (0: no limit).
    rate_posts_per_min: u64 = 10 => "PULSE_RATE_POSTS_PER_MIN";
    /// Follows and unfollows per user per minute (0: no limit).
    rate_follows_per_min: u64 = 60 => "PULSE_RATE_FOLLOWS_PER_MIN";
    /// Blocks, unblocks, mutes and unmutes per user per minute (0: no limit).
    rate_blocks_per_min: u64 = 60 => "PULSE_RATE_BLOCKS_PER_MIN";
    /// Socket and event-stream connects per user per minute (0: no limit).
    rate_socket_connects_per_min: u64 = 60 => "PULSE_RATE_SOCKET_CONNECTS_PER_MIN";
    /// Writes, socket connects and event-stream connects per client IP per minute (0: no limit).
    rate_ip_writes_per_min: u64 = 1200 => "PULSE_RATE_IP_WRITES_PER_MIN";
    /// Registrations per client IP per hour (0: no limit).
    rate_registrations_per_hour: u64 = 200 => "PULSE_RATE_REGISTRATIONS_PER_HOUR";
    /// Failed logins per username per login window before logins are refused with 429 (0: no limit).
    rate_login_failures: u64 = 10 => "PULSE_RATE_LOGIN_FAILURES";
    /// The failed-login window, in seconds (15 minutes).
    rate_login_window_secs: u64 = 15 * 60 => "PULSE_RATE_LOGIN_WINDOW_SECS";
}

fn parse_env<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|_| format!("{name}={raw:?} is not a valid value")),
        _ => Ok(default),
    }
}

/// Splits a comma-separated setting, dropping blanks.
fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// How events reach other instances, from `REDIS_URL` or `REDIS_CLUSTER_URLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOut<'a> {
    /// Neither is set: one instance, in-process.
    InProcess,
    /// One Redis (`REDIS_URL`): PUBLISH/SUBSCRIBE.
    Redis(&'a str),
    /// A Redis Cluster (`REDIS_CLUSTER_URLS`, seed nodes): SPUBLISH/SSUBSCRIBE.
    Cluster(&'a [String]),
}

/// Everything the server is configured with.
#[derive(Clone)]
pub struct Settings {
    /// `PULSE_ADDR`: where to listen (port 0 picks a free port; tests use it).
    pub addr: SocketAddr,
    /// `DATABASE_URL`: `postgres://…`; unset means SQLite in the data directory.
    pub database_url: Option<String>,
    /// `REDIS_URL`: `redis://…`; unset means in-process fan-out (one instance).
    pub redis_url: Option<String>,
    /// `REDIS_CLUSTER_URLS`: comma-separated `redis://…` seed nodes of a Redis Cluster, for
    /// sharded fan-out and shared rate limits (instead of `REDIS_URL`); empty: not a cluster.
    pub redis_cluster_urls: Vec<String>,
    /// `PULSE_REDIS_PREFIX`: namespace for this deployment's Redis channel names.
    pub redis_prefix: String,
    /// `PULSE_DATA_DIR`: SQLite file, media and the generated root key.
    pub data_dir: PathBuf,
    /// `PULSE_ROOT_KEY`: the biscuit root private key (hex), shared by all instances.
    pub root_key: Option<String>,
    /// `PULSE_WORKERS`: HTTP worker threads (default: one per core).
    pub workers: usize,
    /// `PULSE_ALLOWED_ORIGINS`: comma-separated origins allowed to open sockets from a browser,
    /// besides the server's own origin.
    pub allowed_origins: Vec<String>,
    /// `PULSE_TRUST_FORWARDED_FOR`: take the client IP from `X-Forwarded-For` (behind a proxy).
    pub trust_forwarded_for: bool,
    /// `PULSE_VAPID_PRIVATE_KEY`: the Web Push signing key (base64url of the P-256 scalar),
    /// shared by all instances; unset: generated in the data directory.
    pub vapid_private_key: Option<String>,
    /// `PULSE_PUSH_CONTACT`: the VAPID `sub` claim push services may contact (`mailto:` or `https:`).
    pub push_contact: String,
    /// `PULSE_PUSH_ALLOW_PRIVATE`: accept push endpoints on private addresses and `http://` (tests).
    pub push_allow_private: bool,
    /// `PULSE_PUSH_WHEN_LIVE`: push notifications that a socket already showed, too.
    pub push_when_live: bool,
    pub limits: Limits,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|u| redact_url(u)),
            )
            .field("redis_url", &self.redis_url.as_ref().map(|u| redact_url(u)))
            .field(
                "redis_cluster_urls",
                &self
                    .redis_cluster_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("redis_prefix", &self.redis_prefix)
            .field("data_dir", &self.data_dir)
            .field("root_key", &self.root_key.as_ref().map(|_| "<redacted>"))
            .field(
                "vapid_private_key",
                &self.vapid_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("push_contact", &self.push_contact)
            .field("push_allow_private", &self.push_allow_private)
            .field("push_when_live", &self.push_when_live)
            .field("workers", &self.workers)
            .field("allowed_origins", &self.allowed_origins)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Hides a password in `scheme://user:password@host/…`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:<redacted>{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The non-limit settings, for `--help`.
pub const SETTINGS_HELP: &[(&str, &str, &str)] = &[
    ("PULSE_ADDR", "127.0.0.1:8080", "Listen address."),
    (
        "DATABASE_URL",
        "(unset)",
        "postgres://… for PostgreSQL; unset: SQLite file in PULSE_DATA_DIR.",
    ),
    (
        "REDIS_URL",
        "(unset)",
        "redis://… for fan-out across instances; unset: in-process.",
    ),
    (
        "REDIS_CLUSTER_URLS",
        "(unset)",
        "redis://host:port,… seed nodes of a Redis Cluster (7+, sharded pub/sub) instead of REDIS_URL.",
    ),
    (
        "PULSE_REDIS_PREFIX",
        "pulse:",
        "Prefix of this deployment's Redis channel names (to share one Redis).",
    ),
    (
        "PULSE_DATA_DIR",
        "./pulse-data",
        "SQLite database, media files and the generated root key.",
    ),
    (
        "PULSE_ROOT_KEY",
        "(generated)",
        "Biscuit root private key, hex (`pulse keygen`); share it across instances.",
    ),
    ("PULSE_WORKERS", "(cores)", "HTTP worker threads."),
    (
        "PULSE_VAPID_PRIVATE_KEY",
        "(generated)",
        "Web Push signing key, base64url (`pulse keygen --vapid`); share it across instances.",
    ),
    (
        "PULSE_PUSH_CONTACT",
        "mailto:push@pulse.invalid",
        "Contact push services see in the VAPID `sub` claim (mailto: or https:).",
    ),
    (
        "PULSE_PUSH_ALLOW_PRIVATE",
        "false",
        "Accept push endpoints on loopback/private addresses and http:// (test set-ups only).",
    ),
    (
        "PULSE_PUSH_WHEN_LIVE",
        "false",
        "Also push notifications that a socket of the recipient already showed.",
    ),
    (
        "PULSE_ALLOWED_ORIGINS",
        "(none)",
        "Extra browser origins allowed to call the API (CORS) and open sockets, comma-separated.",
    ),
    (
        "PULSE_TRUST_FORWARDED_FOR",
        "false",
        "Take the client IP for rate limits from X-Forwarded-For (only behind a proxy that sets it).",
    ),
    ("RUST_LOG", "info", "Log filter (tracing EnvFilter syntax)."),
];

impl Settings {
    /// Defaults for everything: the embedded mode on 127.0.0.1:8080.
    pub fn defaults() -> Self {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            redis_url: None,
            redis_cluster_urls: Vec::new(),
            redis_prefix: "pulse:".to_owned(),
            data_dir: PathBuf::from("./pulse-data"),
            root_key: None,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            allowed_origins: Vec::new(),
            trust_forwarded_for: false,
            vapid_private_key: None,
            push_contact: "mailto:push@pulse.invalid".to_owned(),
            push_allow_private: false,
            push_when_live: false,
            limits: Limits::default(),
        }
    }

    /// Reads the environment; an unparsable value is an error, not a silent default.
    pub fn from_env() -> Result<Self, String> {
        let defaults = Self::defaults();
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Settings {
            addr: parse_env("PULSE_ADDR", defaults.addr)?,
            database_url: non_empty("DATABASE_URL"),
            redis_url: non_empty("REDIS_URL"),
            redis_cluster_urls: non_empty("REDIS_CLUSTER_URLS")
                .map(|v| comma_list(&v))
                .unwrap_or_default(),
            redis_prefix: std::env::var("PULSE_REDIS_PREFIX").unwrap_or(defaults.redis_prefix),
            data_dir: non_empty("PULSE_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or(defaults.data_dir),
            root_key: non_empty("PULSE_ROOT_KEY"),
            workers: parse_env("PULSE_WORKERS", defaults.workers)?.max(1),
            allowed_origins: non_empty("PULSE_ALLOWED_ORIGINS")
                .map(|v| comma_list(&v))
                .unwrap_or_default(),
            trust_forwarded_for: parse_env("PULSE_TRUST_FORWARDED_FOR", false)?,
            vapid_private_key: non_empty("PULSE_VAPID_PRIVATE_KEY"),
            push_contact: non_empty("PULSE_PUSH_CONTACT").unwrap_or(defaults.push_contact),
            push_allow_private: parse_env("PULSE_PUSH_ALLOW_PRIVATE", false)?,
            push_when_live: parse_env("PULSE_PUSH_WHEN_LIVE", false)?,
            limits: Limits::from_env()?,
        }
        .checked()
    }

    /// The settings, or why they contradict each other.
    fn checked(self) -> Result<Self, String> {
        self.fan_out()?;
        Ok(self)
    }

    /// Where events fan out (and rate limits are shared); an error if both `REDIS_URL` and
    /// `REDIS_CLUSTER_URLS` are set.
    pub fn fan_out(&self) -> Result<FanOut<'_>, String> {
        match (&self.redis_url, self.redis_cluster_urls.as_slice()) {
            (None, []) => Ok(FanOut::InProcess),
            (Some(url), []) => Ok(FanOut::Redis(url)),
            (None, urls) => Ok(FanOut::Cluster(urls)),
            (Some(_), _) => Err(
                "REDIS_URL and REDIS_CLUSTER_URLS are both set: set REDIS_URL for one Redis, \
                 or REDIS_CLUSTER_URLS for a Redis Cluster, not both"
                    .to_owned(),
            ),
        }
    }

    /// One readable line for the start-up log: where data lives, how events fan out, the
    /// workers, and every limit that is not at its default. Secrets never appear.
    pub fn summary(&self) -> String {
        let database = match &self.database_url {
            Some(url) => format!("PostgreSQL {}", redact_url(url)),
            None => format!("SQLite in {}", self.data_dir.display()),
        };
        let fan_out = match self.fan_out() {
            Ok(FanOut::InProcess) => "in-process".to_owned(),
            Ok(FanOut::Redis(url)) => {
                format!("Redis {} (prefix {:?})", redact_url(url), self.redis_prefix)
            }
            Ok(FanOut::Cluster(urls)) => format!(
                "Redis Cluster via {} seed nodes (prefix {:?})",
                urls.len(),
                self.redis_prefix
            ),
            Err(error) => error,
        };
        let mut line = format!(
            "database: {database}; fan-out: {fan_out}; workers: {}",
            self.workers
        );
        let changed = self.limits.changed();
        if !changed.is_empty() {
            let changed: Vec<String> = changed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line.push_str(&format!(
                "; limits not at their defaults: {}",
                changed.join(" ")
            ));
        }
        line
    }

    /// The text `pulse --help` prints.
    pub fn help_text() -> String {
        let mut out = String::from(
            "pulse: real-time notification backend\n\n\
             USAGE:\n  pulse [serve]    run the server\n  pulse migrate    apply database migrations and exit\n  \
             pulse keygen     print a new biscuit root private key (hex) for PULSE_ROOT_KEY\n  \
             pulse keygen --vapid  print a new Web Push (VAPID) private key for PULSE_VAPID_PRIVATE_KEY\n  \
             pulse --version  the version\n  \
             pulse --help     this text\n\nSETTINGS (environment):\n",
        );
        let settings = SETTINGS_HELP
            .iter()
            .map(|(name, default, meaning)| (*name, (*default).to_owned(), *meaning));
        for (name, default, meaning) in settings.chain(Limits::help()) {
            out.push_str(&format!(
                "  {name:<32} default {default:<22} {}\n",
                meaning.trim()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `PULSE_*` name in a text, once each.
    fn pulse_variables(text: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for (start, _) in text.match_indices("PULSE_") {
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name.trim_end_matches('_').to_owned());
        }
        names
    }

    #[test]
    fn the_readme_lists_exactly_the_settings_that_help_prints() {
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(readme_path).unwrap_or_default();
        let help = Settings::help_text();
        let (in_help, in_readme) = (pulse_variables(&help), pulse_variables(&readme));
        let missing: Vec<_> = in_help.difference(&in_readme).collect();
        let unknown: Vec<_> = in_readme.difference(&in_help).collect();
        assert!(missing.is_empty(), "README.md lacks {missing:?}");
        assert!(
            unknown.is_empty(),
            "README.md names settings pulse lacks: {unknown:?}"
        );
        for name in ["DATABASE_URL", "REDIS_URL", "RUST_LOG"] {
            assert!(help.contains(name) && readme.contains(name), "{name}");
        }
    }

    #[test]
    fn redis_and_a_redis_cluster_together_are_refused() {
        let mut settings = Settings::defaults();
        settings.redis_cluster_urls = comma_list(" redis://a:7000, ,redis://b:7001 ");
        assert_eq!(
            settings.fan_out(),
            Ok(FanOut::Cluster(&[
                "redis://a:7000".into(),
                "redis://b:7001".into()
            ]))
        );
        settings.redis_url = Some("redis://c:6379".into());
        let Err(error) = settings.fan_out() else {
            panic!("both were accepted");
        };
        assert!(error.contains("REDIS_CLUSTER_URLS"), "{error}");
        assert!(settings.checked().is_err());
    }

    #[test]
    fn help_shows_defaults_as_values() {
        let help = Settings::help_text();
        assert!(help.contains("PULSE_MAX_JSON_BYTES"));
        assert!(help.contains("65536"), "{help}");
        assert!(!help.contains("64 * 1024"), "{help}");
    }

    #[test]
    fn the_start_up_summary_is_one_short_line_without_secrets() {
        let mut settings = Settings::defaults();
        settings.database_url = Some("postgres://pulse:hunter2@db/pulse".into());
        settings.limits.ws_queue_len = 512;
        let summary = settings.summary();
        assert!(!summary.contains("hunter2"), "{summary}");
        assert!(summary.contains("PULSE_WS_QUEUE_LEN=512"), "{summary}");
        assert!(!summary.contains('\n') && summary.len() < 300, "{summary}");
    }
}

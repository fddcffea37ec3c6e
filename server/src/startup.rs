//! Builds the [`Application`] (binds the listener first, so tests can ask for port 0) and runs
//! it until a shutdown signal, then drains: stop accepting, close sockets with 1001 in batches,
//! let in-flight requests finish, exit.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use pulse_schema::db::{Backend, DbConfig, NotifyPolicy};
use pulse_schema::{tokens, Db};

use crate::admission::{AdmissionLimits, Admissions};
use crate::auth::Sessions;
use crate::auth::{Keys, Passwords};
use crate::config::Settings;
use crate::gate::HashGate;
use crate::like_queue::{LikeQueue, LikeQueueLimits};
use crate::media::MediaStore;
use crate::push::Push;
use crate::ratelimit::{RateLimiter, SharedRedis};
use crate::realtime::hub::Hub;
use crate::shed::{ShedLimits, Shedder};
use crate::state::{socket_context, AppState};
use crate::telemetry::Metrics;
use crate::{middleware, realtime, routes};

/// How often expired revocation rows are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How long startup waits for the bus to confirm the revocations channel.
const REVOCATIONS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often local rate-limit counters of finished windows are dropped.
const RATE_LIMIT_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Opens the database named by the settings (PostgreSQL URL, or SQLite in the data directory).
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let (url, backend) = match &settings.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            (url.clone(), Backend::Postgres)
        }
        Some(url) => anyhow::bail!(
            "DATABASE_URL must start with postgres:// (got {:?}); unset it for SQLite",
            url.split(':').next().unwrap_or("")
        ),
        None => {
            std::fs::create_dir_all(&settings.data_dir)?;
            (
                settings
                    .data_dir
                    .join("pulse.db")
                    .to_string_lossy()
                    .into_owned(),
                Backend::Sqlite,
            )
        }
    };
    let config = DbConfig {
        url,
        backend,
        max_connections: settings.limits.db_pool_size,
        acquire_timeout: Duration::from_millis(settings.limits.db_acquire_timeout_ms),
        policy: NotifyPolicy {
            group_window_secs: settings.limits.group_window_secs,
            push_delay_ms: settings.limits.push_delay_ms,
            push_ttl_secs: settings.limits.push_ttl_secs,
        },
    };
    let db = Db::connect(&config).await?;
    db.migrate().await?;
    Ok(db)
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

/// Stops an application gracefully (see the module docs). Cloneable; tests use it too.
#[derive(Clone)]
pub struct Shutdown {
    server: ServerHandle,
    hub: Arc<Hub>,
    push: Push,
    drain: Duration,
}

impl Shutdown {
    pub async fn shutdown(&self) {
        self.push.stop();
        self.server.pause().await;
        self.hub.drain(self.drain).await;
        self.server.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)?;
        let db = open_database(&settings).await?;
        let keys = Keys::load_or_create(settings.root_key.as_deref(), &settings.data_dir)?
            .with_verified_cache(settings.limits.token_cache_size);
        let passwords = Passwords::new(HashGate::new(
            settings.limits.password_hash_concurrency,
            settings.limits.password_hash_queue_len,
        ))?;
        let media = MediaStore::open(&settings.data_dir, &settings.limits)?;
        let metrics = Arc::new(Metrics::default());
        let sessions = Arc::new(Sessions::new(db.clone(), settings.limits.user_cache_size));
        let (hub, bus) = realtime::start(&settings, &metrics, &sessions).await?;
        hear_revocations(&hub).await;
        let limiter_redis = SharedRedis::open(&settings)
            .await?
            .map(|connection| (connection, settings.redis_prefix.clone()));
        let limiter = Arc::new(RateLimiter::new(settings.limits.clone(), limiter_redis));
        spawn_background(
            &hub,
            &db,
            &limiter,
            realtime::like_count_interval(&settings.limits),
        );

        let listener = TcpListener::bind(settings.addr)?;
        let port = listener.local_addr()?.port();
        let admissions = Admissions::new(
            db.clone(),
            AdmissionLimits {
                queue_len: settings.limits.admission_queue_len,
                batch_size: settings.limits.admission_batch_size,
                concurrent_batches: settings.limits.admission_concurrent_batches,
            },
            metrics.clone(),
        );
        let push = Push::start(&db, &settings, &metrics)?;
        let refresh = Duration::from_secs(settings.limits.revocations_refresh_secs);
        spawn_session_refresh(&sessions, refresh);
        let state = AppState {
            likes: LikeQueue::new(db.clone(), like_queue_limits(&settings), metrics.clone()),
            sessions,
            shedder: Arc::new(Shedder::new(shed_limits(&settings))),
            sockets: socket_context(&db, &hub, &metrics, &settings, &push),
            push,
            admissions,
            db,
            bus,
            hub,
            keys,
            passwords,
            media,
            settings: Arc::new(settings.clone()),
            metrics,
            limiter,
        };
        // Each worker gets an even share of the connections, in a pool of its own (see
        // `Db::for_worker`); the process-wide pool keeps the rest, at least one, for the
        // background jobs.
        let per_worker = (settings.limits.db_pool_size / settings.workers).max(1);
        state.db.limit_connections(
            settings
                .limits
                .db_pool_size
                .saturating_sub(per_worker * settings.workers),
        );
        let app_state = state.clone();
        let max_json = settings.limits.max_json_bytes;
        let server = HttpServer::new(move || {
            let worker_state = app_state.for_worker(per_worker);
            App::new()
                .app_data(web::Data::new(worker_state))
                .wrap(actix_web::middleware::from_fn(
                    routes::throttle_writes_by_ip,
                ))
                .wrap(actix_web::middleware::from_fn(middleware::shed_overload))
                .wrap(routes::cors(&app_state.settings.allowed_origins))
                .wrap(actix_web::middleware::from_fn(middleware::observe))
                .configure(|cfg| routes::configure(cfg, max_json))
                .default_service(web::to(routes::not_found))
        })
        .workers(settings.workers)
        // Frames go out as they are written: with Nagle's algorithm a socket taking frames
        // faster than its client's ACKs come back held each small write for the ACK, which the
        // client delays up to 40 ms (load-tests/RESULTS.md, "Frames sent without waiting for ACKs").
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(settings.limits.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown {
            server: self.server.handle(),
            hub: self.state.hub.clone(),
            push: self.state.push.clone(),
            drain: Duration::from_millis(self.state.settings.limits.drain_ms),
        }
    }

    /// Runs until the server stops (after [`Shutdown::shutdown`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let shutdown = self.shutdown_handle();
        let server = tokio::spawn(self.run_until_stopped());
        wait_for_signal().await;
        tracing::info!("shutdown signal: draining");
        shutdown.shutdown().await;
        server.await.map_err(std::io::Error::other)?
    }
}

/// How many API requests run at once and how long others wait (see `shed`).
fn shed_limits(settings: &Settings) -> ShedLimits {
    let limits = &settings.limits;
    ShedLimits {
        max_in_flight: limits.max_in_flight,
        max_queued: limits.max_queued_requests,
        queue_timeout: Duration::from_millis(limits.request_queue_timeout_ms),
        overload_after: Duration::from_millis(limits.overload_after_ms),
        overloaded_queue_timeout: Duration::from_millis(limits.overloaded_queue_timeout_ms),
    }
}

/// The like-count flusher, the rate-limit counter purge and the revocation purge.
/// Subscribes the revocations channel and loads this instance's copy of the revocations (see
/// `auth::sessions`) before serving. Should the bus not confirm in time, requests check the
/// database until it does.
async fn hear_revocations(hub: &Hub) {
    if let Err(error) = hub.hear_revocations(REVOCATIONS_TIMEOUT).await {
        tracing::warn!(%error, "revoked tokens not loaded yet; the database answers until they are");
    }
}

/// Every `every`: forgets the revocations of expired tokens, and merges the database's (a
/// revocation whose publish was lost on its way is learnt this late at worst).
fn spawn_session_refresh(sessions: &Arc<Sessions>, every: Duration) {
    let sessions = Arc::downgrade(sessions);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(sessions) = sessions.upgrade() else {
                return;
            };
            sessions.purge_expired();
            if let Err(error) = sessions.merge().await {
                tracing::warn!(%error, "refreshing revoked tokens failed");
            }
        }
    });
}

fn spawn_background(hub: &Arc<Hub>, db: &Db, limiter: &Arc<RateLimiter>, interval: Duration) {
    let limiter = Arc::downgrade(limiter);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RATE_LIMIT_PURGE_INTERVAL);
        loop {
            tick.tick().await;
            match limiter.upgrade() {
                Some(limiter) => limiter.purge(),
                None => return,
            }
        }
    });
    let flusher = Arc::downgrade(hub);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            match flusher.upgrade() {
                Some(hub) => hub.flush_like_counts(),
                None => return,
            }
        }
    });
    let db = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(error) = tokens::purge_expired(&db, pulse_schema::now_millis()).await {
                tracing::warn!(%error, "purging expired revocations failed");
            }
            // A device's subscription ends with its token.
            if let Err(error) =
                pulse_schema::push::purge_expired(&db, pulse_schema::now_millis()).await
            {
                tracing::warn!(%error, "purging expired push subscriptions failed");
            }
        }
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn like_queue_limits(settings: &Settings) -> LikeQueueLimits {
    LikeQueueLimits {
        max_batch: settings.limits.like_batch_max,
        authors: settings.limits.like_author_cache_size,
    }
}

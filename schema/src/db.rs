//! One database handle over two backends, and the macros that run one query body on either.
//!
//! [`Db`] holds a deadpool pool of `AsyncPgConnection`s (production) or of
//! `SyncConnectionWrapper<SqliteConnection>`s (the embedded default). SQLite allows one writer at
//! a time and a deferred transaction that upgrades to a write can fail with `SQLITE_BUSY` without
//! waiting, so on SQLite writes go through a separate pool of exactly one connection (readers use
//! WAL snapshots and never block it). On PostgreSQL both handles are the same pool.
//!
//! On PostgreSQL each HTTP worker thread gets its own pool ([`Db::for_worker`]): tokio-postgres
//! drives a connection's socket from a task spawned where the connection is opened, so a pool
//! shared by all threads makes every round trip hop from the asking thread to the driving one
//! and back (two cross-thread wake-ups per statement). A per-worker pool opens its connections
//! on its worker, and a query's whole round trip stays on that thread.
//!
//! Query code is written once inside [`run!`](crate::run) or [`transaction!`](crate::transaction):
//! the macro matches on the pool and expands the body once per backend, so each body is
//! type-checked against both.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool::managed::WeakPool;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool as DeadPool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::blocking::BlockingThreads;

/// SQLite through diesel-async's blocking-thread wrapper, on threads that are safe to drop a
/// statement on (see [`crate::blocking`]).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, BlockingThreads>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Arbitrary, fixed key for the advisory lock that keeps two instances from migrating at once.
const MIGRATION_LOCK_KEY: i64 = 0x0050_554c_5345;

/// Per-connection SQLite settings: WAL so readers never block the writer, foreign keys (off by
/// default in SQLite) so cascades work, and a busy timeout so a checkpoint never fails a request.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

/// Per-connection PostgreSQL settings. Every statement Pulse sends is prepared once per
/// connection and its best plan does not depend on the values bound (lookups by key, keyset
/// pages on composite indexes), but by default PostgreSQL plans a prepared statement afresh on
/// its first five runs on each connection before it settles on the generic plan. For the like's
/// statement that planning is most of the statement's cost, and it lands on every connection
/// at once when a new instance takes its first burst (see `load-tests/RESULTS.md`, "The first
/// second of an instance").
const POSTGRES_SETTINGS: &str = "SET plan_cache_mode = force_generic_plan";

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A pool of either backend's connections.
#[derive(Clone)]
pub enum Pool {
    Postgres(DeadPool<AsyncPgConnection>),
    Sqlite(DeadPool<SqliteConn>),
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `postgres://…` or a SQLite file path.
    pub url: String,
    pub backend: Backend,
    /// Maximum pooled connections (readers on SQLite; all connections on PostgreSQL).
    pub max_connections: usize,
    /// How long a request waits for a pooled connection before answering 503.
    pub acquire_timeout: Duration,
    /// How notifications are grouped and pushed.
    pub policy: NotifyPolicy,
}

/// The settings that shape what a notification's transaction writes.
#[derive(Debug, Clone, Copy)]
pub struct NotifyPolicy {
    /// A notification joins its open group only if the group's newest member is younger than
    /// this many seconds (see [`crate::groups`]).
    pub group_window_secs: i64,
    /// A push job becomes due this long after its notification (a socket that receives the
    /// notification live meanwhile cancels it, see [`crate::push`]).
    pub push_delay_ms: i64,
    /// A push not delivered this long after its notification is dropped (and its `TTL`).
    pub push_ttl_secs: i64,
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        NotifyPolicy {
            group_window_secs: 86_400,
            push_delay_ms: 500,
            push_ttl_secs: 86_400,
        }
    }
}

/// The database handle shared by the whole server. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    read: Pool,
    write: Pool,
    config: Arc<DbConfig>,
    pools: Arc<PoolRegistry>,
}

/// Every pool opened from one [`Db::connect`], for metrics: the shared ones, and the workers'
/// held weakly (a worker that is restarted takes its pool, and its connections, with it).
struct PoolRegistry {
    shared: Vec<Pool>,
    workers: Mutex<Vec<WeakPool<AsyncDieselConnectionManager<AsyncPgConnection>>>>,
}

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or a connection could not be had in time (answer 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The row the operation needs does not exist (answer 404).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was hit (answer 409); the string names the constraint.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The caller may not do this to that row (answer 403).
    #[error("forbidden")]
    Forbidden,
    /// PostgreSQL rolled the transaction back to break a deadlock: nothing was written, and
    /// the same write may be tried again (answer 503 if it is not).
    #[error("deadlock detected")]
    Deadlock,
    /// Any other database error: a bug (answer 500, logged).
    #[error("database error: {0}")]
    Query(DieselError),
}

pub type DbResult<T> = Result<T, DbError>;

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => DbError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info)
            | DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
                DbError::Unavailable(info.message().to_owned())
            }
            // A row the write refers to vanished concurrently (a post deleted mid-like).
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                DbError::NotFound
            }
            // PostgreSQL's SQLSTATE 40P01; diesel passes on its message, not its code (so a
            // server whose `lc_messages` is not English reports a deadlock as `Query`).
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message() == "deadlock detected" =>
            {
                DbError::Deadlock
            }
            DieselError::BrokenTransactionManager => {
                DbError::Unavailable("transaction manager broken".into())
            }
            other => DbError::Query(other),
        }
    }
}

impl<E: std::fmt::Display> From<deadpool::managed::PoolError<E>> for DbError {
    fn from(error: deadpool::managed::PoolError<E>) -> Self {
        DbError::Unavailable(error.to_string())
    }
}

impl Db {
    /// Opens the pools (connections are made lazily) and runs pending migrations.
    pub async fn connect(config: &DbConfig) -> DbResult<Self> {
        let db = match config.backend {
            Backend::Postgres => {
                let pool = Pool::Postgres(postgres_pool(config, config.max_connections)?);
                Db::with_pools(Backend::Postgres, pool.clone(), pool, config)
            }
            Backend::Sqlite => {
                // As for PostgreSQL: no `SELECT 1` (here a blocking-thread hop) per checkout.
                let manager = || {
                    AsyncDieselConnectionManager::new_with_config(
                        config.url.clone(),
                        manager_config::<SqliteConn>(SQLITE_PRAGMAS),
                    )
                };
                Db::with_pools(
                    Backend::Sqlite,
                    Pool::Sqlite(build_pool(manager(), config, config.max_connections)?),
                    Pool::Sqlite(build_pool(manager(), config, 1)?),
                    config,
                )
            }
        };
        Ok(db)
    }

    fn with_pools(backend: Backend, read: Pool, write: Pool, config: &DbConfig) -> Db {
        let mut shared = vec![read.clone()];
        if backend == Backend::Sqlite {
            shared.push(write.clone());
        }
        Db {
            backend,
            read,
            write,
            config: Arc::new(config.clone()),
            pools: Arc::new(PoolRegistry {
                shared,
                workers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A handle for one worker thread of the HTTP server (see the module docs). On PostgreSQL
    /// it has its own pool of at most `connections`, opened on the thread that uses it, as they
    /// are needed or all at once by [`crate::likes::warm`];
    /// call it on that thread and use the handle only there. On SQLite it is this handle: one
    /// writer serves the whole database, and its connections run on blocking threads anyway.
    pub fn for_worker(&self, connections: usize) -> DbResult<Db> {
        match self.backend {
            Backend::Sqlite => Ok(self.clone()),
            Backend::Postgres => {
                let own = postgres_pool(&self.config, connections)?;
                let mut workers = self
                    .pools
                    .workers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                workers.retain(|pool| pool.upgrade().is_some());
                workers.push(own.weak());
                drop(workers);
                let pool = Pool::Postgres(own);
                Ok(Db {
                    read: pool.clone(),
                    write: pool,
                    ..self.clone()
                })
            }
        }
    }

    /// Caps this handle's own PostgreSQL pool (idle connections above the cap are closed as
    /// they are returned). Used to shrink the shared pool once the workers have their own.
    pub fn limit_connections(&self, connections: usize) {
        if let Pool::Postgres(pool) = &self.read {
            pool.resize(connections.max(1));
        }
    }

    /// Applies pending migrations (idempotent; on PostgreSQL under an advisory lock, so
    /// instances starting together do not race).
    pub async fn migrate(&self) -> DbResult<()> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            DbError::Unavailable(format!("migration failed: {e}"))
        };
        match &self.write {
            Pool::Postgres(pool) => {
                use diesel_async::RunQueryDsl;
                let mut conn = pool.get().await?;
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                    .execute(&mut conn)
                    .await?;
                let (conn, result) = tokio::task::spawn_blocking(move || {
                    let mut harness = AsyncMigrationHarness::new(conn);
                    let result = harness.run_pending_migrations(PG_MIGRATIONS).map(|_| ());
                    (harness.into_inner(), result)
                })
                .await
                .map_err(|e| DbError::Unavailable(e.to_string()))?;
                let mut conn = conn;
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(&mut conn)
                    .await?;
                result.map_err(failed)
            }
            Pool::Sqlite(pool) => {
                let conn = pool.get().await?;
                tokio::task::spawn_blocking(move || {
                    AsyncMigrationHarness::new(conn)
                        .run_pending_migrations(SQLITE_MIGRATIONS)
                        .map(|_| ())
                })
                .await
                .map_err(|e| DbError::Unavailable(e.to_string()))?
                .map_err(failed)
            }
        }
    }

    /// How notifications are grouped and pushed (see [`NotifyPolicy`]).
    pub fn policy(&self) -> NotifyPolicy {
        self.config.policy
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Pool for reads (and, on PostgreSQL, for everything).
    pub fn read(&self) -> &Pool {
        &self.read
    }

    /// Pool for writes: the single SQLite writer, or the PostgreSQL pool.
    pub fn write(&self) -> &Pool {
        &self.write
    }

    /// Checks that the database answers (`/readyz`).
    pub async fn ping(&self) -> DbResult<()> {
        use diesel_async::RunQueryDsl;
        crate::run!(self.read(), conn => {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
    }

    /// Pool usage for metrics: (connections in use, pool size, max size), summed over every
    /// pool of this process.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let workers: Vec<Pool> = (self.pools.workers.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|pool| pool.upgrade().map(Pool::Postgres))
            .collect();
        let mut totals = (0, 0, 0);
        for status in self
            .pools
            .shared
            .iter()
            .chain(&workers)
            .map(|pool| match pool {
                Pool::Postgres(p) => p.status(),
                Pool::Sqlite(p) => p.status(),
            })
        {
            totals.0 += status.size.saturating_sub(status.available);
            totals.1 += status.size;
            totals.2 += status.max_size;
        }
        totals
    }
}

/// A PostgreSQL pool of at most `size` connections, opened lazily.
fn postgres_pool(config: &DbConfig, size: usize) -> DbResult<DeadPool<AsyncPgConnection>> {
    let manager_config = manager_config::<AsyncPgConnection>(POSTGRES_SETTINGS);
    build_pool(
        AsyncDieselConnectionManager::new_with_config(config.url.clone(), manager_config),
        config,
        size,
    )
}

/// How a pool opens and checks its connections: each new one runs `settings` once, and a
/// checkout is `Fast`: it only checks the connection is not broken or mid-transaction. The
/// default (`Verified`) sends `SELECT 1` on every checkout: one extra round trip per request
/// and two per like (see load-tests/RESULTS.md). A connection that died since its last use
/// fails its first query (503) and is then dropped.
fn manager_config<C>(settings: &'static str) -> ManagerConfig<C>
where
    C: diesel_async::AsyncConnection + 'static,
{
    let mut manager_config = ManagerConfig::<C>::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            let mut conn = C::establish(&url).await?;
            conn.batch_execute(settings)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    manager_config
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    config: &DbConfig,
    size: usize,
) -> DbResult<DeadPool<C>>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    for<'a> diesel::dsl::select<diesel::dsl::AsExprOf<i32, diesel::sql_types::Integer>>:
        diesel_async::methods::LoadQuery<'a, C, i32>,
    diesel::query_builder::SqlQuery: diesel::query_builder::QueryFragment<C::Backend>,
{
    // Last in, first out: the connection used most recently serves next, so at moderate load
    // a few backends do the work, warm, instead of every backend of the pool in turn being
    // woken (see docs/notes/like-path.md, "The most recently used connection first").
    DeadPool::builder(manager)
        .max_size(size.max(1))
        .queue_mode(deadpool::managed::QueueMode::Lifo)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.acquire_timeout))
        .recycle_timeout(Some(config.acquire_timeout))
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Runs `$body` with `$conn: &mut <connection>` taken from `$pool`, once per backend.
///
/// ```text
/// run!(db.read(), conn => users::table.find(id).first::<UserRow>(conn).await.map_err(Into::into))
/// ```
#[macro_export]
macro_rules! run {
    ($pool:expr, $conn:ident => $body:expr) => {{
        match $pool {
            $crate::db::Pool::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn = &mut *pooled;
                $body
            }
            $crate::db::Pool::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err($crate::db::DbError::from)?;
                let $conn = &mut *pooled;
                $body
            }
        }
    }};
}

/// Runs `$body` inside one transaction on `$pool` (commit on `Ok`, roll back on `Err`).
#[macro_export]
macro_rules! transaction {
    ($pool:expr, $conn:ident => $body:expr) => {{
        $crate::run!($pool, outer => {
            use diesel_async::AsyncConnection as _;
            outer
                .transaction::<_, $crate::db::DbError, _>(async |$conn| $body)
                .await
        })
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadlock_victim_is_told_apart_from_other_errors() {
        let error = |message: &str| {
            DbError::from(DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            ))
        };
        assert!(matches!(error("deadlock detected"), DbError::Deadlock));
        assert!(matches!(error("division by zero"), DbError::Query(_)));
    }
}

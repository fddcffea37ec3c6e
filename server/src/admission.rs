//! Socket admission: the revocation check and the read of where a user's notifications stand
//! that every socket open makes after it is registered (see `routes::live`), batched across the
//! sockets opening at the same time on one worker.
//!
//! One statement per open made the database the limit of a reconnect storm: at thousands of
//! opens a second the statements' fixed cost (a round trip, an executor start-up, a snapshot)
//! was most of PostgreSQL's work, and opens queued for pool connections until they got 503.
//! Here an open queues its check to its worker's [`BatchQueue`] (at most
//! `admission_concurrent_batches` batches in flight, up to `admission_batch_size` opens each),
//! and a batch is answered with two statements ([`tokens::admission_reads`]). A lone open still
//! costs one statement ([`tokens::active_user_and_latest`]), so a quiet server answers as fast
//! as before.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pulse_schema::db::{Db, DbError};
use pulse_schema::ids::{NotificationId, UserId};
use pulse_schema::tokens::{self, AdmissionReads};

use crate::auth::Claims;
use crate::batch_queue::{BatchLimits, BatchQueue, Refused, RunBatch};
use crate::error::ApiError;
use crate::telemetry::Metrics;

/// The largest batch, whatever `admission_batch_size` says: a batch binds its users and up to
/// three revocation ids per token, and SQLite takes at most 32,766 bound values per statement.
const MAX_BATCH_SIZE: usize = 4096;

/// Where an admitted user's notifications stand: the newest notification's (`seq`, `id`).
pub type Latest = (i64, NotificationId);

/// A socket's verdict: where its user stands, `None` if refused (revoked token, no such user).
type Verdict = Result<Option<Latest>, ApiError>;

/// The admission queue of one worker (or of the process, for the state outside the workers).
/// Cheap to clone; its task starts on first use, on the runtime of the first caller.
#[derive(Clone)]
pub struct Admissions {
    queue: BatchQueue<Pending, Verdict>,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
}

/// One opening socket waiting for its check.
struct Pending {
    user: UserId,
    revocation_ids: Vec<String>,
}

impl Admissions {
    /// Checks over `db`, batched within `limits` (`PULSE_ADMISSION_*`).
    pub fn new(db: Db, limits: BatchLimits, metrics: Arc<Metrics>) -> Self {
        let limits = BatchLimits {
            batch_size: limits.batch_size.clamp(1, MAX_BATCH_SIZE),
            ..limits
        };
        let counters = metrics.clone();
        let run: RunBatch<Pending, Verdict> = Arc::new(move |batch: Vec<Pending>| {
            counters.admission_batches.fetch_add(1, Ordering::Relaxed);
            counters
                .admission_checks
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let db = db.clone();
            Box::pin(async move { answer(&db, batch).await })
        });
        Admissions {
            queue: BatchQueue::new(limits, run),
            limits,
            metrics,
        }
    }

    /// The same limits over another database pool (a worker's own).
    pub fn with_db(&self, db: Db) -> Self {
        Admissions::new(db, self.limits, self.metrics.clone())
    }

    /// Checks that `claims`' token is not revoked and its user exists, and reads the user's
    /// newest notification: `Unauthorized` if not, `Unavailable` if the queue is full.
    pub async fn admit(&self, claims: &Claims) -> Result<Latest, ApiError> {
        let pending = Pending {
            user: claims.user_id,
            revocation_ids: claims.revocation_ids.clone(),
        };
        self.queue
            .submit(pending)
            .await
            .map_err(|refused| match refused {
                Refused::Full => ApiError::Unavailable("the socket admission queue is full".into()),
                Refused::Stopped => {
                    ApiError::Unavailable("the socket admission task stopped".into())
                }
            })??
            .ok_or(ApiError::Unauthorized(
                "The token is missing, invalid, expired or revoked.",
            ))
    }
}

/// Answers one batch, each socket in order: one statement for a lone socket, two for any number.
async fn answer(db: &Db, mut batch: Vec<Pending>) -> Vec<Verdict> {
    if batch.len() == 1 {
        if let Some(only) = batch.pop() {
            let read = tokens::active_user_and_latest(db, only.user, &only.revocation_ids).await;
            let verdict = read
                .map(|found| found.map(|(_user, latest)| latest))
                .map_err(ApiError::from);
            return vec![verdict];
        }
        return Vec::new();
    }
    let users: Vec<UserId> = batch
        .iter()
        .map(|pending| pending.user)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let revocation_ids: Vec<String> = batch
        .iter()
        .flat_map(|pending| pending.revocation_ids.iter().cloned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    match tokens::admission_reads(db, &users, &revocation_ids).await {
        Ok(reads) => {
            let verdicts = Verdicts::from(reads);
            batch
                .iter()
                .map(|pending| Ok(verdicts.of(pending.user, &pending.revocation_ids)))
                .collect()
        }
        Err(error) => batch.iter().map(|_| Err(shared_error(&error))).collect(),
    }
}

/// A batch's reads, ready to answer each socket.
struct Verdicts {
    latest: HashMap<UserId, Latest>,
    revoked: HashSet<String>,
}

impl From<AdmissionReads> for Verdicts {
    fn from(reads: AdmissionReads) -> Self {
        Verdicts {
            latest: reads.latest.into_iter().collect(),
            revoked: reads.revoked.into_iter().collect(),
        }
    }
}

impl Verdicts {
    /// `None` if any of the token's revocation ids is revoked or the user does not exist.
    fn of(&self, user: UserId, revocation_ids: &[String]) -> Option<Latest> {
        if revocation_ids.iter().any(|id| self.revoked.contains(id)) {
            return None;
        }
        self.latest.get(&user).copied()
    }
}

/// The batch's one database error, as each of its sockets' answer.
fn shared_error(error: &DbError) -> ApiError {
    match error {
        DbError::Unavailable(cause) => ApiError::Unavailable(cause.clone()),
        other => ApiError::Internal(anyhow::anyhow!("socket admission reads: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts() -> Verdicts {
        Verdicts::from(AdmissionReads {
            latest: vec![
                (UserId(1), (3, NotificationId(30))),
                (UserId(2), (0, NotificationId(0))),
            ],
            revoked: vec!["dead".into()],
        })
    }

    #[test]
    fn each_socket_gets_its_own_users_latest() {
        let verdicts = verdicts();
        assert_eq!(
            verdicts.of(UserId(1), &["a".into()]),
            Some((3, NotificationId(30)))
        );
        assert_eq!(
            verdicts.of(UserId(2), &["b".into(), "c".into()]),
            Some((0, NotificationId(0)))
        );
    }

    #[test]
    fn a_revoked_id_anywhere_in_the_token_refuses_only_that_socket() {
        let verdicts = verdicts();
        assert_eq!(verdicts.of(UserId(1), &["a".into(), "dead".into()]), None);
        assert_eq!(
            verdicts.of(UserId(1), &["a".into()]),
            Some((3, NotificationId(30)))
        );
    }

    #[test]
    fn a_missing_user_is_refused() {
        assert_eq!(verdicts().of(UserId(9), &["a".into()]), None);
    }
}

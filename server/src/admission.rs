//! Socket admission: the revocation check and the read of where a user's notifications stand
//! that every socket open makes after it is registered (see `routes::live`), batched across the
//! sockets opening at the same time on one worker.
//!
//! One statement per open made the database the limit of a reconnect storm: at thousands of
//! opens a second the statements' fixed cost (a round trip, an executor start-up, a snapshot)
//! was most of PostgreSQL's work, and opens queued for pool connections until they got 503.
//! Here an open queues its check to one task per worker. That task keeps at most
//! `admission_concurrent_batches` batches in flight; while they run the queue fills, and the
//! next batch takes everything queued (up to `admission_batch_size`) and answers it with two
//! statements ([`tokens::admission_reads`]). A lone open still costs one statement
//! ([`tokens::active_user_and_latest`]), so a quiet server answers as fast as before.
//!
//! The batch runs in a task of its own: a socket whose client went away meanwhile is answered
//! into a closed channel, and one socket going away never cancels the others' check.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use pulse_schema::db::{Db, DbError};
use pulse_schema::ids::{NotificationId, UserId};
use pulse_schema::tokens::{self, AdmissionReads};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::auth::Claims;
use crate::error::ApiError;
use crate::telemetry::Metrics;

/// The largest batch, whatever `admission_batch_size` says: a batch binds its users and up to
/// three revocation ids per token, and SQLite takes at most 32,766 bound values per statement.
const MAX_BATCH_SIZE: usize = 4096;

/// Where an admitted user's notifications stand: the newest notification's (`seq`, `id`).
pub type Latest = (i64, NotificationId);

/// How many checks may wait and how they are batched (from `Limits`).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Checks queued per worker before an open is refused with 503.
    pub queue_len: usize,
    /// Most sockets one batch answers.
    pub batch_size: usize,
    /// Batches in flight per worker (each holds one database connection).
    pub concurrent_batches: usize,
}

/// The admission queue of one worker (or of the process, for the state outside the workers).
/// Cheap to clone; its task starts on first use, on the runtime of the first caller.
#[derive(Clone)]
pub struct Admissions {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    limits: AdmissionLimits,
    metrics: Arc<Metrics>,
    queue: OnceLock<mpsc::Sender<Pending>>,
}

/// One opening socket waiting for its check.
struct Pending {
    user: UserId,
    revocation_ids: Vec<String>,
    answer: oneshot::Sender<Result<Option<Latest>, ApiError>>,
}

impl Admissions {
    pub fn new(db: Db, limits: AdmissionLimits, metrics: Arc<Metrics>) -> Self {
        Admissions {
            inner: Arc::new(Inner {
                db,
                limits,
                metrics,
                queue: OnceLock::new(),
            }),
        }
    }

    /// The same limits over another database pool (a worker's own).
    pub fn with_db(&self, db: Db) -> Self {
        Admissions::new(db, self.inner.limits, self.inner.metrics.clone())
    }

    /// Checks that `claims`' token is not revoked and its user exists, and reads the user's
    /// newest notification: `Unauthorized` if not, `Unavailable` if the queue is full.
    pub async fn admit(&self, claims: &Claims) -> Result<Latest, ApiError> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            user: claims.user_id,
            revocation_ids: claims.revocation_ids.clone(),
            answer,
        };
        self.queue()
            .try_send(pending)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    ApiError::Unavailable("the socket admission queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    ApiError::Unavailable("the socket admission task stopped".into())
                }
            })?;
        answered
            .await
            .map_err(|_| ApiError::Unavailable("the socket admission task stopped".into()))??
            .ok_or(ApiError::Unauthorized(
                "The token is missing, invalid, expired or revoked.",
            ))
    }

    fn queue(&self) -> &mpsc::Sender<Pending> {
        self.inner.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(self.inner.limits.queue_len.max(1));
            // The task holds the pool and counters, not `Inner`: the queue's sender lives there,
            // and the task ends when the last sender is dropped.
            let inner = &self.inner;
            let job = serve(
                inner.db.clone(),
                inner.limits,
                inner.metrics.clone(),
                receiver,
            );
            tokio::spawn(job);
            sender
        })
    }
}

/// The worker's admission task: takes what is queued, in batches, while a slot is free.
async fn serve(
    db: Db,
    limits: AdmissionLimits,
    metrics: Arc<Metrics>,
    mut queue: mpsc::Receiver<Pending>,
) {
    let slots = Arc::new(Semaphore::new(limits.concurrent_batches.max(1)));
    let batch_size = limits.batch_size.clamp(1, MAX_BATCH_SIZE);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < batch_size {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        metrics.admission_batches.fetch_add(1, Ordering::Relaxed);
        metrics
            .admission_checks
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let db = db.clone();
        tokio::spawn(async move {
            answer(&db, batch).await;
            drop(slot);
        });
    }
}

/// Answers one batch: one statement for a lone socket, two for any number.
async fn answer(db: &Db, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        if let Some(only) = batch.pop() {
            let read = tokens::active_user_and_latest(db, only.user, &only.revocation_ids).await;
            let reply = read
                .map(|found| found.map(|(_user, latest)| latest))
                .map_err(ApiError::from);
            let _gone_is_fine = only.answer.send(reply);
        }
        return;
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
            for pending in batch {
                let verdict = verdicts.of(pending.user, &pending.revocation_ids);
                let _gone_is_fine = pending.answer.send(Ok(verdict));
            }
        }
        Err(error) => {
            for pending in batch {
                let _gone_is_fine = pending.answer.send(Err(shared_error(&error)));
            }
        }
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

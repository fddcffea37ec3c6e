//! Likes, batched per worker: the like path's group commit.
//!
//! At a few thousand likes a second, PostgreSQL spent most of a like's work on the fixed cost
//! of its statement and its commit, not on its rows. Here a like queues on its worker's
//! [`BatchQueue`] (at most `like_concurrent_batches` batches in flight, up to `like_batch_size`
//! likes each) and a batch is written by [`likes::like_many`]: one statement and one commit on
//! PostgreSQL, whatever the batch's size. A lone like still runs alone at once, so a quiet
//! server answers as fast as before. Every like still gets its own answer: its own count, its
//! own notification, its own error (a missing post fails only that like).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pulse_schema::likes::{self, LikeOutcome};
use pulse_schema::users::UserSummaryRow;
use pulse_schema::{Db, DbResult, PostId};

use crate::batch_queue::{BatchLimits, BatchQueue, Refused, RunBatch};
use crate::error::ApiError;
use crate::telemetry::Metrics;

/// The like queue of one worker (or of the process, for the state outside the workers).
/// Cheap to clone; its task starts on first use, on the runtime of the first caller.
#[derive(Clone)]
pub struct LikeQueue {
    queue: BatchQueue<(UserSummaryRow, PostId), DbResult<LikeOutcome>>,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
}

impl LikeQueue {
    /// Likes written to `db`, batched within `limits` (`PULSE_LIKE_*`).
    pub fn new(db: Db, limits: BatchLimits, metrics: Arc<Metrics>) -> Self {
        let counters = metrics.clone();
        let run: RunBatch<(UserSummaryRow, PostId), DbResult<LikeOutcome>> =
            Arc::new(move |batch: Vec<(UserSummaryRow, PostId)>| {
                counters.like_batches.fetch_add(1, Ordering::Relaxed);
                counters
                    .likes_batched
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let db = db.clone();
                Box::pin(async move { likes::like_many(&db, &batch).await })
            });
        LikeQueue {
            queue: BatchQueue::new(limits, run),
            limits,
            metrics,
        }
    }

    /// The same limits over another database pool (a worker's own).
    pub fn with_db(&self, db: Db) -> Self {
        LikeQueue::new(db, self.limits, self.metrics.clone())
    }

    /// Likes `post` as `actor` (see [`likes::like`]): `Unavailable` if the queue is full.
    pub async fn like(&self, actor: &UserSummaryRow, post: PostId) -> Result<LikeOutcome, ApiError> {
        let outcome = self
            .queue
            .submit((actor.clone(), post))
            .await
            .map_err(|refused| match refused {
                Refused::Full => ApiError::Unavailable("the like queue is full".into()),
                Refused::Stopped => ApiError::Unavailable("the like queue stopped".into()),
            })?;
        Ok(outcome?)
    }
}

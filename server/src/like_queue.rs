//! Likes to one author written together: a like for an author (or, until this worker knows
//! the post's author, of a post) that another like for them is being written for waits, and
//! every like that waited is then written in one transaction with one commit
//! ([`likes::like_together`]).
//!
//! A like holds its post's row (the count) and its author's row (the notification order) until
//! its commit, so likes of one popular post, or of one popular person's posts, take turns at
//! one commit each, whatever the hardware. Written together, they take turns at one commit per
//! batch. A like that nobody else's like is ahead of on this worker goes alone, at once, as
//! before. Each like still gets its own outcome: its count, its notification, its group.
//!
//! One queue per HTTP worker (like its pool). The writing runs in a task of its own, so a
//! request that goes away cannot strand the likes that wait behind it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pulse_schema::likes::{self, LikeOutcome};
use pulse_schema::users::UserSummaryRow;
use pulse_schema::{Db, DbError, DbResult, PostId, UserId};
use tokio::sync::oneshot;

use crate::telemetry::Metrics;

/// What likes wait behind: another like for the same author, or of the same post while the
/// post's author is not known here yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Author(UserId),
    Post(PostId),
}

struct Waiter {
    actor: UserSummaryRow,
    post: PostId,
    answer: oneshot::Sender<DbResult<LikeOutcome>>,
}

#[derive(Default)]
struct Queues {
    /// Keys with a like being written, and the likes waiting behind it.
    waiting: HashMap<Key, Vec<Waiter>>,
    /// The authors of posts liked here (learnt from the likes' notifications).
    authors: HashMap<PostId, UserId>,
}

/// How many likes go together, and how many posts' authors a worker remembers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LikeQueueLimits {
    /// Most likes written in one transaction (`PULSE_LIKE_BATCH_MAX`).
    pub(crate) max_batch: usize,
    /// Posts whose author a worker remembers (`PULSE_LIKE_AUTHOR_CACHE_SIZE`).
    pub(crate) authors: usize,
}

#[derive(Clone)]
pub(crate) struct LikeQueue {
    db: Db,
    queues: Arc<Mutex<Queues>>,
    limits: LikeQueueLimits,
    metrics: Arc<Metrics>,
}

impl LikeQueue {
    pub(crate) fn new(db: Db, limits: LikeQueueLimits, metrics: Arc<Metrics>) -> Self {
        LikeQueue {
            db,
            queues: Arc::default(),
            limits,
            metrics,
        }
    }

    /// The same limits over another database pool (a worker's own), with queues of its own.
    pub(crate) fn with_db(&self, db: Db) -> Self {
        LikeQueue::new(db, self.limits, self.metrics.clone())
    }

    /// Likes `post` as `actor`: at once if no other like for its author is being written here,
    /// else together with every like that waited for that one.
    pub(crate) async fn like(&self, actor: &UserSummaryRow, post: PostId) -> DbResult<LikeOutcome> {
        let (answer, answered) = oneshot::channel();
        let waiter = Waiter {
            actor: actor.clone(),
            post,
            answer,
        };
        if let Some(key) = self.enqueue(waiter) {
            tokio::spawn(self.clone().write(key));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(DbError::Unavailable("the like was not written".into())))
    }

    /// Queues `waiter` behind its key; the key when this like is the first (it starts a writer).
    fn enqueue(&self, waiter: Waiter) -> Option<Key> {
        let mut queues = self.lock();
        let key = match queues.authors.get(&waiter.post) {
            Some(author) => Key::Author(*author),
            None => Key::Post(waiter.post),
        };
        match queues.waiting.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(vec![waiter]);
                Some(key)
            }
            Entry::Occupied(mut entry) => {
                entry.get_mut().push(waiter);
                None
            }
        }
    }

    /// Writes the likes waiting behind `key`, batch after batch, until none is left.
    async fn write(self, key: Key) {
        while let Some(batch) = self.next_batch(key) {
            let likes: Vec<(UserSummaryRow, PostId)> =
                batch.iter().map(|w| (w.actor.clone(), w.post)).collect();
            if likes.len() > 1 {
                let together = likes.len() as u64;
                self.metrics
                    .likes_together
                    .fetch_add(together, Ordering::Relaxed);
            }
            let outcomes = likes::like_together(&self.db, &likes).await;
            self.learn_authors(&outcomes);
            for (waiter, outcome) in batch.into_iter().zip(outcomes) {
                let _ = waiter.answer.send(outcome);
            }
        }
    }

    /// Up to `max_batch` waiting likes of `key`, oldest first; `None` (and the key leaves the
    /// map, so the next like for it goes at once) when none waits.
    fn next_batch(&self, key: Key) -> Option<Vec<Waiter>> {
        let mut queues = self.lock();
        let queue = queues.waiting.get_mut(&key)?;
        if queue.is_empty() {
            queues.waiting.remove(&key);
            return None;
        }
        let take = queue.len().min(self.limits.max_batch.max(1));
        Some(queue.drain(..take).collect())
    }

    /// Remembers the author of each post a notification or group was written for.
    fn learn_authors(&self, outcomes: &[DbResult<LikeOutcome>]) {
        let mut queues = self.lock();
        for outcome in outcomes.iter().flatten() {
            let delivery = &outcome.delivery;
            let author = match (&delivery.notification, delivery.groups.first()) {
                (Some(view), _) => view.0.recipient_id,
                (None, Some(group)) => group.recipient_id,
                (None, None) => continue,
            };
            if queues.authors.len() >= self.limits.authors {
                // Full: one entry makes room (which one does not matter; a forgotten post's
                // likes wait behind the post until its author is learnt again).
                if let Some(post) = queues.authors.keys().next().copied() {
                    queues.authors.remove(&post);
                }
            }
            if self.limits.authors > 0 {
                queues.authors.insert(outcome.post_id, author);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

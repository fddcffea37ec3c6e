//! Likes to one author written one after another, a post's together: a like for an author that
//! another like for them is being written for waits; the writer then takes the oldest like that
//! waited and every other waiting like of the same post, and writes them by one statement with
//! one commit ([`likes::like_together`]). The process reads a post's author once, on the post's
//! first like here, and remembers it.
//!
//! Likes of the author's other posts wait their turn rather than join the batch: written by one
//! statement, likes of several posts cost more than written one by one (at 1,000 likes/s to one
//! person's 1,000 posts on one instance, p99 45.7 ms against 6.1-7.0 ms), and written all at
//! once without waiting, they queued inside PostgreSQL for the author's row (p99 111-144 ms,
//! some refused). See load-tests/RESULTS.md, "hot post and hot recipient".
//!
//! A like holds its post's row (the count) and its author's row (the notification order) until
//! its commit, so likes of one popular post, or of one popular person's posts, take turns at
//! one commit each, whatever the hardware. Written together, they take turns at one commit per
//! batch, and the batch writes the post's count, the author's sequence and the group once. A
//! like that nobody else's like is ahead of here goes alone, at once, as before. Each like still
//! gets its own outcome: its count, its notification, its group.
//!
//! Once a batch held more than one like, the next batch is taken only when its transaction holds
//! the post's row, so that likes arriving while it waits for another instance's batch go with
//! it (see [`LikeQueue::write`]).
//!
//! One set of queues per process, shared by its HTTP workers, so that one author's likes from
//! every worker of the process are written together: with a queue per worker, each process had
//! a batch per worker waiting for the post's row at once, each half as large. The writing runs
//! in a task of its own, so a request that goes away cannot strand the likes that wait behind
//! it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pulse_schema::likes::{self, LikeOutcome};
use pulse_schema::users::UserSummaryRow;
use pulse_schema::{Db, DbError, DbResult, PostId, UserId};
use tokio::sync::oneshot;

use crate::telemetry::Metrics;

/// What likes wait behind: another like for the same author, or of the same post when its
/// author could not be read.
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
    /// The authors of posts liked here.
    authors: HashMap<PostId, UserId>,
}

/// How many likes go together, and how many posts' authors the process remembers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LikeQueueLimits {
    /// Most likes written by one statement (`PULSE_LIKE_BATCH_MAX`).
    pub(crate) max_batch: usize,
    /// Posts whose author the process remembers (`PULSE_LIKE_AUTHOR_CACHE_SIZE`).
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

    /// The same queues over another database pool (a worker's own): a worker's likes wait
    /// behind the likes of every worker of this process, and a batch is written on the pool of
    /// the worker whose like started it.
    pub(crate) fn with_db(&self, db: Db) -> Self {
        LikeQueue { db, ..self.clone() }
    }

    /// Likes `post` as `actor`: at once if no other like for its author is being written here,
    /// else together with every like that waited for that one.
    pub(crate) async fn like(&self, actor: &UserSummaryRow, post: PostId) -> DbResult<LikeOutcome> {
        let key = self.key(post).await?;
        let (answer, answered) = oneshot::channel();
        let waiter = Waiter {
            actor: actor.clone(),
            post,
            answer,
        };
        if self.enqueue(key, waiter) {
            tokio::spawn(self.clone().write(key));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(DbError::Unavailable("the like was not written".into())))
    }

    /// The key a like of `post` waits behind: its author, read once per post and remembered.
    /// A post that does not exist is `NotFound` (as its like would be); should the read fail
    /// otherwise, the like waits behind its post.
    async fn key(&self, post: PostId) -> DbResult<Key> {
        if let Some(author) = self.lock().authors.get(&post) {
            return Ok(Key::Author(*author));
        }
        match pulse_schema::posts::author(&self.db, post).await {
            Ok(author) => {
                self.remember(post, author);
                Ok(Key::Author(author))
            }
            Err(DbError::NotFound) => Err(DbError::NotFound),
            Err(_) => Ok(Key::Post(post)),
        }
    }

    /// Queues `waiter` behind `key`; true when it is the first (it starts a writer).
    fn enqueue(&self, key: Key, waiter: Waiter) -> bool {
        match self.lock().waiting.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(vec![waiter]);
                true
            }
            Entry::Occupied(mut entry) => {
                entry.get_mut().push(waiter);
                false
            }
        }
    }

    /// Writes the likes waiting behind `key`, batch after batch, until none is left.
    ///
    /// Once a batch held more than one like (likes for the author arrive faster than they are
    /// written), the next ones are taken from the queue only when their post's row is held
    /// ([`likes::like_together_when_locked`]): with several instances, a batch otherwise waited
    /// for another instance's batch to commit while the likes arriving meanwhile queued here
    /// for a batch of their own, which then waited for the other instance's next batch. A
    /// like alone keeps its one round trip.
    async fn write(self, key: Key) {
        let mut busy = false;
        while let Some(post) = self.next_post(key) {
            let mut answers = Vec::new();
            let (likes, outcomes) = if busy {
                let take = || self.take_batch(key, &mut answers);
                likes::like_together_when_locked(&self.db, post, take).await
            } else {
                let likes = self.take_batch(key, &mut answers);
                let outcomes = likes::like_together(&self.db, &likes).await;
                (likes, outcomes)
            };
            busy = likes.len() > 1;
            if busy {
                let together = likes.len() as u64;
                self.metrics
                    .likes_together
                    .fetch_add(together, Ordering::Relaxed);
            }
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
        }
    }

    /// The post of the oldest like waiting behind `key`; `None` (and the key leaves the map, so
    /// the next like for it goes at once) when none waits. Only the key's writer takes likes
    /// out, so that like is still first when the writer takes its batch.
    fn next_post(&self, key: Key) -> Option<PostId> {
        let mut queues = self.lock();
        let queue = queues.waiting.get_mut(&key)?;
        let Some(first) = queue.first() else {
            queues.waiting.remove(&key);
            return None;
        };
        Some(first.post)
    }

    /// Takes the oldest like waiting behind `key` and up to `max_batch - 1` more of the same
    /// post, in order (likes of the author's other posts keep their places): their likes, and
    /// their answers pushed onto `answers` in the same order.
    fn take_batch(
        &self,
        key: Key,
        answers: &mut Vec<oneshot::Sender<DbResult<LikeOutcome>>>,
    ) -> Vec<(UserSummaryRow, PostId)> {
        let mut queues = self.lock();
        let Some(queue) = queues.waiting.get_mut(&key).filter(|q| !q.is_empty()) else {
            return Vec::new();
        };
        take_one_post(queue, self.limits.max_batch.max(1))
            .into_iter()
            .map(|waiter| {
                answers.push(waiter.answer);
                (waiter.actor, waiter.post)
            })
            .collect()
    }

    /// Remembers `post`'s author; when full, one entry makes room (which one does not matter:
    /// a forgotten post's author is read again on its next like).
    fn remember(&self, post: PostId, author: UserId) {
        if self.limits.authors == 0 {
            return;
        }
        let mut queues = self.lock();
        if queues.authors.len() >= self.limits.authors {
            if let Some(forgotten) = queues.authors.keys().next().copied() {
                queues.authors.remove(&forgotten);
            }
        }
        queues.authors.insert(post, author);
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Takes the first waiter of `queue` and, in order, up to `max - 1` more of its post.
fn take_one_post(queue: &mut Vec<Waiter>, max: usize) -> Vec<Waiter> {
    let post = queue[0].post;
    let mut batch = Vec::new();
    let mut rest = Vec::with_capacity(queue.len());
    for waiter in queue.drain(..) {
        if waiter.post == post && batch.len() < max {
            batch.push(waiter);
        } else {
            rest.push(waiter);
        }
    }
    *queue = rest;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(post: i64) -> Waiter {
        Waiter {
            actor: UserSummaryRow {
                id: UserId(1),
                username: "u".into(),
                display_name: "u".into(),
            },
            post: PostId(post),
            answer: oneshot::channel().0,
        }
    }

    fn posts(waiters: &[Waiter]) -> Vec<i64> {
        waiters.iter().map(|w| w.post.0).collect()
    }

    #[test]
    fn a_batch_is_the_oldest_like_and_the_likes_of_its_post_the_rest_keep_their_order() {
        let mut queue: Vec<Waiter> = [7, 8, 7, 9, 7, 8].into_iter().map(waiter).collect();
        assert_eq!(posts(&take_one_post(&mut queue, 64)), [7, 7, 7]);
        assert_eq!(posts(&queue), [8, 9, 8]);
        assert_eq!(posts(&take_one_post(&mut queue, 64)), [8, 8]);
        assert_eq!(posts(&queue), [9]);
    }

    #[test]
    fn a_batch_holds_at_most_max_likes() {
        let mut queue: Vec<Waiter> = [5, 5, 6, 5].into_iter().map(waiter).collect();
        assert_eq!(posts(&take_one_post(&mut queue, 2)), [5, 5]);
        assert_eq!(posts(&queue), [6, 5]);
    }
}

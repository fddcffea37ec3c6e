//! A queue that answers requests in batches: the group commit shared by socket admission
//! (`crate::admission`) and likes (`crate::like_queue`).
//!
//! Callers queue a request and wait for its answer. One task per queue keeps at most
//! `concurrent_batches` batches in flight; while they run the queue fills, and the next batch
//! takes everything queued (up to `batch_size`). So a quiet server answers each request alone,
//! at once, and a busy one pays a statement's fixed cost once per batch instead of once per
//! request. A full queue refuses at once (the caller answers 503).
//!
//! Each batch runs in a task of its own: a caller that went away meanwhile is answered into a
//! closed channel, and no query is ever dropped half-way (SQLite's wrapper panics then).
//! The queue's task starts on first use, on the runtime of the first caller: each HTTP worker
//! makes its own queue, so its batches run on its own thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot, Semaphore};

/// How many requests may wait and how they are batched.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Requests queued before the next is refused.
    pub queue_len: usize,
    /// Most requests one batch answers (at least 1).
    pub batch_size: usize,
    /// Batches in flight at once (at least 1; each typically holds one database connection).
    pub concurrent_batches: usize,
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue was full.
    Full,
    /// The queue's task has stopped (the runtime is shutting down).
    Stopped,
}

/// Answers a batch: one answer per request, in the requests' order.
pub type RunBatch<R, A> =
    Arc<dyn Fn(Vec<R>) -> Pin<Box<dyn Future<Output = Vec<A>> + Send>> + Send + Sync>;

/// A batching queue (cheap to clone; clones share the queue).
pub struct BatchQueue<R, A> {
    inner: Arc<Inner<R, A>>,
}

impl<R, A> Clone for BatchQueue<R, A> {
    fn clone(&self) -> Self {
        BatchQueue {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R, A> {
    limits: BatchLimits,
    run: RunBatch<R, A>,
    queue: OnceLock<mpsc::Sender<Waiting<R, A>>>,
}

/// A queued request and where its answer goes.
struct Waiting<R, A> {
    request: R,
    answer: oneshot::Sender<A>,
}

impl<R: Send + 'static, A: Send + 'static> BatchQueue<R, A> {
    pub fn new(limits: BatchLimits, run: RunBatch<R, A>) -> Self {
        BatchQueue {
            inner: Arc::new(Inner {
                limits,
                run,
                queue: OnceLock::new(),
            }),
        }
    }

    /// Queues `request` and waits for its batch's answer.
    pub async fn submit(&self, request: R) -> Result<A, Refused> {
        let (answer, answered) = oneshot::channel();
        self.queue()
            .try_send(Waiting { request, answer })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Stopped,
            })?;
        answered.await.map_err(|_| Refused::Stopped)
    }

    /// Requests waiting for a batch (not those in a running batch).
    #[cfg(test)]
    fn queued(&self) -> usize {
        let queue = self.queue();
        queue.max_capacity() - queue.capacity()
    }

    fn queue(&self) -> &mpsc::Sender<Waiting<R, A>> {
        self.inner.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(self.inner.limits.queue_len.max(1));
            // The task holds the runner, not `Inner`: the queue's sender lives there, and the
            // task ends when the last sender is dropped.
            tokio::spawn(serve(self.inner.limits, self.inner.run.clone(), receiver));
            sender
        })
    }
}

/// The queue's task: takes what is queued, in batches, while a slot is free.
async fn serve<R: Send + 'static, A: Send + 'static>(
    limits: BatchLimits,
    run: RunBatch<R, A>,
    mut queue: mpsc::Receiver<Waiting<R, A>>,
) {
    let slots = Arc::new(Semaphore::new(limits.concurrent_batches.max(1)));
    let batch_size = limits.batch_size.max(1);
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
        let run = run.clone();
        tokio::spawn(async move {
            let (requests, answers): (Vec<R>, Vec<oneshot::Sender<A>>) = batch
                .into_iter()
                .map(|waiting| (waiting.request, waiting.answer))
                .unzip();
            // A runner that answers fewer requests than it was given leaves the rest to see
            // `Stopped` (their senders drop here), never a wrong answer.
            for (answer, reply) in answers.into_iter().zip(run(requests).await) {
                let _gone_is_fine = answer.send(reply);
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A runner that records each batch's requests and answers each request with its double,
    /// after `gate` opens (so batches can be made to pile up).
    fn doubling(batches: Arc<Mutex<Vec<Vec<u32>>>>, gate: Arc<Semaphore>) -> RunBatch<u32, u32> {
        Arc::new(move |requests: Vec<u32>| {
            let (batches, gate) = (batches.clone(), gate.clone());
            Box::pin(async move {
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
                let answers = requests.iter().map(|n| n * 2).collect();
                if let Ok(mut seen) = batches.lock() {
                    seen.push(requests);
                }
                answers
            })
        })
    }

    fn limits(queue_len: usize, batch_size: usize) -> BatchLimits {
        BatchLimits {
            queue_len,
            batch_size,
            concurrent_batches: 1,
        }
    }

    #[tokio::test]
    async fn requests_queued_behind_a_running_batch_share_the_next_one() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let queue = BatchQueue::new(limits(16, 8), doubling(batches.clone(), gate.clone()));
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.submit(1).await }
        });
        // The first batch holds the only slot until the gate opens; wait until it has started
        // (its future holds a clone of the gate).
        while Arc::strong_count(&gate) < 3 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=4)
            .map(|n| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.submit(n).await })
            })
            .collect();
        while queue.queued() < 3 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(2);
        assert_eq!(first.await.ok(), Some(Ok(2)));
        let mut answers = Vec::new();
        for task in rest {
            answers.push(task.await.ok());
        }
        assert_eq!(answers, vec![Some(Ok(4)), Some(Ok(6)), Some(Ok(8))]);
        let seen = batches.lock().map(|b| b.clone()).unwrap_or_default();
        assert_eq!(seen, vec![vec![1], vec![2, 3, 4]]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let gate = Arc::new(Semaphore::new(0));
        let queue = BatchQueue::new(limits(1, 1), doubling(Default::default(), gate.clone()));
        let running = tokio::spawn({
            let queue = queue.clone();
            async move { queue.submit(1).await }
        });
        while Arc::strong_count(&gate) < 3 {
            tokio::task::yield_now().await;
        }
        // The first request is in its batch (waiting at the gate); one more fills the queue.
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.submit(2).await }
        });
        while queue.queued() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(queue.submit(3).await, Err(Refused::Full));
        gate.add_permits(2);
        assert_eq!(running.await.ok(), Some(Ok(2)));
        assert_eq!(waiting.await.ok(), Some(Ok(4)));
    }
}

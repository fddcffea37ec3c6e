//! Wake-ups of socket tasks, batched per worker thread.
//!
//! The hub pushes onto socket queues from whichever thread received the event (the Redis
//! subscriber and the like-count timer run on the main runtime), while each socket's task lives
//! on the actix worker that accepted its connection. Waking a task on another thread makes
//! tokio write to that worker's eventfd: one syscall per socket, the largest user-space cost
//! of a fan-out frame after the send itself (load-tests/RESULTS.md, fan-out). Instead, each
//! worker runs one relay task: a producer only appends the socket to its worker's relay list
//! and wakes the relay (at most once while the relay is busy), and the relay wakes the socket
//! tasks from their own thread, which costs no syscall. A socket whose task has not attached to
//! a relay yet (or code outside a worker, such as unit tests) is woken directly.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use super::lock_unpoisoned;

/// How one socket task is woken: directly, or through its worker's [`Relay`].
#[derive(Debug, Default)]
pub struct SocketWake {
    notify: Notify,
    /// Set while this socket sits in its relay's list (so it is listed once per batch).
    listed: AtomicBool,
    relay: OnceLock<Arc<Relay>>,
}

impl SocketWake {
    /// Wakes the socket task (now, or in its relay's next batch).
    pub fn wake(self: &Arc<Self>) {
        match self.relay.get() {
            // Ordering: the producer changed the queue before this swap. If the swap finds the
            // socket already listed, the relay has not yet cleared the flag, so its notify (and
            // the task's read of the queue) comes after the change.
            Some(relay) => {
                if !self.listed.swap(true, Ordering::SeqCst) {
                    relay.list(self.clone());
                }
            }
            None => self.notify.notify_one(),
        }
    }

    /// Resolves once woken after the last call.
    pub async fn woken(&self) {
        self.notify.notified().await
    }

    /// Routes later wake-ups through the current worker's relay. Call from the socket task.
    pub fn attach_to_this_worker(&self) {
        let _ = self.relay.set(Relay::for_this_thread());
    }
}

/// Socket tasks a relay wakes before letting them run.
const WAKE_CHUNK: usize = 32;

/// One worker's batch of sockets to wake, and the task that wakes them.
#[derive(Debug, Default)]
pub struct Relay {
    listed: Mutex<Vec<Arc<SocketWake>>>,
    signal: Notify,
}

thread_local! {
    static THIS_WORKER: RefCell<Option<Arc<Relay>>> = const { RefCell::new(None) };
}

impl Relay {
    /// The relay of the current worker thread; the first call starts its task on this thread,
    /// so it must run inside a worker's task (as the socket task does).
    fn for_this_thread() -> Arc<Relay> {
        THIS_WORKER.with(|slot| {
            slot.borrow_mut()
                .get_or_insert_with(|| {
                    let relay = Arc::new(Relay::default());
                    actix_web::rt::spawn(relay.clone().run());
                    relay
                })
                .clone()
        })
    }

    fn list(&self, socket: Arc<SocketWake>) {
        lock_unpoisoned(&self.listed).push(socket);
        self.signal.notify_one();
    }

    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.signal.notified().await;
            std::mem::swap(&mut batch, &mut *lock_unpoisoned(&self.listed));
            for (i, socket) in batch.drain(..).enumerate() {
                socket.listed.store(false, Ordering::SeqCst);
                socket.notify.notify_one();
                // Let the sockets woken so far write before waking more: the worker runs tasks
                // in wake order, so waking a whole batch first would delay every write to
                // the end of it.
                if (i + 1) % WAKE_CHUNK == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_socket_without_a_relay_is_woken_directly() {
        let wake = Arc::new(SocketWake::default());
        wake.wake();
        tokio::time::timeout(Duration::from_secs(5), wake.woken())
            .await
            .unwrap_or_else(|_| panic!("not woken"));
    }

    #[actix_web::test]
    async fn sockets_attached_to_a_worker_are_woken_by_its_relay_from_another_thread() {
        let sockets: Vec<_> = (0..100).map(|_| Arc::new(SocketWake::default())).collect();
        sockets.iter().for_each(|s| s.attach_to_this_worker());
        let from_elsewhere = sockets.clone();
        std::thread::spawn(move || {
            // Twice each: the second finds most of them still listed, and is folded in.
            for _ in 0..2 {
                from_elsewhere.iter().for_each(|s| s.wake());
            }
        })
        .join()
        .unwrap_or_else(|_| panic!("producer thread panicked"));
        for socket in &sockets {
            tokio::time::timeout(Duration::from_secs(5), socket.woken())
                .await
                .unwrap_or_else(|_| panic!("not woken"));
            assert!(!socket.listed.load(Ordering::SeqCst));
        }
    }
}

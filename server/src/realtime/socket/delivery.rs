//! Getting notifications to the client in order: the replay on connect (`?since=`), the
//! queue's notifications and counts, and the catch-up read from the database whenever the
//! queue skipped something (the rule in the parent module's docs).

use std::sync::atomic::Ordering;
use std::time::Duration;

use pulse_schema::notifications::{self, NotificationView};
use pulse_schema::NotificationId;

use super::{Close, SocketTask, SLOW_CLIENT};
use crate::realtime::protocol::{notification_frame, ServerFrame};
use crate::realtime::queue::Pending;

/// Where this socket is in its user's notification stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    id: NotificationId,
    seq: i64,
}

/// Notifications read from the database, and whether older ones were left out.
type Missed = (Vec<NotificationView>, bool);

impl SocketTask {
    /// Sends `hello` and what `?since=` asks for; returns the cursor to continue from.
    ///
    /// The database is read before `hello` goes out, so a client that has its `hello` has a
    /// socket that is fully set up (a database outage refuses it before, with 1011).
    pub(super) async fn replay(&mut self) -> Result<Cursor, Close> {
        let hello = self.hello();
        let Some(since) = self.since else {
            let (seq, id) = self.latest;
            self.send(hello).await?;
            return Ok(Cursor { id, seq });
        };
        self.context.metrics.replays.fetch_add(1, Ordering::Relaxed);
        let missed = self.read_after(since).await?;
        // Nothing missed: the cursor's `seq` comes from the newest notification, as read at
        // admission (before this read, after registration) instead.
        let latest = missed.0.is_empty().then_some(self.latest);
        self.send(hello).await?;
        let mut cursor = Cursor { id: since, seq: 0 };
        self.send_rows(missed, &mut cursor).await?;
        if let Some((seq, id)) = latest {
            // The admission read came first, so with nothing after `since` its newest is at or
            // below `since`; if not (a deleted post took notifications with it), `seq` stays 0:
            // the first queued notification then looks like a gap and is settled from the
            // database.
            if id <= since {
                cursor = Cursor {
                    id: since.max(id),
                    seq,
                };
            }
        }
        Ok(cursor)
    }

    /// Writes what was queued, keeping the no-gap/no-duplicate rule of the module docs.
    pub(super) async fn deliver(
        &mut self,
        pending: Pending,
        cursor: &mut Cursor,
    ) -> Result<(), Close> {
        if let Some(close) = pending.close {
            return Err(Some(close));
        }
        if pending.catch_up {
            self.context.metrics.replays.fetch_add(1, Ordering::Relaxed);
            Box::pin(self.send_after(cursor)).await?;
        }
        for queued in pending.notifications {
            if queued.seq <= cursor.seq {
                continue;
            }
            if queued.seq == cursor.seq + 1 {
                self.send(queued.frame).await?;
                self.context.metrics.observe_delivery(queued.committed_ms);
                *cursor = Cursor {
                    id: queued.id,
                    seq: queued.seq,
                };
            } else {
                Box::pin(self.send_after(cursor)).await?;
                // A deleted post can leave a hole in `seq`; the database read settles it.
                if cursor.seq < queued.seq {
                    cursor.seq = queued.seq;
                    cursor.id = cursor.id.max(queued.id);
                }
            }
        }
        for (_post, (_seq, frame)) in pending.counts {
            self.send(frame).await?;
        }
        for frame in pending.frames {
            self.send(frame).await?;
        }
        if let Some(unread_count) = pending.unread {
            self.send(ServerFrame::Read { unread_count }.to_json())
                .await?;
        }
        Ok(())
    }

    /// The committed notifications after `after` (the newest `ws_replay_limit`), and whether
    /// older ones were left out.
    async fn read_after(&self, after: NotificationId) -> Result<Missed, Close> {
        let limit = self.context.limits.ws_replay_limit;
        notifications::replay_after_id(&self.context.db, self.claims.user_id, after, limit)
            .await
            .map_err(|e| db_failed(&e))
    }

    /// Sends every committed notification after `cursor.id`.
    async fn send_after(&mut self, cursor: &mut Cursor) -> Result<(), Close> {
        let missed = self.read_after(cursor.id).await?;
        self.send_rows(missed, cursor).await
    }

    /// Sends rows read by [`Self::read_after`], a `gap` frame first when some were left out.
    async fn send_rows(
        &mut self,
        (rows, truncated): Missed,
        cursor: &mut Cursor,
    ) -> Result<(), Close> {
        if let (true, Some(first)) = (truncated, rows.first()) {
            let before_id = first.0.id.0;
            self.send(ServerFrame::Gap { before_id }.to_json()).await?;
        }
        for view in rows {
            let (id, seq) = (view.0.id, view.0.seq);
            self.send(notification_frame(view)).await?;
            self.context
                .metrics
                .frames_delivered
                .fetch_add(1, Ordering::Relaxed);
            *cursor = Cursor { id, seq };
        }
        Ok(())
    }

    /// Writes one frame; a socket that accepts nothing for the stall timeout is closed (4008).
    pub(super) async fn send(&mut self, frame: impl AsRef<str>) -> Result<(), Close> {
        let stall = Duration::from_secs(self.context.limits.ws_stall_timeout_secs);
        match tokio::time::timeout(stall, self.outbox.text(frame.as_ref())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(None),
            Err(_elapsed) => {
                self.context
                    .metrics
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                Err(Some((SLOW_CLIENT, "client too slow")))
            }
        }
    }
}

fn db_failed(error: &pulse_schema::DbError) -> Close {
    tracing::warn!(%error, "socket could not read the database; client will resume with ?since=");
    Some((1011, "database unavailable"))
}

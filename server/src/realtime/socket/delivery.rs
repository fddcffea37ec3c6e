//! Getting notifications to the client in order: the replay on connect (`?since=`), the
//! queue's notifications and counts, and the catch-up read from the database whenever the
//! queue skipped something (the rule in the parent module's docs).

use std::sync::atomic::Ordering;
use std::time::Duration;

use pulse_schema::groups;
use pulse_schema::notifications::{self, NotificationView};
use pulse_schema::NotificationId;

use super::reorder::Held;
use super::{Close, SocketTask, SLOW_CLIENT};
use crate::realtime::outbox::Framing;
use crate::realtime::protocol::{group_frame, notification_frame, ServerFrame};
use crate::realtime::queue::Pending;

/// Where this socket is in its user's notification stream, and in its group changes (the
/// user's group version; used only with `?groups=1`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    id: NotificationId,
    seq: i64,
    group_version: i64,
}

/// Notifications read from the database, and whether older ones were left out.
type Missed = (Vec<NotificationView>, bool);

impl SocketTask {
    /// Sends `hello` and what `?since=` asks for; returns the cursor to continue from.
    ///
    /// The database is read before `hello` goes out, so a client that has its `hello` has a
    /// socket that is fully set up (a database outage refuses it before, with 1011).
    ///
    /// With `?groups=1` the user's group version is read before `hello` too: read after it, a
    /// change committed in between (a like the client sent on its `hello`) would count in the
    /// version the socket starts from, and so never be sent.
    pub(super) async fn replay(&mut self) -> Result<Cursor, Close> {
        let groups_now = match self.groups.enabled {
            true => Some(self.group_version_now().await?),
            false => None,
        };
        let mut cursor = Box::pin(self.replay_notifications()).await?;
        if let Some(current) = groups_now {
            Box::pin(self.replay_groups(&mut cursor, current)).await?;
        }
        Ok(cursor)
    }

    /// The user's group version now (every group change so far is at or below it).
    async fn group_version_now(&self) -> Result<i64, Close> {
        groups::current_version(&self.context.db, self.claims.user_id)
            .await
            .map_err(|e| db_failed(&e))
    }

    /// Sends `hello` and the notifications `?since=` asks for.
    async fn replay_notifications(&mut self) -> Result<Cursor, Close> {
        let hello = self.hello();
        let Some(since) = self.since else {
            let (seq, id) = self.latest;
            self.send(hello).await?;
            return Ok(Cursor {
                id,
                seq,
                group_version: 0,
            });
        };
        self.context.metrics.replays.fetch_add(1, Ordering::Relaxed);
        let missed = self.read_after(since).await?;
        // Nothing missed: the cursor's `seq` comes from the newest notification, as read at
        // admission (before this read, after registration) instead.
        let latest = missed.0.is_empty().then_some(self.latest);
        self.send(hello).await?;
        let mut cursor = Cursor {
            id: since,
            seq: 0,
            group_version: 0,
        };
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
                    group_version: 0,
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
        held: &mut Held,
    ) -> Result<(), Close> {
        if let Some(close) = pending.close {
            return Err(Some(close));
        }
        if pending.catch_up {
            self.context.metrics.replays.fetch_add(1, Ordering::Relaxed);
            Box::pin(self.send_after(cursor)).await?;
            if self.groups.enabled {
                Box::pin(self.send_groups_after(cursor)).await?;
            }
        }
        for queued in held.notifications_with(pending.notifications) {
            if queued.seq <= cursor.seq {
                continue;
            }
            if queued.seq != cursor.seq + 1 {
                held.hold_notification(queued);
                continue;
            }
            let id = self.notification_event_id(queued.id);
            self.send_with_id(queued.frame, id).await?;
            if queued.pushes {
                self.context.push.seen(queued.id.0);
            }
            self.context.metrics.observe_delivery(queued.committed_ms);
            cursor.id = queued.id;
            cursor.seq = queued.seq;
        }
        for queued in held.groups_with(pending.groups) {
            if queued.version <= cursor.group_version {
                continue;
            }
            if queued.version != cursor.group_version + 1 {
                held.hold_group(queued);
                continue;
            }
            cursor.group_version = queued.version;
            let id = self.group_event_id(cursor);
            self.send_with_id(queued.frame, id).await?;
        }
        held.settle();
        let gaps = held.len();
        if gaps > 0 {
            self.context
                .metrics
                .gaps_held
                .fetch_add(1, Ordering::Relaxed);
        }
        if gaps > self.context.limits.ws_queue_len || self.context.limits.ws_gap_wait_ms == 0 {
            Box::pin(self.read_missing(cursor, held)).await?;
        }
        for (_post, (_seq, frame)) in pending.counts {
            self.send(frame).await?;
        }
        for frame in pending.frames {
            self.send(frame).await?;
        }
        if let Some((unread_count, unread_groups)) = pending.unread {
            let read = ServerFrame::Read {
                unread_count,
                unread_group_count: self.groups.enabled.then_some(unread_groups),
            };
            self.send(read.to_json()).await?;
        }
        Ok(())
    }

    /// The wait for what was missing ran out (or too much is held): reads it from the database.
    /// Everything held was committed before it was published, so the read sends it too, unless
    /// a deleted post took it (a hole in `seq`, which the cursor then steps over).
    pub(super) async fn read_missing(
        &mut self,
        cursor: &mut Cursor,
        held: &mut Held,
    ) -> Result<(), Close> {
        let missing = held.take();
        if let Some((seq, id)) = missing.notification {
            self.context
                .metrics
                .gap_reads
                .fetch_add(1, Ordering::Relaxed);
            Box::pin(self.send_after(cursor)).await?;
            if cursor.seq < seq {
                cursor.seq = seq;
                cursor.id = cursor.id.max(id);
            }
        }
        if let Some(version) = missing.group_version {
            self.context
                .metrics
                .gap_reads
                .fetch_add(1, Ordering::Relaxed);
            Box::pin(self.send_groups_after(cursor)).await?;
            cursor.group_version = cursor.group_version.max(version);
        }
        Ok(())
    }

    /// With `?groups=1`: the user's groups from `current` (their version read before `hello`)
    /// on, and with `groups_since=V` every group that changed after V (removals included),
    /// oldest change first. The hub registered the socket before `current` was read, so every
    /// later change reaches the queue (the rule in the parent module's docs, with group
    /// versions for `seq`).
    async fn replay_groups(&mut self, cursor: &mut Cursor, current: i64) -> Result<(), Close> {
        let since = match self.groups.since {
            Some(since) => since,
            None if self.groups.recent => current - self.context.limits.ws_replay_limit,
            None => {
                cursor.group_version = current;
                return Ok(());
            }
        };
        cursor.group_version = since.clamp(0, current);
        self.send_groups_after(cursor).await
    }

    /// Sends the current state of every group changed after `cursor.group_version`, in
    /// version order, reading as many pages as it takes.
    async fn send_groups_after(&mut self, cursor: &mut Cursor) -> Result<(), Close> {
        let limit = self.context.limits.ws_replay_limit.max(1);
        let user = self.claims.user_id;
        loop {
            let rows = groups::changed_since(&self.context.db, user, cursor.group_version, limit)
                .await
                .map_err(|e| db_failed(&e))?;
            for row in &rows {
                cursor.group_version = row.version;
                let id = self.group_event_id(cursor);
                self.send_with_id(group_frame(row), id).await?;
            }
            if (rows.len() as i64) < limit {
                return Ok(());
            }
        }
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
            let event_id = self.notification_event_id(id);
            self.send_with_id(notification_frame(view), event_id)
                .await?;
            self.context.push.seen(id.0);
            self.context
                .metrics
                .frames_delivered
                .fetch_add(1, Ordering::Relaxed);
            cursor.id = id;
            cursor.seq = seq;
        }
        Ok(())
    }

    /// Writes one frame; a socket that accepts nothing for the stall timeout is closed (4008).
    pub(super) async fn send(&mut self, frame: impl AsRef<str>) -> Result<(), Close> {
        self.send_with_id(frame, None).await
    }

    /// An event stream's id for a notification event: the notification's id.
    fn notification_event_id(&self, id: NotificationId) -> Option<String> {
        (self.outbox.framing() == Framing::EventStream).then(|| id.0.to_string())
    }

    /// An event stream's id for a group event: `<notification id>:<group version>`, both where
    /// the stream stands (`Last-Event-ID` resumes both).
    fn group_event_id(&self, cursor: &Cursor) -> Option<String> {
        (self.outbox.framing() == Framing::EventStream)
            .then(|| format!("{}:{}", cursor.id.0, cursor.group_version))
    }

    /// [`Self::send`], with an event id for event streams (ignored on sockets).
    async fn send_with_id(
        &mut self,
        frame: impl AsRef<str>,
        id: Option<String>,
    ) -> Result<(), Close> {
        let stall = Duration::from_secs(self.context.limits.ws_stall_timeout_secs);
        let write = self.outbox.text_with_id(frame.as_ref(), id.as_deref());
        match tokio::time::timeout(stall, write).await {
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

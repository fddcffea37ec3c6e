//! The one way routes hand committed changes to live delivery: each function serialises its
//! event once and publishes it on the bus (Redis, or this process's hub). Call them only after
//! the change is committed, so a socket that hears of it can always read it back.

use std::sync::atomic::Ordering;

use pulse_schema::groups::{GroupRow, ReadOutcome};
use pulse_schema::likes::LikeOutcome;
use pulse_schema::notifications::{Delivery, NotificationView};
use pulse_schema::UserId;

use super::bus::Bus;
use super::event::{Event, GroupChange};
use super::protocol::{group_frame, notification_frame, ServerFrame};
use crate::push::Push;
use crate::telemetry::Metrics;

/// Publishes through `bus`, counting what it publishes in `metrics`.
pub(crate) struct Publisher<'a> {
    pub(crate) bus: &'a Bus,
    pub(crate) metrics: &'a Metrics,
    pub(crate) push: &'a Push,
}

impl Publisher<'_> {
    /// A committed notification, to every socket of its recipient, with the change it made to
    /// its group if any. `pushes`: pushes were queued for it (a socket that shows it cancels
    /// them).
    pub(crate) async fn notification(
        &self,
        view: NotificationView,
        pushes: bool,
        group: Option<&GroupRow>,
    ) {
        self.metrics
            .notifications_created
            .fetch_add(1, Ordering::Relaxed);
        let (user, seq, id) = (view.0.recipient_id, view.0.seq, view.0.id);
        let committed_ms = view.0.created_at.and_utc().timestamp_millis();
        let frame = notification_frame(view).into();
        let event = Event::Notification {
            user,
            seq,
            id,
            committed_ms,
            pushes,
            frame,
            group: group.map(|row| GroupChange {
                version: row.version,
                frame: group_frame(row).into(),
            }),
        };
        self.bus.publish(event).await;
    }

    /// What a write tells its recipient: its notification, then the groups it changed. The
    /// recipient's first changed group travels in the notification's message.
    pub(crate) async fn deliver(&self, delivery: Delivery) {
        if delivery.pushes > 0 {
            self.push.queued();
        }
        let mut groups = delivery.groups.as_slice();
        if let Some(view) = delivery.notification {
            let recipient = view.0.recipient_id;
            let joined = groups.first().filter(|g| g.recipient_id == recipient);
            if joined.is_some() {
                groups = &groups[1..];
            }
            self.notification(view, delivery.pushes > 0, joined).await;
        }
        self.groups(groups).await;
    }

    /// Changed groups, each to every socket of its recipient opened with `?groups=1`.
    pub(crate) async fn groups(&self, rows: &[GroupRow]) {
        for row in rows {
            let event = Event::Group {
                user: row.recipient_id,
                version: row.version,
                frame: group_frame(row).into(),
            };
            self.bus.publish(event).await;
        }
    }

    /// A like or unlike: what it tells the author, and the new count to watchers.
    /// Both at once: on Redis the two PUBLISHes share one round trip (the connection pipelines
    /// them); they go to different channels, so their order does not matter.
    pub(crate) async fn like(&self, outcome: LikeOutcome) {
        let notify = self.deliver(outcome.delivery);
        let count = async {
            if outcome.changed {
                let event = Event::LikeCount {
                    post: outcome.post_id,
                    seq: outcome.like_seq,
                    count: outcome.like_count,
                };
                self.bus.publish(event).await;
            }
        };
        futures_util::join!(notify, count);
    }

    /// Something was marked read: the groups that changed, then `user`'s unread counts.
    pub(crate) async fn read(&self, user: UserId, outcome: &ReadOutcome) {
        self.groups(&outcome.groups).await;
        let event = Event::Read {
            user,
            unread: outcome.unread,
            unread_groups: outcome.unread_groups,
        };
        self.bus.publish(event).await;
    }

    /// `user`'s notifications `ids` were deleted (their actor was blocked): every socket of the
    /// user drops them, then the groups that changed, and the unread counts follow.
    pub(crate) async fn removed(&self, user: UserId, ids: &[i64], after: &ReadOutcome) {
        let unread_count = after.unread;
        if !ids.is_empty() {
            let frame = ServerFrame::NotificationsRemoved {
                notification_ids: ids,
                unread_count,
            };
            let event = Event::Frame {
                user,
                frame: frame.to_json().into(),
            };
            self.bus.publish(event).await;
        }
        self.read(user, after).await;
    }

    /// A token of `user` was revoked: its sockets close with 4401 on every instance, and every
    /// instance's copy of the revocations learns its ids.
    pub(crate) async fn revoke(&self, user: UserId, claims: &crate::auth::Claims) {
        let ids = claims.revocation_ids.clone();
        let expires_secs = claims.expires_naive().and_utc().timestamp();
        self.bus
            .publish(Event::Revocation { ids, expires_secs })
            .await;
        let token_id = claims.token_id().to_owned();
        self.bus.publish(Event::Revoke { user, token_id }).await;
    }
}

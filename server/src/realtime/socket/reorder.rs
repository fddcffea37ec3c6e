//! Notifications and group changes that arrive ahead of one still on its way: held for a moment
//! (`PULSE_WS_GAP_WAIT_MS`) so that the missing one can arrive from the bus, and only then read
//! from the database (the rule in the parent module's docs).
//!
//! Two writers of one recipient publish in their own time: another instance's notification
//! committed first but published after this instance's, or the likes of one batch committed
//! together and were published by their requests in any order. Read at once, every such
//! overtaking cost the socket a database read, during which everything behind it waited; one
//! popular person's socket made hundreds of reads a second. Held, the missing one is usually
//! there within a millisecond or two.

use std::collections::VecDeque;
use std::time::Duration;

use pulse_schema::NotificationId;
use tokio::time::Instant;

use crate::realtime::queue::{QueuedGroup, QueuedNotification};

/// What a socket holds back; nothing, and nothing allocated, while its stream has no gap.
#[derive(Debug, Default)]
pub(super) struct Held(Option<Box<Waiting>>);

#[derive(Debug)]
struct Waiting {
    notifications: Vec<QueuedNotification>,
    groups: Vec<QueuedGroup>,
    /// When the oldest of them was held: the database is read `wait` after it.
    since: Instant,
}

/// What was held when the wait ran out: the highest notification (seq, id) and group version.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Missing {
    pub(super) notification: Option<(i64, NotificationId)>,
    pub(super) group_version: Option<i64>,
}

impl Held {
    /// The held notifications and `incoming`, in seq order (the queue has them in the order
    /// they arrived): the caller sends what follows its cursor and holds the rest again
    /// ([`Self::hold_notification`]); in seq order, nothing after a gap can close it.
    pub(super) fn notifications_with(
        &mut self,
        incoming: VecDeque<QueuedNotification>,
    ) -> Vec<QueuedNotification> {
        let held = self.0.as_mut().map(|w| &mut w.notifications);
        in_order(held, incoming, |n| n.seq)
    }

    /// [`Self::notifications_with`] for group changes, in version order.
    pub(super) fn groups_with(&mut self, incoming: VecDeque<QueuedGroup>) -> Vec<QueuedGroup> {
        let held = self.0.as_mut().map(|w| &mut w.groups);
        in_order(held, incoming, |g| g.version)
    }

    pub(super) fn hold_notification(&mut self, notification: QueuedNotification) {
        self.waiting().notifications.push(notification);
    }

    pub(super) fn hold_group(&mut self, group: QueuedGroup) {
        self.waiting().groups.push(group);
    }

    /// Ends a delivery: with nothing held any more, the gap closed and the wait is over.
    pub(super) fn settle(&mut self) {
        if self.len() == 0 {
            self.0 = None;
        }
    }

    /// Notifications and group changes held.
    pub(super) fn len(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |w| w.notifications.len() + w.groups.len())
    }

    /// When the database must be read for what is still missing.
    pub(super) fn deadline(&self, wait: Duration) -> Option<Instant> {
        self.0.as_ref().map(|waiting| waiting.since + wait)
    }

    /// Gives up waiting: everything held is dropped (the database read that follows sends it,
    /// as it was committed before it was published), and its highest seq and version returned.
    pub(super) fn take(&mut self) -> Missing {
        let Some(waiting) = self.0.take() else {
            return Missing::default();
        };
        Missing {
            notification: waiting.notifications.iter().map(|n| (n.seq, n.id)).max(),
            group_version: waiting.groups.iter().map(|g| g.version).max(),
        }
    }

    fn waiting(&mut self) -> &mut Waiting {
        self.0.get_or_insert_with(|| {
            Box::new(Waiting {
                notifications: Vec::new(),
                groups: Vec::new(),
                since: Instant::now(),
            })
        })
    }
}

/// What was `held` (taken out) and `incoming`, sorted by `key`.
fn in_order<T>(held: Option<&mut Vec<T>>, incoming: VecDeque<T>, key: fn(&T) -> i64) -> Vec<T> {
    let mut all = held.map(std::mem::take).unwrap_or_default();
    all.extend(incoming);
    all.sort_by_key(key);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(seq: i64) -> QueuedNotification {
        QueuedNotification {
            seq,
            id: NotificationId(seq * 10),
            committed_ms: 0,
            pushes: false,
            frame: "n".into(),
        }
    }

    fn group(version: i64) -> QueuedGroup {
        QueuedGroup {
            version,
            frame: "g".into(),
        }
    }

    fn seqs(notifications: &[QueuedNotification]) -> Vec<i64> {
        notifications.iter().map(|n| n.seq).collect()
    }

    #[test]
    fn nothing_held_allocates_nothing_and_has_no_deadline() {
        let mut held = Held::default();
        let out = held.notifications_with(VecDeque::from([notification(3), notification(2)]));
        assert_eq!(
            seqs(&out),
            [2, 3],
            "in seq order, not in the order they arrived"
        );
        held.settle();
        assert!(held.0.is_none());
        assert_eq!(held.deadline(Duration::from_millis(10)), None);
        assert_eq!(held.take(), Missing::default());
    }

    #[test]
    fn held_notifications_come_back_merged_in_seq_order_with_the_next_ones() {
        let mut held = Held::default();
        held.hold_notification(notification(5));
        held.hold_notification(notification(7));
        let out = held.notifications_with(VecDeque::from([notification(6), notification(4)]));
        assert_eq!(seqs(&out), [4, 5, 6, 7]);
        assert_eq!(held.len(), 0);
        held.settle();
        assert!(held.0.is_none(), "the gap closed: nothing is kept");
    }

    #[test]
    fn the_wait_runs_from_the_first_hold_while_anything_stays_held() {
        let mut held = Held::default();
        let wait = Duration::from_millis(10);
        let before = Instant::now();
        held.hold_group(group(3));
        let Some(deadline) = held.deadline(wait) else {
            panic!("a hold starts the wait");
        };
        assert!(deadline >= before + wait);
        // Taken out and held again (still ahead): the wait does not start over.
        let again = held.groups_with(VecDeque::from([group(4)]));
        for g in again {
            held.hold_group(g);
        }
        held.settle();
        assert_eq!(held.deadline(wait), Some(deadline));
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn giving_up_returns_the_highest_held_and_holds_nothing() {
        let mut held = Held::default();
        held.hold_notification(notification(9));
        held.hold_notification(notification(8));
        held.hold_group(group(4));
        held.hold_group(group(6));
        assert_eq!(
            held.take(),
            Missing {
                notification: Some((9, NotificationId(90))),
                group_version: Some(6),
            }
        );
        assert_eq!(held.len(), 0);
        assert_eq!(held.deadline(Duration::ZERO), None);
    }
}

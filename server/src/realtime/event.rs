//! Events that fan out to instances, and their compact text encoding for Redis.
//!
//! A notification's frame is serialised once by the publisher and shared (a reference-counted
//! `ByteString`, which actix-ws sends without copying it first) by every
//! socket that receives it. On Redis the message is a header line followed by the frame:
//! `N <user> <seq> <id> <committed_ms> <pushes 0|1>\n<frame>`, or with the change the
//! notification made to its group `N … <pushes> <version>\n<frame>\n<group frame>` (one message
//! per like, not two), a group change alone `G <user> <version>\n<frame>`; the other kinds are
//! one line.

use bytestring::ByteString;
use pulse_schema::{NotificationId, PostId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A committed notification for `user`; `seq` is the recipient's own counter.
    Notification {
        user: UserId,
        seq: i64,
        id: NotificationId,
        committed_ms: i64,
        /// Pushes were queued for it: a socket that shows it cancels them.
        pushes: bool,
        frame: ByteString,
        /// The change it made to its group, travelling with it (one message instead of two):
        /// delivered right after it, as an [`Event::Group`] would be.
        group: Option<GroupChange>,
    },
    /// A post's like count changed; `seq` orders changes of one post.
    LikeCount { post: PostId, seq: i64, count: i64 },
    /// `user`'s unread counts changed (marked read on some device): notifications, groups.
    Read {
        user: UserId,
        unread: i64,
        unread_groups: i64,
    },
    /// One of `user`'s notification groups changed; `version` is the user's group version of
    /// the change, `frame` the `group` or `group_removed` frame.
    Group {
        user: UserId,
        version: i64,
        frame: ByteString,
    },
    /// A token of `user` was revoked: close its sockets with 4401.
    Revoke { user: UserId, token_id: String },
    /// A token's revocation ids and expiry (Unix seconds), for every instance's copy of the
    /// revoked tokens (`auth::sessions`); on [`REVOCATIONS_CHANNEL`], which every instance hears.
    Revocation { ids: Vec<String>, expires_secs: i64 },
    /// A frame for every socket of `user`, already serialised (say, notifications removed).
    Frame { user: UserId, frame: ByteString },
}

/// A group change: the user's group version it took, and its `group` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    pub version: i64,
    pub frame: ByteString,
}

/// The channel of [`Event::Revocation`]: subscribed by every instance, for good.
pub const REVOCATIONS_CHANNEL: &str = "revocations";

/// The Redis channel an event travels on.
pub fn user_channel(user: UserId) -> String {
    format!("u:{}", user.0)
}

pub fn post_channel(post: PostId) -> String {
    format!("p:{}", post.0)
}

impl Event {
    /// Whether every receiver can take this event twice with no effect the second time:
    /// notifications and group changes carry their recipient's sequence, like counts their
    /// post's, and revocations are sets. (Unread counts and raw frames do not.)
    pub fn repeatable(&self) -> bool {
        match self {
            Event::Notification { .. }
            | Event::Group { .. }
            | Event::LikeCount { .. }
            | Event::Revoke { .. }
            | Event::Revocation { .. } => true,
            Event::Read { .. } | Event::Frame { .. } => false,
        }
    }

    pub fn channel(&self) -> String {
        match self {
            Event::Notification { user, .. }
            | Event::Read { user, .. }
            | Event::Group { user, .. }
            | Event::Revoke { user, .. }
            | Event::Frame { user, .. } => user_channel(*user),
            Event::LikeCount { post, .. } => post_channel(*post),
            Event::Revocation { .. } => REVOCATIONS_CHANNEL.to_owned(),
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Event::Notification {
                user,
                seq,
                id,
                committed_ms,
                pushes,
                frame,
                group,
            } => {
                let pushes = u8::from(*pushes);
                let head = format!("N {} {seq} {} {committed_ms} {pushes}", user.0, id.0);
                // Frames are compact JSON: no raw newline, so one separates the two.
                match group {
                    Some(g) => format!("{head} {}\n{frame}\n{}", g.version, g.frame),
                    None => format!("{head}\n{frame}"),
                }
            }
            Event::LikeCount { post, seq, count } => format!("C {} {seq} {count}", post.0),
            Event::Read {
                user,
                unread,
                unread_groups,
            } => format!("R {} {unread} {unread_groups}", user.0),
            Event::Group {
                user,
                version,
                frame,
            } => format!("G {} {version}\n{frame}", user.0),
            Event::Revoke { user, token_id } => format!("X {} {token_id}", user.0),
            Event::Revocation { ids, expires_secs } => {
                format!("V {expires_secs} {}", ids.join(" "))
            }
            Event::Frame { user, frame } => format!("F {}\n{frame}", user.0),
        }
    }

    pub fn decode(payload: &str) -> Option<Event> {
        let (header, body) = payload.split_once('\n').unwrap_or((payload, ""));
        let mut fields = header.split(' ');
        let kind = fields.next()?;
        let mut int = || fields.next().and_then(|f| f.parse::<i64>().ok());
        match kind {
            "N" => {
                let (user, seq, id, committed_ms, pushes) =
                    (int()?, int()?, int()?, int()?, int()? == 1);
                let group = match int() {
                    Some(version) => {
                        let (frame, group) = body.split_once('\n')?;
                        Some((
                            frame,
                            GroupChange {
                                version,
                                frame: ByteString::from(group),
                            },
                        ))
                    }
                    None => None,
                };
                let (frame, group) = match group {
                    Some((frame, change)) => (frame, Some(change)),
                    None => (body, None),
                };
                Some(Event::Notification {
                    user: UserId(user),
                    seq,
                    id: NotificationId(id),
                    committed_ms,
                    pushes,
                    frame: ByteString::from(frame),
                    group,
                })
            }
            "C" => Some(Event::LikeCount {
                post: PostId(int()?),
                seq: int()?,
                count: int()?,
            }),
            "R" => Some(Event::Read {
                user: UserId(int()?),
                unread: int()?,
                unread_groups: int()?,
            }),
            "G" => Some(Event::Group {
                user: UserId(int()?),
                version: int()?,
                frame: ByteString::from(body),
            }),
            "F" => Some(Event::Frame {
                user: UserId(int()?),
                frame: ByteString::from(body),
            }),
            "X" => {
                let user = UserId(int()?);
                let token_id = fields.next()?.to_owned();
                Some(Event::Revoke { user, token_id })
            }
            "V" => {
                let expires_secs = int()?;
                let ids: Vec<String> = fields.map(str::to_owned).collect();
                (!ids.is_empty()).then_some(Event::Revocation { ids, expires_secs })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_the_wire() {
        let events = [
            Event::Notification {
                user: UserId(7),
                seq: 3,
                id: NotificationId(99),
                committed_ms: 1_700_000_000_000,
                pushes: true,
                frame: ByteString::from_static("{\"type\":\"notification\",\"x\":\"a\\nb\"}"),
                group: None,
            },
            Event::Notification {
                user: UserId(7),
                seq: 4,
                id: NotificationId(100),
                committed_ms: 1_700_000_000_001,
                pushes: false,
                frame: ByteString::from_static("{\"type\":\"notification\"}"),
                group: Some(GroupChange {
                    version: 12,
                    frame: ByteString::from_static("{\"type\":\"group\",\"t\":\"a\\nb\"}"),
                }),
            },
            Event::LikeCount {
                post: PostId(4),
                seq: 9,
                count: 12,
            },
            Event::Read {
                user: UserId(7),
                unread: 0,
                unread_groups: 2,
            },
            Event::Group {
                user: UserId(7),
                version: 12,
                frame: ByteString::from_static("{\"type\":\"group_removed\"}"),
            },
            Event::Revoke {
                user: UserId(7),
                token_id: "abcdef".into(),
            },
            Event::Frame {
                user: UserId(7),
                frame: ByteString::from_static("{\"type\":\"notifications_removed\"}"),
            },
        ];
        for event in events {
            assert_eq!(Event::decode(&event.encode()), Some(event));
        }
        assert_eq!(Event::decode("Z 1 2"), None);
        assert_eq!(Event::decode("N 1 x"), None);
    }
}

//! The socket's frames (all JSON text frames with a `"type"`), as documented in `docs/API.md`.

use serde::{Deserialize, Serialize};

use pulse_schema::groups::GroupRow;
use pulse_schema::notifications::NotificationView;

use crate::views::{Notification, NotificationGroup};

/// Server → client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Hello {
        user_id: i64,
        connection_id: &'a str,
        heartbeat_s: u64,
    },
    Notification {
        notification: &'a Notification,
    },
    LikeCount {
        post_id: i64,
        like_count: i64,
    },
    Read {
        unread_count: i64,
        /// Sockets opened with `?groups=1` only.
        #[serde(skip_serializing_if = "Option::is_none")]
        unread_group_count: Option<i64>,
    },
    /// A group created or changed (`?groups=1`).
    Group {
        group: &'a NotificationGroup,
    },
    /// A group that no longer exists (`?groups=1`).
    GroupRemoved {
        group_id: i64,
        version: i64,
    },
    Gap {
        before_id: i64,
    },
    /// Notifications that no longer exist (their actor was blocked), and the unread count after.
    NotificationsRemoved {
        notification_ids: &'a [i64],
        unread_count: i64,
    },
    /// Confirms a `subscribe`: like counts of these posts now reach this socket from every
    /// instance (an addition to the contract's frames).
    Subscribed {
        post_ids: &'a [i64],
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
    Pong,
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to an error frame regardless.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"encoding"}"#.to_owned()
        })
    }
}

/// Client → server.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Subscribe { post_ids: Vec<i64> },
    Unsubscribe { post_ids: Vec<i64> },
    Ping,
}

/// Why a client frame was refused: (`error.code`, `error.message`).
pub type FrameError = (&'static str, String);

/// Parses one client text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ("invalid_json", format!("not JSON: {e}")))?;
    let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if !matches!(kind, "subscribe" | "unsubscribe" | "ping") {
        return Err((
            "unknown_type",
            "type must be subscribe, unsubscribe or ping".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|e| ("invalid_frame", e.to_string()))
}

/// The `group` frame for a group, or `group_removed` for a removed one.
pub(crate) fn group_frame(row: &GroupRow) -> String {
    if row.removed {
        return ServerFrame::GroupRemoved {
            group_id: row.id.0,
            version: row.version,
        }
        .to_json();
    }
    let group = NotificationGroup::from(row);
    ServerFrame::Group { group: &group }.to_json()
}

/// The `notification` frame for a row.
pub(crate) fn notification_frame(view: NotificationView) -> String {
    let notification = Notification::from(view);
    ServerFrame::Notification {
        notification: &notification,
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_or_explain_why_not() {
        assert_eq!(
            parse_client_frame(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"subscribe","post_ids":[1,2]}"#),
            Ok(ClientFrame::Subscribe {
                post_ids: vec![1, 2]
            })
        );
        let cases = [
            ("nope", "invalid_json"),
            (r#"{"type":"dance"}"#, "unknown_type"),
            (r#"{"type":"subscribe","post_ids":"x"}"#, "invalid_frame"),
            (r#"[1,2]"#, "unknown_type"),
        ];
        for (input, code) in cases {
            assert_eq!(
                parse_client_frame(input).map_err(|e| e.0),
                Err(code),
                "{input}"
            );
        }
    }
}

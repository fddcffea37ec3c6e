//! What a push carries, decrypted: `{"notification": Notification, "unread_count": N,
//! "group": NotificationGroup}` as JSON, at most 4 KiB once encrypted (long texts are cut).

use serde::Serialize;

use super::encrypt::OVERHEAD;
use crate::views::{Notification, NotificationGroup};

/// The largest plaintext that fits a 4096-byte push body.
pub(crate) const MAX_PLAINTEXT: usize = 4096 - OVERHEAD;

#[derive(Serialize)]
struct Payload<'a> {
    notification: &'a Notification,
    unread_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a NotificationGroup>,
}

/// The JSON to encrypt, cut to [`MAX_PLAINTEXT`]: the notification's text (a long comment)
/// loses its end first, marked with an ellipsis.
pub(crate) fn build(
    mut notification: Notification,
    unread_count: i64,
    group: Option<&NotificationGroup>,
) -> Vec<u8> {
    loop {
        let json = serde_json::to_vec(&Payload {
            notification: &notification,
            unread_count,
            group,
        })
        .unwrap_or_default();
        let excess = json.len().saturating_sub(MAX_PLAINTEXT);
        if excess == 0 || notification.text.is_empty() {
            return json;
        }
        // Drop at least `excess` bytes of text (and room for the ellipsis), at a char boundary.
        let keep = notification.text.len().saturating_sub(excess + 3);
        let cut = (0..=keep)
            .rev()
            .find(|i| notification.text.is_char_boundary(*i))
            .unwrap_or(0);
        notification.text.truncate(cut);
        notification.text.push('…');
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::views::UserSummary;

    fn notification(text: String) -> Notification {
        Notification {
            id: 1,
            kind: "comment".into(),
            actor: UserSummary {
                id: 2,
                username: "bob".into(),
                display_name: "Bob".into(),
            },
            post_id: Some(3),
            comment_id: Some(4),
            text,
            created_at: "2026-12-02T10:00:00.000Z".into(),
            read: false,
            group_id: Some(5),
        }
    }

    #[test]
    fn long_texts_are_cut_to_fit_and_short_ones_kept() {
        let short = build(notification("bob commented: hi".into()), 3, None);
        let value: serde_json::Value = serde_json::from_slice(&short).expect("json");
        assert_eq!(value["notification"]["text"], "bob commented: hi");
        assert_eq!(value["unread_count"], 3);
        // 2,200 one-byte characters (the longest comment) fit; two- and four-byte ones do not.
        let ascii = build(notification("x".repeat(2200)), 3, None);
        let value: serde_json::Value = serde_json::from_slice(&ascii).expect("json");
        assert_eq!(
            value["notification"]["text"].as_str().map(str::len),
            Some(2200)
        );
        for filler in ["é", "😀"] {
            let long = build(notification(filler.repeat(2200)), 3, None);
            assert!(long.len() <= MAX_PLAINTEXT, "{filler}: {}", long.len());
            let value: serde_json::Value = serde_json::from_slice(&long).expect("json");
            assert!(value["notification"]["text"]
                .as_str()
                .expect("text")
                .ends_with('…'));
        }
    }
}

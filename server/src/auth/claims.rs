//! What a verified token says ([`Claims`]) and what it is presented for ([`Operation`]): the
//! leaf of authentication that admission and the socket task read without knowing the keys.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::NaiveDateTime;
use pulse_schema::UserId;

/// What a verified token says.
#[derive(Debug, Clone)]
pub struct Claims {
    pub user_id: UserId,
    /// When the login token (not a ticket) expires.
    pub expires_at: SystemTime,
    /// Revocation ids of every block, hex; the first identifies the login token.
    pub revocation_ids: Vec<String>,
    /// Whether this is an attenuated socket ticket.
    pub is_ticket: bool,
}

impl Claims {
    pub fn token_id(&self) -> &str {
        self.revocation_ids
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn expires_naive(&self) -> NaiveDateTime {
        let secs = self
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        chrono::DateTime::from_timestamp(secs as i64, 0)
            .unwrap_or_default()
            .naive_utc()
    }
}

/// What the presented token is being used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Rest,
    Socket,
}

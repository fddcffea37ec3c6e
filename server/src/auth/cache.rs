//! Login tokens already verified, by their exact text, bounded in number.

use std::time::SystemTime;

use super::claims::Claims;

/// Login tokens already verified (signature and Datalog), by their exact text, so a request
/// costs a map lookup instead of an ed25519 check and an authorizer run. Safe because the
/// same bytes always verify the same way; the only thing that changes with time, expiry, is
/// checked on every hit. Revocation is never cached (see `routes::extract`). Tickets are not
/// cached (each is single-use). Bounded by `PULSE_TOKEN_CACHE_SIZE`: when full it is emptied.
#[derive(Default)]
pub(super) struct VerifiedTokens {
    claims: dashmap::DashMap<Box<str>, Claims>,
    capacity: usize,
}

impl VerifiedTokens {
    /// Remembers up to `capacity` tokens (0: none).
    pub(super) fn new(capacity: usize) -> Self {
        VerifiedTokens {
            claims: dashmap::DashMap::new(),
            capacity,
        }
    }

    pub(super) fn get(&self, token: &str) -> Option<Claims> {
        let claims = self.claims.get(token)?.clone();
        if claims.expires_at > SystemTime::now() {
            return Some(claims);
        }
        self.claims.remove(token);
        None
    }

    pub(super) fn remember(&self, token: &str, claims: &Claims) {
        if self.capacity == 0 || claims.is_ticket {
            return;
        }
        if self.claims.len() >= self.capacity {
            self.claims.clear();
        }
        self.claims.insert(token.into(), claims.clone());
    }
}

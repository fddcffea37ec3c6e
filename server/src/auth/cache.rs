//! Login tokens already verified, by their exact text, bounded in number.

use std::time::SystemTime;

use quick_cache::sync::Cache;

use super::claims::Claims;

/// Login tokens already verified (signature and Datalog), by their exact text, so a request
/// costs a map lookup instead of an ed25519 check and an authorizer run. Safe because the
/// same bytes always verify the same way; the only thing that changes with time, expiry, is
/// checked on every hit. Revocation is never cached (see `routes::extract`). Tickets are not
/// cached (each is single-use). Bounded by `PULSE_TOKEN_CACHE_SIZE`: when full, the entries
/// least likely to be used again are evicted one by one (quick_cache's S3-FIFO), so a full
/// cache never makes every later request verify again at once.
pub(super) struct VerifiedTokens {
    claims: Option<Cache<Box<str>, Claims>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens::new(0)
    }
}

impl VerifiedTokens {
    /// Remembers up to `capacity` tokens (0: none).
    pub(super) fn new(capacity: usize) -> Self {
        VerifiedTokens {
            claims: (capacity > 0).then(|| Cache::new(capacity)),
        }
    }

    pub(super) fn get(&self, token: &str) -> Option<Claims> {
        let cache = self.claims.as_ref()?;
        let claims = cache.get(token)?;
        if claims.expires_at > SystemTime::now() {
            return Some(claims);
        }
        cache.remove(token);
        None
    }

    pub(super) fn remember(&self, token: &str, claims: &Claims) {
        if let (Some(cache), false) = (&self.claims, claims.is_ticket) {
            cache.insert(token.into(), claims.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pulse_schema::UserId;

    use super::*;

    fn claims(user: i64) -> Claims {
        Claims {
            user_id: UserId(user),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
            revocation_ids: vec![format!("{user:064x}")],
            is_ticket: false,
        }
    }

    #[test]
    fn a_full_cache_evicts_some_tokens_and_keeps_most() {
        let cache = VerifiedTokens::new(1000);
        for user in 0..5000 {
            cache.remember(&format!("token-{user}"), &claims(user));
        }
        let kept = (0..5000)
            .filter(|user| cache.get(&format!("token-{user}")).is_some())
            .count();
        assert!(
            (500..=1100).contains(&kept),
            "kept {kept} of a 1000-token cache"
        );
    }

    #[test]
    fn an_expired_token_is_not_served_from_the_cache() {
        let cache = VerifiedTokens::new(10);
        let mut expired = claims(1);
        expired.expires_at = SystemTime::now() - Duration::from_secs(1);
        cache.remember("old", &expired);
        assert!(cache.get("old").is_none());
    }
}

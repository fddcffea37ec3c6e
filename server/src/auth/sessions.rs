//! Who a verified token belongs to, without a database round trip: this instance's copy of the
//! revoked tokens, and the names of the users it has seen.
//!
//! The copy is *current* only while nothing can have been missed: loaded from the database after
//! this instance started listening for revocations (every instance's logouts, through the bus),
//! and not since stale (the bus lost its connection). While it is not current, a request's token
//! is checked in the database as before, so a revocation is never missed: at worst it costs a
//! round trip. Logging out here adds to the copy at once; elsewhere, as soon as the bus brings it.
//!
//! Names are cached for good: a user's id, username and display name never change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::NaiveDateTime;
use pulse_schema::users::UserSummaryRow;
use pulse_schema::{tokens, users, Db, DbResult, UserId};
use quick_cache::sync::Cache;

use super::Claims;

/// Where a request's revocation check was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckedIn {
    Memory,
    Database,
}

pub struct Sessions {
    revoked: Revoked,
    /// Whether `revoked` holds every revocation committed anywhere (see the module docs).
    current: AtomicBool,
    /// Bumped whenever the copy goes stale, so a load that began before cannot make it current.
    staled: AtomicU64,
    names: Cache<UserId, UserSummaryRow>,
    /// Where revocations are loaded from (the process-wide pool).
    db: Db,
}

impl Sessions {
    /// Keeps the names of up to `names_capacity` users; loads revocations from `db`.
    pub fn new(db: Db, names_capacity: usize) -> Sessions {
        Sessions {
            revoked: Revoked::default(),
            current: AtomicBool::new(false),
            staled: AtomicU64::new(0),
            names: Cache::new(names_capacity.max(1)),
            db,
        }
    }

    /// The token's user, unless it was revoked (or the user does not exist); and where that was
    /// decided.
    pub async fn active_user(
        &self,
        db: &Db,
        claims: &Claims,
    ) -> DbResult<(Option<UserSummaryRow>, CheckedIn)> {
        if !self.current.load(Ordering::Acquire) {
            let user = tokens::active_user(db, claims.user_id, &claims.revocation_ids).await?;
            if let Some(user) = &user {
                self.names.insert(user.id, user.clone());
            }
            return Ok((user, CheckedIn::Database));
        }
        if self.revoked.any(&claims.revocation_ids) {
            return Ok((None, CheckedIn::Memory));
        }
        Ok((self.name(db, claims.user_id).await?, CheckedIn::Memory))
    }

    /// The user's names, from the cache or else the database.
    async fn name(&self, db: &Db, user: UserId) -> DbResult<Option<UserSummaryRow>> {
        if let Some(found) = self.names.get(&user) {
            return Ok(Some(found));
        }
        let found = users::summary(db, user).await?;
        if let Some(found) = &found {
            self.names.insert(user, found.clone());
        }
        Ok(found)
    }

    /// A revocation committed here, or brought by the bus from another instance.
    pub fn revoke(&self, ids: &[String], expires_at: NaiveDateTime) {
        self.revoked
            .insert(ids.iter().map(|id| (id.as_str().into(), expires_at)));
    }

    /// Loads every unexpired revocation from the database (added to what is known: revocations
    /// only ever grow until they expire), then trusts the copy, unless it went stale meanwhile.
    /// Call it once the bus listens for revocations, so that any committed after this read
    /// arrives through it.
    pub async fn load(&self) -> DbResult<usize> {
        let staled = self.staled.load(Ordering::Acquire);
        let count = self.merge().await?;
        if self.staled.load(Ordering::Acquire) == staled {
            self.current.store(true, Ordering::Release);
        }
        Ok(count)
    }

    /// Adds the database's unexpired revocations to the copy (whether it is current is left as
    /// it is); returns how many the database has.
    pub async fn merge(&self) -> DbResult<usize> {
        let now = chrono::Utc::now().naive_utc();
        let rows = tokens::unexpired_revocations(&self.db, now).await?;
        let count = rows.len();
        self.revoked.insert(
            rows.into_iter()
                .map(|(id, expires_at)| (id.into_boxed_str(), expires_at)),
        );
        Ok(count)
    }

    /// [`Self::load`] in the background (the bus calls it from its subscriber's task).
    pub fn reload_soon(self: &Arc<Self>) {
        let sessions = self.clone();
        tokio::spawn(async move {
            match sessions.load().await {
                Ok(count) => tracing::info!(revocations = count, "revoked tokens reloaded"),
                Err(error) => {
                    tracing::warn!(%error, "reloading revoked tokens failed; the database answers")
                }
            }
        });
    }

    /// Revocations may have been missed (the bus lost its connection): check in the database
    /// until [`Self::load`] runs again.
    pub fn stale(&self) {
        self.staled.fetch_add(1, Ordering::AcqRel);
        self.current.store(false, Ordering::Release);
    }

    /// Forgets revocations of tokens that have expired; returns how many.
    pub fn purge_expired(&self) -> usize {
        self.revoked.purge(chrono::Utc::now().naive_utc())
    }
}

/// Revocation id → the revoked token's expiry (after which the token is useless anyway).
#[derive(Default)]
struct Revoked(RwLock<HashMap<Box<str>, NaiveDateTime>>);

impl Revoked {
    fn any(&self, ids: &[String]) -> bool {
        let map = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ids.iter().any(|id| map.contains_key(id.as_str()))
    }

    fn insert(&self, entries: impl IntoIterator<Item = (Box<str>, NaiveDateTime)>) {
        let mut map = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.extend(entries);
    }

    fn purge(&self, now: NaiveDateTime) -> usize {
        let mut map = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = map.len();
        map.retain(|_, expires_at| *expires_at > now);
        before - map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_ids_are_found_until_they_expire() {
        let revoked = Revoked::default();
        let now = chrono::Utc::now().naive_utc();
        let hour = chrono::Duration::hours(1);
        revoked.insert([("a".into(), now + hour), ("b".into(), now - hour)]);
        assert!(revoked.any(&["x".into(), "a".into()]));
        assert!(revoked.any(&["b".into()]));
        assert_eq!(revoked.purge(now), 1);
        assert!(!revoked.any(&["b".into()]));
        assert!(revoked.any(&["a".into()]));
    }
}

//! The `revoked_tokens` and `used_tickets` tables: logout and single-use socket tickets, and
//! the per-request check that a token is still good (which also reads its user).
//!
//! Both hold biscuit revocation ids (hex) with the token's expiry, so rows can be purged once
//! the token could no longer be used anyway.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbResult};
use crate::ids::{NotificationId, UserId};
use crate::schema::{notifications, revoked_tokens, used_tickets, users};
use crate::users::UserSummaryRow;

/// Records revocation ids as revoked (idempotent).
pub async fn revoke(db: &Db, revocation_ids: &[String], expires_at: NaiveDateTime) -> DbResult<()> {
    // One row at a time: SQLite has no batch insert with ON CONFLICT, and a token has 1-3 ids.
    crate::transaction!(db.write(), conn => {
        for id in revocation_ids {
            diesel::insert_into(revoked_tokens::table)
                .values((revoked_tokens::revocation_id.eq(id), revoked_tokens::expires_at.eq(expires_at)))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
        }
        Ok(())
    })
}

/// The token's user, if none of the token's revocation ids has been revoked (and the user
/// exists). One statement: every authenticated request runs it, and the writes that notify take
/// the actor's name from it instead of reading it again.
pub async fn active_user(
    db: &Db,
    user: UserId,
    revocation_ids: &[String],
) -> DbResult<Option<UserSummaryRow>> {
    crate::run!(db.read(), conn => {
        users::table
            .find(user)
            .filter(diesel::dsl::not(diesel::dsl::exists(
                revoked_tokens::table.filter(revoked_tokens::revocation_id.eq_any(revocation_ids)),
            )))
            .select(UserSummaryRow::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(Into::into)
    })
}

/// Every revocation id of a token that has not expired yet, with that expiry: the copy each
/// instance keeps in memory so that checking a request's token takes no round trip.
pub async fn unexpired_revocations(
    db: &Db,
    now: NaiveDateTime,
) -> DbResult<Vec<(String, NaiveDateTime)>> {
    crate::run!(db.read(), conn => {
        revoked_tokens::table
            .filter(revoked_tokens::expires_at.gt(now))
            .select((revoked_tokens::revocation_id, revoked_tokens::expires_at))
            .load(conn)
            .await
            .map_err(Into::into)
    })
}

/// What a socket needs to open, in one statement: [`active_user`], and where the user's
/// notification stream stands now, the newest notification's (`seq`, `id`), `(0, 0)` for none.
/// A socket open used to read the two in separate statements; at thousands of opens a second
/// the second round trip was a third of the database's work.
pub async fn active_user_and_latest(
    db: &Db,
    user: UserId,
    revocation_ids: &[String],
) -> DbResult<Option<(UserSummaryRow, (i64, NotificationId))>> {
    let row: Option<(UserSummaryRow, Option<i64>, Option<NotificationId>)> = crate::run!(db.read(), conn => {
        users::table
            .find(user)
            .filter(diesel::dsl::not(diesel::dsl::exists(
                revoked_tokens::table.filter(revoked_tokens::revocation_id.eq_any(revocation_ids)),
            )))
            .select((
                UserSummaryRow::as_select(),
                newest_notification().select(notifications::seq).single_value(),
                newest_notification().select(notifications::id).single_value(),
            ))
            .first(conn)
            .await
            .optional()
            .map_err(crate::DbError::from)
    })?;
    Ok(row.map(|(user, seq, id)| (user, latest_or_none(seq, id))))
}

/// What [`admission_reads`] found for a batch of opening sockets: each existing user's newest
/// notification (`seq`, `id`), `(0, 0)` for none, and which of the asked revocation ids are
/// revoked.
#[derive(Debug)]
pub struct AdmissionReads {
    pub latest: Vec<(UserId, (i64, NotificationId))>,
    pub revoked: Vec<String>,
}

/// [`active_user_and_latest`] for many sockets at once, in two statements whatever their number:
/// the users with their newest notification, then the revoked ones among `revocation_ids`.
/// The caller matches each socket's token against both. Both statements read after every
/// socket of the batch was registered, which is all the socket-open ordering needs (see
/// `routes::live`); they need not share a snapshot.
pub async fn admission_reads(
    db: &Db,
    users: &[UserId],
    revocation_ids: &[String],
) -> DbResult<AdmissionReads> {
    crate::run!(db.read(), conn => {
        let rows: Vec<(UserId, Option<i64>, Option<NotificationId>)> = users::table
            .filter(users::id.eq_any(users))
            .select((
                users::id,
                newest_notification().select(notifications::seq).single_value(),
                newest_notification().select(notifications::id).single_value(),
            ))
            .load(conn)
            .await?;
        let revoked = if revocation_ids.is_empty() {
            Vec::new()
        } else {
            revoked_tokens::table
                .filter(revoked_tokens::revocation_id.eq_any(revocation_ids))
                .select(revoked_tokens::revocation_id)
                .load(conn)
                .await?
        };
        let latest = rows
            .into_iter()
            .map(|(user, seq, id)| (user, latest_or_none(seq, id)))
            .collect();
        Ok(AdmissionReads { latest, revoked })
    })
}

/// The newest notification of the `users` row the query is on (a correlated subquery: select
/// its `seq` or `id` with `.single_value()`).
#[diesel::dsl::auto_type]
fn newest_notification() -> _ {
    notifications::table
        .filter(notifications::recipient_id.eq(users::id))
        .order(notifications::id.desc())
        .limit(1_i64)
}

/// A user's newest notification (`seq`, `id`) from [`newest_notification`]'s two columns:
/// `(0, 0)` when the user has none.
fn latest_or_none(seq: Option<i64>, id: Option<NotificationId>) -> (i64, NotificationId) {
    (seq.unwrap_or(0), id.unwrap_or(NotificationId(0)))
}

/// Marks a ticket used; `true` the first time, `false` if it was already used.
pub async fn use_ticket(db: &Db, revocation_id: &str, expires_at: NaiveDateTime) -> DbResult<bool> {
    crate::run!(db.write(), conn => {
        let inserted = diesel::insert_into(used_tickets::table)
            .values((used_tickets::revocation_id.eq(revocation_id), used_tickets::expires_at.eq(expires_at)))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        Ok(inserted == 1)
    })
}

/// Deletes rows for tokens that have expired anyway; returns how many went.
pub async fn purge_expired(db: &Db, now: NaiveDateTime) -> DbResult<usize> {
    crate::run!(db.write(), conn => {
        let revoked = diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
            .execute(conn)
            .await?;
        let used = diesel::delete(used_tickets::table.filter(used_tickets::expires_at.lt(now)))
            .execute(conn)
            .await?;
        Ok(revoked + used)
    })
}

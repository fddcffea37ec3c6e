//! Web Push: the `push_subscriptions` table (one per device, that is per login token) and the
//! `push_jobs` queue.
//!
//! A notification's transaction inserts one job per subscription of the recipient's that takes
//! pushes of its kind (see [`crate::notifications`], the like's function `pulse_like`), due `push_delay_ms`
//! after the commit, so a push survives a restart of every instance. A socket that shows the
//! notification live meanwhile deletes its jobs ([`cancel_seen`]). Workers on every instance
//! [`claim`] due jobs for a lease: on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so two instances
//! never take the same job; on SQLite through its single writer. A job is deleted once sent
//! ([`done`]), moved for a retry ([`retry`]), or dropped with its subscription when the push
//! service says the subscription is gone. A claim whose instance died runs out and the job is
//! claimed again.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};
use diesel_async::RunQueryDsl;

use crate::db::{Backend, Db, DbError, DbResult};
use crate::groups::GroupRow;
use crate::ids::UserId;
use crate::notifications::NotificationRow;
use crate::schema::{notification_groups, notifications, push_jobs, push_subscriptions, users};
use crate::users::UserSummaryRow;

/// A device's subscription, as the browser's `PushSubscription` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = push_subscriptions, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Subscription {
    pub id: i64,
    pub user_id: UserId,
    pub token_id: String,
    pub endpoint: String,
    /// The user agent's P-256 public key, base64url.
    pub p256dh: String,
    /// The user agent's 16-byte auth secret, base64url.
    pub auth: String,
    pub created_at: NaiveDateTime,
    /// The token's expiry: no push is sent to the device after it.
    pub expires_at: NaiveDateTime,
}

/// A subscription to save for a token.
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    pub user_id: UserId,
    pub token_id: &'a str,
    pub endpoint: &'a str,
    pub p256dh: &'a str,
    pub auth: &'a str,
    pub expires_at: NaiveDateTime,
}

/// A job as claimed: what to send, to whom.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    #[diesel(sql_type = BigInt)]
    pub subscription_id: i64,
    #[diesel(sql_type = Timestamp)]
    pub created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    pub expires_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
}

/// Everything a claimed job needs to be sent.
#[derive(Debug, Clone)]
pub struct PushWork {
    pub job: ClaimedJob,
    pub subscription: Subscription,
    pub notification: NotificationRow,
    pub actor: UserSummaryRow,
    pub group: Option<GroupRow>,
}

/// Saves `new` as the token's subscription, replacing one it had (and that one's pending
/// pushes).
pub async fn put(db: &Db, new: NewSubscription<'_>) -> DbResult<Subscription> {
    use push_subscriptions as s;
    crate::transaction!(db.write(), conn => {
        diesel::delete(s::table.filter(s::token_id.eq(new.token_id))).execute(conn).await?;
        diesel::insert_into(s::table)
            .values((
                s::user_id.eq(new.user_id),
                s::token_id.eq(new.token_id),
                s::endpoint.eq(new.endpoint),
                s::p256dh.eq(new.p256dh),
                s::auth.eq(new.auth),
                s::created_at.eq(crate::now_millis()),
                s::expires_at.eq(new.expires_at),
            ))
            .returning(Subscription::as_returning())
            .get_result(conn)
            .await
            .map_err(Into::into)
    })
}

/// The token's subscription, if it has one.
pub async fn for_token(db: &Db, token_id: &str) -> DbResult<Option<Subscription>> {
    use push_subscriptions as s;
    crate::run!(db.read(), conn => {
        s::table
            .filter(s::token_id.eq(token_id))
            .select(Subscription::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(Into::into)
    })
}

/// Every subscription of `user`'s devices.
pub async fn for_user(db: &Db, user: UserId) -> DbResult<Vec<Subscription>> {
    use push_subscriptions as s;
    crate::run!(db.read(), conn => {
        s::table
            .filter(s::user_id.eq(user))
            .select(Subscription::as_select())
            .load(conn)
            .await
            .map_err(Into::into)
    })
}

/// Deletes the token's subscription (and its pending pushes); whether there was one.
pub async fn delete_for_token(db: &Db, token_id: &str) -> DbResult<bool> {
    use push_subscriptions as s;
    crate::run!(db.write(), conn => {
        let gone = diesel::delete(s::table.filter(s::token_id.eq(token_id))).execute(conn).await?;
        Ok(gone > 0)
    })
}

/// Deletes a subscription the push service says is gone (404/410), with its pending pushes.
pub async fn drop_subscription(db: &Db, id: i64) -> DbResult<()> {
    use push_subscriptions as s;
    crate::run!(db.write(), conn => {
        diesel::delete(s::table.find(id)).execute(conn).await?;
        Ok(())
    })
}

/// Claims up to `limit` due jobs until `lease_until` (unclaimed, or whose claim ran out).
pub async fn claim(
    db: &Db,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> DbResult<Vec<ClaimedJob>> {
    // Written out: diesel's `for_update().skip_locked()` is PostgreSQL's alone, and the update's
    // subquery is the same on both backends otherwise.
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE push_jobs SET claimed_until = $1, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM push_jobs WHERE due_at <= $2 \
         AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY due_at LIMIT $3{lock}) \
         RETURNING id, notification_id, subscription_id, created_at, expires_at, attempts"
    );
    let sql = match db.backend() {
        Backend::Postgres => sql,
        Backend::Sqlite => sql
            .replace("$1", "?1")
            .replace("$2", "?2")
            .replace("$3", "?3"),
    };
    crate::run!(db.write(), conn => {
        diesel::sql_query(sql.as_str())
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<ClaimedJob>(conn)
            .await
            .map_err(Into::into)
    })
}

/// What claimed jobs need to be sent: subscription, notification, actor and group. Jobs whose
/// rows went meanwhile (a block, a deleted post, a dropped subscription) are left out.
pub async fn load(db: &Db, jobs: Vec<ClaimedJob>) -> DbResult<Vec<PushWork>> {
    use notification_groups as g;
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let rows: Vec<(
        i64,
        Subscription,
        NotificationRow,
        UserSummaryRow,
        Option<GroupRow>,
    )> = crate::run!(db.read(), conn => {
        push_jobs::table
            .inner_join(push_subscriptions::table.on(push_subscriptions::id.eq(push_jobs::subscription_id)))
            .inner_join(notifications::table.on(notifications::id.eq(push_jobs::notification_id)))
            .inner_join(users::table.on(users::id.eq(notifications::actor_id)))
            .left_join(g::table.on(g::id.nullable().eq(notifications::group_id)))
            .filter(push_jobs::id.eq_any(&ids))
            .select((
                push_jobs::id,
                Subscription::as_select(),
                NotificationRow::as_select(),
                UserSummaryRow::as_select(),
                Option::<GroupRow>::as_select(),
            ))
            .load(conn)
            .await
            .map_err(DbError::from)
    })?;
    let mut work = Vec::with_capacity(rows.len());
    for (id, subscription, notification, actor, group) in rows {
        if let Some(job) = jobs.iter().find(|j| j.id == id) {
            work.push(PushWork {
                job: job.clone(),
                subscription,
                notification,
                actor,
                group,
            });
        }
    }
    Ok(work)
}

/// A job was delivered (or dropped for good): delete it.
pub async fn done(db: &Db, job: i64) -> DbResult<()> {
    crate::run!(db.write(), conn => {
        diesel::delete(push_jobs::table.find(job)).execute(conn).await?;
        Ok(())
    })
}

/// A job failed and will be tried again at `due_at`.
pub async fn retry(db: &Db, job: i64, due_at: NaiveDateTime) -> DbResult<()> {
    use push_jobs as j;
    crate::run!(db.write(), conn => {
        diesel::update(j::table.find(job))
            .set((j::due_at.eq(due_at), j::claimed_until.eq(None::<NaiveDateTime>)))
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// Claimed jobs left unsent for now: they stay claimed until `until` (then any instance may
/// claim them again, in their place in the queue), and the claim does not count as an attempt.
pub async fn hold(db: &Db, jobs: &[i64], until: NaiveDateTime) -> DbResult<()> {
    use push_jobs as j;
    crate::run!(db.write(), conn => {
        diesel::update(j::table.filter(j::id.eq_any(jobs)))
            .set((j::claimed_until.eq(until), j::attempts.eq(j::attempts - 1)))
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// The notifications were shown on a socket: their pushes are not needed; returns how many were
/// cancelled. A push being sent already is sent (its outcome then finds no row to record), one
/// claimed but held back for its busy push service is not.
pub async fn cancel_seen(db: &Db, notification_ids: &[i64]) -> DbResult<usize> {
    use push_jobs as j;
    crate::run!(db.write(), conn => {
        diesel::delete(j::table.filter(j::notification_id.eq_any(notification_ids)))
        .execute(conn)
        .await
        .map_err(Into::into)
    })
}

/// Jobs waiting, and the creation time of the oldest (for `/metrics`).
pub async fn queue_stats(db: &Db) -> DbResult<(i64, Option<NaiveDateTime>)> {
    use push_jobs as j;
    crate::run!(db.read(), conn => {
        j::table
            .select((diesel::dsl::count_star(), diesel::dsl::min(j::created_at)))
            .first(conn)
            .await
            .map_err(Into::into)
    })
}

/// Deletes the subscriptions whose token has expired (with their pending pushes); how many.
pub async fn purge_expired(db: &Db, now: NaiveDateTime) -> DbResult<usize> {
    use push_subscriptions as s;
    crate::run!(db.write(), conn => {
        diesel::delete(s::table.filter(s::expires_at.lt(now))).execute(conn).await.map_err(Into::into)
    })
}

//! The `users` table: accounts, their counters, and the per-recipient notification sequence.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbError, DbResult};
use crate::ids::UserId;
use crate::schema::users;

/// A user as the API shows it (everything but the password hash).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub created_at: NaiveDateTime,
    pub follower_count: i64,
    pub following_count: i64,
    pub post_count: i64,
}

/// The short form of a user embedded in posts, comments and notifications.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UserSummaryRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

/// Insert form for registration.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub created_at: NaiveDateTime,
}

/// Creates a user; `Conflict("username")` when the (already case-folded) name is taken.
pub async fn create(db: &Db, new_user: &NewUser<'_>) -> DbResult<UserRow> {
    crate::run!(db.write(), conn => {
        diesel::insert_into(users::table)
            .values(new_user)
            .returning(UserRow::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    DbError::Conflict("username")
                }
                other => other.into(),
            })
    })
}

/// The id and password hash for a username, for login.
pub async fn credentials(db: &Db, username: &str) -> DbResult<Option<(UserId, String)>> {
    crate::run!(db.read(), conn => {
        users::table
            .filter(users::username.eq(username))
            .select((users::id, users::password_hash))
            .first(conn)
            .await
            .optional()
            .map_err(Into::into)
    })
}

pub async fn find(db: &Db, id: UserId) -> DbResult<UserRow> {
    crate::run!(db.read(), conn => {
        users::table.find(id).select(UserRow::as_select()).first(conn).await.map_err(Into::into)
    })
}

/// A user's id and names (what notifications show), if the user exists.
pub async fn summary(db: &Db, id: UserId) -> DbResult<Option<UserSummaryRow>> {
    crate::run!(db.read(), conn => {
        users::table
            .find(id)
            .select(UserSummaryRow::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(Into::into)
    })
}

pub async fn find_by_username(db: &Db, username: &str) -> DbResult<UserRow> {
    crate::run!(db.read(), conn => {
        users::table
            .filter(users::username.eq(username))
            .select(UserRow::as_select())
            .first(conn)
            .await
            .map_err(Into::into)
    })
}

/// The recipient's latest committed notification sequence number (see `notifications`).
pub async fn notification_seq(db: &Db, id: UserId) -> DbResult<i64> {
    crate::run!(db.read(), conn => {
        users::table.find(id).select(users::notification_seq).first(conn).await.map_err(Into::into)
    })
}

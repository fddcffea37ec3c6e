//! The `notification_preferences` table: per kind, whether a notification is created at all
//! (`inbox`) and whether it is pushed (`push`), and whether only people one follows may notify
//! one (`from_following`). A user without a row has everything on, from everyone.
//!
//! The checks run inside the statement that draws the recipient's notification `seq` (see
//! [`crate::notifications`], the like's function `pulse_like`) and the one that queues pushes. Saving
//! preferences moves the user's `reach_version` in the same transaction, as a block does, so a
//! write racing the change asks again with a fresh snapshot (see [`crate::blocks`]): the new
//! preferences apply to every write after the response.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, DbResult};
use crate::ids::UserId;
use crate::schema::{notification_preferences as p, users};

/// One user's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = p, primary_key(user_id), check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Preferences {
    pub user_id: UserId,
    pub like_inbox: bool,
    pub like_push: bool,
    pub comment_inbox: bool,
    pub comment_push: bool,
    pub follow_inbox: bool,
    pub follow_push: bool,
    pub from_following: bool,
}

impl Preferences {
    /// Everything on, from everyone: what a user without a row has.
    pub fn defaults(user_id: UserId) -> Self {
        Preferences {
            user_id,
            like_inbox: true,
            like_push: true,
            comment_inbox: true,
            comment_push: true,
            follow_inbox: true,
            follow_push: true,
            from_following: false,
        }
    }
}

/// `user`'s preferences (the defaults when they never saved any).
pub async fn get(db: &Db, user: UserId) -> DbResult<Preferences> {
    let saved: Option<Preferences> = crate::run!(db.read(), conn => {
        p::table.find(user).select(Preferences::as_select()).first(conn).await.optional().map_err(crate::DbError::from)
    })?;
    Ok(saved.unwrap_or_else(|| Preferences::defaults(user)))
}

/// Changes `user`'s preferences with `change` and saves them, moving the user's
/// `reach_version` (see the module docs). The user's row is locked before the preferences are
/// read, so two changes at once both apply, one after the other.
pub async fn update(
    db: &Db,
    user: UserId,
    change: impl FnOnce(Preferences) -> Preferences + Send,
) -> DbResult<Preferences> {
    crate::transaction!(db.write(), conn => {
        diesel::update(users::table.find(user))
            .set(users::reach_version.eq(users::reach_version + 1))
            .execute(conn)
            .await?;
        let saved: Option<Preferences> = p::table
            .find(user)
            .select(Preferences::as_select())
            .first(conn)
            .await
            .optional()?;
        let prefs = change(saved.unwrap_or_else(|| Preferences::defaults(user)));
        diesel::insert_into(p::table)
            .values(prefs)
            .on_conflict(p::user_id)
            .do_update()
            .set(prefs)
            .execute(conn)
            .await?;
        Ok(prefs)
    })
}

//! Pulse's database layer: everything diesel.
//!
//! - [`schema`]: the `table!` definitions (generated from the PostgreSQL migrations, never edited).
//! - [`ids`]: typed ids (`UserId`, `PostId`, ...) so a post id can never be passed as a user id.
//! - [`db`]: [`Db`], one handle over either backend (PostgreSQL pool or SQLite through
//!   diesel-async's sync wrapper), the [`run!`] macro that compiles one query body for both, and
//!   embedded migrations.
//! - [`blocking`]: the threads SQLite's statements run on, safe to cancel on any runtime.
//! - [`counters`]: the hot path's counter bumps as fixed statements the prepared-statement
//!   cache keeps (diesel's UPDATE builder is never cached).
//! - one module per table group with its row type, insert form and queries: [`users`],
//!   [`posts`], [`likes`], [`comments`], [`follows`], [`notifications`], [`groups`], [`push`], [`preferences`], [`tokens`],
//!   [`blocks`].
//!
//! Every query is written once, inside `run!`/`transaction!`, and runs on both backends. The one
//! exception is the like, the hottest write: [`likes`] holds a path per backend (one PostgreSQL
//! statement, `likes/like.sql`, calling the function `pulse_like`; the same writes in one
//! blocking job on SQLite) behind one contract. The test suite runs against both.

pub mod blocking;
pub mod counters;
pub mod db;
pub mod ids;
pub mod schema;

pub mod blocks;
pub mod comments;
pub mod follows;
pub mod groups;
pub mod likes;
pub mod notifications;
pub mod posts;
pub mod preferences;
pub mod push;
pub mod tokens;
pub mod users;

pub use db::{Backend, Db, DbError, DbResult, NotifyPolicy};
pub use ids::{CommentId, GroupId, NotificationId, PostId, UserId};

/// The current time rounded to milliseconds: SQLite keeps nanoseconds and PostgreSQL
/// microseconds, and the API speaks milliseconds, so every stored timestamp is rounded first.
pub fn now_millis() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(now.timestamp_millis())
        .unwrap_or(now)
        .naive_utc()
}

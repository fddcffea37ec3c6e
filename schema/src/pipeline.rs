//! Two statements of one transaction in one round trip, on either backend.
//!
//! On PostgreSQL, [`Pipeline::pipeline`] sends both statements before reading either answer
//! (diesel-async pipelines queries issued through `&AsyncPgConnection`), so the pair costs one
//! network round trip and one wake-up of the database process instead of two. The server still
//! executes them one after the other, in the order given, so the second may rely on what the
//! first wrote (a row lock, a bumped counter read back by a subselect). SQLite is in-process and
//! has no round trip to save: there the two run in turn.
//!
//! Use it only for statements whose parameters do not depend on the first one's answer.

use diesel::result::QueryResult;
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;

use crate::db::SqliteConn;

/// Runs `first` then `second`, both returning one row, with one round trip where the backend
/// has one.
///
/// The result is `Err` if `first` failed: on PostgreSQL that aborts the transaction, so
/// `second`'s answer means nothing (and on SQLite it is not run). Otherwise it carries `first`'s
/// row and `second`'s own result, which the caller may treat as optional (`NotFound` from an
/// `ON CONFLICT DO NOTHING ... RETURNING`, for instance).
///
/// Both statements own their parameters (`'static`): the returned future is boxed so that the
/// transaction body around it stays `Send` (rustc cannot prove that through the higher-ranked
/// bounds otherwise).
pub trait Pipeline<First, Second, R1, R2> {
    fn pipeline(
        &mut self,
        first: First,
        second: Second,
    ) -> BoxFuture<'_, QueryResult<(R1, QueryResult<R2>)>>;
}

impl<First, Second, R1, R2> Pipeline<First, Second, R1, R2> for AsyncPgConnection
where
    First: for<'c> LoadQuery<'static, &'c AsyncPgConnection, R1> + Send + 'static,
    Second: for<'c> LoadQuery<'static, &'c AsyncPgConnection, R2> + Send + 'static,
    R1: Send + 'static,
    R2: Send + 'static,
{
    fn pipeline(
        &mut self,
        first: First,
        second: Second,
    ) -> BoxFuture<'_, QueryResult<(R1, QueryResult<R2>)>> {
        let shared: &AsyncPgConnection = self;
        Box::pin(async move {
            let (mut lane_one, mut lane_two) = (shared, shared);
            // `join` polls `first` before `second`, and a query is handed to the connection on
            // its first poll, so they reach the server in this order.
            let (one, two) = futures_util::future::join(
                first.get_result(&mut lane_one),
                second.get_result(&mut lane_two),
            )
            .await;
            Ok((one?, two))
        })
    }
}

impl<First, Second, R1, R2> Pipeline<First, Second, R1, R2> for SqliteConn
where
    First: LoadQuery<'static, SqliteConn, R1> + Send + 'static,
    Second: LoadQuery<'static, SqliteConn, R2> + Send + 'static,
    R1: Send + 'static,
    R2: Send + 'static,
{
    fn pipeline(
        &mut self,
        first: First,
        second: Second,
    ) -> BoxFuture<'_, QueryResult<(R1, QueryResult<R2>)>> {
        Box::pin(async move {
            let one = first.get_result(self).await?;
            let two = second.get_result(self).await;
            Ok((one, two))
        })
    }
}

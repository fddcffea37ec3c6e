//! Who is calling: the bearer token of a request, verified and checked against revocation
//! ([`authenticate`]), and the [`AuthUser`] extractor every authenticated route takes.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use pulse_schema::users::UserSummaryRow;
use pulse_schema::UserId;

use crate::auth::{Claims, Operation};
use crate::error::ApiError;
use crate::state::AppState;

/// A verified, unrevoked token and the user it belongs to.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: Claims,
    /// The caller as the database has it now (read with the revocation check, in the same
    /// statement); writes that notify put this name in the notification.
    pub user: UserSummaryRow,
}

/// Verifies a token, checks it was not revoked and reads its user: from memory once this
/// instance's copy of the revocations is current, else in one database statement (`sessions`).
pub async fn authenticate(
    state: &AppState,
    token: &str,
    operation: Operation,
) -> Result<Authenticated, ApiError> {
    let claims = state.keys.verify(token, operation)?;
    let (user, checked_in) = state.sessions.active_user(&state.db, &claims).await?;
    state.metrics.count_auth_check(checked_in);
    let user = user.ok_or(ApiError::Unauthorized(
        "The token is missing, invalid, expired or revoked.",
    ))?;
    Ok(Authenticated { claims, user })
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// An authenticated REST caller (rejects tickets, which only open sockets).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub claims: Claims,
    pub token: String,
    /// The caller's id, username and display name, read when the token was checked.
    pub summary: UserSummaryRow,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req).map(str::to_owned);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState missing")))?;
            let token = token.ok_or(ApiError::Unauthorized(
                "Send Authorization: Bearer <token>.",
            ))?;
            let Authenticated { claims, user } =
                authenticate(&state, &token, Operation::Rest).await?;
            Ok(AuthUser {
                id: claims.user_id,
                claims,
                token,
                summary: user,
            })
        })
    }
}

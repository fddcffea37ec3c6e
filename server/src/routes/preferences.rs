//! `/notifications/preferences`: per kind, whether it reaches the inbox and whether it is
//! pushed, and from whom notifications may come.

use actix_web::{web, HttpResponse};
use pulse_schema::preferences::{self, Preferences as Row};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::extract::AuthUser;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/notifications/preferences", web::get().to(get_preferences))
        .route("/notifications/preferences", web::put().to(put_preferences));
}

/// One kind's channels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    pub inbox: bool,
    pub push: bool,
}

/// A kind's channels in a `PUT`: either may be left out.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelsUpdate {
    pub inbox: Option<bool>,
    pub push: Option<bool>,
}

/// Who may notify you.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum From {
    Everyone,
    Following,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preferences {
    pub like: Channels,
    pub comment: Channels,
    pub follow: Channels,
    pub from: From,
}

/// Any subset of [`Preferences`]; what is left out stays as it is.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesUpdate {
    #[serde(default, deserialize_with = "object_or_null")]
    pub like: Option<ChannelsUpdate>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub comment: Option<ChannelsUpdate>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub follow: Option<ChannelsUpdate>,
    pub from: Option<From>,
}

/// A kind's channels as a JSON object (serde would also take an array of two), or `null`.
fn object_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ChannelsUpdate>, D::Error> {
    use serde::de::Error as _;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value @ serde_json::Value::Object(_) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom("a kind's channels must be an object")),
    }
}

impl Preferences {
    fn of(row: Row) -> Self {
        let channels = |inbox, push| Channels { inbox, push };
        Preferences {
            like: channels(row.like_inbox, row.like_push),
            comment: channels(row.comment_inbox, row.comment_push),
            follow: channels(row.follow_inbox, row.follow_push),
            from: if row.from_following {
                From::Following
            } else {
                From::Everyone
            },
        }
    }
}

impl PreferencesUpdate {
    fn apply(&self, mut row: Row) -> Row {
        let merge = |update: Option<ChannelsUpdate>, inbox: &mut bool, push: &mut bool| {
            let update = update.unwrap_or_default();
            *inbox = update.inbox.unwrap_or(*inbox);
            *push = update.push.unwrap_or(*push);
        };
        merge(self.like, &mut row.like_inbox, &mut row.like_push);
        merge(self.comment, &mut row.comment_inbox, &mut row.comment_push);
        merge(self.follow, &mut row.follow_inbox, &mut row.follow_push);
        if let Some(from) = self.from {
            row.from_following = from == From::Following;
        }
        row
    }
}

/// Your notification preferences (everything on, from everyone, until you change them).
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Preferences), (status = 401, body = Problem)))]
pub async fn get_preferences(
    state: web::Data<AppState>,
    user: AuthUser,
) -> ApiResult<HttpResponse> {
    let row = preferences::get(&state.db, user.id).await?;
    Ok(HttpResponse::Ok().json(Preferences::of(row)))
}

/// Changes your preferences; fields left out keep their value. They apply to every write
/// after the response.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    request_body = PreferencesUpdate,
    responses((status = 200, body = Preferences), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn put_preferences(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    // Well-formed JSON that names an unknown kind, channel or value is 422, not 400.
    let update: PreferencesUpdate = serde_json::from_value(body.into_inner())
        .map_err(|e| ApiError::validation("preferences", e.to_string()))?;
    let saved = preferences::update(&state.db, user.id, |row| update.apply(row)).await?;
    Ok(HttpResponse::Ok().json(Preferences::of(saved)))
}

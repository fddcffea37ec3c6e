//! `ApiError`: every failure a request can end in, rendered as an RFC 9457 problem document.
//! Internal causes are logged with their chain and never sent to clients.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use pulse_schema::DbError;
use serde::Serialize;

/// One field at fault in a 422.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI reference naming the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("invalid values")]
    Validation(Vec<FieldError>),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    /// This instance is busier than it can serve well; the detail says what is full.
    #[error("overloaded: {detail}")]
    Overloaded {
        detail: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// Every problem type the API can answer with: (type, title, status). Listed in the OpenAPI
/// document too.
pub const PROBLEM_TYPES: &[(&str, &str, u16)] = &[
    ("/problems/bad-request", "Malformed request", 400),
    ("/problems/validation", "Invalid values", 422),
    ("/problems/unauthorized", "Unauthorized", 401),
    ("/problems/forbidden", "Forbidden", 403),
    ("/problems/not-found", "Not found", 404),
    ("/problems/conflict", "Conflict", 409),
    ("/problems/too-large", "Payload too large", 413),
    (
        "/problems/unsupported-media-type",
        "Unsupported media type",
        415,
    ),
    ("/problems/rate-limited", "Too many requests", 429),
    ("/problems/unavailable", "Service unavailable", 503),
    ("/problems/internal", "Internal error", 500),
];

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    fn kind(&self) -> usize {
        match self {
            ApiError::BadRequest(_) => 0,
            ApiError::Validation(_) => 1,
            ApiError::Unauthorized(_) => 2,
            ApiError::Forbidden(_) => 3,
            ApiError::NotFound(_) => 4,
            ApiError::Conflict(_) => 5,
            ApiError::TooLarge(_) => 6,
            ApiError::UnsupportedMediaType(_) => 7,
            ApiError::RateLimited { .. } => 8,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => 9,
            ApiError::Internal(_) => 10,
        }
    }

    pub fn problem(&self) -> Problem {
        let (problem_type, title, status) = PROBLEM_TYPES[self.kind()];
        let detail = match self {
            ApiError::BadRequest(d) | ApiError::Conflict(d) | ApiError::TooLarge(d) => d.clone(),
            ApiError::UnsupportedMediaType(d) => d.clone(),
            ApiError::Validation(_) => "One or more fields are invalid.".to_owned(),
            ApiError::Unauthorized(d) | ApiError::Forbidden(d) | ApiError::NotFound(d) => {
                (*d).to_owned()
            }
            ApiError::RateLimited { retry_after_secs } => {
                format!("Slow down; retry in {retry_after_secs} s.")
            }
            // The cause of a 503/500 is logged, not shown.
            ApiError::Unavailable(_) => "A dependency is unavailable; retry shortly.".to_owned(),
            ApiError::Overloaded {
                detail,
                retry_after_secs,
            } => format!("{detail}; retry in {retry_after_secs} s."),
            ApiError::Internal(_) => "Something went wrong on our side.".to_owned(),
        };
        let errors = match self {
            ApiError::Validation(errors) => Some(errors.clone()),
            _ => None,
        };
        Problem {
            problem_type,
            title,
            status,
            detail,
            errors,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(cause) => ApiError::Unavailable(cause),
            DbError::Deadlock => ApiError::Unavailable("a concurrent write got in the way".into()),
            DbError::NotFound => ApiError::NotFound("No such resource."),
            DbError::Conflict(what) => ApiError::Conflict(format!("That {what} is taken.")),
            DbError::Forbidden => ApiError::Forbidden("You may not do that."),
            DbError::Query(e) => {
                ApiError::Internal(anyhow::Error::new(e).context("database query"))
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(PROBLEM_TYPES[self.kind()].2)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Overloaded {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.problem())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

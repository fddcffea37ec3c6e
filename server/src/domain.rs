//! Validated input: each newtype can only be built by `parse`, which applies the contract's rule
//! for that field, so handlers never see an invalid value. Also path ids, page sizes and cursors.

use base64::Engine as _;

use crate::error::{ApiError, FieldError};

/// Ids are positive and below 2^53 (they travel as JSON numbers).
pub const MAX_ID: i64 = (1 << 53) - 1;

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// 3..30 of `[a-z0-9._]` after folding to lowercase, not starting or ending with `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let folded = raw.to_lowercase();
        let bad = |m: &str| FieldError::new("username", m);
        if !(3..=30).contains(&chars(&folded)) {
            return Err(bad("must be 3 to 30 characters"));
        }
        if !folded
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
        {
            return Err(bad("may contain only letters, digits, '.' and '_'"));
        }
        if folded.starts_with('.') || folded.ends_with('.') {
            return Err(bad("may not start or end with '.'"));
        }
        Ok(Username(folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8..128 characters.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if !(8..=128).contains(&chars(raw)) {
            return Err(FieldError::new("password", "must be 8 to 128 characters"));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// 0..64 characters, no control characters.
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if chars(raw) > 64 {
            return Err(FieldError::new(
                "display_name",
                "must be at most 64 characters",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::new(
                "display_name",
                "may not contain control characters",
            ));
        }
        Ok(DisplayName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caption (0..2200) or comment text (1..2200): code points, no NUL.
pub struct Text(String);

impl Text {
    pub fn caption(raw: &str) -> Result<Self, FieldError> {
        Self::parse("caption", raw, 0)
    }

    pub fn comment(raw: &str) -> Result<Self, FieldError> {
        Self::parse("text", raw, 1)
    }

    fn parse(field: &str, raw: &str, min: usize) -> Result<Self, FieldError> {
        if !(min..=2200).contains(&chars(raw)) {
            return Err(FieldError::new(
                field,
                format!("must be {min} to 2200 characters"),
            ));
        }
        if raw.contains('\0') {
            return Err(FieldError::new(field, "may not contain NUL"));
        }
        Ok(Text(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Collects field errors so one 422 can name every bad field.
#[derive(Default)]
pub struct Validator(Vec<FieldError>);

impl Validator {
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    /// `Err(422)` if anything failed; otherwise the caller's values are all `Some`.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// A path id: a positive integer below 2^53, else 404 (never 500).
pub fn path_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| (1..=MAX_ID).contains(id))
        .ok_or(ApiError::NotFound("No such resource."))
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..100, default 20.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Notifications only: `true` (or `1`) lists unread ones only.
    #[param(pattern = "^(true|false|1|0)$")]
    pub unread_only: Option<String>,
}

/// A checked page request: the size and the id to continue from.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub after: Option<i64>,
}

impl PageQuery {
    pub fn page(&self, default: i64, max: i64) -> Result<Page, ApiError> {
        let limit = self.limit(default, max)?;
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Page { limit, after })
    }

    /// The checked page size alone (for lists whose cursor is not an id).
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match &self.limit {
            None => Ok(default),
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("limit must be an integer from 1 to {max}"))
                }),
        }
    }

    pub fn unread_only(&self) -> Result<bool, ApiError> {
        match self.unread_only.as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(ApiError::BadRequest(
                "unread_only must be true or false".into(),
            )),
        }
    }
}

/// Cursors are opaque to clients: base64url of the last id seen.
pub fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode_cursor(raw: &str) -> Result<i64, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix("v1:").and_then(|id| id.parse::<i64>().ok()))
        .filter(|id| (1..=MAX_ID).contains(id))
        .ok_or_else(|| ApiError::BadRequest("cursor is not one this server issued".into()))
}

/// The `next_cursor` for a page: present only when the page came back full.
pub fn next_cursor<T>(items: &[T], limit: i64, id_of: impl Fn(&T) -> i64) -> Option<String> {
    if items.len() as i64 == limit {
        items.last().map(|last| encode_cursor(id_of(last)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_to_lowercase_and_reject_bad_shapes() {
        assert_eq!(
            Username::parse("Alice").map(|u| u.0).ok(),
            Some("alice".to_owned())
        );
        for bad in ["ab", ".abc", "abc.", "a b c", "ab-c", &"a".repeat(31)] {
            assert!(Username::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let page = PageQuery {
            limit: None,
            cursor: Some(encode_cursor(42)),
            unread_only: None,
        };
        assert_eq!(page.page(20, 100).ok().and_then(|p| p.after), Some(42));
        let forged = PageQuery {
            limit: Some("0".into()),
            cursor: None,
            unread_only: None,
        };
        assert!(forged.page(20, 100).is_err());
    }
}

//! Authentication: biscuit tokens, socket tickets, password hashing and the `AuthUser` extractor.
//!
//! A token is a biscuit signed by the deployment's root key whose authority block says
//! `user(<id>)` and `expires(<unix seconds>)` and checks `time($t), $t < expiry`. A socket ticket
//! is that token with one more block appended (attenuation): `check if operation("ws")` and a
//! 60-second expiry, so it opens a socket and nothing else. Logout stores the token's revocation
//! ids; every request checks them. Tickets are single-use (their own block's revocation id is
//! recorded when a socket opens).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use biscuit_auth::macros::{authorizer, biscuit, block};
use biscuit_auth::{Algorithm, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey};
use chrono::NaiveDateTime;
use pulse_schema::users::UserSummaryRow;
use pulse_schema::{tokens, NotificationId, UserId};

use crate::error::ApiError;
use crate::hash_gate::HashGate;
use crate::state::AppState;

const ROOT_KEY_FILE: &str = "root-key.hex";

/// Wall-clock budget for evaluating a token's Datalog. biscuit's default is 1 ms, measured in
/// wall time, so a worker thread preempted mid-check (two busy cores are enough) turned valid
/// tokens into spurious 401s under load. The signature is verified before any Datalog runs and
/// the fact and iteration limits stay at biscuit's defaults, so this only tolerates scheduling.
const AUTHORIZER_MAX_TIME: Duration = Duration::from_millis(200);

/// The deployment's root key pair, and the tokens it has already verified.
#[derive(Clone)]
pub struct Keys {
    keypair: Arc<KeyPair>,
    public: PublicKey,
    verified: Arc<VerifiedTokens>,
}

/// Login tokens already verified (signature and Datalog), by their exact text, so a request
/// costs a map lookup instead of an ed25519 check and an authorizer run. Safe because the
/// same bytes always verify the same way; the only thing that changes with time, expiry, is
/// checked on every hit. Revocation is never cached (see [`authenticate`]). Tickets are not
/// cached (each is single-use). Bounded by `PULSE_TOKEN_CACHE_SIZE`: when full it is emptied.
#[derive(Default)]
struct VerifiedTokens {
    claims: dashmap::DashMap<Box<str>, Claims>,
    capacity: usize,
}

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<Claims> {
        let claims = self.claims.get(token)?.clone();
        if claims.expires_at > SystemTime::now() {
            return Some(claims);
        }
        self.claims.remove(token);
        None
    }

    fn remember(&self, token: &str, claims: &Claims) {
        if self.capacity == 0 || claims.is_ticket {
            return;
        }
        if self.claims.len() >= self.capacity {
            self.claims.clear();
        }
        self.claims.insert(token.into(), claims.clone());
    }
}

impl Keys {
    /// From `PULSE_ROOT_KEY` (hex, or biscuit's `ed25519-private/<hex>`), else from the data
    /// directory, else a new key saved there with owner-only permissions.
    pub fn load_or_create(root_key: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        let private = match root_key {
            Some(hex) => parse_private_key(hex)?,
            None => {
                let path = data_dir.join(ROOT_KEY_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(hex) => parse_private_key(&hex)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let private = KeyPair::new().private();
                        write_secret(&path, &private.to_bytes_hex())?;
                        tracing::info!(path = %path.display(), "generated a new root key");
                        private
                    }
                    Err(e) => {
                        return Err(
                            anyhow::Error::new(e).context(format!("reading {}", path.display()))
                        )
                    }
                }
            }
        };
        let keypair = KeyPair::from(&private);
        let public = keypair.public();
        Ok(Keys {
            keypair: Arc::new(keypair),
            public,
            verified: Arc::default(),
        })
    }

    /// Remembers up to `capacity` verified login tokens (0: verify every time).
    pub fn with_verified_cache(mut self, capacity: usize) -> Self {
        self.verified = Arc::new(VerifiedTokens {
            claims: dashmap::DashMap::new(),
            capacity,
        });
        self
    }

    /// A new random root key, hex, for `pulse keygen`.
    pub fn generate_hex() -> String {
        KeyPair::new().private().to_bytes_hex()
    }
}

fn parse_private_key(text: &str) -> anyhow::Result<PrivateKey> {
    let text = text.trim();
    let key = if text.contains('/') {
        text.parse::<PrivateKey>()
    } else {
        PrivateKey::from_bytes_hex(text, Algorithm::Ed25519)
    };
    key.map_err(|e| anyhow::anyhow!("PULSE_ROOT_KEY is not a valid private key: {e}"))
}

fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// What a verified token says.
#[derive(Debug, Clone)]
pub struct Claims {
    pub user_id: UserId,
    /// When the login token (not a ticket) expires.
    pub expires_at: SystemTime,
    /// Revocation ids of every block, hex; the first identifies the login token.
    pub revocation_ids: Vec<String>,
    /// Whether this is an attenuated socket ticket.
    pub is_ticket: bool,
}

impl Claims {
    pub fn token_id(&self) -> &str {
        self.revocation_ids
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn expires_naive(&self) -> NaiveDateTime {
        let secs = self
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        chrono::DateTime::from_timestamp(secs as i64, 0)
            .unwrap_or_default()
            .naive_utc()
    }
}

/// What the presented token is being used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Rest,
    Socket,
}

impl Keys {
    /// Mints a login token for `user` valid for `ttl`.
    pub fn mint(&self, user: UserId, ttl: Duration) -> Result<(String, SystemTime), ApiError> {
        let expires = SystemTime::now() + ttl;
        let expires_unix = expires
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let token = biscuit!(
            r#"user({id}); expires({exp}); check if time($t), $t < {expires};"#,
            id = user.0,
            exp = expires_unix,
            expires = expires,
        )
        .build(&self.keypair)
        .and_then(|t| t.to_base64())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("minting token: {e}")))?;
        Ok((token, expires))
    }

    /// Attenuates a login token into a socket-only ticket valid for `ttl`.
    pub fn mint_ticket(
        &self,
        token: &str,
        ttl: Duration,
    ) -> Result<(String, SystemTime), ApiError> {
        let expires = SystemTime::now() + ttl;
        let parsed = Biscuit::from_base64(token, self.public)
            .map_err(|_| ApiError::Unauthorized("The token is not valid."))?;
        let ticket = parsed
            .append(block!(
                r#"check if operation("ws"); check if time($t), $t < {expires};"#,
                expires = expires
            ))
            .and_then(|t| t.to_base64())
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("minting ticket: {e}")))?;
        Ok((ticket, expires))
    }

    /// Checks signature, expiry and the operation; does not consult revocation (see
    /// [`authenticate`]).
    pub fn verify(&self, token: &str, operation: Operation) -> Result<Claims, ApiError> {
        let token = token.trim();
        if let Some(claims) = self.verified.get(token) {
            return Ok(claims);
        }
        let claims = self.verify_uncached(token, operation)?;
        self.verified.remember(token, &claims);
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str, operation: Operation) -> Result<Claims, ApiError> {
        let invalid =
            || ApiError::Unauthorized("The token is missing, invalid, expired or revoked.");
        let parsed = Biscuit::from_base64(token, self.public).map_err(|_| invalid())?;
        let op = match operation {
            Operation::Rest => "rest",
            Operation::Socket => "ws",
        };
        let mut authorizer = authorizer!(
            r#"time({now}); operation({op}); allow if user($u);"#,
            now = SystemTime::now(),
            op = op,
        )
        .set_limits(AuthorizerLimits {
            max_time: AUTHORIZER_MAX_TIME,
            ..AuthorizerLimits::default()
        })
        .build(&parsed)
        .map_err(|_| invalid())?;
        authorizer.authorize().map_err(|_| invalid())?;
        let (user_id,): (i64,) = authorizer
            .query_exactly_one("data($id) <- user($id)")
            .map_err(|_| invalid())?;
        let (expires_unix,): (i64,) = authorizer
            .query_exactly_one("data($e) <- expires($e)")
            .map_err(|_| invalid())?;
        Ok(Claims {
            user_id: UserId(user_id),
            expires_at: UNIX_EPOCH + Duration::from_secs(expires_unix.max(0) as u64),
            revocation_ids: parsed
                .revocation_identifiers()
                .iter()
                .map(hex::encode)
                .collect(),
            is_ticket: parsed.block_count() > 1,
        })
    }
}

/// A verified, unrevoked token and the user it belongs to.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: Claims,
    /// The caller as the database has it now (read with the revocation check, in the same
    /// statement); writes that notify put this name in the notification.
    pub user: UserSummaryRow,
}

/// Verifies a token, checks it was not revoked and reads its user, in one database statement.
///
/// The read runs in its own task: extractors run together, and actix drops one mid-query when
/// another fails first (say the JSON body); a SQLite query dropped mid-flight on an actix
/// worker's single-threaded runtime panics inside diesel-async.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    operation: Operation,
) -> Result<Authenticated, ApiError> {
    let claims = state.keys.verify(token, operation)?;
    let (db, user, ids) = (
        state.db.clone(),
        claims.user_id,
        claims.revocation_ids.clone(),
    );
    let user = tokio::spawn(async move { tokens::active_user(&db, user, &ids).await })
        .await
        .map_err(|error| {
            ApiError::Internal(anyhow::anyhow!("revocation check task failed: {error}"))
        })??
        .ok_or(ApiError::Unauthorized(
            "The token is missing, invalid, expired or revoked.",
        ))?;
    Ok(Authenticated { claims, user })
}

/// A socket's revocation check and the newest notification's (`seq`, `id`), batched with the
/// other sockets opening on this worker (see [`crate::admission`]). Call it after the socket is
/// registered with the hub (see `routes::live`).
pub async fn admit_socket(
    state: &AppState,
    claims: &Claims,
) -> Result<(i64, NotificationId), ApiError> {
    state.admissions.admit(claims).await
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

/// Argon2id password hashing, run off the async workers.
#[derive(Clone)]
pub struct Passwords {
    /// A hash of a random password: unknown usernames are verified against it so a login for
    /// a user that does not exist costs the same time as a wrong password.
    dummy_hash: Arc<str>,
    /// Bounds the hashes running at once and the requests waiting for one.
    gate: HashGate,
}

impl Passwords {
    pub fn new(gate: HashGate) -> anyhow::Result<Self> {
        let random: String = (0..32)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        Ok(Passwords {
            dummy_hash: hash_blocking(&random)?.into(),
            gate,
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.gate
            .run(move || hash_blocking(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let exists = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .gate
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(exists && matches)
    }
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

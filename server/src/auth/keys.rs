//! The deployment's root key: loading or creating it, minting tokens and socket tickets, and
//! verifying them (signature, expiry, operation) with a cache of verified login tokens.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::macros::{authorizer, biscuit, block};
use biscuit_auth::{Algorithm, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey};
use pulse_schema::UserId;

use super::cache::VerifiedTokens;
use super::claims::{Claims, Operation};
use crate::error::ApiError;

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
                        parse_private_key(&create_secret(&path, "root key", Keys::generate_hex)?)?
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
        self.verified = Arc::new(VerifiedTokens::new(capacity));
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

/// Writes a new secret (`what`, made by `generate`) to `path`, unless another instance sharing the
/// data directory wrote one first: the secret is written whole to a file of this process's,
/// then linked into place, which fails if `path` exists (then that one is the secret). Returns
/// the secret in `path`, so instances starting together agree on it.
pub(crate) fn create_secret(
    path: &Path,
    what: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let text = generate();
    let mut own = path.as_os_str().to_owned();
    own.push(format!(".{}.{}", std::process::id(), rand::random::<u32>()));
    let own = std::path::PathBuf::from(own);
    write_secret(&own, &text)?;
    let linked = std::fs::hard_link(&own, path);
    let _ = std::fs::remove_file(&own);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new {what}");
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("writing {}", path.display()))),
    }
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

impl Keys {
    /// Mints a login token for `user` valid for `ttl`, and remembers it as verified: the
    /// instance that signed it knows what it says, so the client's next requests here (those
    /// that follow a login or a registration) skip the signature check and the Datalog run.
    pub fn mint(&self, user: UserId, ttl: Duration) -> Result<(String, SystemTime), ApiError> {
        let expires = SystemTime::now() + ttl;
        let expires_unix = expires
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let minting = |e| ApiError::Internal(anyhow::anyhow!("minting token: {e}"));
        let built = biscuit!(
            r#"user({id}); expires({exp}); check if time($t), $t < {expires};"#,
            id = user.0,
            exp = expires_unix,
            expires = expires,
        )
        .build(&self.keypair)
        .map_err(minting)?;
        let token = built.to_base64().map_err(minting)?;
        self.verified
            .remember(&token, &claims_of(&built, user, expires_unix));
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
    /// `routes::extract`).
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
        Ok(claims_of(&parsed, UserId(user_id), expires_unix))
    }
}

/// What `token` says, given the user and expiry (Unix seconds) its Datalog names: what a
/// verification answers, and what minting remembers.
fn claims_of(token: &Biscuit, user_id: UserId, expires_unix: i64) -> Claims {
    Claims {
        user_id,
        expires_at: UNIX_EPOCH + Duration::from_secs(expires_unix.max(0) as u64),
        revocation_ids: token
            .revocation_identifiers()
            .iter()
            .map(hex::encode)
            .collect(),
        is_ticket: token.block_count() > 1,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn instances_starting_together_on_one_data_directory_share_one_root_key() {
        let dir = std::env::temp_dir().join(format!("pulse-root-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..4)
                .map(|_| {
                    scope
                        .spawn(|| Keys::load_or_create(None, &dir).map(|k| k.public.to_bytes_hex()))
                })
                .collect();
            starts
                .into_iter()
                .map(|s| s.join().expect("no panic").expect("a key"))
                .collect()
        });
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("the dir")
            .flatten()
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
        assert_eq!(left.len(), 1, "only the key file stays: {left:?}");
    }

    /// A token the instance minted is answered from memory with what verifying it says.
    #[test]
    fn a_minted_token_is_remembered_as_verified() {
        let dir = std::env::temp_dir().join(format!("pulse-mint-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let keys = Keys::load_or_create(None, &dir)
            .expect("a key")
            .with_verified_cache(10);
        let _ = std::fs::remove_dir_all(&dir);
        let (token, _) = keys
            .mint(UserId(7), Duration::from_secs(60))
            .expect("a token");
        let remembered = keys.verified.get(&token).expect("remembered at minting");
        let verified = keys
            .verify_uncached(&token, Operation::Rest)
            .expect("valid");
        assert_eq!(remembered.user_id, verified.user_id);
        assert_eq!(remembered.expires_at, verified.expires_at);
        assert_eq!(remembered.revocation_ids, verified.revocation_ids);
        assert!(!remembered.is_ticket);
    }
}

//! The VAPID key pair (RFC 8292) that signs every push request, so push services know the
//! pushes come from this deployment: from `PULSE_VAPID_PRIVATE_KEY`, else from the data
//! directory, else a new one saved there with owner-only permissions. All instances of a
//! deployment must share it (subscriptions are bound to its public key).

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dashmap::DashMap;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

const VAPID_KEY_FILE: &str = "vapid.key";

/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;

/// How long one signed token is reused for pushes to one push service (well inside its
/// lifetime, so a push service never sees one about to expire).
const TOKEN_REUSE_SECS: u64 = 3600;

/// Push services whose tokens are kept; past it, the kept tokens are dropped.
const MAX_TOKENS_KEPT: usize = 10_000;

/// The deployment's VAPID signing key.
#[derive(Clone)]
pub(crate) struct Vapid {
    key: SigningKey,
    /// The public key, uncompressed (65 bytes), base64url: `GET /push/key` and the `k=` parameter.
    public_b64: String,
    /// (origin, contact) → (when signed, the `Authorization` value): one ECDSA signature per
    /// push service an hour instead of one per push.
    signed: Arc<DashMap<(String, String), (u64, String)>>,
}

impl Vapid {
    /// From `configured` (base64url of the 32-byte scalar), else the data directory's key file,
    /// else a new key written there.
    pub(crate) fn load_or_create(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let text = match configured {
            Some(text) => text.to_owned(),
            None => {
                let path = data_dir.join(VAPID_KEY_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        crate::auth::create_secret(&path, "VAPID key", Vapid::generate)?
                    }
                    Err(e) => {
                        return Err(
                            anyhow::Error::new(e).context(format!("reading {}", path.display()))
                        )
                    }
                }
            }
        };
        Self::parse(&text)
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        if text.trim().is_empty() {
            anyhow::bail!("the VAPID key file is empty");
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| anyhow::anyhow!("PULSE_VAPID_PRIVATE_KEY is not base64url"))?;
        let key = SigningKey::from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("PULSE_VAPID_PRIVATE_KEY is not a P-256 private key"))?;
        let public = key.verifying_key().to_encoded_point(false);
        Ok(Vapid {
            public_b64: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            key,
            signed: Arc::default(),
        })
    }

    /// A new private key, base64url, for `pulse keygen --vapid`.
    pub(crate) fn generate() -> String {
        URL_SAFE_NO_PAD.encode(SigningKey::random(&mut rand::rngs::OsRng).to_bytes())
    }

    pub(crate) fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header for a push to `origin` (`https://push.example.net`), with
    /// `contact` as the `sub` claim.
    pub(crate) fn authorization(&self, origin: &str, contact: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let key = (origin.to_owned(), contact.to_owned());
        if let Some(kept) = self.signed.get(&key) {
            if now < kept.0 + TOKEN_REUSE_SECS {
                return kept.1.clone();
            }
        }
        if self.signed.len() >= MAX_TOKENS_KEPT {
            self.signed.clear();
        }
        let header = self.sign(origin, contact, now + TOKEN_LIFETIME_SECS);
        self.signed.insert(key, (now, header.clone()));
        header
    }

    /// A freshly signed `Authorization` value expiring at `expires` (Unix seconds).
    fn sign(&self, origin: &str, contact: &str, expires: u64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": origin, "exp": expires, "sub": contact });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signed.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
        format!("vapid t={signed}.{signature}, k={}", self.public_b64)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    #[test]
    fn the_token_verifies_with_the_public_key_and_names_the_origin() {
        let vapid = Vapid::parse(&Vapid::generate()).expect("a generated key parses");
        let header = vapid.authorization("https://push.example.net", "mailto:ops@example.net");
        let (token, key) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .expect("vapid t=..., k=...");
        assert_eq!(key, vapid.public_key());
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let public = URL_SAFE_NO_PAD.decode(key).expect("base64url");
        let verifier = VerifyingKey::from_sec1_bytes(&public).expect("a point");
        let signature =
            Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("b64")).expect("r||s");
        assert!(verifier.verify(signed.as_bytes(), &signature).is_ok());
        let claims = signed.split('.').nth(1).expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["sub"], "mailto:ops@example.net");
        let expires = claims["exp"].as_u64().expect("exp");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        assert!(
            expires > now + TOKEN_LIFETIME_SECS - TOKEN_REUSE_SECS && expires <= now + 24 * 3600
        );
        // Signed once per push service and contact, then reused.
        assert_eq!(
            vapid.authorization("https://push.example.net", "mailto:ops@example.net"),
            header
        );
        assert_ne!(
            vapid.authorization("https://other.example.net", "mailto:ops@example.net"),
            header
        );
        assert!(Vapid::parse("not a key").is_err());
    }

    #[test]
    fn instances_starting_together_on_one_data_directory_share_one_key() {
        let dir = std::env::temp_dir().join(format!("pulse-vapid-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        Vapid::load_or_create(None, &dir).map(|v| v.public_key().to_owned())
                    })
                })
                .collect();
            starts
                .into_iter()
                .map(|s| s.join().expect("no panic").expect("a key"))
                .collect()
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    }
}

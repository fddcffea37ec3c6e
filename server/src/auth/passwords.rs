//! Argon2id password hashing, run off the async workers through the [`HashGate`].

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::error::ApiError;
use crate::gate::HashGate;

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

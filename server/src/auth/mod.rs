//! Authentication: biscuit tokens, socket tickets and password hashing.
//!
//! A token is a biscuit signed by the deployment's root key whose authority block says
//! `user(<id>)` and `expires(<unix seconds>)` and checks `time($t), $t < expiry`. A socket ticket
//! is that token with one more block appended (attenuation): `check if operation("ws")` and a
//! 60-second expiry, so it opens a socket and nothing else. Logout stores the token's revocation
//! ids; every request checks them (`routes::extract`, against `sessions`). Tickets are single-use (their own
//! block's revocation id is recorded when a socket opens).
//!
//! - [`claims`]: what a verified token says; the leaf the rest of the server reads.
//! - [`keys`]: the root key, minting and verification.
//! - `cache`: verified login tokens, so a request skips the signature check.
//! - [`sessions`]: revoked tokens and users' names in memory, so a request skips the database.
//! - [`passwords`]: argon2id hashing behind the hash gate.

mod cache;
pub mod claims;
pub mod keys;
pub mod passwords;
pub mod sessions;

pub use claims::{Claims, Operation};
pub(crate) use keys::create_secret;
pub use keys::Keys;
pub use passwords::Passwords;
pub use sessions::{CheckedIn, Sessions};

//! Pulse: a real-time notification backend for social apps.
//!
//! REST writes (posts, likes, comments, follows) are stored for good; whoever must hear about
//! them is notified in the same transaction; the notification is then pushed to every socket the
//! recipient has open, on any instance.
//!
//! Map of the crate:
//! - [`cli`]: the command line (`serve`, `migrate`, `keygen`, `--help`, `--version`).
//! - [`config`]: settings from the environment; every limit named with a default.
//! - [`startup`]: builds the [`startup::Application`] and runs it until a signal, then drains.
//! - [`state`]: the one `AppState` handlers receive; each HTTP worker has its own copy, with its
//!   own database pool and Redis publisher.
//! - [`error`]: `ApiError`, rendered as problem+json.
//! - [`auth`]: biscuit tokens and socket tickets, password hashing.
//! - [`admission`]: the revocation check of opening sockets, batched per worker.
//! - `like_queue`: likes for one author that arrive together, written by one statement.
//! - [`gate`]: how much heavy blocking work (password hashes, image decodes) runs at once and
//!   how many requests may wait for it.
//! - [`domain`]: validated input (usernames, captions, page cursors, path ids).
//! - [`views`]: the JSON the API answers with.
//! - [`middleware`]: request ids, request spans and HTTP metrics around every request.
//! - [`routes`]: one file per resource, and the `AuthUser` extractor (`routes::extract`).
//! - [`realtime`]: the socket protocol, hub, like-count coalescing, bus, wake-up relay and
//!   per-socket task.
//! - [`media`]: image intake and content-addressed storage.
//! - `shed`: load shedding; how many API requests run at once, how long others may wait.
//! - [`ratelimit`]: per-user and per-IP write limits (429 with `Retry-After`).
//! - [`telemetry`]: logging and metrics.
//!
//! Storage lives in the `pulse-schema` crate (one query path over PostgreSQL and SQLite).

pub mod admission;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gate;
pub(crate) mod like_queue;
pub mod media;
pub(crate) mod middleware;
pub mod push;
pub mod ratelimit;
pub mod realtime;
pub mod routes;
pub(crate) mod shed;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod views;

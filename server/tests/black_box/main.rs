//! Black-box tests of one Pulse instance: the real application on a random port, spoken to over
//! HTTP and WebSockets only. The backend comes from `PULSE_TEST_BACKEND` (`sqlite`, the default,
//! or `postgres`, which also uses Redis for fan-out); see `support`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod blocks;
mod concurrency;
mod events;
mod groups;
mod live;
mod malformed;
mod notifications;
mod posts;
mod push;
mod rate_limits;
mod resets;
mod system;
mod users;

//! `AppState`: the one cloneable bundle every handler and socket task gets (database, bus,
//! hub, keys, media store, settings, metrics).

use std::sync::Arc;

use pulse_schema::Db;

use crate::auth::{Keys, Passwords};
use crate::config::Settings;
use crate::media::MediaStore;
use crate::ratelimit::RateLimiter;
use crate::realtime::bus::Bus;
use crate::realtime::hub::Hub;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub bus: Bus,
    pub hub: Arc<Hub>,
    pub keys: Keys,
    pub passwords: Passwords,
    pub media: MediaStore,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<RateLimiter>,
}

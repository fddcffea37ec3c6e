//! Web Push: reaching people whose app is closed (RFC 8030, payload encryption RFC 8291, VAPID
//! RFC 8292).
//!
//! A notification's transaction queues one push job per device of the recipient (see
//! `pulse_schema::push`), due `PULSE_PUSH_DELAY_MS` later. A socket that shows the
//! notification meanwhile cancels its jobs ([`SeenLive`]), unless `PULSE_PUSH_WHEN_LIVE`. Every
//! instance runs a [`Pusher`] that claims due jobs and sends them.
//!
//! - `vapid`: the signing key pair and the `Authorization` header.
//! - `encrypt`: the `aes128gcm` body for a subscription's keys.
//! - `endpoint`: which endpoints are acceptable (public `https://` only) and the HTTP client's
//!   resolver that holds to it on every connection.
//! - `payload`: the JSON a push carries, within 4 KiB.
//! - `worker`: claim, send, retry, drop.

pub(crate) mod encrypt;
pub(crate) mod endpoint;
pub(crate) mod payload;
pub(crate) mod vapid;
pub(crate) mod worker;

use std::sync::Arc;
use std::time::Duration;

use pulse_schema::Db;

use crate::config::Settings;
use crate::telemetry::Metrics;
pub(crate) use vapid::Vapid;
pub(crate) use worker::{Pusher, SeenLive};

/// This instance's Web Push side: the sender, and the canceller of pushes shown live.
#[derive(Clone)]
pub struct Push {
    pub(crate) pusher: Arc<Pusher>,
    /// `None` with `PULSE_PUSH_WHEN_LIVE`: nothing is cancelled.
    pub(crate) seen_live: Option<Arc<SeenLive>>,
    delay: Duration,
}

impl Push {
    /// Loads the VAPID key (see [`Vapid::load_or_create`]) and starts the worker on `db`.
    pub(crate) fn start(
        db: &Db,
        settings: &Settings,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let vapid =
            Vapid::load_or_create(settings.vapid_private_key.as_deref(), &settings.data_dir)?;
        let pusher = Arc::new(Pusher::new(db.clone(), vapid, settings, metrics.clone())?);
        tokio::spawn(pusher.clone().run());
        let seen_live = (!settings.push_when_live)
            .then(|| Arc::new(SeenLive::start(db.clone(), metrics.clone())));
        Ok(Push {
            pusher,
            seen_live,
            delay: Duration::from_millis(settings.limits.push_delay_ms.max(0) as u64),
        })
    }

    /// The deployment's VAPID public key (base64url), for `GET /push/key`.
    pub(crate) fn public_key(&self) -> &str {
        self.pusher.vapid().public_key()
    }

    /// A notification committed here queued pushes: send them once due.
    pub(crate) fn queued(&self) {
        self.pusher.queued(self.delay);
    }

    /// A socket showed notification `id`: its pushes are not needed.
    pub(crate) fn seen(&self, id: i64) {
        if let Some(seen) = &self.seen_live {
            seen.seen(id);
        }
    }

    /// Stops claiming pushes (shutdown); what is being sent finishes.
    pub(crate) fn stop(&self) {
        self.pusher.stop();
    }

    /// A new private key for `pulse keygen --vapid`.
    pub fn generate_key() -> String {
        Vapid::generate()
    }
}

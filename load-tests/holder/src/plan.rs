//! The schedule of one load process: which socket opens when, to which instance, as whom, from
//! which source address; read from the environment (see the crate docs).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Where and as whom one socket connects.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: SocketAddr,
    pub host: String,
    pub local: Option<IpAddr>,
    pub token: String,
    pub timeout: Duration,
}

pub struct Plan {
    pub proc: u64,
    pub procs: u64,
    pub sockets: u64,
    pub servers: Vec<SocketAddr>,
    pub tokens: Vec<String>,
    pub local_addresses: Vec<IpAddr>,
    pub start: Instant,
    pub ramp: Duration,
    pub close_at: Instant,
    pub timeout: Duration,
    pub result_path: String,
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {text:?}")),
    }
}

impl Plan {
    pub fn from_env() -> Result<Plan, String> {
        let prep_path = var("PREP")?;
        let prep: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&prep_path).map_err(|e| format!("{prep_path}: {e}"))?,
        )
        .map_err(|e| format!("{prep_path}: {e}"))?;
        let tokens: Vec<String> = prep["users"]
            .as_array()
            .map(|users| {
                users
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if tokens.is_empty() {
            return Err(format!("{prep_path} has no users"));
        }
        let servers = crate::setup::instances("BASE_URLS", var("BASE_URLS")?.split(','))?;
        let local_addresses = std::env::var("LOCAL_ADDRESS")
            .unwrap_or_default()
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse::<IpAddr>()
                    .map_err(|_| format!("LOCAL_ADDRESS: {a} is not an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let start_at = number("START_AT", now_ms + 1000)?;
        // START_AT is wall-clock (shared by every process); the schedule runs on the monotonic
        // clock from the matching instant.
        let start = if start_at >= now_ms {
            Instant::now() + Duration::from_millis(start_at - now_ms)
        } else {
            Instant::now()
                .checked_sub(Duration::from_millis(now_ms - start_at))
                .unwrap_or_else(Instant::now)
        };
        let ramp = Duration::from_secs(number("RAMP", 10)?);
        let hold = Duration::from_secs(number("HOLD", 300)?);
        let procs = number("PROCS", 1)?.max(1);
        Ok(Plan {
            proc: number("PROC", 0)?,
            procs,
            sockets: number("SOCKETS", 1000)?,
            servers,
            tokens,
            local_addresses,
            start,
            ramp,
            close_at: start + ramp + hold,
            timeout: Duration::from_millis(number("CONNECT_TIMEOUT_MS", 30_000)?),
            result_path: var("RESULT")?,
        })
    }

    /// When socket `g` of this process opens: an even pace over the ramp.
    pub fn open_at(&self, g: u64) -> Instant {
        let offset = self.ramp.as_secs_f64() * g as f64 / self.sockets.max(1) as f64;
        self.start + Duration::from_secs_f64(offset)
    }

    /// Socket `g` of this process: the same mapping as `harness/hold.mjs`.
    pub fn target(&self, g: u64) -> Target {
        let global = self.proc + g * self.procs;
        let instances = self.servers.len() as u64;
        let server = self.servers[(global % instances) as usize];
        let user = ((global / instances) % self.tokens.len() as u64) as usize;
        let local = match self.local_addresses.len() {
            0 => None,
            n => Some(self.local_addresses[(g % n as u64) as usize]),
        };
        Target {
            server,
            host: server.to_string(),
            local,
            token: self.tokens[user].clone(),
            timeout: self.timeout,
        }
    }
}

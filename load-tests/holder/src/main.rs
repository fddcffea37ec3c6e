//! `pulse-hold`: one load process of the 100k-sockets scenario, in Rust because the Node `ws`
//! client costs about 0.8 ms of CPU per socket it opens (four times the server's cost), which
//! made the load generator, not the server, the limit on how fast sockets could be opened.
//!
//! Environment (the same as `harness/hold.mjs`, which it replaces for the held sockets; the
//! probe stays in Node):
//! - `PREP`: the JSON written by `hold.mjs prepare` (`{"users": [token, ...], ...}`).
//! - `BASE_URLS`: `http://127.0.0.1:18081,...`, the instances.
//! - `SOCKETS`, `PROC`, `PROCS`: this process opens `SOCKETS` sockets; its socket `g` is global
//!   socket `PROC + g * PROCS`, which goes to instance `global % instances` as user
//!   `(global / instances) % users` (so every instance sees every user).
//! - `START_AT` (epoch ms), `RAMP` (s): sockets open at an even pace from `START_AT` over `RAMP`.
//! - `HOLD` (s): they are held until `START_AT + RAMP + HOLD`, answering the server's pings.
//! - `LOCAL_ADDRESS`: comma-separated source addresses, socket `g` binds the `g mod n`-th.
//! - `CONNECT_TIMEOUT_MS` (30000): connect plus upgrade plus `hello` must finish within it.
//! - `RESULT`: where the JSON result goes (the layout `sockets100k.sh` reads).
//!
//! `pulse-hold fanout` is the fan-out scenario's receiver instead (see `fanout`), and
//! `pulse-hold likes` the likes scenario's like phase (see `likes`).
//!
//! A socket counts as opened when its `hello` frame arrives (the server sends it once the
//! socket is fully set up), not at the 101 answer; `upgradeMs` keeps the 101 times too.

mod client;
mod fanout;
mod http;
mod likes;
mod plan;
mod setup;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use client::{hold_socket, Report};
use plan::Plan;

/// What the sockets of this process reported.
#[derive(Default)]
struct Stats {
    opened: u64,
    /// Open now: opened and not closed since.
    open_now: u64,
    failures: BTreeMap<String, u64>,
    open_ms: Vec<u64>,
    upgrade_ms: Vec<u64>,
}

impl Stats {
    fn record(&mut self, start: tokio::time::Instant, report: Report) {
        match report {
            Report::Opened { upgraded, hello } => {
                self.opened += 1;
                self.open_now += 1;
                self.upgrade_ms.push(since_ms(start, upgraded));
                self.open_ms.push(since_ms(start, hello));
            }
            Report::Closed(kind) => {
                self.open_now = self.open_now.saturating_sub(1);
                *self.failures.entry(kind).or_default() += 1;
            }
            Report::Failed(kind) => *self.failures.entry(kind).or_default() += 1,
        }
    }
}

fn main() {
    let outcome = match std::env::args().nth(1).as_deref() {
        Some("fanout") => fanout::run(),
        Some("likes") => likes::run(),
        _ => run(),
    };
    if let Err(error) = outcome {
        eprintln!("pulse-hold: {error}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let plan = Plan::from_env()?;
    let runtime = setup::runtime()?;
    let stats = Arc::new(Mutex::new(Stats::default()));
    runtime.block_on(open_and_hold(&plan, &stats));
    let stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
    let held = stats.open_now;
    let last_open = stats.open_ms.iter().max().copied();
    let result = serde_json::json!({
        "proc": plan.proc,
        "localAddress": plan.local_addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        "sockets": plan.sockets,
        "opened": stats.opened,
        "heldAtEnd": held,
        "failures": stats.failures,
        "lastOpenMs": last_open,
        "openMs": stats.open_ms,
        "upgradeMs": stats.upgrade_ms,
        "probeSent": 0,
        "probeFailed": 0,
        "probeMissing": 0,
        "probeLatencies": [],
        "memory": resident_bytes(),
        "driver": "rust",
    });
    std::fs::write(&plan.result_path, result.to_string())
        .map_err(|e| format!("writing {}: {e}", plan.result_path))?;
    println!(
        "hold {} ({} addresses, rust): {}/{} opened, {} held at the end, failures {}",
        plan.proc,
        plan.local_addresses.len(),
        stats.opened,
        plan.sockets,
        held,
        serde_json::to_value(&stats.failures).unwrap_or_default(),
    );
    Ok(())
}

/// Opens every socket on schedule and holds them to the end of the hold; they close when the
/// task set is dropped on return, so what `stats` says then is what was held to the end.
async fn open_and_hold(plan: &Plan, stats: &Arc<Mutex<Stats>>) {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for g in 0..plan.sockets {
                let due = plan.open_at(g);
                if due > tokio::time::Instant::now() {
                    tokio::time::sleep_until(due).await;
                }
                let target = plan.target(g);
                let (stats, start) = (stats.clone(), plan.start);
                tokio::task::spawn_local(async move {
                    hold_socket(target, |report| {
                        stats
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .record(start, report)
                    })
                    .await;
                });
            }
            tokio::time::sleep_until(plan.close_at).await;
        })
        .await;
}

fn since_ms(start: tokio::time::Instant, at: tokio::time::Instant) -> u64 {
    at.saturating_duration_since(start).as_millis() as u64
}

/// This process's resident set, bytes (0 if /proc cannot be read).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

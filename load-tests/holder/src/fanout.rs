//! `pulse-hold fanout`: the receiving side of the fan-out scenario (`harness/fanout.mjs`
//! starts it in place of its Node workers when `RECEIVER=rust`). The Node `ws` receiver costs
//! about as much CPU per frame as the server that sends it, so on 2 cores it takes half the
//! machine away from the server it measures; this one reads frames with a few syscalls and a
//! substring search.
//!
//! Environment: `JOB`, the JSON job `fanout.mjs` writes (the same object it sends a Node
//! worker: `bases`, `postId`, `likes`, `openStartAt`, `likeStartAt`, `intervalMs`, `closeAt`,
//! `ramp`, `sockets`, `latencyEvery`, `mine: [{g, token}]`), and `RESULT`, where the figures go
//! (the layout a Node worker reports: `frames`, `inPhase`, `stale`, `opened`, `failures`,
//! `errorFrames`, `latencies`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::client;
use crate::plan::Target;
use crate::setup;

const LIKE_COUNT_FIELD: &[u8] = b"\"like_count\":";
const LIKE_COUNT_TYPE: &[u8] = b"\"type\":\"like_count\"";
const ERROR_TYPE: &[u8] = b"\"type\":\"error\"";
/// Connect, upgrade and `hello` must finish within this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    bases: Vec<String>,
    post_id: i64,
    likes: i64,
    open_start_at: f64,
    like_start_at: f64,
    interval_ms: f64,
    close_at: f64,
    ramp: f64,
    sockets: u64,
    latency_every: u64,
    mine: Vec<Mine>,
}

#[derive(Deserialize)]
struct Mine {
    g: u64,
    token: String,
}

#[derive(Default)]
struct Figures {
    frames: u64,
    in_phase: u64,
    opened: u64,
    failures: u64,
    error_frames: u64,
    latencies: Vec<f64>,
    /// The last count each socket of this process received (-1: none).
    last: Vec<i64>,
}

/// What every socket of this process reads (the job) and adds to (the figures).
struct Run {
    job: Job,
    /// When the last like is due: frames before it count as "in phase".
    phase_end: f64,
    figures: RefCell<Figures>,
}

/// The value after `"like_count":` in a `like_count` frame, if it is one.
fn like_count(frame: &[u8]) -> Option<i64> {
    client::find(frame, LIKE_COUNT_TYPE)?;
    let at = client::find(frame, LIKE_COUNT_FIELD)? + LIKE_COUNT_FIELD.len();
    let digits: &[u8] = &frame[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

pub fn run() -> Result<(), String> {
    let (job, result_path) = setup::read_job::<Job>()?;
    let servers = setup::instances("the job's bases", job.bases.iter().map(String::as_str))?;
    let runtime = setup::runtime()?;
    let run = Rc::new(Run {
        phase_end: job.like_start_at + job.likes as f64 * job.interval_ms,
        figures: RefCell::new(Figures {
            last: vec![-1; job.mine.len()],
            ..Figures::default()
        }),
        job,
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, receive_all(&run, &servers));
    let figures = run.figures.borrow();
    let stale = figures.last.iter().filter(|v| **v != run.job.likes).count();
    let result = serde_json::json!({
        "frames": figures.frames,
        "inPhase": figures.in_phase,
        "stale": stale,
        "opened": figures.opened,
        "failures": figures.failures,
        "errorFrames": figures.error_frames,
        "latencies": figures.latencies,
    });
    setup::write_result(&result_path, &result)
}

/// Opens this process's sockets on the shared schedule and reads them until `closeAt`.
async fn receive_all(run: &Rc<Run>, servers: &[SocketAddr]) {
    let job = &run.job;
    let mut tasks = Vec::with_capacity(job.mine.len());
    for (index, mine) in job.mine.iter().enumerate() {
        let at = job.open_start_at + mine.g as f64 * job.ramp * 1000.0 / job.sockets.max(1) as f64;
        setup::sleep_until_ms(at).await;
        let server = servers[(mine.g % servers.len() as u64) as usize];
        let target = Target {
            server,
            host: server.to_string(),
            local: None,
            token: mine.token.clone(),
            timeout: OPEN_TIMEOUT,
        };
        let socket = Socket {
            index,
            timed: mine.g % job.latency_every.max(1) == 0,
            run: run.clone(),
        };
        tasks.push(tokio::task::spawn_local(socket.receive(target)));
    }
    setup::sleep_until_ms(job.close_at).await;
    for task in tasks {
        task.abort();
    }
}

struct Socket {
    index: usize,
    timed: bool,
    run: Rc<Run>,
}

impl Socket {
    /// Opens, subscribes, then counts `like_count` frames until aborted (a close or error
    /// before that is a failure).
    async fn receive(self, target: Target) {
        let opened = tokio::time::timeout(target.timeout, client::open(&target)).await;
        let Ok(Ok((mut stream, mut buffer, _upgraded, _hello))) = opened else {
            self.run.figures.borrow_mut().failures += 1;
            return;
        };
        self.run.figures.borrow_mut().opened += 1;
        let subscribe = format!(
            r#"{{"type":"subscribe","post_ids":[{}]}}"#,
            self.run.job.post_id
        );
        if stream
            .write_all(&client::masked_text(subscribe.as_bytes()))
            .await
            .is_err()
        {
            self.run.figures.borrow_mut().failures += 1;
            return;
        }
        client::read_text_frames(&mut stream, &mut buffer, |payload| self.frame(payload)).await;
        self.run.figures.borrow_mut().failures += 1;
    }

    fn frame(&self, payload: &[u8]) {
        let at = setup::now_ms();
        let Some(value) = like_count(payload) else {
            if client::find(payload, ERROR_TYPE).is_some() {
                self.run.figures.borrow_mut().error_frames += 1;
            }
            return;
        };
        let (job, mut figures) = (&self.run.job, self.run.figures.borrow_mut());
        figures.last[self.index] = value;
        figures.frames += 1;
        if at >= job.like_start_at && at < self.run.phase_end {
            figures.in_phase += 1;
        }
        if self.timed && (1..=job.likes).contains(&value) {
            let scheduled = job.like_start_at + (value - 1) as f64 * job.interval_ms;
            figures.latencies.push(at - scheduled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_count_frames_are_recognised_and_others_are_not() {
        assert_eq!(
            like_count(br#"{"type":"like_count","post_id":1,"like_count":1234}"#),
            Some(1234)
        );
        assert_eq!(
            like_count(br#"{"type":"notification","like_count":3}"#),
            None
        );
        assert_eq!(like_count(br#"{"type":"like_count","post_id":1}"#), None);
    }
}

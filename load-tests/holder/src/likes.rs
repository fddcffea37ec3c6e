//! `pulse-hold likes`: the like phase of the likes scenario (`harness/likes.mjs` starts it in
//! place of its own sockets and connections when `DRIVER=rust`). The Node driver costs about
//! 0.16 ms of CPU per like, a sixth of everything a like costs on 2 cores; this one sends the
//! same likes on the same schedule and reads the same frames for a fraction of that.
//!
//! Environment: `JOB`, the JSON job `likes.mjs` writes after its setup (`bases`, `rate`,
//! `total`, `t0` and `end` in epoch ms, `connections`, `postsPerAuthor`, `authors: [{id, token,
//! home, posts}]`, `likers: [{id, token}]`), and `RESULT`, where the raw figures go (`samples`:
//! the latency arrays, and `likeStart`, each like's start in epoch ms in the order of
//! `likeDuration`; `counts`: the counters, `seen`: each author's notification ids, in the
//! layout `likes.mjs` merges into its own figures).
//!
//! The schedule and the checks are `likes.mjs`'s: global like `g` (author `i = g % authors`,
//! its `k`-th like `k = g / authors`) is due at `t0 + g / rate`, on post `k % postsPerAuthor` of
//! author `i`, by liker `(k / postsPerAuthor + i) % likers`, through instance `(k + i) % n`.
//! Each author holds one socket on instance `i % n` and reconnects with `?since=` if it drops.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;

use crate::client;
use crate::http::Pool;
use crate::plan::Target;
use crate::setup;

/// Connect, upgrade and `hello` must finish within this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a dropped author socket waits before it reconnects, and how often it may.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);
const MAX_RECONNECTS: u32 = 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    bases: Vec<String>,
    rate: f64,
    total: u64,
    t0: f64,
    end: f64,
    connections: usize,
    posts_per_author: usize,
    authors: Vec<Author>,
    likers: Vec<Liker>,
}

#[derive(Deserialize)]
struct Author {
    id: i64,
    token: String,
    home: usize,
    posts: Vec<i64>,
}

#[derive(Deserialize)]
struct Liker {
    id: i64,
    token: String,
}

/// A notification frame, as much of it as the checks read.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    notification: Option<Notification>,
}

#[derive(Deserialize)]
struct Notification {
    id: i64,
    post_id: Option<i64>,
    actor: Option<Actor>,
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct Actor {
    id: i64,
}

/// The latency samples, in milliseconds (the names are `likes.mjs`'s).
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Samples {
    notify: Vec<f64>,
    notify_same: Vec<f64>,
    notify_cross: Vec<f64>,
    commit_to_frame: Vec<f64>,
    like_duration: Vec<f64>,
    send_lag: Vec<f64>,
    /// Each like's start (ms since the epoch), in the order of `like_duration`.
    like_start: Vec<f64>,
}

#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    sent: u64,
    ok: u64,
    failed: u64,
    unchanged: u64,
    retried: u64,
    received: u64,
    missing: u64,
    unexpected: u64,
    duplicated: u64,
    out_of_order: u64,
    ws_failures: u64,
    ws_reconnects: u64,
    ws_error_frames: u64,
    ws_gap_frames: u64,
}

/// What one author's socket expects and has seen.
#[derive(Default)]
struct Inbox {
    /// (post, liker) -> (like start in ms, whether it went through the socket's own instance).
    pending: HashMap<(i64, i64), (f64, bool)>,
    seen: HashSet<i64>,
    last_id: i64,
    open: bool,
}

struct Run {
    job: Job,
    servers: Vec<SocketAddr>,
    pools: Vec<Pool>,
    inboxes: Vec<RefCell<Inbox>>,
    samples: RefCell<Samples>,
    counts: RefCell<Counts>,
}

pub fn run() -> Result<(), String> {
    let (job, result_path) = setup::read_job::<Job>()?;
    if job.authors.is_empty() || job.likers.is_empty() || job.posts_per_author == 0 {
        return Err("the job needs authors, likers and posts".into());
    }
    if job
        .authors
        .iter()
        .any(|a| a.posts.len() < job.posts_per_author)
    {
        return Err("an author has fewer posts than postsPerAuthor".into());
    }
    let servers = setup::instances("the job's bases", job.bases.iter().map(String::as_str))?;
    let runtime = setup::runtime()?;
    let run = Rc::new(Run {
        pools: servers
            .iter()
            .map(|s| Pool::new(*s, job.connections))
            .collect(),
        inboxes: job.authors.iter().map(|_| RefCell::default()).collect(),
        servers,
        job,
        samples: RefCell::default(),
        counts: RefCell::default(),
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, like_phase(&run));
    let seen: Vec<Vec<i64>> = run
        .inboxes
        .iter()
        .map(|inbox| inbox.borrow().seen.iter().copied().collect())
        .collect();
    let result = serde_json::json!({
        "samples": &*run.samples.borrow(),
        "counts": &*run.counts.borrow(),
        "seen": seen,
    });
    setup::write_result(&result_path, &result)
}

/// Opens the author sockets, sends every like on schedule, waits for the answers and the
/// drain, then counts what never arrived.
async fn like_phase(run: &Rc<Run>) {
    let job = &run.job;
    let sockets: Vec<_> = (0..job.authors.len())
        .map(|i| tokio::task::spawn_local(author_socket(run.clone(), i)))
        .collect();
    setup::sleep_until_ms(job.t0).await;
    let not_open = run.inboxes.iter().filter(|i| !i.borrow().open).count();
    if not_open > 0 {
        run.counts.borrow_mut().ws_failures += not_open as u64;
        eprintln!("{not_open} author sockets not open when the likes start");
    }
    // Open loop: every like that is due goes out now (catching up at once if the loop was late).
    let interval = 1000.0 / job.rate;
    let mut likes = Vec::with_capacity(job.total as usize);
    for g in 0..job.total {
        let due = job.t0 + g as f64 * interval;
        if setup::now_ms() < due {
            setup::sleep_until_ms(due).await;
        }
        likes.push(tokio::task::spawn_local(like(run.clone(), g, due)));
    }
    for like in likes {
        let _ = like.await;
    }
    setup::sleep_until_ms(job.end).await;
    for socket in sockets {
        socket.abort();
    }
    for (i, inbox) in run.inboxes.iter().enumerate() {
        let left = inbox.borrow().pending.len() as u64;
        if left > 0 {
            run.counts.borrow_mut().missing += left;
            eprintln!(
                "author {}: {left} expected notifications never arrived",
                job.authors[i].id
            );
        }
    }
}

/// Like `g`, due at `due`: registered with its author's socket, sent (and retried once on a
/// transport error, timed from the first attempt), its answer checked.
async fn like(run: Rc<Run>, g: u64, due: f64) {
    let job = &run.job;
    let (authors, instances) = (job.authors.len() as u64, run.pools.len() as u64);
    let (i, k) = (g % authors, g / authors);
    let author = &job.authors[i as usize];
    let post = author.posts[(k % job.posts_per_author as u64) as usize];
    let liker =
        &job.likers[((k / job.posts_per_author as u64 + i) % job.likers.len() as u64) as usize];
    let through = ((k + i) % instances) as usize;
    let start = setup::now_ms();
    run.samples
        .borrow_mut()
        .send_lag
        .push((start - due).max(0.0));
    run.inboxes[i as usize]
        .borrow_mut()
        .pending
        .insert((post, liker.id), (start, through == author.home));
    run.counts.borrow_mut().sent += 1;
    let path = format!("/api/v1/posts/{post}/like");
    let pool = &run.pools[through];
    let mut answer = pool.request("PUT", &path, &liker.token, false).await;
    if answer.status == 0 {
        // The server may close an idle keep-alive connection as the request goes out; PUT is
        // idempotent, so retry once, on a new connection.
        run.counts.borrow_mut().retried += 1;
        answer = pool.request("PUT", &path, &liker.token, true).await;
    }
    {
        let mut samples = run.samples.borrow_mut();
        samples.like_duration.push(setup::now_ms() - start);
        samples.like_start.push(start);
    }
    let mut counts = run.counts.borrow_mut();
    if answer.status == 200 {
        counts.ok += 1;
        if !answer.body.contains("\"liked\":true") {
            counts.unchanged += 1;
        }
    } else {
        run.inboxes[i as usize]
            .borrow_mut()
            .pending
            .remove(&(post, liker.id));
        counts.failed += 1;
        if counts.failed <= 5 {
            let body: String = answer.body.chars().take(200).collect();
            eprintln!("like: {} {body}", answer.status);
        }
    }
}

/// Author `i`'s socket on its home instance, reopened with `?since=<last id>` when it drops.
async fn author_socket(run: Rc<Run>, i: usize) {
    let author = &run.job.authors[i];
    let server = run.servers[author.home % run.servers.len()];
    let target = Target {
        server,
        host: server.to_string(),
        local: None,
        token: author.token.clone(),
        timeout: OPEN_TIMEOUT,
    };
    let mut reconnects = 0;
    loop {
        let last_id = run.inboxes[i].borrow().last_id;
        let query = if last_id > 0 {
            format!("?since={last_id}")
        } else {
            String::new()
        };
        let why = match tokio::time::timeout(OPEN_TIMEOUT, client::open_with_query(&target, &query))
            .await
        {
            Err(_) => "timeout".to_owned(),
            Ok(Err(why)) => why,
            Ok(Ok((mut stream, mut buffer, _upgraded, _hello))) => {
                run.inboxes[i].borrow_mut().open = true;
                let why = client::read_text_frames(&mut stream, &mut buffer, |payload| {
                    frame(&run, i, payload)
                })
                .await;
                run.inboxes[i].borrow_mut().open = false;
                why
            }
        };
        run.counts.borrow_mut().ws_reconnects += 1;
        reconnects += 1;
        if reconnects > MAX_RECONNECTS {
            run.counts.borrow_mut().ws_failures += 1;
            eprintln!(
                "socket of author {} closed {reconnects} times (last: {why}); giving up",
                author.id
            );
            return;
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// One text frame on author `i`'s socket, at the time it was read.
fn frame(run: &Run, i: usize, payload: &[u8]) {
    let at = setup::now_ms();
    let mut counts = run.counts.borrow_mut();
    let Ok(frame) = serde_json::from_slice::<Frame>(payload) else {
        counts.ws_error_frames += 1;
        return;
    };
    match (frame.kind.as_str(), frame.notification) {
        ("notification", Some(n)) => {
            let mut inbox = run.inboxes[i].borrow_mut();
            if !inbox.seen.insert(n.id) {
                counts.duplicated += 1;
                return;
            }
            if n.id < inbox.last_id {
                counts.out_of_order += 1;
            }
            inbox.last_id = inbox.last_id.max(n.id);
            counts.received += 1;
            let mut samples = run.samples.borrow_mut();
            if let Some(created) = n.created_at.as_deref().and_then(epoch_ms) {
                samples.commit_to_frame.push(at - created);
            }
            let key = (n.post_id.unwrap_or(-1), n.actor.map_or(-1, |a| a.id));
            let Some((start, same)) = inbox.pending.remove(&key) else {
                counts.unexpected += 1;
                return;
            };
            let latency = at - start;
            samples.notify.push(latency);
            if same {
                samples.notify_same.push(latency);
            } else {
                samples.notify_cross.push(latency);
            }
        }
        ("gap", _) => counts.ws_gap_frames += 1,
        ("error", _) => {
            counts.ws_error_frames += 1;
            eprintln!(
                "socket of author {}: error frame {}",
                run.job.authors[i].id,
                String::from_utf8_lossy(payload)
            );
        }
        _ => {}
    }
}

/// An RFC 3339 timestamp as epoch milliseconds.
fn epoch_ms(text: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(at.timestamp_micros() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_to_the_millisecond() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.250Z"), Some(1250.0));
        assert_eq!(epoch_ms("yesterday"), None);
    }

    #[test]
    fn a_notification_frame_is_read_and_other_fields_are_ignored() {
        let text = br#"{"type":"notification","notification":{"id":7,"recipient_id":2,
            "actor":{"id":3,"username":"a","display_name":"A"},"kind":"like","post_id":5,
            "comment_id":null,"text":"a liked your photo.","created_at":"2026-11-24T10:15:30.123Z","read":false}}"#;
        let Ok(Frame {
            kind,
            notification: Some(n),
        }) = serde_json::from_slice::<Frame>(text)
        else {
            panic!("the notification frame was not read");
        };
        assert_eq!(
            (kind.as_str(), n.id, n.post_id),
            ("notification", 7, Some(5))
        );
        assert_eq!(n.actor.map(|a| a.id), Some(3));
        assert_eq!(
            n.created_at.as_deref().and_then(epoch_ms),
            Some(1_795_515_330_123.0)
        );
        let other = serde_json::from_slice::<Frame>(br#"{"type":"like_count","post_id":1}"#);
        assert!(matches!(
            other,
            Ok(Frame {
                notification: None,
                ..
            })
        ));
    }
}

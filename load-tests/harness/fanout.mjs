// fanout (Node harness): SOCKETS sockets all watching one post while it gets LIKE_RATE likes/s
// for DURATION seconds, every like by a distinct user, so the count goes 1, 2, 3, ... and every
// like changes it. The same measurement as ../fanout.js, with receivers cheap enough to take
// 100k-200k frames/s on a 2-core machine that also runs the server (k6 needs about 27 us of CPU
// per received frame there; this needs a few).
//
//   BASE_URLS=http://127.0.0.1:18081 SOCKETS=10000 node load-tests/harness/fanout.mjs
//
// Environment: SOCKETS (10000), LIKE_RATE (20), DURATION (60 s), RAMP (s to open all sockets,
// default SOCKETS/1000), SETTLE (3), DRAIN (3), WORKERS (receiver processes, 2),
// LATENCY_EVERY (time every n-th socket's frames, 1 = all), P99_MS (50), RESULT (JSON path),
// RECEIVER (node, or rust: each worker is a `$PULSE_HOLD_BIN fanout` process, load-tests/holder,
// about a fifth of the Node receiver's CPU per frame).
// Figures (RESULT, k6 summary-export layout, so lib/figures.sh reads it):
//   fanout_latency      frame arrival - scheduled send time of the newest like it reports
//                       (like v-1 for like_count = v): what a watcher sees, coalescing included
//   like_count_frames, like_count_frames_in_phase (received while likes were sent),
//   stale_final_count (sockets whose last frame was not the final count), sockets_opened,
//   ws_failures, likes_ok, like_duration, like_send_lag.
// Prints "PHASE cpu from=<ms> to=<ms>" (the like phase) for run.sh's CPU accounting.
// With two or more BASE_URLS, sockets open on the first instance and likes go to the others.
// Exit code 99 when a threshold is missed (like k6).
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { envNum, baseUrls, wsUrl, runId, registerMany, createPost, trend, counter, sleep } from './lib.mjs';

const now = () => performance.timeOrigin + performance.now();

if (process.argv[2] === 'worker') {
  process.on('message', (job) => runWorker(job));
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

async function main() {
  const bases = baseUrls();
  const cfg = {
    sockets: envNum('SOCKETS', 10000),
    likeRate: envNum('LIKE_RATE', 20),
    duration: envNum('DURATION', 60),
    settle: envNum('SETTLE', 3),
    drain: envNum('DRAIN', 3),
    workers: envNum('WORKERS', 2),
    latencyEvery: envNum('LATENCY_EVERY', 1),
    p99: envNum('P99_MS', 50),
    receiver: process.env.RECEIVER === 'rust' ? 'rust' : 'node',
  };
  if (cfg.receiver === 'rust' && !process.env.PULSE_HOLD_BIN) throw new Error('RECEIVER=rust needs PULSE_HOLD_BIN (a pulse-hold binary)');
  cfg.ramp = envNum('RAMP', Math.max(5, Math.ceil(cfg.sockets / 1000)));
  cfg.likes = Math.ceil(cfg.likeRate * cfg.duration);
  // At most 32 sockets per user and instance; the watchers double as likers (distinct users).
  const userCount = Math.max(Math.ceil(cfg.sockets / 16), cfg.likes);
  const t = Date.now();
  const run = runId();
  const users = await registerMany(bases[0], [`n${run}_author`, ...Array.from({ length: userCount }, (_, i) => `n${run}_u${i}`)]);
  const author = users[0];
  const watchers = users.slice(1);
  const postId = await createPost(bases[0], author.token, 'fan-out');
  const openStartAt = Date.now() + 1500;
  const likeStartAt = openStartAt + (cfg.ramp + cfg.settle) * 1000;
  const intervalMs = 1000 / cfg.likeRate;
  const closeAt = likeStartAt + (cfg.duration + cfg.drain) * 1000;
  console.log(`setup: ${users.length} users and post ${postId} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  console.log(`PHASE cpu from=${likeStartAt} to=${likeStartAt + cfg.duration * 1000}`);

  // With 2+ instances, sockets go to the first and likes to the others (through Redis): the fan-out
  // instance then does fan-out only, and likes are not queued behind it (see RESULTS.md).
  const socketBases = bases.length > 1 ? bases.slice(0, 1) : bases;
  const likeBases = bases.length > 1 ? bases.slice(1) : bases;
  const job = { bases: socketBases, postId, likes: cfg.likes, openStartAt, likeStartAt, intervalMs, closeAt, ramp: cfg.ramp, sockets: cfg.sockets, latencyEvery: cfg.latencyEvery };
  const results = Promise.all(
    Array.from({ length: cfg.workers }, (_, w) => {
      const mine = [];
      for (let g = w; g < cfg.sockets; g += cfg.workers) mine.push({ g, token: watchers[g % watchers.length].token });
      if (cfg.receiver === 'rust') return rustReceiver({ ...job, mine }, w);
      const child = fork(fileURLToPath(import.meta.url), ['worker'], { stdio: 'inherit' });
      return new Promise((resolve, reject) => {
        child.on('message', (m) => {
          resolve(m);
          child.disconnect();
        });
        child.on('exit', (code) => code !== 0 && reject(new Error(`worker ${w} exited ${code}`)));
        child.send({ ...job, mine });
      });
    }),
  );

  // The liker: like k at likeStartAt + k * interval, by user k, on instance k % n.
  const likeDurations = [];
  const sendLags = [];
  let likesOk = 0;
  let likesFailed = 0;
  const inflight = [];
  if (process.env.DEBUG_FRAMES) console.log(`liker starts at ${Date.now()}, first like due ${likeStartAt}`);
  const likerDone = (async () => {
    for (let k = 0; k < cfg.likes; k++) {
      const target = likeStartAt + k * intervalMs;
      await sleep(target - now());
      sendLags.push(Math.max(0, now() - target));
      if (process.env.DEBUG_FRAMES) console.log(`like ${k} at ${Date.now()}`);
      const t0 = now();
      inflight.push(
        fetch(`${likeBases[k % likeBases.length]}/api/v1/posts/${postId}/like`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${watchers[k].token}` },
          signal: AbortSignal.timeout(10000),
        })
          .then(async (res) => {
            await res.arrayBuffer();
            likeDurations.push(now() - t0);
            if (res.status === 200) likesOk++;
            else likesFailed++;
          })
          .catch(() => likesFailed++),
      );
    }
    await Promise.all(inflight);
  })();
  const [workerResults] = await Promise.all([results, likerDone]);

  const latencies = [];
  const sum = (k) => workerResults.reduce((s, r) => s + r[k], 0);
  for (const r of workerResults) for (const v of r.latencies) latencies.push(v);
  const seconds = (closeAt - openStartAt) / 1000;
  const metrics = {
    fanout_latency: trend(latencies),
    like_duration: trend(likeDurations),
    like_send_lag: trend(sendLags),
    like_count_frames: counter(sum('frames'), seconds),
    like_count_frames_in_phase: counter(sum('inPhase'), cfg.duration),
    stale_final_count: counter(sum('stale'), seconds),
    sockets_opened: counter(sum('opened'), seconds),
    ws_failures: counter(sum('failures'), seconds),
    ws_error_frames: counter(sum('errorFrames'), seconds),
    likes_ok: counter(likesOk, cfg.duration),
    likes_failed: counter(likesFailed, cfg.duration),
  };
  const checks = [
    ['fanout_latency', `p(99)<=${cfg.p99}`, metrics.fanout_latency['p(99)'] <= cfg.p99],
    ['stale_final_count', 'count==0', metrics.stale_final_count.count === 0],
    ['sockets_opened', `count==${cfg.sockets}`, metrics.sockets_opened.count === cfg.sockets],
    ['ws_failures', 'count==0', metrics.ws_failures.count === 0],
    ['likes_ok', `count==${cfg.likes}`, likesOk === cfg.likes],
  ];
  for (const [name, expr, ok] of checks) metrics[name].thresholds = { [expr]: !ok };
  const inPhasePerSec = metrics.like_count_frames_in_phase.count / cfg.duration;
  console.log(
    `fanout: ${metrics.sockets_opened.count} sockets, ${likesOk}/${cfg.likes} likes ok, ` +
      `${metrics.like_count_frames.count} frames (${inPhasePerSec.toFixed(0)}/s during the likes), ` +
      `latency p50 ${metrics.fanout_latency.med.toFixed(1)} ms p99 ${metrics.fanout_latency['p(99)'].toFixed(1)} ms, ` +
      `stale finals ${metrics.stale_final_count.count}, ws failures ${metrics.ws_failures.count}`,
  );
  const failed = checks.filter((c) => !c[2]).map((c) => `${c[0]} ${c[1]}`);
  console.log(failed.length ? `thresholds crossed: ${failed.join('; ')}` : 'thresholds: all passed');
  if (process.env.RESULT) writeFileSync(process.env.RESULT, JSON.stringify({ metrics, harness: 'harness/fanout.mjs', cfg }, null, 1));
  process.exit(failed.length ? 99 : 0);
}

// A `pulse-hold fanout` process in place of a Node worker: the same job in, the same figures out.
function rustReceiver(job, w) {
  const dir = mkdtempSync(join(tmpdir(), 'pulse-fanout-'));
  const jobPath = join(dir, `job-${w}.json`);
  const resultPath = join(dir, `result-${w}.json`);
  writeFileSync(jobPath, JSON.stringify(job));
  const child = spawn(process.env.PULSE_HOLD_BIN, ['fanout'], { stdio: 'inherit', env: { ...process.env, JOB: jobPath, RESULT: resultPath } });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`rust receiver ${w} exited ${code}`));
      const result = JSON.parse(readFileSync(resultPath, 'utf8'));
      rmSync(dir, { recursive: true, force: true });
      resolve(result);
    });
  });
}

function runWorker(job) {
  const LIKE = '"like_count":';
  let frames = 0;
  let inPhase = 0;
  let stale = 0;
  let opened = 0;
  let failures = 0;
  let errorFrames = 0;
  const latencies = [];
  const phaseEnd = job.likeStartAt + (job.likes / (1000 / job.intervalMs)) * 1000;
  const sockets = [];
  job.mine.forEach(({ g, token }) => {
    const at = job.openStartAt + (g * job.ramp * 1000) / job.sockets;
    setTimeout(() => {
      const s = { last: -1, open: false, closing: false, timed: g % job.latencyEvery === 0 };
      const ws = new WebSocket(wsUrl(job.bases[g % job.bases.length]), { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
      s.ws = ws;
      sockets.push(s);
      ws.on('open', () => {
        s.open = true;
        opened++;
        ws.send(JSON.stringify({ type: 'subscribe', post_ids: [job.postId] }));
      });
      ws.on('message', (data) => {
        const t = now();
        const str = data.toString();
        if (process.env.DEBUG_FRAMES && g < 2) console.log(`socket ${g} at ${Date.now()}: ${str}`);
        const i = str.indexOf(LIKE);
        if (i < 0 || str.indexOf('"type":"like_count"') < 0) {
          if (str.indexOf('"type":"error"') >= 0) errorFrames++;
          return;
        }
        const v = parseInt(str.slice(i + LIKE.length), 10);
        frames++;
        s.last = v;
        if (t >= job.likeStartAt && t < phaseEnd) inPhase++;
        if (s.timed && v >= 1 && v <= job.likes) latencies.push(t - (job.likeStartAt + (v - 1) * job.intervalMs));
      });
      ws.on('error', () => {
        if (!s.closing) failures++;
      });
      ws.on('close', () => {
        if (!s.closing && s.open) failures++;
        s.open = false;
      });
    }, Math.max(0, at - Date.now()));
  });
  setTimeout(() => {
    for (const s of sockets) {
      s.closing = true;
      if (s.last !== job.likes) stale++;
      try {
        s.ws.terminate();
      } catch (e) {
        /* already closed */
      }
    }
    process.send({ frames, inPhase, stale, opened, failures, errorFrames, latencies }, () => process.exit(0));
  }, Math.max(0, job.closeAt - Date.now()));
}

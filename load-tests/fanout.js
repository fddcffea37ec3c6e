// fanout: SOCKETS sockets (default 10,000) all subscribed to one post
// ({"type":"subscribe","post_ids":[id]}), while one liker VU likes that post LIKE_RATE times a
// second (default 20) for DURATION (default 60s), every like by a distinct user, so every like
// changes the count and every watcher should see like_count frames.
//   k6 run -e BASE_URLS=http://127.0.0.1:18081 -e SOCKETS=2000 fanout.js
//
// Latency without shared memory between VUs: like k (0-based) is sent at the absolute time
// likeStartAt + k * interval, fixed in setup() and known to every VU. The post is fresh, so
// like_count == k + 1 right after like k; a watcher that receives like_count v computes
// fanout_latency = receive time - (likeStartAt + (v - 1) * interval). If the server coalesces a
// burst into one frame, the frame is timed against the newest like it reports, which is exactly
// the delay a user would see. like_send_lag records how late the liker actually sent each like
// (it adds to fanout_latency; it should stay at 0-1 ms).
// Only LATENCY_SOCKETS sockets (default 1,000, spread evenly) record latency samples: k6 itself
// would otherwise become the bottleneck at 200,000 frames/s. Every socket counts its frames
// (like_count_frames) and checks that its last frame carried the final count (stale_final_count).
// SOCKETS_PER_VU sockets (default 100) share one VU; a k6 VU costs megabytes, a socket does not.
import http from 'k6/http';
import exec from 'k6/execution';
import { Trend, Counter } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { envNum, envSeconds, baseUrls, wsUrl, authHeaders, newRunId, registerMany, createPosts } from './lib/common.js';

const sockets = envNum('SOCKETS', 10000);
const perVu = envNum('SOCKETS_PER_VU', 100);
const likeRate = envNum('LIKE_RATE', 20);
const duration = envSeconds('DURATION', 60);
const cfg = {
  sockets,
  perVu,
  vus: Math.ceil(sockets / perVu),
  // The server refuses more than PULSE_WS_MAX_SOCKETS_PER_USER (32) sockets per user and instance.
  watcherUsers: Math.min(sockets, envNum('WATCHER_USERS', Math.ceil(sockets / 16))),
  // (setup registers max(WATCHER_USERS, LIKE_RATE x DURATION) users; sockets use all of them)
  likeRate,
  duration,
  likes: Math.ceil(likeRate * duration),
  ramp: envSeconds('RAMP', Math.max(5, Math.ceil(sockets / 500))),
  settle: envSeconds('SETTLE', 3),
  drain: envSeconds('DRAIN', 3),
  latencyEvery: Math.max(1, Math.ceil(sockets / envNum('LATENCY_SOCKETS', 1000))),
  p99: envNum('P99_MS', 50),
  bases: baseUrls(),
};
const totalSeconds = cfg.ramp + cfg.settle + cfg.duration + cfg.drain;

const fanoutLatency = new Trend('fanout_latency', true);
const likeSendLag = new Trend('like_send_lag', true);
const likeDuration = new Trend('like_duration', true);
const likeCountFrames = new Counter('like_count_frames');
// Frames received while likes were being sent ([likeStartAt, likeStartAt + DURATION)): with the
// server's CPU time over the same phase (run.sh), frames per CPU-second.
const framesInPhase = new Counter('like_count_frames_in_phase');
const socketsOpened = new Counter('sockets_opened');
const wsFailures = new Counter('ws_failures');
const staleFinal = new Counter('stale_final_count');
const likesOk = new Counter('likes_ok');
const errorFrames = new Counter('ws_error_frames');

export const options = {
  setupTimeout: '900s',
  batch: 32,
  batchPerHost: 32,
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
  scenarios: {
    watchers: {
      executor: 'per-vu-iterations',
      exec: 'watchers',
      vus: cfg.vus,
      iterations: 1,
      maxDuration: `${Math.ceil(totalSeconds + 60)}s`,
    },
    liker: {
      executor: 'per-vu-iterations',
      exec: 'liker',
      vus: 1,
      iterations: 1,
      maxDuration: `${Math.ceil(totalSeconds + 60)}s`,
    },
  },
  thresholds: {
    fanout_latency: [`p(99)<=${cfg.p99}`],
    http_req_failed: ['rate==0'],
    ws_failures: ['count==0'],
    stale_final_count: ['count==0'],
    sockets_opened: [`count==${cfg.sockets}`],
    likes_ok: [`count==${cfg.likes}`],
  },
};

export function setup() {
  const base = cfg.bases[0];
  const run = newRunId();
  const t = Date.now();
  // Watchers double as likers (every like by a distinct user): fewer argon2 registrations.
  const userCount = Math.max(cfg.watcherUsers, cfg.likes);
  const names = [`f${run}_author`];
  for (let i = 0; i < userCount; i++) names.push(`f${run}_u${i}`);
  const users = registerMany(base, names);
  const author = users[0];
  const post = createPosts(base, [author], 1)[0][0];
  const now = Date.now();
  const openStartAt = now + 1000;
  const likeStartAt = openStartAt + (cfg.ramp + cfg.settle) * 1000;
  console.log(
    `setup: ${users.length} users and post ${post} in ${((now - t) / 1000).toFixed(1)} s; ` +
      `${cfg.sockets} sockets in ${cfg.vus} VUs, ${cfg.likes} likes from +${((likeStartAt - now) / 1000).toFixed(1)} s`,
  );
  // Parsed by run.sh (CPU time per component during the like phase): keep the format.
  console.log(`PHASE cpu from=${likeStartAt} to=${likeStartAt + cfg.duration * 1000}`);
  return {
    post,
    watchers: users.slice(1, 1 + userCount).map((u) => u.token),
    likers: users.slice(1, 1 + cfg.likes).map((u) => u.token),
    openStartAt,
    likeStartAt,
    intervalMs: 1000 / cfg.likeRate,
  };
}

const LIKE_COUNT_RE = /"like_count"\s*:\s*(\d+)/;
const POST_ID_RE = /"post_id"\s*:\s*(\d+)/;

function watch(data, g) {
  const base = cfg.bases[g % cfg.bases.length];
  const timed = g % cfg.latencyEvery === 0;
  const closeAt = data.likeStartAt + (cfg.duration + cfg.drain) * 1000;
  let closing = false;
  let opened = false;
  let frames = 0;
  let inPhase = 0;
  let last = -1;
  const phaseEnd = data.likeStartAt + cfg.duration * 1000;
  const ws = new WebSocket(wsUrl(base), null, {
    headers: authHeaders(data.watchers[g % data.watchers.length]),
    tags: { name: 'watcher' },
  });
  ws.onopen = () => {
    opened = true;
    socketsOpened.add(1);
    ws.send(JSON.stringify({ type: 'subscribe', post_ids: [data.post] }));
  };
  ws.onerror = (e) => {
    if (!closing) wsFailures.add(1, { kind: 'error' });
  };
  ws.onclose = () => {
    if (!closing) wsFailures.add(1, { kind: 'closed_early' });
  };
  ws.onmessage = (e) => {
    const now = Date.now();
    const s = e.data;
    // Cheap parse: a full JSON.parse per frame would make k6 the bottleneck.
    if (s.indexOf('"like_count"', 0) < 0 || s.indexOf('"type":"notification"') >= 0) {
      if (s.indexOf('"error"') >= 0) errorFrames.add(1);
      return;
    }
    const pm = POST_ID_RE.exec(s);
    const cm = LIKE_COUNT_RE.exec(s);
    if (!pm || !cm || Number(pm[1]) !== data.post) return;
    const v = Number(cm[1]);
    frames++;
    if (now >= data.likeStartAt && now < phaseEnd) inPhase++;
    last = v;
    if (timed && v >= 1 && v <= cfg.likes) fanoutLatency.add(now - (data.likeStartAt + (v - 1) * data.intervalMs));
  };
  setTimeout(() => {
    closing = true;
    likeCountFrames.add(frames);
    framesInPhase.add(inPhase);
    if (opened && last !== cfg.likes) staleFinal.add(1);
    if (opened) ws.close();
  }, Math.max(0, closeAt - Date.now()));
}

export function watchers(data) {
  wsFailures.add(0);
  staleFinal.add(0);
  const v = exec.scenario.iterationInTest;
  for (let s = 0; s < cfg.perVu; s++) {
    const g = v * cfg.perVu + s;
    if (g >= cfg.sockets) break;
    const at = data.openStartAt + (g * cfg.ramp * 1000) / cfg.sockets;
    setTimeout(() => watch(data, g), Math.max(0, at - Date.now()));
  }
}

export function liker(data) {
  const n = data.likers.length;
  let k = 0;
  function tick() {
    if (k >= n) return;
    const target = data.likeStartAt + k * data.intervalMs;
    likeSendLag.add(Math.max(0, Date.now() - target));
    const base = cfg.bases[k % cfg.bases.length];
    http
      .asyncRequest('PUT', `${base}/api/v1/posts/${data.post}/like`, null, {
        headers: authHeaders(data.likers[k]),
        tags: { name: 'like' },
        timeout: '10s',
      })
      .then((res) => {
        likeDuration.add(res.timings.duration);
        if (res.status === 200) likesOk.add(1);
      });
    k++;
    setTimeout(tick, Math.max(0, data.likeStartAt + k * data.intervalMs - Date.now()));
  }
  setTimeout(tick, Math.max(0, data.likeStartAt - Date.now()));
}

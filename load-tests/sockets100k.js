// sockets100k: many idle authenticated sockets held across several instances, from several k6
// processes (one k6 process holds at most ~19.5k sockets: 20,000 open files per process).
// run.sh sockets100k starts the processes; this script has two modes:
//
//   MODE=prepare  (one process) registers USERS users (sockets share them: at most 32 sockets per
//                 user and instance) and PROBES probe users with one post each, and writes
//                 {users: [token], probes: [{id, token, post}], likers: [{id, token}]} to PREP_OUT
//                 (JSON, from handleSummary).
//   MODE=hold     (PROCS processes, this one is PROC) reads PREP_FILE and, from START_AT (epoch ms,
//                 the same for every process), opens SOCKETS sockets spread over BASE_URLS at an
//                 even pace over RAMP seconds, holds every socket until START_AT + RAMP + HOLD
//                 seconds (k6 answers the server's pings: heartbeats keep them alive), then closes
//                 them. Meanwhile, in the last PROBE_SECONDS of the hold, its prober VU holds the
//                 sockets of its share of the probe users and likes their posts PROBE_RATE times a
//                 second with the likers' tokens (random probe user, random instance): probe_latency
//                 is like request start -> notification frame, while every other socket is held.
// Figures: sockets_opened, sockets_held (still open at the end), ws_failures, socket_open_at
// (ms after START_AT at which each socket opened: its max over all processes gives the
// establishment rate), probe_latency, probe_missing.
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { envNum, envStr, envSeconds, baseUrls, wsUrl, authHeaders, newRunId, registerMany, createPosts, parseFrame } from './lib/common.js';

const MODE = envStr('MODE', 'hold');
const bases = baseUrls();
const socketsOpened = new Counter('sockets_opened');
const socketsHeld = new Counter('sockets_held');
const wsFailures = new Counter('ws_failures');
const socketOpenAt = new Trend('socket_open_at', true);
const probeLatency = new Trend('probe_latency', true);
const probeSent = new Counter('probe_sent');
const probeMissing = new Counter('probe_missing');
const probeFailed = new Counter('probe_failed');

const cfg = {
  users: envNum('USERS', 1000),
  probes: envNum('PROBES', 60),
  likers: envNum('LIKERS', 200),
  sockets: envNum('SOCKETS', 1000),
  perVu: envNum('SOCKETS_PER_VU', 250),
  proc: envNum('PROC', 0),
  procs: envNum('PROCS', 1),
  startAt: envNum('START_AT', 0),
  ramp: envSeconds('RAMP', 10),
  hold: envSeconds('HOLD', 300),
  probeSeconds: envSeconds('PROBE_SECONDS', 60),
  probeRate: envNum('PROBE_RATE', 10),
  p99: envNum('P99_MS', 50),
};
cfg.vus = Math.ceil(cfg.sockets / cfg.perVu);
const closeAt = cfg.startAt + (cfg.ramp + cfg.hold) * 1000;

const prep = MODE === 'hold' ? JSON.parse(open(envStr('PREP_FILE', '/tmp/pulse-100k-prep.json'))) : null;

export const options =
  MODE === 'prepare'
    ? {
        setupTimeout: '1800s',
        batch: 32,
        batchPerHost: 32,
        scenarios: { noop: { executor: 'shared-iterations', exec: 'noop', vus: 1, iterations: 1 } },
      }
    : {
        batch: 32,
        scenarios: {
          hold: {
            executor: 'per-vu-iterations',
            exec: 'hold',
            vus: cfg.vus,
            iterations: 1,
            maxDuration: `${Math.ceil((closeAt - Date.now()) / 1000) + 120}s`,
          },
          probe: {
            executor: 'per-vu-iterations',
            exec: 'probe',
            vus: 1,
            iterations: 1,
            maxDuration: `${Math.ceil((closeAt - Date.now()) / 1000) + 120}s`,
          },
        },
        summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)', 'count'],
        thresholds: {
          sockets_opened: [`count==${cfg.sockets}`],
          sockets_held: [`count==${cfg.sockets}`],
          ws_failures: ['count==0'],
          probe_latency: [`p(99)<=${cfg.p99}`],
          probe_missing: ['count==0'],
          probe_failed: ['count==0'],
        },
      };

export function setup() {
  if (MODE !== 'prepare') return {};
  const run = newRunId();
  const t = Date.now();
  const names = [];
  for (let i = 0; i < cfg.users; i++) names.push(`h${run}_u${i}`);
  for (let i = 0; i < cfg.probes; i++) names.push(`h${run}_p${i}`);
  for (let i = 0; i < cfg.likers; i++) names.push(`h${run}_l${i}`);
  const reg = registerMany(bases[0], names);
  const probeUsers = reg.slice(cfg.users, cfg.users + cfg.probes);
  const posts = createPosts(bases[0], probeUsers, 1);
  console.log(`prepare: ${reg.length} users and ${cfg.probes} posts in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return {
    users: reg.slice(0, cfg.users).map((u) => u.token),
    probes: probeUsers.map((u, i) => ({ id: u.id, token: u.token, post: posts[i][0] })),
    likers: reg.slice(cfg.users + cfg.probes).map((u) => ({ id: u.id, token: u.token })),
  };
}

export function noop() {}

export function handleSummary(data) {
  if (MODE === 'prepare') return { [envStr('PREP_OUT', '/tmp/pulse-100k-prep.json')]: JSON.stringify(data.setup_data) };
  return { stdout: '' };
}

function holdOne(g) {
  let closing = false;
  let open = false;
  // Socket g of process p is global socket p + g * procs: instances and users interleave evenly.
  const global = cfg.proc + g * cfg.procs;
  const ws = new WebSocket(wsUrl(bases[global % bases.length]), null, {
    headers: authHeaders(prep.users[global % prep.users.length]),
    tags: { name: 'hold' },
  });
  ws.onopen = () => {
    open = true;
    socketsOpened.add(1);
    socketOpenAt.add(Date.now() - cfg.startAt);
  };
  ws.onerror = (e) => {
    if (!closing) {
      wsFailures.add(1, { kind: 'error' });
      if (Math.random() < 0.01) console.warn(`socket ${global}: ${e && e.error}`);
    }
  };
  ws.onclose = () => {
    if (!closing) {
      open = false;
      wsFailures.add(1, { kind: 'closed_early' });
    }
  };
  setTimeout(() => {
    closing = true;
    if (open) {
      socketsHeld.add(1);
      ws.close();
    }
  }, Math.max(0, closeAt - Date.now()));
}

export function hold() {
  wsFailures.add(0);
  const v = exec.scenario.iterationInTest;
  for (let s = 0; s < cfg.perVu; s++) {
    const g = v * cfg.perVu + s;
    if (g >= cfg.sockets) break;
    // Even pace over RAMP across all processes (socket g of every process at the same time).
    const at = cfg.startAt + (g * cfg.ramp * 1000) / cfg.sockets;
    setTimeout(() => holdOne(g), Math.max(0, at - Date.now()));
  }
}

export function probe() {
  probeMissing.add(0);
  probeFailed.add(0);
  // This process's share of the probe users: every procs-th one.
  const mine = prep.probes.filter((_, i) => i % cfg.procs === cfg.proc);
  if (mine.length === 0) return;
  const probeFrom = closeAt - cfg.probeSeconds * 1000 - 5000;
  const probeTo = closeAt - 5000;
  const pending = new Map(); // `${post}:${liker}` -> t0
  const usedPairs = new Set();
  const sockets = [];
  mine.forEach((p, i) => {
    const ws = new WebSocket(wsUrl(bases[(cfg.proc + i) % bases.length]), null, { headers: authHeaders(p.token), tags: { name: 'probe' } });
    ws.onmessage = (e) => {
      const now = Date.now();
      const m = parseFrame(e.data);
      if (!m || m.type !== 'notification' || !m.notification) return;
      const key = `${m.notification.post_id}:${m.notification.actor && m.notification.actor.id}`;
      const t0 = pending.get(key);
      if (t0 === undefined) return;
      pending.delete(key);
      probeLatency.add(now - t0);
    };
    sockets.push(ws);
  });
  const interval = 1000 / cfg.probeRate;
  let k = 0;
  function tick() {
    if (Date.now() >= probeTo) {
      setTimeout(() => {
        probeMissing.add(pending.size);
        if (pending.size > 0) console.error(`probe: ${pending.size} notifications never arrived`);
        sockets.forEach((ws) => ws.close());
      }, 4000);
      return;
    }
    let p;
    let liker;
    let key;
    for (let tries = 0; tries < 20; tries++) {
      p = mine[Math.floor(Math.random() * mine.length)];
      liker = prep.likers[Math.floor(Math.random() * prep.likers.length)];
      key = `${p.post}:${liker.id}`;
      if (!usedPairs.has(key)) break;
    }
    if (!usedPairs.has(key)) {
      usedPairs.add(key);
      pending.set(key, Date.now());
      probeSent.add(1);
      http
        .asyncRequest('PUT', `${bases[Math.floor(Math.random() * bases.length)]}/api/v1/posts/${p.post}/like`, null, {
          headers: authHeaders(liker.token),
          tags: { name: 'probe_like' },
          timeout: '10s',
        })
        .then((res) => {
          if (res.status !== 200) {
            pending.delete(key);
            probeFailed.add(1);
          }
        });
    }
    k++;
    setTimeout(tick, Math.max(0, probeFrom + k * interval - Date.now()));
  }
  setTimeout(tick, Math.max(0, probeFrom - Date.now()));
}

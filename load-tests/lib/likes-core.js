// The likes scenario, shared by likes.js (1,000 likes/s target) and smoke.js (CI sized).
//
// Topology of one run:
//   setup()    registers AUTHORS authors with POSTS_PER_AUTHOR posts each, LIKERS likers, and one
//              probe author with PROBE_POSTS posts.
//   authors    one VU per author holds that author's socket (author i on BASE_URLS[i % n]) for
//              WARMUP + DURATION + DRAIN seconds, records notify_latency (server commit -> frame,
//              see below), then reads its inbox and counts every inbox notification it never got
//              on the socket (notifications_missing) and every duplicate frame.
//   likers     constant-arrival-rate: RATE likes/s for DURATION, starting after WARMUP. Iteration
//              idx likes post (idx % P) as liker floor(idx / P), so every (liker, post) pair is used
//              once and every like must produce exactly one notification. Liker j goes through
//              BASE_URLS[j % n] (round robin), so with 2 instances half of each author's
//              notifications cross instances.
//   probe      one VU holds the probe author's socket on BASE_URLS[0] and likes the probe author's
//              posts itself, PROBE_RATE times a second, with the likers' tokens, alternating
//              instances. Because request and frame are seen by the same VU it measures
//              request start -> notification frame exactly (probe_latency, tagged path:same|cross)
//              and knows exactly which notifications it expects (probe_missing).
//   teardown() for every author: sum of like_count over its posts (distinct likes stored) vs its
//              inbox size (unread_count): notifications_not_created.
//
// notify_latency = frame receive time - Date.parse(notification.created_at). The server stamps
// created_at (truncated to the millisecond) when it inserts the notification, the last statement
// of the like's transaction, so this is "commit -> frame" (plus up to 1 ms from the truncation),
// not "request start -> frame". Load generator and server share one clock (loopback): no skew.
// k6 has no sub-millisecond clock (no performance.now()), so all latencies are whole milliseconds.
import http from 'k6/http';
import exec from 'k6/execution';
import { Trend, Counter } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import {
  envNum, envSeconds, baseUrls, wsUrl, authHeaders, newRunId,
  registerMany, createPosts, readInbox, parseFrame,
} from './common.js';

const notifyLatency = new Trend('notify_latency', true);
const probeLatency = new Trend('probe_latency', true);
const likeDuration = new Trend('like_duration', true);
const likesOk = new Counter('likes_ok');
const likesFailed = new Counter('likes_failed');
const pairsExhausted = new Counter('pairs_exhausted');
const notificationsReceived = new Counter('notifications_received');
const notificationsMissing = new Counter('notifications_missing');
const notificationsDuplicated = new Counter('notifications_duplicated');
const notificationsOutOfOrder = new Counter('notifications_out_of_order');
const notificationsNotCreated = new Counter('notifications_not_created');
const inboxNotifications = new Counter('inbox_notifications');
const probeSent = new Counter('probe_sent');
const probeReceived = new Counter('probe_received');
const probeMissing = new Counter('probe_missing');
const probeUnexpected = new Counter('probe_unexpected');
const wsFailures = new Counter('ws_failures');
const wsErrorFrames = new Counter('ws_error_frames');
const wsGapFrames = new Counter('ws_gap_frames');

export function likesConfig(d) {
  const rate = envNum('RATE', d.rate);
  const duration = envSeconds('DURATION', d.duration);
  const probeRate = envNum('PROBE_RATE', d.probeRate);
  const postsPerAuthor = envNum('POSTS_PER_AUTHOR', d.postsPerAuthor || 5);
  // (liker, post) pairs needed: every like must be a first like of a fresh pair.
  const pairs = Math.ceil(rate * duration * 1.02) + rate;
  const authors = envNum('AUTHORS', Math.max(1, Math.ceil(Math.sqrt(pairs) / postsPerAuthor)));
  const likers = envNum('LIKERS', Math.max(2, Math.ceil(pairs / (authors * postsPerAuthor))));
  const probePairs = Math.ceil(probeRate * duration) + probeRate + 1;
  const probePosts = envNum('PROBE_POSTS', Math.max(1, Math.ceil(probePairs / likers)));
  return {
    rate,
    duration,
    warmup: envSeconds('WARMUP', d.warmup || 3),
    drain: envSeconds('DRAIN', d.drain || 5),
    probeRate,
    postsPerAuthor,
    authors,
    likers,
    probePosts,
    p50: envNum('P50_MS', d.p50),
    p99: envNum('P99_MS', d.p99),
    preVUs: envNum('PRE_VUS', d.preVUs || Math.max(10, Math.ceil(rate / 20))),
    maxVUs: envNum('MAX_VUS', d.maxVUs || Math.max(50, Math.ceil(rate / 4))),
    bases: baseUrls(),
  };
}

export function likesOptions(cfg) {
  const socketSeconds = cfg.warmup + cfg.duration + cfg.drain;
  const scenarios = {
    authors: {
      executor: 'per-vu-iterations',
      exec: 'authors',
      vus: cfg.authors,
      iterations: 1,
      maxDuration: `${Math.ceil(socketSeconds + 120)}s`,
    },
    likers: {
      executor: 'constant-arrival-rate',
      exec: 'liker',
      rate: cfg.rate,
      timeUnit: '1s',
      duration: `${cfg.duration}s`,
      preAllocatedVUs: cfg.preVUs,
      maxVUs: cfg.maxVUs,
      startTime: `${cfg.warmup}s`,
      gracefulStop: `${Math.max(1, Math.floor(cfg.drain / 2))}s`,
    },
  };
  const thresholds = {
    http_req_failed: ['rate==0'],
    notifications_missing: ['count==0'],
    notifications_not_created: ['count==0'],
    notifications_duplicated: ['count==0'],
    notifications_out_of_order: ['count==0'],
    ws_failures: ['count==0'],
    pairs_exhausted: ['count==0'],
    dropped_iterations: ['count==0'],
    'http_req_duration{name:like}': ['max>=0'], // shown in the summary, never fails
  };
  if (cfg.probeRate > 0) {
    scenarios.probe = {
      executor: 'per-vu-iterations',
      exec: 'probe',
      vus: 1,
      iterations: 1,
      maxDuration: `${Math.ceil(socketSeconds + 60)}s`,
    };
    thresholds.probe_latency = [`p(50)<=${cfg.p50}`, `p(99)<=${cfg.p99}`];
    thresholds.probe_received = ['count>0'];
    thresholds.probe_missing = ['count==0'];
    thresholds.probe_unexpected = ['count==0'];
    if (cfg.bases.length > 1) {
      thresholds['probe_latency{path:same}'] = ['max>=0'];
      thresholds['probe_latency{path:cross}'] = ['max>=0'];
    }
  }
  return {
    setupTimeout: '900s',
    teardownTimeout: '600s',
    batch: 32,
    batchPerHost: 32,
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
    scenarios,
    thresholds,
  };
}

export function likesSetup(cfg) {
  const base = cfg.bases[0];
  const run = newRunId();
  const t = Date.now();
  const authorNames = [];
  for (let i = 0; i < cfg.authors; i++) authorNames.push(`l${run}_a${i}`);
  const likerNames = [];
  for (let i = 0; i < cfg.likers; i++) likerNames.push(`l${run}_l${i}`);
  const probeNames = cfg.probeRate > 0 ? [`l${run}_p`] : [];

  const registered = registerMany(base, authorNames.concat(probeNames, likerNames));
  const authorsU = registered.slice(0, cfg.authors);
  const probeU = probeNames.length ? registered[cfg.authors] : null;
  const likersU = registered.slice(cfg.authors + probeNames.length);

  const postIds = createPosts(base, authorsU, cfg.postsPerAuthor);
  const probePostIds = probeU ? createPosts(base, [probeU], cfg.probePosts)[0] : [];
  // Round robin over authors so consecutive likes hit different authors.
  const posts = [];
  for (let k = 0; k < cfg.postsPerAuthor; k++) {
    for (let a = 0; a < authorsU.length; a++) posts.push(postIds[a][k]);
  }
  console.log(
    `setup: ${registered.length} users, ${posts.length + probePostIds.length} posts, ` +
      `${posts.length * likersU.length} like pairs for ${Math.ceil(cfg.rate * cfg.duration)} likes, ` +
      `in ${((Date.now() - t) / 1000).toFixed(1)} s`,
  );
  return {
    cfg,
    authors: authorsU.map((u, i) => ({ id: u.id, token: u.token, posts: postIds[i] })),
    likers: likersU.map((u) => ({ id: u.id, token: u.token })),
    posts,
    probe: probeU ? { id: probeU.id, token: probeU.token, posts: probePostIds } : null,
  };
}

// One author's socket. Calls done() after the socket closed and the inbox was checked.
function holdAuthor(data, author, base, holdMs, onNotification) {
  const seen = new Set();
  let lastId = 0;
  let closing = false;
  let opened = false;
  const ws = new WebSocket(wsUrl(base), null, {
    headers: authHeaders(author.token),
    tags: { name: 'ws' },
  });
  ws.onopen = () => {
    opened = true;
  };
  ws.onerror = (e) => {
    if (!closing) {
      wsFailures.add(1, { kind: 'error' });
      console.error(`socket of user ${author.id}: error ${e && e.error}`);
    }
  };
  ws.onclose = () => {
    if (!closing) {
      wsFailures.add(1, { kind: 'closed_early' });
      console.error(`socket of user ${author.id} closed early`);
    }
  };
  ws.onmessage = (e) => {
    const now = Date.now();
    const m = parseFrame(e.data);
    if (m === null) {
      wsErrorFrames.add(1, { kind: 'unparsable' });
      return;
    }
    if (m.type === 'notification' && m.notification) {
      const n = m.notification;
      if (seen.has(n.id)) {
        notificationsDuplicated.add(1);
        return;
      }
      seen.add(n.id);
      if (n.id < lastId) notificationsOutOfOrder.add(1);
      lastId = Math.max(lastId, n.id);
      notificationsReceived.add(1);
      const created = Date.parse(n.created_at);
      if (Number.isFinite(created)) notifyLatency.add(now - created);
      if (onNotification) onNotification(n, now);
    } else if (m.type === 'gap') {
      wsGapFrames.add(1);
    } else if (m.type === 'error') {
      wsErrorFrames.add(1, { kind: String(m.code) });
      console.warn(`socket of user ${author.id}: error frame ${e.data}`);
    }
  };
  setTimeout(() => {
    closing = true;
    if (opened) ws.close();
    // Every notification the inbox holds must have come over the socket exactly once.
    const inbox = readInbox(base, author.token);
    if (!inbox.ok) {
      console.error(`inbox of user ${author.id}: ${inbox.error}`);
      wsFailures.add(1, { kind: 'inbox' });
      return;
    }
    inboxNotifications.add(inbox.ids.length);
    let missing = 0;
    for (const id of inbox.ids) if (!seen.has(id)) missing++;
    notificationsMissing.add(missing);
    if (missing > 0) console.error(`user ${author.id}: ${missing} of ${inbox.ids.length} inbox notifications never arrived on the socket`);
  }, holdMs);
}

export function authorsFn(data) {
  const cfg = data.cfg;
  notificationsMissing.add(0);
  notificationsDuplicated.add(0);
  notificationsOutOfOrder.add(0);
  wsFailures.add(0);
  pairsExhausted.add(0);
  const i = exec.scenario.iterationInTest;
  const author = data.authors[i];
  if (!author) return;
  const base = cfg.bases[i % cfg.bases.length];
  holdAuthor(data, author, base, (cfg.warmup + cfg.duration + cfg.drain) * 1000, null);
}

let failuresLogged = 0; // per VU

export function likerFn(data) {
  const cfg = data.cfg;
  const idx = exec.scenario.iterationInTest;
  const P = data.posts.length;
  const L = data.likers.length;
  if (idx >= P * L) {
    pairsExhausted.add(1);
    return;
  }
  const post = data.posts[idx % P];
  const li = Math.floor(idx / P);
  const base = cfg.bases[li % cfg.bases.length];
  const res = http.put(`${base}/api/v1/posts/${post}/like`, null, {
    headers: authHeaders(data.likers[li].token),
    tags: { name: 'like' },
    timeout: '10s',
  });
  likeDuration.add(res.timings.duration);
  if (res.status === 200) likesOk.add(1);
  else {
    likesFailed.add(1);
    if (failuresLogged++ < 5) console.warn(`like: ${res.status} ${String(res.body).slice(0, 200)}`);
  }
}

export function probeFn(data) {
  const cfg = data.cfg;
  const p = data.probe;
  probeMissing.add(0);
  probeUnexpected.add(0);
  if (!p) return;
  const PP = p.posts.length;
  const L = data.likers.length;
  const nb = cfg.bases.length;
  const pending = new Map(); // `${post_id}:${actor_id}` -> {t0, path}
  const intervalMs = 1000 / cfg.probeRate;
  const total = Math.min(Math.floor(cfg.probeRate * cfg.duration), PP * L);
  let sent = 0;
  let startAt = 0;

  function fire(j) {
    const post = p.posts[j % PP];
    const liker = data.likers[Math.floor(j / PP)];
    const bi = j % nb;
    const path = bi === 0 ? 'same' : 'cross';
    const key = `${post}:${liker.id}`;
    pending.set(key, { t0: Date.now(), path });
    probeSent.add(1);
    http
      .asyncRequest('PUT', `${cfg.bases[bi]}/api/v1/posts/${post}/like`, null, {
        headers: authHeaders(liker.token),
        tags: { name: 'probe_like' },
        timeout: '10s',
      })
      .then((res) => {
        likeDuration.add(res.timings.duration, { role: 'probe' });
        if (res.status !== 200) {
          pending.delete(key);
          console.warn(`probe like: ${res.status} ${String(res.body).slice(0, 200)}`);
        }
      });
  }
  function tick() {
    if (sent >= total) {
      setTimeout(finish, cfg.drain * 1000);
      return;
    }
    fire(sent);
    sent++;
    // Absolute schedule: no drift when a tick runs late.
    setTimeout(tick, Math.max(0, startAt + sent * intervalMs - Date.now()));
  }
  function finish() {
    probeMissing.add(pending.size);
    if (pending.size > 0) console.error(`probe: ${pending.size} of ${sent} expected notifications never arrived`);
  }
  holdAuthor(data, p, cfg.bases[0], (cfg.warmup + cfg.duration + cfg.drain) * 1000 + 500, (n, now) => {
    const pe = pending.get(`${n.post_id}:${n.actor && n.actor.id}`);
    if (!pe) {
      probeUnexpected.add(1);
      return;
    }
    pending.delete(`${n.post_id}:${n.actor.id}`);
    probeReceived.add(1);
    probeLatency.add(now - pe.t0, { path: pe.path });
  });
  setTimeout(() => {
    startAt = Date.now();
    tick();
  }, cfg.warmup * 1000);
}

export function likesTeardown(data) {
  const cfg = data.cfg;
  const base = cfg.bases[0];
  notificationsNotCreated.add(0);
  const everyone = data.authors.slice();
  if (data.probe) everyone.push(data.probe);
  let likes = 0;
  let notes = 0;
  for (const a of everyone) {
    const res = http.batch(
      a.posts.map((id) => ({
        method: 'GET',
        url: `${base}/api/v1/posts/${id}`,
        params: { headers: authHeaders(a.token), tags: { name: 'teardown_post' } },
      })),
    );
    let sum = 0;
    for (const r of res) if (r.status === 200) sum += r.json().like_count;
    const inbox = http.get(`${base}/api/v1/notifications?limit=1`, {
      headers: authHeaders(a.token),
      tags: { name: 'teardown_inbox' },
    });
    let count = inbox.status === 200 ? inbox.json().unread_count : undefined;
    if (typeof count !== 'number') count = readInbox(base, a.token).ids.length;
    likes += sum;
    notes += count;
    if (count < sum) notificationsNotCreated.add(sum - count);
  }
  console.log(`teardown: ${likes} likes stored on the authors' posts, ${notes} notifications in their inboxes`);
}

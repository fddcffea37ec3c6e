// The likes scenario, shared by likes.js (1,000 likes/s target), smoke.js (CI sized) and the
// steps of ceiling.sh.
//
// Topology of one run:
//   setup()   registers AUTHORS authors with POSTS_PER_AUTHOR posts each and LIKERS likers
//             (through the first instance), and fixes the start time of the like phase.
//   authors   one VU per author (per-vu-iterations, 1 iteration). Author i holds its own socket on
//             BASE_URLS[i % n] for WARMUP + DURATION + DRAIN seconds and, during DURATION, sends the
//             likes on its own posts itself, with the likers' tokens, on an absolute schedule:
//             global like g = k * AUTHORS + i (author i's k-th like) starts at t0 + g / RATE, so the
//             whole run offers exactly RATE likes/s, evenly spread, open loop (a slow answer never
//             delays the next like: every like is an asynchronous request). Like k of author i is
//             post k % POSTS_PER_AUTHOR by liker (floor(k / POSTS_PER_AUTHOR) + i) % LIKERS, so every
//             (liker, post) pair is liked once and every like must notify (like/unlike/like notifies
//             once). It goes to instance (k + i) % n: with 2 instances, half of the notifications
//             cross instances through Redis (tag path:cross) and half stay on one (path:same).
//             Because the VU that sends the like is the VU that holds the recipient's socket, it
//             measures like request start -> notification frame exactly, for every like:
//             notify_latency. It knows exactly which notifications it expects; any that did not
//             arrive DRAIN seconds after its last like are notifications_missing.
//             Then it closes the socket and reads the author's inbox: every inbox entry must have
//             come over the socket (inbox_not_on_socket).
//   teardown() per author, sum of like_count over its posts (likes stored) vs inbox size
//             (unread_count): notifications_not_created.
//
// Latencies are whole milliseconds: k6 v1.1 has no sub-millisecond clock for JavaScript
// (Date.now() only), so a sample of 1 ms means "between 0 and 2 ms"; percentiles of many samples
// are unbiased to within that. Load generator and servers share one clock (loopback): no skew.
import http from 'k6/http';
import exec from 'k6/execution';
import { Trend, Counter } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import {
  envNum, envSeconds, baseUrls, wsUrl, authHeaders, newRunId,
  registerMany, createPosts, readInbox, parseFrame, getShedAware,
} from './common.js';

const notifyLatency = new Trend('notify_latency', true);
const commitToFrame = new Trend('commit_to_frame', true);
const likeDuration = new Trend('like_duration', true);
const sendLag = new Trend('like_send_lag', true);
const likesSent = new Counter('likes_sent');
const likesOk = new Counter('likes_ok');
const likesFailed = new Counter('likes_failed');
const likesUnchanged = new Counter('likes_unchanged');
const likesRetried = new Counter('likes_retried');
const notificationsReceived = new Counter('notifications_received');
const notificationsMissing = new Counter('notifications_missing');
const notificationsUnexpected = new Counter('notifications_unexpected');
const notificationsDuplicated = new Counter('notifications_duplicated');
const notificationsOutOfOrder = new Counter('notifications_out_of_order');
const notificationsNotCreated = new Counter('notifications_not_created');
const inboxNotOnSocket = new Counter('inbox_not_on_socket');
const inboxNotifications = new Counter('inbox_notifications');
const wsFailures = new Counter('ws_failures');
const wsReconnects = new Counter('ws_reconnects');
const wsErrorFrames = new Counter('ws_error_frames');
const wsGapFrames = new Counter('ws_gap_frames');

export function likesConfig(d) {
  const rate = envNum('RATE', d.rate);
  const duration = envSeconds('DURATION', d.duration);
  const bases = baseUrls();
  const postsPerAuthor = envNum('POSTS_PER_AUTHOR', d.postsPerAuthor || 10);
  // One author VU per ~20 likes/s (k6 runs VUs in parallel; one VU is one JS event loop), at
  // least 2 per instance so both paths (same/cross) get samples.
  const authors = envNum('AUTHORS', Math.min(d.maxAuthors || 200, Math.max(2 * bases.length, Math.ceil(rate / 20))));
  const perAuthor = Math.ceil((rate * duration) / authors);
  const likers = envNum('LIKERS', Math.max(2, Math.ceil(perAuthor / postsPerAuthor) + 1));
  return {
    rate,
    duration,
    warmup: envSeconds('WARMUP', d.warmup || 3),
    drain: envSeconds('DRAIN', d.drain || 5),
    postsPerAuthor,
    authors,
    likers,
    p50: envNum('P50_MS', d.p50),
    p99: envNum('P99_MS', d.p99),
    maxLagP99: envNum('MAX_SEND_LAG_P99_MS', d.maxLagP99 || 20),
    bases,
  };
}

export function likesOptions(cfg) {
  const socketSeconds = cfg.warmup + cfg.duration + cfg.drain;
  const thresholds = {
    notify_latency: [`p(50)<=${cfg.p50}`, `p(99)<=${cfg.p99}`],
    'notify_latency{path:same}': ['max>=0'], // shown in the summary, never fails
    'notify_latency{path:cross}': ['max>=0'],
    commit_to_frame: ['max>=0'],
    like_duration: ['max>=0'],
    // The generator kept the offered rate: likes started late would understate the load.
    like_send_lag: [`p(99)<=${cfg.maxLagP99}`],
    likes_ok: [`count>=${Math.floor(cfg.rate * cfg.duration)}`],
    likes_failed: ['count==0'],
    likes_unchanged: ['count==0'],
    notifications_missing: ['count==0'],
    notifications_unexpected: ['count==0'],
    notifications_not_created: ['count==0'],
    notifications_duplicated: ['count==0'],
    notifications_out_of_order: ['count==0'],
    inbox_not_on_socket: ['count==0'],
    ws_failures: ['count==0'],
    ws_reconnects: ['count==0'],
    // A transport error retried successfully shows here but not in likes_failed (the verdict).
    http_req_failed: ['rate<0.001'],
  };
  return {
    setupTimeout: '900s',
    teardownTimeout: '600s',
    batch: 32,
    batchPerHost: 32,
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'count'],
    scenarios: {
      authors: {
        executor: 'per-vu-iterations',
        exec: 'authors',
        vus: cfg.authors,
        iterations: 1,
        maxDuration: `${Math.ceil(socketSeconds + 120)}s`,
      },
    },
    thresholds,
  };
}

export function likesSetup(cfg) {
  const base = cfg.bases[0];
  const run = newRunId();
  const t = Date.now();
  const names = [];
  for (let i = 0; i < cfg.authors; i++) names.push(`l${run}_a${i}`);
  for (let i = 0; i < cfg.likers; i++) names.push(`l${run}_l${i}`);
  const registered = registerMany(base, names);
  const authorsU = registered.slice(0, cfg.authors);
  const likersU = registered.slice(cfg.authors);
  const postIds = createPosts(base, authorsU, cfg.postsPerAuthor);
  const likes = Math.ceil(cfg.rate * cfg.duration);
  console.log(
    `setup: ${registered.length} users, ${cfg.authors * cfg.postsPerAuthor} posts, ` +
      `${cfg.authors * cfg.postsPerAuthor * cfg.likers} like pairs for ${likes} likes, ` +
      `in ${((Date.now() - t) / 1000).toFixed(1)} s`,
  );
  const t0 = Date.now() + cfg.warmup * 1000;
  // Parsed by run.sh (CPU time per component during the like phase): keep the format.
  console.log(`PHASE cpu from=${t0} to=${t0 + cfg.duration * 1000}`);
  return {
    cfg,
    // Sockets open during WARMUP; the first like starts at t0 (absolute, shared by every VU).
    t0,
    authors: authorsU.map((u, i) => ({ id: u.id, token: u.token, posts: postIds[i] })),
    likers: likersU.map((u) => ({ id: u.id, token: u.token })),
  };
}

let failuresLogged = 0; // per VU

export function authorsFn(data) {
  const cfg = data.cfg;
  // Make every counter appear in the summary, even at 0.
  [notificationsMissing, notificationsUnexpected, notificationsDuplicated, notificationsOutOfOrder,
    inboxNotOnSocket, wsFailures, wsReconnects, likesFailed, likesUnchanged, likesRetried].forEach((c) => c.add(0));
  const i = exec.scenario.iterationInTest;
  const author = data.authors[i];
  if (!author) return;
  const nb = cfg.bases.length;
  const home = i % nb;
  const A = data.authors.length;
  const PPA = author.posts.length;
  const L = data.likers.length;
  const intervalMs = (1000 * A) / cfg.rate; // between two likes of this author
  const firstAt = data.t0 + (1000 * i) / cfg.rate;
  const total = Math.min(Math.floor((cfg.rate * cfg.duration - i - 1) / A) + 1, PPA * L);
  const endAt = data.t0 + cfg.duration * 1000 + cfg.drain * 1000;

  const pending = new Map(); // `${post}:${liker}` -> {t0, path}
  const seen = new Set();
  let lastId = 0;
  let closing = false;
  let opened = false;
  let sent = 0;

  // The socket behaves like a conforming client: if the server closes it (1011 when the
  // database was unreachable, 1001 on shutdown, 4008 when too slow), it reconnects with
  // ?since=<last id seen>, and the server replays what it missed. Such closes are counted
  // (ws_reconnects); notifications still missing at the end are real losses.
  let ws = null;
  let reconnects = 0;
  function connect() {
    const query = lastId > 0 ? `?since=${lastId}` : '';
    const sock = new WebSocket(wsUrl(cfg.bases[home], query), null, { headers: authHeaders(author.token), tags: { name: 'ws' } });
    ws = sock;
    sock.onopen = () => {
      opened = true;
    };
    sock.onerror = (e) => {
      if (!closing) console.warn(`socket of author ${author.id}: ${e && e.error}`);
    };
    sock.onclose = (e) => {
      if (closing || sock !== ws) return;
      opened = false;
      wsReconnects.add(1, { code: String(e && e.code) });
      if (reconnects++ >= 20) {
        wsFailures.add(1, { kind: 'gave_up' });
        console.error(`socket of author ${author.id} closed ${reconnects} times; giving up`);
        return;
      }
      setTimeout(() => {
        if (!closing) connect();
      }, 200);
    };
    sock.onmessage = onFrame;
  }
  function onFrame(e) {
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
      if (Number.isFinite(created)) commitToFrame.add(now - created);
      const key = `${n.post_id}:${n.actor && n.actor.id}`;
      const pe = pending.get(key);
      if (!pe) {
        notificationsUnexpected.add(1);
        return;
      }
      pending.delete(key);
      notifyLatency.add(now - pe.t0, { path: pe.path });
    } else if (m.type === 'gap') {
      wsGapFrames.add(1);
    } else if (m.type === 'error') {
      wsErrorFrames.add(1, { kind: String(m.code) });
      console.warn(`socket of author ${author.id}: error frame ${e.data}`);
    }
  }
  connect();

  function fire(k) {
    const post = author.posts[k % PPA];
    const liker = data.likers[(Math.floor(k / PPA) + i) % L];
    const bi = (k + i) % nb;
    const path = bi === home ? 'same' : 'cross';
    const key = `${post}:${liker.id}`;
    const t0 = Date.now();
    sendLag.add(Math.max(0, t0 - (firstAt + k * intervalMs)));
    pending.set(key, { t0, path });
    likesSent.add(1);
    const put = () =>
      http.asyncRequest('PUT', `${cfg.bases[bi]}/api/v1/posts/${post}/like`, null, {
        headers: authHeaders(liker.token),
        tags: { name: 'like', path },
        timeout: '10s',
      });
    put()
      .then((res) => {
        // status 0 is a transport error, e.g. the server closed an idle keep-alive connection
        // just as this request went out on it ("EOF"). PUT is idempotent, so like any client
        // we retry once; notify_latency still counts from the first attempt.
        if (res.status !== 0) return res;
        likesRetried.add(1);
        return put();
      })
      .then((res) => {
        likeDuration.add(res.timings.duration, { path });
        if (res.status === 200) {
          likesOk.add(1);
          // A like that changed nothing notifies nobody: the pair was not fresh.
          const b = res.json();
          if (!b || b.liked !== true) likesUnchanged.add(1);
        } else {
          pending.delete(key);
          likesFailed.add(1);
          if (failuresLogged++ < 5) console.warn(`like: ${res.status} ${String(res.body).slice(0, 200)}`);
        }
      });
  }

  function tick() {
    // Fire every like that is due (catches up at once if the event loop was late).
    while (sent < total && Date.now() >= firstAt + sent * intervalMs) {
      fire(sent);
      sent++;
    }
    if (sent < total) setTimeout(tick, Math.max(0, firstAt + sent * intervalMs - Date.now()));
  }

  function finish() {
    closing = true;
    if (pending.size > 0) {
      notificationsMissing.add(pending.size);
      console.error(`author ${author.id}: ${pending.size} of ${sent} expected notifications never arrived`);
    }
    if (opened && ws) ws.close();
    // Every notification the inbox holds must have come over the socket exactly once.
    const inbox = readInbox(cfg.bases[home], author.token);
    if (!inbox.ok) {
      console.error(`inbox of author ${author.id}: ${inbox.error}`);
      wsFailures.add(1, { kind: 'inbox' });
      return;
    }
    inboxNotifications.add(inbox.ids.length);
    let missing = 0;
    for (const id of inbox.ids) if (!seen.has(id)) missing++;
    inboxNotOnSocket.add(missing);
    if (missing > 0) console.error(`author ${author.id}: ${missing} of ${inbox.ids.length} inbox notifications never arrived on the socket`);
  }

  setTimeout(() => {
    if (!opened) {
      wsFailures.add(1, { kind: 'not_open_at_start' });
      console.error(`socket of author ${author.id} not open when the likes start`);
    }
    tick();
  }, Math.max(0, firstAt - Date.now()));
  setTimeout(finish, Math.max(0, endAt - Date.now()));
}

export function likesTeardown(data) {
  const cfg = data.cfg;
  const base = cfg.bases[0];
  notificationsNotCreated.add(0);
  let likes = 0;
  let notes = 0;
  for (const a of data.authors) {
    const res = http.batch(
      a.posts.map((id) => ({
        method: 'GET',
        url: `${base}/api/v1/posts/${id}`,
        params: { headers: authHeaders(a.token), tags: { name: 'teardown_post' } },
      })),
    );
    let sum = 0;
    res.forEach((r, k) => {
      // A read the server shed (503, Retry-After) is read again.
      if (r.status === 503) {
        r = getShedAware(`${base}/api/v1/posts/${a.posts[k]}`, { headers: authHeaders(a.token), tags: { name: 'teardown_post' } });
      }
      if (r.status === 200) sum += r.json().like_count;
    });
    const inbox = getShedAware(`${base}/api/v1/notifications?limit=1`, {
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

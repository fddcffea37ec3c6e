// likes (Node harness): the likes scenario of ../lib/likes-core.js with a load generator cheap
// enough not to be the bottleneck. k6 needs about 0.5-0.8 ms of CPU per like on 2 cores (an
// HTTP request and a WebSocket frame in JavaScript VMs), a third of a like's whole cost; this
// needs well under a tenth of that: likes go out on raw keep-alive HTTP/1.1 connections
// (one request in flight per connection, a pool per instance) and frames arrive on `ws` sockets.
//
//   BASE_URLS=http://127.0.0.1:18081,http://127.0.0.1:18082 RATE=1000 DURATION=60 \
//     node load-tests/harness/likes.mjs
//
// Same topology, schedule and checks as the k6 version:
//   - AUTHORS authors (default one per 20 likes/s, at least 2 per instance) with
//     POSTS_PER_AUTHOR posts each, LIKERS likers; author i holds one socket on instance i % n.
//   - Global like g (author i = g % AUTHORS, its k-th like k = floor(g / AUTHORS)) starts at
//     t0 + g / RATE, open loop: post k % POSTS_PER_AUTHOR of author i, by liker
//     (floor(k / POSTS_PER_AUTHOR) + i) % LIKERS, on instance (k + i) % n. Every (liker, post)
//     pair is liked once, so every like must notify its author.
//   - Before the like phase, every user's token is used once on every instance (`GET /me`), as
//     an app user's token has been by the time they like a post they scrolled to: each instance
//     has verified it (an ed25519 check and a Datalog run, 0.2 ms of server CPU per like on the
//     2-core machine) and the like finds it in the verified-token cache. USED_TOKENS=0 leaves
//     that out, so that each liker's first like on an instance verifies its token (hot post:
//     10,001 likers who like once each; spread likes: 21 likers).
//   - notify_latency: like request start -> that notification's frame on the author's socket,
//     tagged path:same / path:cross; sub-millisecond clock (performance.now()).
//   - After DRAIN: notifications_missing, then every inbox entry must have come over the socket
//     (inbox_not_on_socket), and each author's unread count must cover the likes stored on
//     their posts (notifications_not_created).
// Environment: RATE (1000), DURATION (60 s), WARMUP (3), DRAIN (5), POSTS_PER_AUTHOR (10),
// AUTHORS, LIKERS, USED_TOKENS (1), P50_MS (2), P99_MS (10), MAX_SEND_LAG_P99_MS (20),
// CONNECTIONS (most keep-alive connections per instance, 256), RESULT (JSON path, k6
// summary-export layout, so lib/figures.sh and ceiling.sh read it as they read k6's),
// LIKE_DRIVER (node, or rust: the like phase runs in a `$PULSE_HOLD_BIN likes` process,
// load-tests/holder/src/likes.rs, same schedule and checks at about a fifth of the CPU per like;
// setup and the inbox checks stay here).
// SAMPLES_OUT (rust driver: a path where the driver's raw samples are kept, with each like's
// start time in `likeStart`; `python3 load-tests/lib/stalls.py FILE` lists the moments when
// likes were slow together).
// Prints "PHASE cpu from=<ms> to=<ms>" (the like phase) for run.sh's CPU accounting.
// Exit code 99 when a threshold is crossed (like k6), 1 on a setup error.
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { envNum, baseUrls, wsUrl, runId, get, registerMany, useTokens, createPost, trend, counter, sleep, readJson } from './lib.mjs';

const now = () => performance.timeOrigin + performance.now();

/** One keep-alive HTTP/1.1 connection with at most one request in flight. */
class Connection {
  constructor(pool) {
    this.pool = pool;
    this.buffer = null;
    this.current = null;
    this.alive = true;
    this.socket = net.connect(pool.port, pool.host);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('error', () => {}); // 'close' follows and settles the request
    this.socket.on('close', () => this.onClose());
  }

  send(request) {
    this.current = request;
    this.socket.write(request.bytes);
  }

  onData(chunk) {
    this.buffer = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.buffer.toString('latin1', 0, headEnd);
    if (/\r\ntransfer-encoding:/i.test(head)) {
      this.fail(`unsupported response framing: ${head.split('\r\n')[0]}`);
      return;
    }
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const bodyStart = headEnd + 4;
    const bodyEnd = bodyStart + (length ? Number(length[1]) : 0);
    if (this.buffer.length < bodyEnd) return;
    const status = Number(head.slice(9, 12));
    const body = this.buffer.toString('utf8', bodyStart, bodyEnd);
    this.buffer = this.buffer.length > bodyEnd ? this.buffer.subarray(bodyEnd) : null;
    const request = this.current;
    this.current = null;
    if (/\r\nconnection:\s*close/i.test(head)) this.close();
    if (request) request.done({ status, body });
    if (this.alive) this.pool.release(this);
  }

  fail(message) {
    const request = this.current;
    this.current = null;
    this.close();
    if (request) request.done({ status: 0, body: message });
  }

  close() {
    if (!this.alive) return;
    this.alive = false;
    this.pool.forget(this);
    this.socket.destroy();
  }

  onClose() {
    this.fail('connection closed');
  }
}

/** Keep-alive connections to one instance; requests wait in order when all are busy. */
class Pool {
  constructor(base, max) {
    const url = new URL(base);
    this.host = url.hostname;
    this.port = Number(url.port || 80);
    this.hostHeader = url.host;
    this.max = max;
    this.idle = [];
    this.all = new Set();
    this.waiting = [];
  }

  /** PUT/GET without a body; resolves {status, body}; status 0 is a transport error. */
  request(method, path, token) {
    return new Promise((resolve) => {
      const bytes = Buffer.from(
        `${method} ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nAuthorization: Bearer ${token}\r\n` +
          `Content-Length: 0\r\n\r\n`,
        'latin1',
      );
      const request = { bytes, done: resolve };
      const conn = this.idle.pop();
      if (conn) conn.send(request);
      else if (this.all.size < this.max) {
        const fresh = new Connection(this);
        this.all.add(fresh);
        fresh.send(request);
      } else this.waiting.push(request);
    });
  }

  release(conn) {
    const next = this.waiting.shift();
    if (next) conn.send(next);
    else this.idle.push(conn);
  }

  forget(conn) {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    // A waiting request must not starve because the connection it would have used died.
    const next = this.waiting.shift();
    if (next) {
      const fresh = new Connection(this);
      this.all.add(fresh);
      fresh.send(next);
    }
  }

  closeAll() {
    for (const conn of [...this.all]) conn.close();
  }
}

function config() {
  const bases = baseUrls();
  const rate = envNum('RATE', 1000);
  const duration = envNum('DURATION', 60);
  const postsPerAuthor = envNum('POSTS_PER_AUTHOR', 10);
  const authors = envNum('AUTHORS', Math.min(200, Math.max(2 * bases.length, Math.ceil(rate / 20))));
  const perAuthor = Math.ceil((rate * duration) / authors);
  const cfg = {
    bases,
    rate,
    duration,
    warmup: envNum('WARMUP', 3),
    usedTokens: envNum('USED_TOKENS', 1) !== 0,
    drain: envNum('DRAIN', 5),
    postsPerAuthor,
    authors,
    likers: envNum('LIKERS', Math.max(2, Math.ceil(perAuthor / postsPerAuthor) + 1)),
    p50: envNum('P50_MS', 2),
    p99: envNum('P99_MS', 10),
    maxLagP99: envNum('MAX_SEND_LAG_P99_MS', 20),
    connections: envNum('CONNECTIONS', 256),
    driver: process.env.LIKE_DRIVER === 'rust' ? 'rust' : 'node',
  };
  if (cfg.driver === 'rust' && !process.env.PULSE_HOLD_BIN) throw new Error('LIKE_DRIVER=rust needs PULSE_HOLD_BIN (a pulse-hold binary)');
  return cfg;
}

async function setup(cfg) {
  const t = Date.now();
  const run = runId();
  const names = [];
  for (let i = 0; i < cfg.authors; i++) names.push(`h${run}_a${i}`);
  for (let i = 0; i < cfg.likers; i++) names.push(`h${run}_l${i}`);
  const users = await registerMany(cfg.bases[0], names);
  if (cfg.usedTokens) await useTokens(cfg.bases, users);
  const authors = users.slice(0, cfg.authors);
  const likers = users.slice(cfg.authors);
  let next = 0;
  async function worker() {
    while (next < authors.length) {
      const a = authors[next++];
      a.posts = [];
      for (let p = 0; p < cfg.postsPerAuthor; p++) a.posts.push(await createPost(cfg.bases[0], a.token, `likes ${p}`));
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker));
  console.log(
    `setup: ${users.length} users, ${cfg.authors * cfg.postsPerAuthor} posts for ` +
      `${Math.ceil(cfg.rate * cfg.duration)} likes, in ${((Date.now() - t) / 1000).toFixed(1)} s`,
  );
  return { authors, likers };
}

/** The author's socket: expected notifications in, latencies out; reconnects with ?since. */
class AuthorSocket {
  constructor(cfg, author, home, m) {
    Object.assign(this, { cfg, author, home, m });
    this.pending = new Map(); // `${post}:${liker}` -> { t0, path }
    this.seen = new Set();
    this.lastId = 0;
    this.opened = false;
    this.closing = false;
    this.reconnects = 0;
    this.connect();
  }

  connect() {
    const query = this.lastId > 0 ? `?since=${this.lastId}` : '';
    const ws = new WebSocket(wsUrl(this.cfg.bases[this.home], query), {
      headers: { Authorization: `Bearer ${this.author.token}` },
      perMessageDeflate: false,
    });
    this.ws = ws;
    ws.on('open', () => (this.opened = true));
    ws.on('message', (data) => this.onFrame(data.toString(), now()));
    ws.on('error', (e) => {
      if (!this.closing) console.warn(`socket of author ${this.author.id}: ${e.message}`);
    });
    ws.on('close', (code) => {
      if (this.closing || ws !== this.ws) return;
      this.opened = false;
      this.m.wsReconnects++;
      if (this.reconnects++ >= 20) {
        this.m.wsFailures++;
        console.error(`socket of author ${this.author.id} closed ${this.reconnects} times (last ${code}); giving up`);
        return;
      }
      setTimeout(() => this.closing || this.connect(), 200);
    });
  }

  onFrame(text, at) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this.m.wsErrorFrames++;
      return;
    }
    if (frame.type === 'notification' && frame.notification) {
      const n = frame.notification;
      if (this.seen.has(n.id)) {
        this.m.duplicated++;
        return;
      }
      this.seen.add(n.id);
      if (n.id < this.lastId) this.m.outOfOrder++;
      this.lastId = Math.max(this.lastId, n.id);
      this.m.received++;
      const created = Date.parse(n.created_at);
      if (Number.isFinite(created)) this.m.commitToFrame.push(at - created);
      const key = `${n.post_id}:${n.actor && n.actor.id}`;
      const expected = this.pending.get(key);
      if (!expected) {
        this.m.unexpected++;
        return;
      }
      this.pending.delete(key);
      const latency = at - expected.t0;
      this.m.notify.push(latency);
      (expected.path === 'same' ? this.m.notifySame : this.m.notifyCross).push(latency);
    } else if (frame.type === 'gap') this.m.wsGapFrames++;
    else if (frame.type === 'error') {
      this.m.wsErrorFrames++;
      console.warn(`socket of author ${this.author.id}: error frame ${text}`);
    }
  }

  close() {
    this.closing = true;
    this.ws.terminate();
  }
}

/** Every notification id in the author's inbox, page by page. */
async function readInbox(base, token) {
  const ids = [];
  let cursor = null;
  let unreadCount;
  for (let page = 0; page < 1000; page++) {
    const q = cursor === null ? '?limit=100' : `?limit=100&cursor=${encodeURIComponent(cursor)}`;
    const r = await get(base, `/api/v1/notifications${q}`, token);
    if (r.status !== 200) return { ids, error: `${r.status} ${r.body.slice(0, 200)}` };
    const body = JSON.parse(r.body);
    if (unreadCount === undefined) unreadCount = body.unread_count;
    for (const n of body.items || []) ids.push(n.id);
    if (!body.next_cursor) return { ids, unreadCount };
    cursor = body.next_cursor;
  }
  return { ids, error: 'too many pages' };
}

/** The like phase in this process: author sockets, keep-alive pools, the open-loop schedule.
 * Adds to `m`; returns each author's seen notification ids. */
async function nodeLikePhase(cfg, authors, likers, m, t0, total) {
  const nb = cfg.bases.length;
  const A = authors.length;
  const L = likers.length;
  const pools = cfg.bases.map((b) => new Pool(b, cfg.connections));
  const sockets = authors.map((a, i) => new AuthorSocket(cfg, a, i % nb, m));

  const intervalMs = 1000 / cfg.rate;
  let failuresLogged = 0;
  const answered = [];

  function fire(g, due) {
    const i = g % A;
    const k = Math.floor(g / A);
    const author = authors[i];
    const socket = sockets[i];
    const post = author.posts[k % cfg.postsPerAuthor];
    const liker = likers[(Math.floor(k / cfg.postsPerAuthor) + i) % L];
    const bi = (k + i) % nb;
    const path = bi === socket.home ? 'same' : 'cross';
    const key = `${post}:${liker.id}`;
    const start = now();
    m.sendLag.push(Math.max(0, start - due));
    socket.pending.set(key, { t0: start, path });
    m.sent++;
    const put = () => pools[bi].request('PUT', `/api/v1/posts/${post}/like`, liker.token);
    answered.push(
      put()
        .then((res) => {
          // Transport error (e.g. the server closed an idle keep-alive connection as this
          // request went out): PUT is idempotent, so retry once, timing from the first attempt.
          if (res.status !== 0) return res;
          m.retried++;
          return put();
        })
        .then((res) => {
          m.likeDuration.push(now() - start);
          if (res.status === 200) {
            m.ok++;
            if (!res.body.includes('"liked":true')) m.unchanged++;
          } else {
            socket.pending.delete(key);
            m.failed++;
            if (failuresLogged++ < 5) console.warn(`like: ${res.status} ${res.body.slice(0, 200)}`);
          }
        }),
    );
  }

  await sleep(t0 - Date.now());
  const notOpen = sockets.filter((s) => !s.opened).length;
  if (notOpen > 0) {
    m.wsFailures += notOpen;
    console.error(`${notOpen} author sockets not open when the likes start`);
  }
  // Open loop: every like that is due goes out now (catching up at once if the loop was late).
  let sent = 0;
  const base = t0;
  await new Promise((resolve) => {
    function tick() {
      const t = now();
      while (sent < total && t >= base + sent * intervalMs) {
        fire(sent, base + sent * intervalMs);
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, base + sent * intervalMs - now()));
    }
    tick();
  });
  await Promise.all(answered);
  await sleep(t0 + (cfg.duration + cfg.drain) * 1000 - Date.now());
  for (const s of sockets) {
    if (s.pending.size > 0) {
      m.missing += s.pending.size;
      console.error(`author ${s.author.id}: ${s.pending.size} expected notifications never arrived`);
    }
    s.close();
  }
  for (const p of pools) p.closeAll();
  return sockets.map((s) => s.seen);
}

/** The like phase in a `pulse-hold likes` process (load-tests/holder/src/likes.rs): the same
 * schedule and checks for a fraction of the CPU. Adds its figures to `m`; returns each
 * author's seen notification ids. */
async function rustLikePhase(cfg, authors, likers, m, t0, total) {
  const dir = mkdtempSync(join(tmpdir(), 'pulse-likes-'));
  const jobPath = join(dir, 'job.json');
  const resultPath = join(dir, 'result.json');
  const job = {
    bases: cfg.bases, rate: cfg.rate, total, t0, end: t0 + (cfg.duration + cfg.drain) * 1000,
    connections: cfg.connections, postsPerAuthor: cfg.postsPerAuthor,
    authors: authors.map((a, i) => ({ id: a.id, token: a.token, home: i % cfg.bases.length, posts: a.posts })),
    likers: likers.map((l) => ({ id: l.id, token: l.token })),
  };
  let result;
  try {
    // The job holds every user's token: the folder goes whatever happens.
    writeFileSync(jobPath, JSON.stringify(job));
    const code = await new Promise((resolve, reject) => {
      const child = spawn(process.env.PULSE_HOLD_BIN, ['likes'], { stdio: 'inherit', env: { ...process.env, JOB: jobPath, RESULT: resultPath } });
      child.on('error', reject);
      child.on('exit', resolve);
    });
    if (code !== 0) throw new Error(`pulse-hold likes exited ${code}`);
    result = readJson(resultPath);
    if (process.env.SAMPLES_OUT) writeFileSync(process.env.SAMPLES_OUT, JSON.stringify(result));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const [name, values] of Object.entries(result.samples)) if (m[name]) for (const v of values) m[name].push(v);
  for (const [name, count] of Object.entries(result.counts)) m[name] += count;
  return result.seen.map((ids) => new Set(ids));
}

async function main() {
  const cfg = config();
  const { authors, likers } = await setup(cfg);
  const nb = cfg.bases.length;
  const A = authors.length;
  const L = likers.length;
  const m = {
    notify: [], notifySame: [], notifyCross: [], commitToFrame: [], likeDuration: [], sendLag: [],
    sent: 0, ok: 0, failed: 0, unchanged: 0, retried: 0, received: 0, missing: 0, unexpected: 0,
    duplicated: 0, outOfOrder: 0, notCreated: 0, inboxNotOnSocket: 0, inboxNotifications: 0,
    wsFailures: 0, wsReconnects: 0, wsErrorFrames: 0, wsGapFrames: 0,
  };
  const t0 = Date.now() + cfg.warmup * 1000;
  const total = Math.min(Math.floor(cfg.rate * cfg.duration), A * cfg.postsPerAuthor * L);
  console.log(`PHASE cpu from=${Math.round(t0)} to=${Math.round(t0 + cfg.duration * 1000)}`);
  const likePhase = cfg.driver === 'rust' ? rustLikePhase : nodeLikePhase;
  const seen = await likePhase(cfg, authors, likers, m, t0, total);

  // Every inbox entry came over the socket; every stored like made a notification.
  for (const [i, author] of authors.entries()) {
    const inbox = await readInbox(cfg.bases[i % nb], author.token);
    if (inbox.error) {
      console.error(`inbox of author ${author.id}: ${inbox.error}`);
      m.wsFailures++;
      continue;
    }
    m.inboxNotifications += inbox.ids.length;
    const notOnSocket = inbox.ids.filter((id) => !seen[i].has(id)).length;
    m.inboxNotOnSocket += notOnSocket;
    if (notOnSocket > 0) console.error(`author ${author.id}: ${notOnSocket} inbox notifications never arrived on the socket`);
    let stored = 0;
    for (const id of author.posts) {
      const r = await get(cfg.bases[0], `/api/v1/posts/${id}`, author.token);
      if (r.status === 200) stored += JSON.parse(r.body).like_count;
    }
    if (inbox.unreadCount < stored) m.notCreated += stored - inbox.unreadCount;
  }

  const seconds = cfg.duration;
  const metrics = {
    notify_latency: trend(m.notify),
    'notify_latency{path:same}': trend(m.notifySame),
    'notify_latency{path:cross}': trend(m.notifyCross),
    commit_to_frame: trend(m.commitToFrame),
    like_duration: trend(m.likeDuration),
    like_send_lag: trend(m.sendLag),
    likes_sent: counter(m.sent, seconds),
    likes_ok: counter(m.ok, seconds),
    likes_failed: counter(m.failed, seconds),
    likes_unchanged: counter(m.unchanged, seconds),
    likes_retried: counter(m.retried, seconds),
    notifications_received: counter(m.received, seconds),
    notifications_missing: counter(m.missing, seconds),
    notifications_unexpected: counter(m.unexpected, seconds),
    notifications_duplicated: counter(m.duplicated, seconds),
    notifications_out_of_order: counter(m.outOfOrder, seconds),
    notifications_not_created: counter(m.notCreated, seconds),
    inbox_notifications: counter(m.inboxNotifications, seconds),
    inbox_not_on_socket: counter(m.inboxNotOnSocket, seconds),
    ws_failures: counter(m.wsFailures, seconds),
    ws_reconnects: counter(m.wsReconnects, seconds),
    ws_error_frames: counter(m.wsErrorFrames, seconds),
    ws_gap_frames: counter(m.wsGapFrames, seconds),
  };
  const checks = [
    ['notify_latency', `p(50)<=${cfg.p50}`, metrics.notify_latency.med <= cfg.p50],
    ['notify_latency', `p(99)<=${cfg.p99}`, metrics.notify_latency['p(99)'] <= cfg.p99],
    ['like_send_lag', `p(99)<=${cfg.maxLagP99}`, metrics.like_send_lag['p(99)'] <= cfg.maxLagP99],
    ['likes_ok', `count>=${total}`, m.ok >= total],
    ...['likes_failed', 'likes_unchanged', 'notifications_missing', 'notifications_unexpected',
      'notifications_not_created', 'notifications_duplicated', 'notifications_out_of_order',
      'inbox_not_on_socket', 'ws_failures', 'ws_reconnects'].map((name) => [name, 'count==0', metrics[name].count === 0]),
  ];
  for (const [name, expr, ok] of checks) metrics[name].thresholds = { ...(metrics[name].thresholds || {}), [expr]: !ok };
  const r = (x) => x.toFixed(2);
  console.log(
    `likes: ${m.ok}/${total} ok, ${m.failed} failed; notify p50 ${r(metrics.notify_latency.med)} ms ` +
      `p99 ${r(metrics.notify_latency['p(99)'])} ms; like p50 ${r(metrics.like_duration.med)} ms; ` +
      `send lag p99 ${r(metrics.like_send_lag['p(99)'])} ms; missing ${m.missing}, not on socket ${m.inboxNotOnSocket}`,
  );
  const crossed = checks.filter((c) => !c[2]).map((c) => `${c[0]} ${c[1]}`);
  console.log(crossed.length ? `thresholds crossed: ${crossed.join('; ')}` : 'thresholds: all passed');
  if (process.env.RESULT) writeFileSync(process.env.RESULT, JSON.stringify({ metrics, harness: 'harness/likes.mjs', cfg }, null, 1));
  process.exit(crossed.length ? 99 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// hold (Node harness): one load process of the 100k-sockets scenario (sockets100k.sh starts
// several, each with its own source address). Also `node hold.mjs prepare` registers the users.
//
// prepare: registers USERS users, PROBES probe users with one post each and LIKERS likers through
//   BASE_URLS[0]; writes {users: [token], probes: [{id, token, post}], likers: [{id, token}]} to PREP.
// hold (default): reads PREP; from START_AT (epoch ms, shared by every process) opens SOCKETS
//   sockets at an even pace over RAMP seconds from LOCAL_ADDRESS (e.g. 127.0.0.3), socket g of
//   process PROC (of PROCS) being global socket PROC + g * PROCS, spread round robin over
//   BASE_URLS and the users; holds them until START_AT + (RAMP + HOLD) s (the ws package answers
//   the server's pings, so heartbeats keep them open); then closes them. In the last
//   PROBE_SECONDS of the hold it opens one socket for each of its share of the probe users
//   (a random instance each) and likes their posts PROBE_RATE times a second in total (random
//   probe user, random liker, random instance): probe latency = like request start ->
//   notification frame on the probe user's socket, while all the other sockets are held.
// Writes RESULT (JSON): opened, failures (errors + early closes, by cause), held at the end,
// open_ms (ms after START_AT when each socket opened: for the establishment rate), probe
// latencies and misses.
import { readFileSync, writeFileSync } from 'node:fs';
import WebSocket from 'ws';
import { envNum, baseUrls, wsUrl, runId, registerMany, createPost, sleep } from './lib.mjs';

const now = () => performance.timeOrigin + performance.now();
const bases = baseUrls();

if (process.argv[2] === 'prepare') await prepare();
else await hold();

async function prepare() {
  const users = envNum('USERS', 1000);
  const probes = envNum('PROBES', 60);
  const likers = envNum('LIKERS', 200);
  const run = runId();
  const t = Date.now();
  const names = [
    ...Array.from({ length: users }, (_, i) => `h${run}_u${i}`),
    ...Array.from({ length: probes }, (_, i) => `h${run}_p${i}`),
    ...Array.from({ length: likers }, (_, i) => `h${run}_l${i}`),
  ];
  const reg = await registerMany(bases[0], names, 16);
  const probeUsers = reg.slice(users, users + probes);
  const posts = [];
  for (const p of probeUsers) posts.push(await createPost(bases[0], p.token, 'probe'));
  writeFileSync(
    process.env.PREP,
    JSON.stringify({
      users: reg.slice(0, users).map((u) => u.token),
      probes: probeUsers.map((u, i) => ({ id: u.id, token: u.token, post: posts[i] })),
      likers: reg.slice(users + probes).map((u) => ({ id: u.id, token: u.token })),
    }),
  );
  console.log(`prepare: ${reg.length} users, ${posts.length} probe posts in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}

async function hold() {
  const prep = JSON.parse(readFileSync(process.env.PREP, 'utf8'));
  const cfg = {
    sockets: envNum('SOCKETS', 1000),
    proc: envNum('PROC', 0),
    procs: envNum('PROCS', 1),
    startAt: envNum('START_AT', Date.now() + 1000),
    ramp: envNum('RAMP', 10),
    hold: envNum('HOLD', 300),
    probeSeconds: envNum('PROBE_SECONDS', 60),
    probeRate: envNum('PROBE_RATE', 2),
    // LOCAL_ADDRESS is one address or a comma-separated list: socket g binds the (g mod n)-th.
    // Several per process matter: connecting from a bound address makes the kernel search that
    // address's ports for a free one (bind before connect), which gets slow past a few thousand.
    localAddresses: (process.env.LOCAL_ADDRESS || '').split(',').filter(Boolean),
  };
  cfg.localAddress = cfg.localAddresses.length ? cfg.localAddresses.join(',') : undefined;
  const local = (g) => (cfg.localAddresses.length ? cfg.localAddresses[g % cfg.localAddresses.length] : undefined);
  const closeAt = cfg.startAt + (cfg.ramp + cfg.hold) * 1000;
  const stats = { opened: 0, failures: {}, heldAtEnd: 0, openMs: [] };
  const fail = (kind) => (stats.failures[kind] = (stats.failures[kind] || 0) + 1);
  const sockets = [];

  for (let g = 0; g < cfg.sockets; g++) {
    const global = cfg.proc + g * cfg.procs;
    const at = cfg.startAt + (g * cfg.ramp * 1000) / cfg.sockets;
    setTimeout(() => {
      const s = { open: false, closing: false };
      const ws = new WebSocket(wsUrl(bases[global % bases.length]), {
        // Users rotate independently of instances (global / instances), so every instance sees
        // every user: sockets per user and instance stay under PULSE_WS_MAX_SOCKETS_PER_USER.
        headers: { Authorization: `Bearer ${prep.users[Math.floor(global / bases.length) % prep.users.length]}` },
        localAddress: local(g),
        perMessageDeflate: false,
        handshakeTimeout: 30000,
      });
      s.ws = ws;
      sockets.push(s);
      ws.on('open', () => {
        s.open = true;
        stats.opened++;
        stats.openMs.push(Date.now() - cfg.startAt);
      });
      ws.on('unexpected-response', (req, res) => fail(`http_${res.statusCode}`));
      ws.on('error', (e) => {
        if (!s.closing) fail(e.code || 'error');
      });
      ws.on('close', (code) => {
        if (!s.closing && s.open) fail(`closed_${code}`);
        s.open = false;
      });
      ws.on('message', () => {}); // hello, and nothing else: these sockets are idle
    }, Math.max(0, at - Date.now()));
  }

  // Probes: this process's share of the probe users.
  const mine = prep.probes.filter((_, i) => i % cfg.procs === cfg.proc);
  const latencies = [];
  let probeSent = 0;
  let probeFailed = 0;
  const pending = new Map();
  const probeFrom = closeAt - (cfg.probeSeconds + 5) * 1000;
  const probeTo = closeAt - 5000;
  const probeSockets = [];
  setTimeout(() => {
    mine.forEach((p, i) => {
      const ws = new WebSocket(wsUrl(bases[(cfg.proc + i) % bases.length]), {
        headers: { Authorization: `Bearer ${p.token}` },
        localAddress: local(i),
        perMessageDeflate: false,
      });
      ws.on('message', (data) => {
        const t = now();
        const m = JSON.parse(data.toString());
        if (m.type !== 'notification') return;
        const key = `${m.notification.post_id}:${m.notification.actor.id}`;
        const t0 = pending.get(key);
        if (t0 === undefined) return;
        pending.delete(key);
        latencies.push(t - t0);
      });
      ws.on('error', () => {});
      probeSockets.push(ws);
    });
  }, Math.max(0, probeFrom - 3000 - Date.now()));

  const used = new Set();
  const rate = cfg.probeRate / cfg.procs; // the total rate is shared by the processes
  const probeLoop = (async () => {
    if (mine.length === 0 || rate <= 0) return;
    await sleep(probeFrom - Date.now());
    for (let k = 0; probeFrom + (k * 1000) / rate < probeTo; k++) {
      await sleep(probeFrom + (k * 1000) / rate - Date.now());
      const p = mine[Math.floor(Math.random() * mine.length)];
      const liker = prep.likers[Math.floor(Math.random() * prep.likers.length)];
      const key = `${p.post}:${liker.id}`;
      if (used.has(key)) continue;
      used.add(key);
      pending.set(key, now());
      probeSent++;
      fetch(`${bases[Math.floor(Math.random() * bases.length)]}/api/v1/posts/${p.post}/like`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${liker.token}` },
        signal: AbortSignal.timeout(10000),
      })
        .then(async (res) => {
          await res.arrayBuffer();
          if (res.status !== 200) {
            pending.delete(key);
            probeFailed++;
          }
        })
        .catch(() => {
          pending.delete(key);
          probeFailed++;
        });
    }
  })();

  await sleep(closeAt - Date.now());
  await probeLoop;
  for (const s of sockets) {
    if (s.open) stats.heldAtEnd++;
    s.closing = true;
  }
  const result = {
    proc: cfg.proc,
    localAddress: cfg.localAddress,
    sockets: cfg.sockets,
    opened: stats.opened,
    heldAtEnd: stats.heldAtEnd,
    failures: stats.failures,
    lastOpenMs: stats.openMs.length ? Math.max(...stats.openMs) : null,
    openMs: stats.openMs,
    probeSent,
    probeFailed,
    probeMissing: pending.size,
    probeLatencies: latencies,
    memory: process.memoryUsage().rss,
  };
  writeFileSync(process.env.RESULT, JSON.stringify(result));
  for (const s of sockets) s.ws.terminate();
  for (const ws of probeSockets) ws.terminate();
  console.log(
    `hold ${cfg.proc} (${cfg.localAddress || 'default address'}): ${stats.opened}/${cfg.sockets} opened, ${stats.heldAtEnd} held at the end, ` +
      `failures ${JSON.stringify(stats.failures)}, probes ${latencies.length}/${probeSent}`,
  );
  process.exit(0);
}

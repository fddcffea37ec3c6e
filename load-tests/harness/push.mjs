// push (Node harness): Web Push throughput and commit -> push latency of one instance.
//
//   BASE_URL=http://127.0.0.1:18081 RATE=200 DURATION=20 node load-tests/harness/push.mjs
//
// A loopback push sink (this process, 201 to every POST, counting them) stands for the push
// services; AUTHORS authors (50) each subscribe one device to it (real P-256 keys, so the
// server encrypts for real) and post one photo; nobody holds a socket, so every like is pushed.
// Likes go out open loop at RATE for DURATION, each a first like of its (liker, post) pair.
// Then it waits until the sink has every push (at most DRAIN s, 30), and prints one JSON line:
// likes, pushes received, pushes/s over the whole run, and the server's commit -> push
// latency quantiles from /metrics (bucket bounds). "PHASE cpu from=<ms> to=<ms>" marks the
// like phase and the drain for the caller's CPU accounting. The server needs
// PULSE_PUSH_ALLOW_PRIVATE=true (the sink is on loopback).
import http from 'node:http';
import crypto from 'node:crypto';
import { envNum, registerMany, createPost, runId, sleep } from './lib.mjs';

const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:18081';
const RATE = envNum('RATE', 200);
const DURATION = envNum('DURATION', 20);
const AUTHORS = envNum('AUTHORS', 50);
const DRAIN = envNum('DRAIN', 30);

let received = 0;
const sink = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    received++;
    res.writeHead(201, { location: '/m/' + received }).end();
  });
});
await new Promise((r) => sink.listen(0, '127.0.0.1', r));
const sinkPort = sink.address().port;

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function call(method, path, token, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(BASE + path, {
      method, agent,
      headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
    }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const id = runId();
const authors = await registerMany(BASE, Array.from({ length: AUTHORS }, (_, i) => `pa${id}_${i}`));
const likes = RATE * DURATION;
const likers = await registerMany(BASE, Array.from({ length: Math.ceil(likes / AUTHORS) }, (_, i) => `pl${id}_${i}`));
const posts = [];
for (const [i, author] of authors.entries()) {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  const subscription = {
    endpoint: `http://127.0.0.1:${sinkPort}/push/${i}`,
    keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(crypto.randomBytes(16)) },
  };
  const r = await call('PUT', '/api/v1/push/subscription', author.token, subscription);
  if (r.status !== 200) throw new Error(`subscribe: ${r.status} ${r.text.slice(0, 200)}`);
  posts.push(await createPost(BASE, author.token, 'push'));
}

const started = Date.now();
console.log(`PHASE cpu from=${started}`);
let sent = 0, failed = 0;
const inFlight = [];
for (let g = 0; g < likes; g++) {
  const due = started + (g * 1000) / RATE;
  if (due > Date.now()) await sleep(due - Date.now());
  const author = g % AUTHORS, k = Math.floor(g / AUTHORS);
  const p = call('PUT', `/api/v1/posts/${posts[author]}/like`, likers[k].token).then((r) => {
    if (r.status === 200) sent++; else failed++;
  });
  inFlight.push(p);
}
await Promise.all(inFlight);
const deadline = Date.now() + DRAIN * 1000;
while (received < sent && Date.now() < deadline) await sleep(20);
const ended = Date.now();
console.log(`PHASE cpu to=${ended}`);

const metrics = await (await fetch(`${BASE}/metrics`)).text();
const buckets = [...metrics.matchAll(/^pulse_push_latency_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)]
  .map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
const quantile = (q) => (buckets.find(([, c]) => c >= q * total) ?? [NaN])[0];
console.log(JSON.stringify({
  likes, likes_ok: sent, likes_failed: failed, pushes_received: received,
  seconds: (ended - started) / 1000, pushes_per_s: received / ((ended - started) / 1000),
  latency_le_p50_s: quantile(0.5), latency_le_p99_s: quantile(0.99),
}));
sink.close();
agent.destroy();
process.exit(received === sent && failed === 0 ? 0 : 99);

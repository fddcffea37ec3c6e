// push (Node harness): Web Push throughput and commit -> push latency of one instance.
//
//   BASE_URL=http://127.0.0.1:18081 RATE=200 DURATION=20 node load-tests/harness/push.mjs
//
// A loopback push sink (this process, 201 to every POST, counting them) stands for the push
// services; AUTHORS authors (50) each subscribe one device to it (real P-256 keys, so the
// server encrypts for real) and post one photo; nobody holds a socket, so every like is pushed.
// Likes go out open loop at RATE for DURATION, each a first like of its (liker, post) pair.
// Then it waits until the sink has every push (at most DRAIN s, 30), and prints one JSON line:
// likes, pushes received, pushes/s over the whole run, commit -> push received quantiles (the
// sink decrypts every push as a user agent would, RFC 8291, and measures from the
// notification's created_at; the same clock, loopback) and the server's own histogram. "PHASE cpu from=<ms> to=<ms>" marks the
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

let received = 0, undecryptable = 0;
const devices = []; // per author: { ecdh, auth }
const waits = []; // ms from the notification's creation to its push's arrival
const sink = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const arrived = Date.now();
    received++;
    const device = devices[Number(req.url.split('/').pop())];
    try {
      const { notification } = decrypt(Buffer.concat(chunks), device);
      waits.push(arrived - Date.parse(notification.created_at));
    } catch {
      undecryptable++;
    }
    res.writeHead(201, { location: '/m/' + received }).end();
  });
});

// RFC 8291 as the user agent does it: ECDH with the sender's key in the header, HKDF with the
// auth secret, then RFC 8188's key and nonce, AES-128-GCM, and the padding delimiter.
function decrypt(body, { ecdh, auth }) {
  const salt = body.subarray(0, 16);
  const idLength = body[20];
  const sender = body.subarray(21, 21 + idLength);
  const sealed = body.subarray(21 + idLength);
  const info = Buffer.concat([Buffer.from('WebPush: info\0'), ecdh.getPublicKey(), sender]);
  const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdh.computeSecret(sender), auth, info, 32));
  const derive = (label, n) => Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from(label), n));
  const decipher = crypto.createDecipheriv('aes-128-gcm',
    derive('Content-Encoding: aes128gcm\0', 16), derive('Content-Encoding: nonce\0', 12));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  let end = plain.length - 1;
  while (plain[end] === 0) end--;
  if (plain[end] !== 2) throw new Error('no last-record delimiter');
  return JSON.parse(plain.subarray(0, end).toString());
}
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
  const auth = crypto.randomBytes(16);
  devices[i] = { ecdh, auth };
  const subscription = {
    endpoint: `http://127.0.0.1:${sinkPort}/push/${i}`,
    keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(auth) },
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
waits.sort((x, y) => x - y);
const at = (q) => (waits.length ? waits[Math.min(waits.length - 1, Math.floor(q * waits.length))] : NaN);
console.log(JSON.stringify({
  likes, likes_ok: sent, likes_failed: failed, pushes_received: received, undecryptable,
  seconds: (ended - started) / 1000, pushes_per_s: received / ((ended - started) / 1000),
  commit_to_push_ms: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: waits.at(-1) },
  server_latency_le_p50_s: quantile(0.5), server_latency_le_p99_s: quantile(0.99),
}));
sink.close();
agent.destroy();
process.exit(received === sent && failed === 0 && undecryptable === 0 ? 0 : 99);

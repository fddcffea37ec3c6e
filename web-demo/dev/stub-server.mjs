#!/usr/bin/env node
// A throwaway in-memory stand-in for the Pulse server, covering only what the demo page uses,
// so the page and its browser test can be worked on without building the Rust server:
//
//   PULSE_ADDR=127.0.0.1:8080 PULSE_DATA_DIR=/tmp/stub node web-demo/dev/stub-server.mjs
//   PULSE_BIN=web-demo/dev/stub-server.mjs node web-demo/tests/demo.test.mjs
//
// It is NOT the product and not a reference: /work/shared/API.md and the Rust server are. No
// password hashing, no biscuits, no image decoding (magic numbers only). State is a JSON file in PULSE_DATA_DIR so that
// a restart keeps users, posts and notifications (the browser test restarts the server).
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const STATIC = join(dirname(fileURLToPath(import.meta.url)), '..', 'static');
const [host, port] = (process.env.PULSE_ADDR ?? '127.0.0.1:8080').split(':');
const dataDir = process.env.PULSE_DATA_DIR ?? '/tmp/pulse-stub';
mkdirSync(join(dataDir, 'media'), { recursive: true });
const stateFile = join(dataDir, 'stub.json');

/** @type {any} */
let db = existsSync(stateFile)
  ? JSON.parse(readFileSync(stateFile, 'utf8'))
  : { seq: 0, users: [], tokens: {}, follows: [], posts: [], likes: [], everLiked: [], notifications: [] };
const save = () => writeFileSync(stateFile, JSON.stringify(db));
const nextId = () => ++db.seq;
const now = () => new Date().toISOString();
const tickets = new Map();
/** @type {Set<{user_id:number, watched:Set<number>, send:(o:any)=>void, close:(c:number)=>void}>} */
const sockets = new Set();

const summary = (u) => ({ id: u.id, username: u.username, display_name: u.display_name });
const userView = (u, viewer) => ({
  ...summary(u),
  created_at: u.created_at,
  follower_count: db.follows.filter((f) => f.followee === u.id).length,
  following_count: db.follows.filter((f) => f.follower === u.id).length,
  post_count: db.posts.filter((p) => p.author === u.id).length,
  followed_by_me: !!viewer && db.follows.some((f) => f.follower === viewer.id && f.followee === u.id),
});
const likeCount = (postId) => db.likes.filter((l) => l.post === postId).length;
const postView = (p, viewer) => ({
  id: p.id,
  author: summary(db.users.find((u) => u.id === p.author)),
  caption: p.caption,
  image_url: `/media/${p.key}`,
  width: p.width,
  height: p.height,
  created_at: p.created_at,
  like_count: likeCount(p.id),
  comment_count: 0,
  liked_by_me: !!viewer && db.likes.some((l) => l.post === p.id && l.user === viewer.id),
});
const unread = (userId) => db.notifications.filter((n) => n.recipient === userId && !n.read).length;
const noteView = (n) => {
  const { recipient, ...rest } = n;
  return { ...rest, actor: summary(db.users.find((u) => u.id === n.actor)) };
};

function notify(recipient, actor, kind, postId) {
  const a = db.users.find((u) => u.id === actor);
  const text = kind === 'like' ? `${a.username} liked your photo.` : `${a.username} started following you.`;
  const n = { id: nextId(), recipient, kind, actor, post_id: postId, comment_id: null, text, created_at: now(), read: false };
  db.notifications.push(n);
  save();
  for (const s of sockets) if (s.user_id === recipient) s.send({ type: 'notification', notification: noteView(n) });
}
function pushCount(postId) {
  for (const s of sockets) if (s.watched.has(postId)) s.send({ type: 'like_count', post_id: postId, like_count: likeCount(postId) });
}

class Problem extends Error {
  constructor(status, title, detail) {
    super(title);
    Object.assign(this, { status, title, detail });
  }
}

function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));
}

const FILES = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/two': 'two.html',
  '/two.html': 'two.html',
  '/app.js': 'app.js',
  '/client.js': 'client.js',
  '/app.css': 'app.css',
};
const TYPES = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  try {
    if ((req.method === 'GET' || req.method === 'HEAD') && FILES[url.pathname]) {
      const file = FILES[url.pathname];
      // Read on every request (this is for working on the page), but answer like the real server
      // (server/src/routes/demo.rs): no-cache + a strong ETag, the same CSP.
      const body = readFileSync(join(STATIC, file));
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 24)}"`;
      const headers = {
        ETag: etag,
        'Cache-Control': 'no-cache',
        'Content-Security-Policy':
          "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; " +
          "script-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'X-Frame-Options': 'SAMEORIGIN',
      };
      const tags = (req.headers['if-none-match'] ?? '').split(',').map((t) => t.trim());
      if (tags.includes(etag) || tags.includes('*')) {
        res.writeHead(304, headers).end();
        return;
      }
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[file.split('.').pop()] });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
    if (url.pathname.startsWith('/media/')) {
      const key = url.pathname.slice(7).replace(/[^a-z0-9]/g, '');
      const path = join(dataDir, 'media', key);
      if (!existsSync(path)) throw new Problem(404, 'Not Found');
      res.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'public, max-age=31536000, immutable' });
      res.end(readFileSync(path));
      return;
    }
    if (!url.pathname.startsWith('/api/v1/')) throw new Problem(404, 'Not Found');
    const path = url.pathname.slice(7);
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const json = () => (raw.length ? JSON.parse(raw.toString('utf8')) : {});
    const auth = req.headers.authorization?.replace(/^Bearer /, '');
    const viewer = auth && db.tokens[auth] ? db.users.find((u) => u.id === db.tokens[auth]) : null;
    const need = () => {
      if (!viewer) throw new Problem(401, 'Unauthorized', 'missing or invalid token');
      return viewer;
    };
    const m = (re) => path.match(re);
    let r;
    if (req.method === 'POST' && path === '/auth/register') {
      const { username, password, display_name } = json();
      const name = String(username ?? '').toLowerCase();
      if (!/^[a-z0-9._]{3,30}$/.test(name) || String(password ?? '').length < 8) throw new Problem(422, 'Invalid', 'bad username or password');
      if (db.users.some((u) => u.username === name)) throw new Problem(409, 'Conflict', 'username taken');
      const u = { id: nextId(), username: name, display_name: display_name || name, password, created_at: now() };
      db.users.push(u);
      const token = randomBytes(24).toString('base64url');
      db.tokens[token] = u.id;
      save();
      return send(res, 201, { user: userView(u, u), token });
    }
    if (req.method === 'POST' && path === '/auth/login') {
      const { username, password } = json();
      const u = db.users.find((x) => x.username === String(username).toLowerCase() && x.password === password);
      if (!u) throw new Problem(401, 'Unauthorized', 'bad credentials');
      const token = randomBytes(24).toString('base64url');
      db.tokens[token] = u.id;
      save();
      return send(res, 200, { user: userView(u, u), token });
    }
    if (req.method === 'POST' && path === '/auth/logout') {
      need();
      delete db.tokens[auth];
      save();
      for (const s of sockets) if (s.token === auth) s.close(4401);
      return send(res, 204);
    }
    if (req.method === 'POST' && path === '/auth/ws-ticket') {
      const u = need();
      const ticket = randomBytes(18).toString('base64url');
      tickets.set(ticket, { user_id: u.id, token: auth });
      return send(res, 200, { ticket, expires_at: new Date(Date.now() + 60000).toISOString() });
    }
    if (req.method === 'GET' && path === '/me') return send(res, 200, userView(need(), viewer));
    if (req.method === 'GET' && (r = m(/^\/users\/([^/]+)$/))) {
      need();
      const u = db.users.find((x) => x.username === decodeURIComponent(r[1]).toLowerCase());
      if (!u) throw new Problem(404, 'Not Found', 'no such user');
      return send(res, 200, userView(u, viewer));
    }
    if ((r = m(/^\/users\/(\d+)\/follow$/))) {
      const me = need();
      const u = db.users.find((x) => x.id === Number(r[1]));
      if (!u) throw new Problem(404, 'Not Found');
      if (u.id === me.id) throw new Problem(422, 'Invalid', 'you cannot follow yourself');
      const has = db.follows.some((f) => f.follower === me.id && f.followee === u.id);
      if (req.method === 'PUT' && !has) {
        db.follows.push({ follower: me.id, followee: u.id });
        notify(u.id, me.id, 'follow', null);
      } else if (req.method === 'DELETE') {
        db.follows = db.follows.filter((f) => !(f.follower === me.id && f.followee === u.id));
      }
      save();
      return send(res, 200, userView(u, me));
    }
    if (req.method === 'GET' && path === '/feed') {
      const me = need();
      const ids = new Set([me.id, ...db.follows.filter((f) => f.follower === me.id).map((f) => f.followee)]);
      const limit = Number(url.searchParams.get('limit') ?? 20);
      const cursor = Number(url.searchParams.get('cursor') ?? Infinity);
      const all = db.posts.filter((p) => ids.has(p.author) && p.id < cursor).sort((a, b) => b.id - a.id);
      const items = all.slice(0, limit);
      return send(res, 200, { items: items.map((p) => postView(p, me)), next_cursor: all.length > limit ? String(items.at(-1).id) : null });
    }
    if (req.method === 'POST' && path === '/posts') {
      const me = need();
      const form = await new Request('http://x/', { method: 'POST', headers: { 'content-type': req.headers['content-type'] }, body: raw }).formData();
      const image = form.get('image');
      if (!image || typeof image === 'string') throw new Problem(422, 'Invalid', 'image is required');
      const bytes = Buffer.from(await image.arrayBuffer());
      // Only the magic numbers, like the real server's sniffing (it also decodes and re-encodes).
      const magic = bytes.subarray(0, 12).toString('latin1');
      if (!magic.startsWith('\x89PNG') && !magic.startsWith('\xff\xd8\xff') && !(magic.startsWith('RIFF') && magic.slice(8) === 'WEBP')) {
        throw new Problem(415, 'Unsupported media type', 'The image must be JPEG, PNG or WebP.');
      }
      const key = randomBytes(12).toString('hex');
      writeFileSync(join(dataDir, 'media', key), bytes);
      const isPng = bytes.subarray(1, 4).toString() === 'PNG';
      const p = {
        id: nextId(), author: me.id, caption: String(form.get('caption') ?? ''), key, created_at: now(),
        width: isPng ? bytes.readUInt32BE(16) : 0, height: isPng ? bytes.readUInt32BE(20) : 0,
      };
      db.posts.push(p);
      save();
      return send(res, 201, postView(p, me));
    }
    if ((r = m(/^\/posts\/(\d+)\/like$/))) {
      const me = need();
      const p = db.posts.find((x) => x.id === Number(r[1]));
      if (!p) throw new Problem(404, 'Not Found');
      const has = db.likes.some((l) => l.post === p.id && l.user === me.id);
      if (req.method === 'PUT' && !has) {
        db.likes.push({ post: p.id, user: me.id });
        const first = !db.everLiked.some((l) => l.post === p.id && l.user === me.id);
        if (first) db.everLiked.push({ post: p.id, user: me.id });
        if (first && p.author !== me.id) notify(p.author, me.id, 'like', p.id);
        pushCount(p.id);
      } else if (req.method === 'DELETE' && has) {
        db.likes = db.likes.filter((l) => !(l.post === p.id && l.user === me.id));
        pushCount(p.id);
      }
      save();
      return send(res, 200, { post_id: p.id, liked: req.method === 'PUT', like_count: likeCount(p.id) });
    }
    if (req.method === 'GET' && path === '/notifications') {
      const me = need();
      const limit = Number(url.searchParams.get('limit') ?? 20);
      const items = db.notifications.filter((n) => n.recipient === me.id).sort((a, b) => b.id - a.id).slice(0, limit);
      return send(res, 200, { items: items.map(noteView), next_cursor: null, unread_count: unread(me.id) });
    }
    if (req.method === 'POST' && path === '/notifications/read') {
      const me = need();
      const { up_to_id } = json();
      for (const n of db.notifications) if (n.recipient === me.id && n.id <= up_to_id) n.read = true;
      save();
      const count = unread(me.id);
      for (const s of sockets) if (s.user_id === me.id) s.send({ type: 'read', unread_count: count });
      return send(res, 200, { unread_count: count });
    }
    throw new Problem(404, 'Not Found', `no route for ${req.method} ${path}`);
  } catch (error) {
    const status = error instanceof Problem ? error.status : 500;
    if (status === 500) console.error(error);
    send(res, status, { type: `/problems/${status}`, title: error.title ?? 'Internal', status, detail: error.detail ?? String(error) }, {
      'Content-Type': 'application/problem+json',
    });
  }
});

// --- minimal RFC 6455 server (text frames, close, ping) --------------------------------------
server.on('upgrade', (req, socket) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const t = tickets.get(url.searchParams.get('ticket') ?? '');
  if (url.pathname !== '/api/v1/ws' || !t) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/problem+json\r\nContent-Length: 2\r\n\r\n{}');
    return;
  }
  tickets.delete(url.searchParams.get('ticket'));
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const frame = (opcode, payload) => {
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | opcode, len]) : Buffer.from([0x80 | opcode, 126, len >> 8, len & 255]);
    if (len > 65535) throw new Error('frame too large for the stub');
    return Buffer.concat([head, payload]);
  };
  const s = {
    user_id: t.user_id,
    token: t.token,
    watched: new Set(),
    send: (obj) => socket.writable && socket.write(frame(1, Buffer.from(JSON.stringify(obj)))),
    close: (code) => {
      if (socket.writable) socket.end(frame(8, Buffer.from([code >> 8, code & 255])));
      sockets.delete(s);
    },
  };
  sockets.add(s);
  s.send({ type: 'hello', user_id: t.user_id, connection_id: randomBytes(6).toString('hex'), heartbeat_s: 20 });
  const since = Number(url.searchParams.get('since') ?? NaN);
  if (Number.isFinite(since)) {
    for (const n of db.notifications.filter((x) => x.recipient === t.user_id && x.id > since).sort((a, b) => a.id - b.id)) {
      s.send({ type: 'notification', notification: noteView(n) });
    }
  }
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 6) {
      const opcode = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) {
        len = buf.readUInt16BE(2);
        off = 4;
      }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const data = Buffer.from(buf.subarray(off + 4, off + 4 + len).map((b, i) => b ^ mask[i % 4]));
      buf = buf.subarray(off + 4 + len);
      if (opcode === 8) return s.close(1000);
      if (opcode === 9) socket.write(frame(10, data));
      if (opcode !== 1) continue;
      let msg;
      try {
        msg = JSON.parse(data.toString('utf8'));
      } catch {
        s.send({ type: 'error', code: 'malformed', message: 'not JSON' });
        continue;
      }
      if (msg.type === 'subscribe') for (const id of msg.post_ids ?? []) s.watched.add(id);
      else if (msg.type === 'unsubscribe') for (const id of msg.post_ids ?? []) s.watched.delete(id);
      else if (msg.type === 'ping') s.send({ type: 'pong' });
      else s.send({ type: 'error', code: 'unknown_type', message: String(msg.type) });
    }
  });
  socket.on('close', () => sockets.delete(s));
  socket.on('error', () => sockets.delete(s));
});

server.listen(Number(port), host, () => console.log(`pulse stub listening on http://${host}:${port}/`));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const s of sockets) s.close(1001);
    server.close();
    setTimeout(() => process.exit(0), 50).unref();
  });
}

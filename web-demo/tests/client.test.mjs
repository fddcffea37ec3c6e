// Unit tests of static/client.js under Node's test runner, with a scripted fetch and a fake
// WebSocket (no server, no browser):  node --test web-demo/tests/client.test.mjs
//
// They pin the parts of the live-socket contract that are hard to provoke on a real server:
// backoff, resuming with ?since=, re-subscribing, duplicate ids, gap, notifications_removed, 4401,
// the grouped inbox: ?groups=1, group frames in version order, resuming with groups_since=; the
// fallback to server-sent events (a fake EventSource) where sockets cannot open; and the
// preferences and Web Push calls.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

/** A WebSocket stand-in the test drives from the "server" side. */
class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  /** @type {FakeSocket[]} */
  static all = [];
  /** @type {((socket: FakeSocket) => void)[]} */
  static waiting = [];

  /** @param {string} url */
  constructor(url) {
    this.url = new URL(url);
    this.readyState = FakeSocket.CONNECTING;
    /** @type {any[]} */
    this.sent = [];
    /** @type {Record<string, ((event: any) => void)[]>} */
    this.listeners = {};
    /** @type {number | null} */
    this.closedByClient = null;
    FakeSocket.all.push(this);
    for (const resolve of FakeSocket.waiting.splice(0)) resolve(this);
  }
  /** @param {string} type @param {(event: any) => void} fn */
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  /** @param {string} data */
  send(data) {
    assert.equal(this.readyState, FakeSocket.OPEN, 'sent on a socket that is not open');
    this.sent.push(JSON.parse(data));
  }
  /** @param {number} [code] */
  close(code = 1000) {
    this.closedByClient = code;
    this.serverClose(code);
  }
  // --- the server's side ---
  /** @param {object} [hello] */
  accept(hello = {}) {
    this.readyState = FakeSocket.OPEN;
    this.emit('open', {});
    this.push({ type: 'hello', user_id: 7, connection_id: 'c1', heartbeat_s: 20, ...hello });
  }
  /** @param {unknown} frame */
  push(frame) {
    this.emit('message', { data: JSON.stringify(frame) });
  }
  /** @param {number} code */
  serverClose(code) {
    if (this.readyState === FakeSocket.CLOSED) return;
    this.readyState = FakeSocket.CLOSED;
    this.emit('close', { code });
  }
  /** @param {string} type @param {any} event */
  emit(type, event) {
    for (const fn of this.listeners[type] ?? []) fn(event);
  }
  /** @returns {Promise<FakeSocket>} the next socket the client opens */
  static next() {
    return new Promise((resolve) => FakeSocket.waiting.push(resolve));
  }
}

/** An EventSource stand-in: the test sends its events from the "server" side. */
class FakeEventSource {
  /** @type {FakeEventSource[]} */
  static all = [];
  /** @type {((stream: FakeEventSource) => void)[]} */
  static waiting = [];

  /** @param {string} url */
  constructor(url) {
    this.url = new URL(url);
    this.closed = false;
    /** @type {Record<string, ((event: any) => void)[]>} */
    this.listeners = {};
    FakeEventSource.all.push(this);
    for (const resolve of FakeEventSource.waiting.splice(0)) resolve(this);
  }
  /** @param {string} type @param {(event: any) => void} fn */
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  close() {
    this.closed = true;
  }
  // --- the server's side ---
  /** @param {{ type: string }} frame */
  push(frame) {
    this.emit(frame.type, { data: JSON.stringify(frame) });
  }
  /** @param {string} type @param {any} event */
  emit(type, event) {
    for (const fn of this.listeners[type] ?? []) fn(event);
  }
  /** @returns {Promise<FakeEventSource>} the next stream the client opens */
  static next() {
    return new Promise((resolve) => FakeEventSource.waiting.push(resolve));
  }
}

/** @type {{ method: string, url: URL, headers: Record<string, string>, body: any }[]} */
let requests = [];
/** @type {(req: { method: string, url: URL, headers: Record<string, string>, body: any }) => Response} */
let answer = () => new Response(null, { status: 404 });
let ticketNumber = 0;
/** Every client a test made, disconnected after it. @type {any[]} */
const clients = [];

function json(status, body, type = 'application/json') {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': type } });
}

/**
 * Default server: hands out tickets "t/1=", "t/2=", ... (a slash and base64 padding, to check the
 * encoding: biscuit tickets keep their `=` padding).
 */
function ticketServer(extra = () => null) {
  return (req) => {
    const special = extra(req);
    if (special) return special;
    if (req.method === 'POST' && req.url.pathname === '/api/v1/auth/ws-ticket') {
      ticketNumber++;
      return json(200, { ticket: `t/${ticketNumber}=`, expires_at: '2026-11-24T10:15:30.123Z' });
    }
    return new Response(null, { status: 404 });
  };
}

const realFetch = globalThis.fetch;
beforeEach(() => {
  requests = [];
  ticketNumber = 0;
  FakeSocket.all = [];
  FakeSocket.waiting = [];
  FakeEventSource.all = [];
  FakeEventSource.waiting = [];
  answer = ticketServer();
  Object.assign(globalThis, {
    WebSocket: FakeSocket,
    EventSource: FakeEventSource,
    fetch: async (/** @type {string} */ url, /** @type {RequestInit} */ init = {}) => {
      const req = {
        method: init.method ?? 'GET',
        url: new URL(url),
        headers: /** @type {Record<string, string>} */ (init.headers ?? {}),
        body: init.body,
      };
      requests.push(req);
      const res = answer(req);
      if (res instanceof Error) throw res;
      return res;
    },
  });
});
afterEach(() => {
  // A failed assertion must not leave a client reconnecting (its timers would keep node alive).
  for (const client of clients.splice(0)) client.disconnect();
  globalThis.fetch = realFetch;
});

const { PulseClient, ProblemError, base64UrlToBytes } = await import('../static/client.js');

/** Waits for a condition to hold, driven by the client's own (short) timers. */
async function until(condition, what, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function newClient(token = 'tok') {
  /** @type {(string | null)[]} */
  const tokens = [];
  const client = new PulseClient({ baseUrl: 'http://pulse.test', token, onTokenChange: (t) => tokens.push(t) });
  clients.push(client);
  return { client, tokens };
}

test('REST calls go under /api/v1 with the bearer token; objects are sent as JSON', async () => {
  answer = () => json(200, { post_id: 3, liked: true, like_count: 1 });
  const { client } = newClient();
  const result = await client.put('/posts/3/like', { a: 1 });
  assert.deepEqual(result, { post_id: 3, liked: true, like_count: 1 });
  const [req] = requests;
  assert.equal(req.url.href, 'http://pulse.test/api/v1/posts/3/like');
  assert.equal(req.method, 'PUT');
  assert.equal(req.headers.Authorization, 'Bearer tok');
  assert.equal(req.headers['Content-Type'], 'application/json');
  assert.equal(req.body, '{"a":1}');
});

test('FormData bodies are sent as multipart (the browser sets the boundary)', async () => {
  answer = () => json(201, { id: 1 });
  const { client } = newClient();
  await client.createPost(new Blob([new Uint8Array([137, 80, 78, 71])], { type: 'image/png' }), 'hi', 'x.png');
  const [req] = requests;
  assert.ok(req.body instanceof FormData);
  assert.equal(req.headers['Content-Type'], undefined);
  assert.equal(req.body.get('caption'), 'hi');
  assert.ok(req.body.get('image') instanceof Blob);
});

test("post('/posts', { caption, image }) sends multipart with a file part", async () => {
  answer = () => json(201, { id: 9, caption: 'sunset' });
  const { client } = newClient();
  const image = new Blob([new Uint8Array([137, 80, 78, 71])], { type: 'image/png' });
  const post = await client.post('/posts', { caption: 'sunset', image });
  assert.deepEqual(post, { id: 9, caption: 'sunset' });
  const [req] = requests;
  assert.equal(req.url.pathname, '/api/v1/posts');
  assert.ok(req.body instanceof FormData, 'an object holding a Blob goes as multipart');
  assert.equal(req.headers['Content-Type'], undefined, 'fetch sets the multipart boundary');
  assert.equal(req.body.get('caption'), 'sunset');
  const part = req.body.get('image');
  assert.ok(part instanceof Blob);
  assert.equal(part.size, 4);
  assert.equal(part.type, 'image/png');
});

test("get('/feed') returns the parsed page", async () => {
  const page = { items: [{ id: 1 }], next_cursor: null };
  answer = (req) => (req.method === 'GET' && req.url.pathname === '/api/v1/feed' ? json(200, page) : json(404, {}));
  const { client } = newClient();
  assert.deepEqual(await client.get('/feed'), page);
  assert.equal(requests[0].headers.Accept, 'application/json');
});

test('a 409 (username taken) is a ProblemError with status, type and title', async () => {
  answer = () =>
    json(409, { type: '/problems/conflict', title: 'Conflict', status: 409, detail: 'That username is taken.' }, 'application/problem+json');
  const { client, tokens } = newClient(null);
  await assert.rejects(client.register('alice', 'password1'), (error) => {
    assert.ok(error instanceof ProblemError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'ProblemError');
    assert.equal(error.status, 409);
    assert.equal(error.type, '/problems/conflict');
    assert.equal(error.message, 'That username is taken.');
    assert.deepEqual(error.errors, []);
    return true;
  });
  assert.deepEqual(tokens, [], 'a failed register keeps no token');
});

test('a problem+json answer throws a typed ProblemError', async () => {
  answer = () =>
    json(
      422,
      { type: '/problems/validation', title: 'Invalid input', status: 422, detail: 'caption is too long',
        errors: [{ field: 'caption', message: 'at most 2200 characters' }] },
      'application/problem+json',
    );
  const { client } = newClient();
  await assert.rejects(client.post('/posts', {}), (error) => {
    assert.ok(error instanceof ProblemError);
    assert.equal(error.type, '/problems/validation');
    assert.equal(error.title, 'Invalid input');
    assert.equal(error.status, 422);
    assert.equal(error.detail, 'caption is too long');
    assert.equal(error.fieldMessage('caption'), 'at most 2200 characters');
    return true;
  });
});

test('a non-JSON error still becomes a ProblemError with the HTTP status', async () => {
  answer = () => new Response('oops', { status: 502, statusText: 'Bad Gateway' });
  const { client } = newClient();
  await assert.rejects(client.get('/me'), (error) => error instanceof ProblemError && error.status === 502);
});

test('204 resolves to undefined; register/login/logout keep and forget the token', async () => {
  answer = (req) => {
    if (req.url.pathname.endsWith('/auth/register')) return json(201, { user: { id: 1 }, token: 'new-token' });
    if (req.url.pathname.endsWith('/auth/logout')) return new Response(null, { status: 204 });
    return new Response(null, { status: 404 });
  };
  const { client, tokens } = newClient(null);
  await client.register('alice', 'password1');
  assert.equal(client.token, 'new-token');
  assert.equal(await client.logout(), undefined);
  assert.equal(requests[1].headers.Authorization, 'Bearer new-token');
  assert.equal(client.token, null);
  assert.deepEqual(tokens, ['new-token', null]);
});

test('connect trades the token for a ticket and resumes with since=', async () => {
  const { client } = newClient();
  /** @type {string[]} */
  const states = [];
  const opened = FakeSocket.next();
  client.connect({ onState: (s) => states.push(s) }, { since: 41 });
  const socket = await opened;
  assert.equal(requests[0].url.pathname, '/api/v1/auth/ws-ticket');
  assert.equal(requests[0].headers.Authorization, 'Bearer tok');
  assert.equal(socket.url.protocol, 'ws:');
  assert.equal(socket.url.pathname, '/api/v1/ws');
  assert.match(socket.url.search, /ticket=t%2F1%3D(&|$)/, 'the ticket is URI-encoded');
  assert.equal(socket.url.searchParams.get('ticket'), 't/1=');
  assert.equal(socket.url.searchParams.get('since'), '41');
  socket.accept();
  assert.deepEqual(states, ['connecting', 'live']);
  client.disconnect();
  assert.equal(socket.closedByClient, 1000);
  assert.equal(states.at(-1), 'closed');
});

test('frames reach their handlers; duplicate notification ids are dropped', async () => {
  const { client } = newClient();
  /** @type {any[]} */
  const got = [];
  const opened = FakeSocket.next();
  client.connect({
    onNotification: (n) => got.push(['n', n.id]),
    onLikeCount: (post, count) => got.push(['like', post, count]),
    onRead: (count) => got.push(['read', count]),
  });
  const socket = await opened;
  socket.accept();
  const note = (id) => ({ type: 'notification', notification: { id, kind: 'like', text: `#${id}` } });
  socket.push(note(5));
  socket.push(note(6));
  socket.push(note(5));
  socket.push({ type: 'like_count', post_id: 9, like_count: 1301 });
  socket.push({ type: 'read', unread_count: 0 });
  socket.push({ type: 'pong' });
  socket.push({ type: 'something_new', x: 1 });
  assert.deepEqual(got, [['n', 5], ['n', 6], ['like', 9, 1301], ['read', 0]]);
  assert.equal(client.lastNotificationId, 6);
  client.disconnect();
});

test('after a drop it reconnects with a fresh ticket, since=<last id> and the watched posts', async () => {
  const { client } = newClient();
  /** @type {{ state: string, delayMs?: number }[]} */
  const states = [];
  let opened = FakeSocket.next();
  client.connect({ onState: (state, d) => states.push({ state, delayMs: d.delayMs }) }, { minBackoffMs: 5, maxBackoffMs: 20 });
  client.watch([1, 2]); // before the socket is live: remembered, sent on hello
  const first = await opened;
  first.accept();
  assert.deepEqual(first.sent, [{ type: 'subscribe', post_ids: [1, 2] }]);
  client.watch([2, 3]);
  assert.deepEqual(first.sent.at(-1), { type: 'subscribe', post_ids: [3] }, 'only the new post is subscribed');
  client.unwatch([1]);
  assert.deepEqual(first.sent.at(-1), { type: 'unsubscribe', post_ids: [1] });
  first.push({ type: 'notification', notification: { id: 77, kind: 'follow', text: 'x' } });

  opened = FakeSocket.next();
  first.serverClose(1001); // server going away
  assert.equal(states.at(-1)?.state, 'reconnecting');
  assert.ok((states.at(-1)?.delayMs ?? -1) <= 5, 'first delay is below the minimum ceiling');
  const second = await opened;
  assert.equal(second.url.searchParams.get('ticket'), 't/2=', 'a ticket is single-use: a new one each time');
  assert.equal(second.url.searchParams.get('since'), '77');
  second.accept();
  assert.equal(states.at(-1)?.state, 'live');
  assert.deepEqual(second.sent, [{ type: 'subscribe', post_ids: [2, 3] }]);
  client.disconnect();
});

test('backoff ceilings grow exponentially up to the maximum, with full jitter', async () => {
  const realRandom = Math.random;
  Math.random = () => 0.999; // the top of each jitter range
  answer = ticketServer((req) => (req.url.pathname.endsWith('/ws-ticket') ? new TypeError('connection refused') : null));
  try {
    const { client } = newClient();
    /** @type {number[]} */
    const delays = [];
    client.connect(
      { onState: (state, d) => state === 'reconnecting' && d.delayMs !== undefined && delays.push(d.delayMs) },
      { minBackoffMs: 1, maxBackoffMs: 8 },
    );
    await until(() => delays.length >= 6, 'six reconnect attempts');
    client.disconnect();
    assert.deepEqual(delays.slice(0, 6), [1, 2, 4, 8, 8, 8]);
  } finally {
    Math.random = realRandom;
  }
});

test('close code 4401 means signed out: no more attempts, token forgotten', async () => {
  const { client, tokens } = newClient();
  /** @type {string[]} */
  const states = [];
  const opened = FakeSocket.next();
  client.connect({ onState: (s) => states.push(s) }, { minBackoffMs: 1, maxBackoffMs: 2 });
  const socket = await opened;
  socket.accept();
  socket.serverClose(4401);
  assert.equal(states.at(-1), 'signed-out');
  assert.equal(client.token, null);
  assert.deepEqual(tokens, [null]);
  // Nothing is scheduled: no retry timer, no heartbeat, and the socket is not replaced.
  assert.equal(client.retryTimer, null, 'it must not try again');
  assert.equal(client.heartbeatTimer, null);
  assert.equal(client.socket, null);
  assert.equal(FakeSocket.all.length, 1);
});

test('a 401 for the ticket also means signed out', async () => {
  answer = () => json(401, { type: '/problems/unauthorized', title: 'Unauthorized', status: 401 }, 'application/problem+json');
  const { client } = newClient();
  /** @type {string[]} */
  const states = [];
  client.connect({ onState: (s) => states.push(s) });
  await until(() => states.includes('signed-out'), 'signed-out');
  assert.deepEqual(states, ['connecting', 'signed-out']);
  assert.equal(FakeSocket.all.length, 0);
});

test('a gap frame fetches the inbox and hands it over; its ids count as seen', async () => {
  const inbox = { items: [{ id: 2000, kind: 'like', text: 'x' }], next_cursor: 'c', unread_count: 1500 };
  answer = ticketServer((req) => (req.url.pathname.endsWith('/notifications') ? json(200, inbox) : null));
  const { client } = newClient();
  /** @type {any[]} */
  const gaps = [];
  /** @type {number[]} */
  const notes = [];
  const opened = FakeSocket.next();
  client.connect({ onGap: (page, before) => gaps.push([page, before]), onNotification: (n) => notes.push(n.id) });
  const socket = await opened;
  socket.accept();
  socket.push({ type: 'gap', before_id: 1000 });
  await until(() => gaps.length === 1, 'onGap');
  assert.deepEqual(gaps[0], [inbox, 1000]);
  assert.equal(requests.at(-1)?.url.searchParams.get('limit'), '50');
  socket.push({ type: 'notification', notification: { id: 2000, kind: 'like', text: 'x' } });
  assert.deepEqual(notes, [], 'already shown from the inbox');
  client.disconnect();
});

test('block, unblock, mute and unmute are PUT/DELETE on the user; the lists are pages', async () => {
  const user = { id: 8, username: 'bob', blocked_by_me: true, muted_by_me: false };
  answer = (req) => (req.url.pathname.endsWith('/blocks') || req.url.pathname.endsWith('/mutes')
    ? json(200, { items: [{ id: 8, username: 'bob', display_name: 'Bob' }], next_cursor: null })
    : json(200, user));
  const { client } = newClient();
  assert.deepEqual(await client.block(8), user);
  await client.unblock(8);
  await client.mute(8);
  await client.unmute(8);
  const blocked = await client.blocks({ limit: 5, cursor: 'abc' });
  await client.mutes();
  assert.equal(blocked.items[0].username, 'bob');
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.url.pathname}${r.url.search}`),
    [
      'PUT /api/v1/users/8/block',
      'DELETE /api/v1/users/8/block',
      'PUT /api/v1/users/8/mute',
      'DELETE /api/v1/users/8/mute',
      'GET /api/v1/blocks?limit=5&cursor=abc',
      'GET /api/v1/mutes',
    ],
  );
});

test('a notifications_removed frame hands over the ids and the new unread count', async () => {
  const { client } = newClient();
  /** @type {any[]} */
  const got = [];
  const opened = FakeSocket.next();
  client.connect({
    onNotificationsRemoved: (ids, count) => got.push(['removed', ids, count]),
    onRead: (count) => got.push(['read', count]),
  });
  const socket = await opened;
  socket.accept();
  socket.push({ type: 'notifications_removed', notification_ids: [12, 'x', 15], unread_count: 3 });
  socket.push({ type: 'read', unread_count: 3 });
  socket.push({ type: 'notifications_removed', notification_ids: [16] }); // no count: ignored
  assert.deepEqual(got, [['removed', [12, 15], 3], ['read', 3]]);
  client.disconnect();
});

test('groups() pages the grouped inbox; markGroupsRead() posts group_ids', async () => {
  const page = { items: [{ id: 12, kind: 'like', text: 'bob liked your photo.', version: 3 }], next_cursor: null, unread_count: 1 };
  answer = (req) =>
    req.url.pathname === '/api/v1/notifications/groups'
      ? json(200, page)
      : json(200, { unread_count: 0, unread_group_count: 0 });
  const { client } = newClient();
  assert.deepEqual(await client.groups({ limit: 30, unread_only: true }), page);
  assert.deepEqual(await client.markGroupsRead([12, 15]), { unread_count: 0, unread_group_count: 0 });
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.url.pathname}${r.url.search} ${r.body ?? ''}`.trim()),
    ['GET /api/v1/notifications/groups?limit=30&unread_only=true', 'POST /api/v1/notifications/read {"group_ids":[12,15]}'],
  );
});

test('a plain socket asks for no groups', async () => {
  const { client } = newClient();
  const opened = FakeSocket.next();
  client.connect({}, { since: 5, groupsSince: 9 });
  const socket = await opened;
  assert.equal(socket.url.searchParams.get('groups'), null);
  assert.equal(socket.url.searchParams.get('groups_since'), null, 'groups_since without groups=1 is a 400');
  client.disconnect();
});

test('with groups: group frames reach their handlers once, in version order, and a reconnect resumes with groups_since', async () => {
  const { client } = newClient();
  /** @type {any[]} */
  const got = [];
  let opened = FakeSocket.next();
  client.connect(
    {
      onGroup: (g) => got.push(['group', g.id, g.text]),
      onGroupRemoved: (id, version) => got.push(['removed', id, version]),
      onRead: (count, groups) => got.push(['read', count, groups]),
    },
    { since: 40, groups: true, groupsSince: 10, minBackoffMs: 5, maxBackoffMs: 10 },
  );
  const first = await opened;
  assert.equal(first.url.searchParams.get('groups'), '1');
  assert.equal(first.url.searchParams.get('groups_since'), '10');
  first.accept();
  const group = (id, version, text) => ({ type: 'group', group: { id, version, text, read: false } });
  first.push(group(12, 10, 'already shown')); // at the version the page showed: dropped
  first.push(group(12, 11, 'bob liked your photo.'));
  first.push(group(12, 12, 'carol and bob liked your photo.'));
  first.push(group(12, 12, 'carol and bob liked your photo.')); // replay overlap: dropped
  first.push({ type: 'group_removed', group_id: 13, version: 13 });
  first.push({ type: 'group_removed', group_id: 13 }); // no version: ignored
  first.push({ type: 'read', unread_count: 4, unread_group_count: 2 });
  assert.deepEqual(got, [
    ['group', 12, 'bob liked your photo.'],
    ['group', 12, 'carol and bob liked your photo.'],
    ['removed', 13, 13],
    ['read', 4, 2],
  ]);
  assert.equal(client.lastGroupVersion, 13);

  opened = FakeSocket.next();
  first.serverClose(1006);
  const second = await opened;
  assert.equal(second.url.searchParams.get('groups'), '1');
  assert.equal(second.url.searchParams.get('groups_since'), '13');
  assert.equal(second.url.searchParams.get('since'), '40');
  second.accept();
  second.push(group(12, 13, 'an old version again')); // dropped
  second.push(group(12, 14, 'bob liked your photo.'));
  assert.deepEqual(got.at(-1), ['group', 12, 'bob liked your photo.']);
  assert.equal(got.length, 5);
  client.disconnect();
});

test('noteGroupVersion moves the resume point forward only; a new token forgets it', async () => {
  const { client } = newClient();
  client.noteGroupVersion(20);
  client.noteGroupVersion(7);
  client.noteGroupVersion(-1);
  assert.equal(client.lastGroupVersion, 20);
  client.setToken('someone-else');
  assert.equal(client.lastGroupVersion, null, 'versions count one user’s changes');
  const opened = FakeSocket.next();
  client.connect({}, { groups: true }); // no version known: the server starts from now
  const socket = await opened;
  assert.equal(socket.url.searchParams.get('groups'), '1');
  assert.equal(socket.url.searchParams.get('groups_since'), null);
  client.disconnect();
});

test('preferences() reads them; putPreferences() sends only the change and returns them all', async () => {
  const all = {
    like: { inbox: false, push: true },
    comment: { inbox: true, push: true },
    follow: { inbox: true, push: false },
    from: 'following',
  };
  answer = () => json(200, all);
  const { client } = newClient();
  assert.deepEqual(await client.preferences(), all);
  assert.deepEqual(await client.putPreferences({ like: { inbox: false }, from: 'following' }), all);
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.url.pathname} ${r.body ?? ''}`.trim()),
    [
      'GET /api/v1/notifications/preferences',
      'PUT /api/v1/notifications/preferences {"like":{"inbox":false},"from":"following"}',
    ],
  );
  assert.equal(requests[1].headers.Authorization, 'Bearer tok');
  assert.equal(requests[1].headers['Content-Type'], 'application/json');
});

test('an unknown preference is a ProblemError naming the field', async () => {
  answer = () =>
    json(
      422,
      { type: '/problems/validation', title: 'Invalid input', status: 422, detail: 'unknown variant `friends`',
        errors: [{ field: 'from', message: 'must be everyone or following' }] },
      'application/problem+json',
    );
  const { client } = newClient();
  await assert.rejects(client.putPreferences({ from: /** @type {any} */ ('friends') }), (error) => {
    assert.ok(error instanceof ProblemError);
    assert.equal(error.status, 422);
    assert.equal(error.fieldMessage('from'), 'must be everyone or following');
    return true;
  });
});

test('pushKey() returns the VAPID key; base64UrlToBytes() decodes it for applicationServerKey', async () => {
  const point = new Uint8Array(65).map((_, i) => (i === 0 ? 4 : (i * 37) % 256));
  const key = Buffer.from(point).toString('base64url');
  answer = (req) => (req.url.pathname === '/api/v1/push/key' ? json(200, { vapid_public_key: key }) : json(404, {}));
  const { client } = newClient(null);
  assert.equal(await client.pushKey(), key);
  assert.equal(requests[0].method, 'GET');
  assert.equal(requests[0].headers.Authorization, undefined, 'the key needs no token');
  const bytes = base64UrlToBytes(key);
  assert.ok(bytes instanceof Uint8Array);
  assert.deepEqual([...bytes], [...point]);
  assert.match(key, /[-_]/, 'the key uses the URL-safe alphabet');
  assert.deepEqual([...base64UrlToBytes('-_8=')], [0xfb, 0xff], 'padding is optional');
  assert.deepEqual([...base64UrlToBytes('-_8')], [0xfb, 0xff]);
});

test('putPushSubscription() sends the subscription as toJSON() gives it; get is null on 404; delete is 204', async () => {
  const saved = { id: 3, endpoint: 'https://push.example.net/send/abc', created_at: '2026-11-24T10:15:30.123Z' };
  let stored = false;
  answer = (req) => {
    if (req.url.pathname !== '/api/v1/push/subscription') return json(404, {});
    if (req.method === 'PUT') {
      stored = true;
      return json(200, saved);
    }
    if (req.method === 'DELETE') {
      stored = false;
      return new Response(null, { status: 204 });
    }
    return stored
      ? json(200, saved)
      : json(404, { type: '/problems/not-found', title: 'Not Found', status: 404, detail: 'This device has no push subscription.' }, 'application/problem+json');
  };
  const { client } = newClient();
  assert.equal(await client.getPushSubscription(), null, 'no subscription yet: null, not an error');
  const body = { endpoint: saved.endpoint, expirationTime: null, keys: { p256dh: 'BPp2', auth: 'YXV0aA' } };
  // What a browser hands over: a PushSubscription, whose toJSON() is the body.
  const browserSubscription = { endpoint: body.endpoint, options: {}, toJSON: () => body };
  assert.deepEqual(await client.putPushSubscription(/** @type {any} */ (browserSubscription)), saved);
  assert.deepEqual(await client.getPushSubscription(), saved);
  assert.equal(await client.deletePushSubscription(), undefined);
  assert.equal(await client.getPushSubscription(), null);
  await client.putPushSubscription(body); // the plain JSON works too
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.url.pathname} ${r.body ?? ''}`.trim()),
    [
      'GET /api/v1/push/subscription',
      `PUT /api/v1/push/subscription ${JSON.stringify(body)}`,
      'GET /api/v1/push/subscription',
      'DELETE /api/v1/push/subscription',
      'GET /api/v1/push/subscription',
      `PUT /api/v1/push/subscription ${JSON.stringify(body)}`,
    ],
  );
  assert.ok(requests.every((r) => r.headers.Authorization === 'Bearer tok'));
});

test('a refused push endpoint is a 422 ProblemError; other errors of getPushSubscription() are thrown', async () => {
  answer = (req) =>
    req.method === 'PUT'
      ? json(
          422,
          { type: '/problems/validation', title: 'Invalid input', status: 422, detail: 'endpoint: must be https',
            errors: [{ field: 'endpoint', message: 'must be https' }] },
          'application/problem+json',
        )
      : json(401, { type: '/problems/unauthorized', title: 'Unauthorized', status: 401 }, 'application/problem+json');
  const { client } = newClient();
  const body = { endpoint: 'http://push.example.net/x', keys: { p256dh: 'a', auth: 'b' } };
  await assert.rejects(client.putPushSubscription(body), (error) => {
    assert.ok(error instanceof ProblemError);
    assert.equal(error.status, 422);
    assert.equal(error.fieldMessage('endpoint'), 'must be https');
    return true;
  });
  await assert.rejects(client.getPushSubscription(), (error) => error instanceof ProblemError && error.status === 401);
});

test('sockets that close before hello twice in a row switch to the event stream, which resumes like the socket', async () => {
  const { client } = newClient();
  /** @type {number[]} */
  const got = [];
  /** @type {string[]} */
  const states = [];
  let opened = FakeSocket.next();
  client.connect(
    { onNotification: (n) => got.push(n.id), onState: (state) => states.push(state) },
    { since: 40, groups: true, groupsSince: 9, minBackoffMs: 5, maxBackoffMs: 20 },
  );
  client.watch([4, 5]);
  for (let i = 0; i < 2; i++) {
    const socket = await opened;
    opened = FakeSocket.next();
    socket.serverClose(1006); // a proxy that refuses the upgrade: never a hello
  }
  const stream = await FakeEventSource.next();
  assert.equal(client.transport, 'sse');
  assert.equal(FakeSocket.all.length, 2, 'no third socket');
  assert.equal(stream.url.pathname, '/api/v1/events');
  const query = Object.fromEntries(stream.url.searchParams);
  assert.deepEqual(query, { ticket: 't/3=', since: '40', groups: '1', groups_since: '9', post_ids: '4,5' });
  stream.push({ type: 'hello', user_id: 7, connection_id: 'c1', heartbeat_s: 15 });
  assert.equal(states.at(-1), 'live');
  stream.push({ type: 'notification', notification: { id: 41, kind: 'like', text: 'x' } });
  stream.push({ type: 'notification', notification: { id: 41, kind: 'like', text: 'x' } });
  assert.deepEqual(got, [41], 'once');

  // Watching another post reopens the stream (a new ticket, resuming after 41) once.
  const reopened = FakeEventSource.next();
  client.watch([6]);
  client.watch([7]);
  const second = await reopened;
  assert.ok(stream.closed, 'the old stream is closed');
  assert.equal(second.url.searchParams.get('ticket'), 't/4=');
  assert.equal(second.url.searchParams.get('since'), '41');
  assert.equal(second.url.searchParams.get('post_ids'), '4,5,6,7');
  assert.equal(FakeEventSource.all.length, 2);
  second.push({ type: 'hello', user_id: 7, connection_id: 'c2', heartbeat_s: 15 });
  assert.equal(states.filter((state) => state === 'live').length, 1, 'reopening for other posts is no reconnect');

  // Unwatching and watching the same posts again (a page re-rendering) reopens nothing.
  client.unwatch([4, 5, 6, 7]);
  client.watch([7, 6, 5, 4]);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(FakeEventSource.all.length, 2, 'the same posts: the stream stays');

  // A dropped stream (an error without data) reconnects over the stream again.
  const third = FakeEventSource.next();
  second.emit('error', {});
  assert.equal(states.at(-1), 'reconnecting');
  assert.equal((await third).url.searchParams.get('ticket'), 't/5=');
  assert.ok(second.closed, 'closed by the client: an EventSource would retry with a used ticket');
  client.disconnect();
});

test("the stream's close event: 4401 signs out, other codes reconnect; error events with data are server frames", async () => {
  const { client, tokens } = newClient();
  /** @type {string[]} */
  const errors = [];
  /** @type {string[]} */
  const states = [];
  let opened = FakeEventSource.next();
  client.connect(
    { onServerError: (code) => errors.push(code), onState: (state) => states.push(state) },
    { transport: 'sse', minBackoffMs: 5, maxBackoffMs: 20 },
  );
  const first = await opened;
  assert.equal(FakeSocket.all.length, 0, 'transport sse opens no socket');
  first.push({ type: 'hello', user_id: 7, connection_id: 'c1', heartbeat_s: 15 });
  first.push({ type: 'error', code: 'subscribe_failed', message: 'retry' });
  assert.deepEqual(errors, ['subscribe_failed']);
  assert.equal(states.at(-1), 'live', 'a server error frame is not a dropped stream');
  opened = FakeEventSource.next();
  first.push({ type: 'close', code: 1001, reason: 'shutting down' });
  assert.equal(states.at(-1), 'reconnecting');
  const second = await opened;
  second.push({ type: 'hello', user_id: 7, connection_id: 'c2', heartbeat_s: 15 });
  second.push({ type: 'close', code: 4401, reason: 'token revoked' });
  assert.equal(states.at(-1), 'signed-out');
  assert.ok(second.closed);
  assert.deepEqual(tokens, [null], 'the token is forgotten');
});

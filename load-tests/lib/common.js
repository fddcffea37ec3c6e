// Shared helpers for the Pulse k6 scripts (k6 v1.1.0).
// Nothing here talks to the network at import time; every helper is called from setup() or a VU.
import http from 'k6/http';
import encoding from 'k6/encoding';
import { fail, sleep } from 'k6';

// An 8x8 RGB PNG (valid: IHDR, one IDAT, IEND, correct CRCs). The server decodes and
// re-encodes uploads, so the image must really decode.
export const PNG_B64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mM4IWeDFTEMLQkAd2xIgbfXr88AAAAASUVORK5CYII=';
let pngBytes = null;
export function png() {
  if (pngBytes === null) pngBytes = encoding.b64decode(PNG_B64); // ArrayBuffer
  return pngBytes;
}

export const PASSWORD = 'load-test-password-1';
export const JSON_HEADERS = { 'Content-Type': 'application/json' };

export function envNum(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`env ${name}=${v} is not a number`);
  return n;
}

export function envStr(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : v;
}

// "60s", "2m", "90", "1m30s" -> seconds
export function envSeconds(name, def) {
  const v = envStr(name, String(def));
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let m;
  let matched = '';
  while ((m = re.exec(v)) !== null) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    matched += m[0];
  }
  if (matched !== v) throw new Error(`env ${name}=${v} is not a duration like 60s, 2m, 1m30s`);
  return total;
}

export function baseUrls() {
  const raw = envStr('BASE_URLS', envStr('BASE_URL', 'http://127.0.0.1:8080'));
  const list = raw.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter((s) => s.length > 0);
  if (list.length === 0) throw new Error('BASE_URLS is empty');
  return list;
}

export function wsUrl(base, query) {
  return base.replace(/^http/, 'ws') + '/api/v1/ws' + (query || '');
}

export function authHeaders(token, extra) {
  return Object.assign({ Authorization: `Bearer ${token}` }, extra || {});
}

// A short id that makes every run's usernames fresh (3..30 chars of [a-z0-9._]).
export function newRunId() {
  const fromEnv = envStr('RUN_ID', '');
  if (fromEnv) return fromEnv.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12);
  return Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36).padStart(2, '0');
}

function chunks(arr, n) {
  const out = [];
  for (let i = 0; i < arr.length; i += n) out.push(arr.slice(i, i + n));
  return out;
}

export const SETUP_BATCH = envNum('SETUP_BATCH', 16);

// Registers users in parallel batches (argon2 makes registration the slow part of setup).
// Returns [{id, username, token}] in the order of `usernames`.
export function registerMany(base, usernames) {
  const out = [];
  for (const part of chunks(usernames, SETUP_BATCH)) {
    const reqs = part.map((username) => ({
      method: 'POST',
      url: `${base}/api/v1/auth/register`,
      body: JSON.stringify({ username, password: PASSWORD }),
      params: { headers: JSON_HEADERS, tags: { name: 'setup_register' }, timeout: '60s' },
    }));
    const res = batchShedAware(reqs);
    res.forEach((r, i) => {
      if (r.status !== 201) {
        fail(`register ${part[i]}: expected 201, got ${r.status} ${String(r.body).slice(0, 300)}`);
      }
      const body = r.json();
      if (!body || !body.token || !body.user || typeof body.user.id !== 'number') {
        fail(`register ${part[i]}: unexpected body ${String(r.body).slice(0, 300)}`);
      }
      out.push({ id: body.user.id, username: body.user.username, token: body.token });
    });
  }
  return out;
}

// Creates `perUser` posts for every user (POST /api/v1/posts, multipart image + caption).
// Returns, per user, the list of post ids.
export function createPosts(base, users, perUser) {
  const jobs = [];
  users.forEach((u, ui) => {
    for (let k = 0; k < perUser; k++) jobs.push({ ui, u, k });
  });
  const ids = users.map(() => []);
  for (const part of chunks(jobs, SETUP_BATCH)) {
    const reqs = part.map((j) => ({
      method: 'POST',
      url: `${base}/api/v1/posts`,
      body: {
        image: http.file(png(), `load-${j.k}.png`, 'image/png'),
        caption: `load test post ${j.k} by ${j.u.username}`,
      },
      params: { headers: authHeaders(j.u.token), tags: { name: 'setup_post' }, timeout: '60s' },
    }));
    const res = batchShedAware(reqs);
    res.forEach((r, i) => {
      if (r.status !== 201) {
        fail(`create post for ${part[i].u.username}: expected 201, got ${r.status} ${String(r.body).slice(0, 300)}`);
      }
      const body = r.json();
      if (!body || typeof body.id !== 'number') fail(`create post: unexpected body ${String(r.body).slice(0, 300)}`);
      ids[part[i].ui].push(body.id);
    });
  }
  return ids;
}

// A server sheds API requests beyond its turns with 503 and Retry-After (PULSE_MAX_IN_FLIGHT):
// when every author VU reads its inbox at the same moment, some reads are refused. Like a client,
// wait what Retry-After says (plus up to half a second, so the retries spread) and try again,
// up to `tries` times. Only for checks after the measured phase: it sleeps.
export function getShedAware(url, params, tries) {
  let r = http.get(url, params);
  for (let n = 1; n < (tries || 10) && r.status === 503; n++) {
    const after = Number(r.headers['Retry-After']);
    sleep((Number.isFinite(after) && after > 0 ? Math.min(after, 5) : 1) + Math.random() / 2);
    r = http.get(url, params);
  }
  return r;
}

// http.batch, then each request answered 503 (shed, or a bounded server queue such as image
// processing) again after its Retry-After, up to `tries` rounds: setup must not fail because the
// server protects itself from the setup's own bursts.
export function batchShedAware(reqs, tries) {
  const res = http.batch(reqs);
  for (let n = 1; n < (tries || 10); n++) {
    const again = [];
    res.forEach((r, k) => {
      if (r.status === 503) again.push(k);
    });
    if (again.length === 0) break;
    let wait = 1;
    for (const k of again) {
      const after = Number(res[k].headers['Retry-After']);
      if (Number.isFinite(after) && after > wait) wait = Math.min(after, 5);
    }
    sleep(wait + Math.random() / 2);
    const retried = http.batch(again.map((k) => reqs[k]));
    again.forEach((k, j) => {
      res[k] = retried[j];
    });
  }
  return res;
}

// Reads a user's whole inbox (GET /api/v1/notifications, keyset pages of 100).
// Returns {ids: [...], unreadCount, ok}.
export function readInbox(base, token, maxPages) {
  const ids = [];
  let cursor = null;
  let unreadCount = null;
  for (let page = 0; page < (maxPages || 1000); page++) {
    const q = cursor === null ? '?limit=100' : `?limit=100&cursor=${encodeURIComponent(cursor)}`;
    const r = getShedAware(`${base}/api/v1/notifications${q}`, {
      headers: authHeaders(token),
      tags: { name: 'inbox' },
      timeout: '30s',
    });
    if (r.status !== 200) return { ids, unreadCount, ok: false, error: `${r.status} ${String(r.body).slice(0, 200)}` };
    const body = r.json();
    if (unreadCount === null && typeof body.unread_count === 'number') unreadCount = body.unread_count;
    for (const n of body.items || []) ids.push(n.id);
    if (!body.next_cursor) return { ids, unreadCount, ok: true };
    cursor = body.next_cursor;
  }
  return { ids, unreadCount, ok: false, error: 'too many pages' };
}

export function parseFrame(data) {
  try {
    const m = JSON.parse(data);
    return m && typeof m === 'object' ? m : null;
  } catch (e) {
    return null;
  }
}

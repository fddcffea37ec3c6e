// Shared helpers of the Node harness (Node 20: global fetch, FormData, Blob; npm `ws`).
import { readFileSync } from 'node:fs';

export const PASSWORD = 'load-test-password-1';
// The same 8x8 PNG as lib/common.js (the server decodes and re-encodes uploads).
const PNG_B64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mM4IWeDFTEMLQkAd2xIgbfXr88AAAAASUVORK5CYII=';

export function envNum(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(String(v).replace(/s$/, ''));
  if (!Number.isFinite(n)) throw new Error(`env ${name}=${v} is not a number`);
  return n;
}

export function baseUrls() {
  const raw = process.env.BASE_URLS || process.env.BASE_URL || 'http://127.0.0.1:8080';
  return raw.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
}

export const wsUrl = (base, query = '') => base.replace(/^http/, 'ws') + '/api/v1/ws' + query;
export const runId = () => Date.now().toString(36) + Math.floor(Math.random() * 1296).toString(36);
export const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// GET `base` + `path` with `token`; gives up after 30 s.
export async function get(base, path, token) {
  const res = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30000) });
  return { status: res.status, body: await res.text() };
}

async function post(url, body, token) {
  const headers = body instanceof FormData ? {} : { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: body instanceof FormData ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text };
}

// Runs `work(item, i)` for every item of `items`, `concurrency` at a time.
export async function eachInParallel(items, concurrency, work) {
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      await work(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
}

// Registers usernames with `concurrency` requests in flight; returns [{id, token}] in order.
export async function registerMany(base, names, concurrency = 16) {
  const out = new Array(names.length);
  await eachInParallel(names, concurrency, async (name, i) => {
    const r = await post(`${base}/api/v1/auth/register`, { username: name, password: PASSWORD });
    if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${r.body.slice(0, 200)}`);
    const b = JSON.parse(r.body);
    out[i] = { id: b.user.id, token: b.token };
  });
  return out;
}

// Uses every user's token once on every instance (`GET /me`), `concurrency` requests in flight, as
// an app's users have by the time they like something: each instance has then verified each token
// once (an ed25519 check and a Datalog run) and later requests find it in its verified-token cache.
export async function useTokens(bases, users, concurrency = 16) {
  const jobs = bases.flatMap((base) => users.map((user) => [base, user]));
  await eachInParallel(jobs, concurrency, async ([base, user]) => {
    const r = await get(base, '/api/v1/me', user.token);
    if (r.status !== 200) throw new Error(`GET /me on ${base}: ${r.status} ${r.body.slice(0, 200)}`);
  });
}

export async function createPost(base, token, caption) {
  const form = new FormData();
  form.append('image', new Blob([Buffer.from(PNG_B64, 'base64')], { type: 'image/png' }), 'load.png');
  form.append('caption', caption);
  const r = await post(`${base}/api/v1/posts`, form, token);
  if (r.status !== 201) throw new Error(`create post: ${r.status} ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body).id;
}

// k6-like trend statistics of an array of numbers (sorted in place).
export function trend(values) {
  values.sort((a, b) => a - b);
  const n = values.length;
  const q = (p) => (n === 0 ? 0 : values[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]);
  const avg = n === 0 ? 0 : values.reduce((s, v) => s + v, 0) / n;
  return { avg, min: n ? values[0] : 0, med: q(50), max: n ? values[n - 1] : 0, 'p(90)': q(90), 'p(95)': q(95), 'p(99)': q(99), count: n };
}

export const counter = (count, seconds) => ({ count, rate: seconds > 0 ? count / seconds : 0 });

export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

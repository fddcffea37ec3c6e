// node load-tests/harness/idle-rss.mjs <pulse binary> [sockets=5000]: RSS per idle authenticated
// socket of one server process (SQLite, one user, 500 warm-up sockets not counted; each socket
// exchanges one ping/pong after hello). A quick
// single-process check beside run.sh idle (which measures 19k sockets on PostgreSQL + Redis).
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import WebSocket from 'ws';
const [bin, n] = [process.argv[2], Number(process.argv[3] ?? 5000)];
const port = 18600 + Math.floor(Math.random() * 300);
const env = { ...process.env, PULSE_ADDR: `127.0.0.1:${port}`, PULSE_DATA_DIR: mkdtempSync('/tmp/idle-'), RUST_LOG: 'warn',
  PULSE_WS_MAX_SOCKETS_PER_USER: '100000', PULSE_RATE_SOCKET_CONNECTS_PER_MIN: '0', PULSE_RATE_IP_WRITES_PER_MIN: '0', PULSE_WORKERS: '2' };
const server = spawn(bin, [], { env, stdio: 'ignore' });
const base = `http://127.0.0.1:${port}`;
const rss = () => Number(readFileSync(`/proc/${server.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
for (let i = 0; i < 200; i++) { try { await fetch(`${base}/healthz`); break; } catch { await new Promise(r => setTimeout(r, 100)); } }
const reg = await (await fetch(`${base}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'idle', password: 'correct-horse' }) })).json();
const open = async (count) => { const out = []; for (let i = 0; i < count; i += 200) {
  out.push(...await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => new Promise((res, rej) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws`, { headers: { authorization: `Bearer ${reg.token}` } });
    // After hello, one application ping and its pong: an idle socket in real life has
    // exchanged a few frames (heartbeats), which is what can leave buffers behind.
    ws.once('message', () => { ws.send('{"type":"ping"}'); ws.once('message', () => res(ws)); });
    ws.once('error', rej); })))); } return out; };
const warm = await open(500); // warm up allocator pools
const before = rss();
const sockets = await open(n);
await new Promise(r => setTimeout(r, 2000));
const after = rss();
console.log(JSON.stringify({ bin, sockets: n, rss_before: before, rss_after: after, bytes_per_socket: Math.round((after - before) / n) }));
[...warm, ...sockets].forEach(ws => ws.terminate());
server.kill();
process.exit(0);

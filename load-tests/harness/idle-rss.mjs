// node load-tests/harness/idle-rss.mjs <pulse binary> [count=5000] [ws|sse]: RSS per idle
// authenticated connection of one server process (SQLite, one user): 500 warm-up connections,
// then two batches of `count`; the figure is the RSS growth over the second batch per connection
// (the first batch's cost depends on what the allocator kept from the warm-up, which varies from
// run to run; it is printed too). `ws` (the default): live sockets, each exchanging one ping/pong
// after hello. `sse`: event streams (GET /api/v1/events), each read up to its hello. A quick
// single-process check beside run.sh idle (which measures 19k sockets on PostgreSQL + Redis).
import { spawn } from 'node:child_process';
import http from 'node:http';
import { readFileSync, mkdtempSync } from 'node:fs';
import WebSocket from 'ws';
const [bin, n, mode] = [process.argv[2], Number(process.argv[3] ?? 5000), process.argv[4] ?? 'ws'];
if (mode !== 'ws' && mode !== 'sse') throw new Error('the mode is ws or sse');
const port = 18600 + Math.floor(Math.random() * 300);
const env = { ...process.env, PULSE_ADDR: `127.0.0.1:${port}`, PULSE_DATA_DIR: mkdtempSync('/tmp/idle-'), RUST_LOG: 'warn',
  PULSE_WS_MAX_SOCKETS_PER_USER: '100000', PULSE_RATE_SOCKET_CONNECTS_PER_MIN: '0', PULSE_RATE_IP_WRITES_PER_MIN: '0', PULSE_WORKERS: '2' };
const server = spawn(bin, [], { env, stdio: 'ignore' });
const base = `http://127.0.0.1:${port}`;
const rss = () => Number(readFileSync(`/proc/${server.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
for (let i = 0; i < 200; i++) { try { await fetch(`${base}/healthz`); break; } catch { await new Promise(r => setTimeout(r, 100)); } }
const reg = await (await fetch(`${base}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'idle', password: 'correct-horse' }) })).json();
/** One event stream, resolved once its hello has arrived; `terminate()` ends it. */
const openStream = () => new Promise((res, rej) => {
  const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/events', agent: false,
    headers: { accept: 'text/event-stream', authorization: `Bearer ${reg.token}` } }, (response) => {
    if (response.statusCode !== 200) return rej(new Error(`stream refused: ${response.statusCode}`));
    let text = '';
    const onData = (chunk) => { text += chunk; if (text.includes('event: hello')) { response.off('data', onData); res({ terminate: () => req.destroy() }); } };
    response.setEncoding('utf8');
    response.on('data', onData);
  });
  req.once('error', rej);
});
const open = async (count) => { const out = []; for (let i = 0; i < count; i += 200) {
  out.push(...await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => mode === 'sse' ? openStream() : new Promise((res, rej) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/ws`, { headers: { authorization: `Bearer ${reg.token}` } });
    // After hello, one application ping and its pong: an idle socket in real life has
    // exchanged a few frames (heartbeats), which is what can leave buffers behind.
    ws.once('message', () => { ws.send('{"type":"ping"}'); ws.once('message', () => res(ws)); });
    ws.once('error', rej); })))); } return out; };
const warm = await open(500); // warm up allocator pools
const before = rss();
const first = await open(n);
await new Promise(r => setTimeout(r, 2000));
const middle = rss();
// A second batch of n: its cost is the steady one (the first batch's can depend on what the
// allocator kept from the warm-up, which varies from run to run).
const second = await open(n);
await new Promise(r => setTimeout(r, 2000));
const after = rss();
console.log(JSON.stringify({ bin, mode, connections: n, rss_before: before, rss_middle: middle, rss_after: after,
  bytes_per_connection_first: Math.round((middle - before) / n), bytes_per_connection: Math.round((after - middle) / n) }));
[...warm, ...first, ...second].forEach(c => c.terminate());
server.kill();
process.exit(0);

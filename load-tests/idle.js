// idle: opens SOCKETS authenticated sockets (default 1,000; at most about 19,000 per k6 process
// and per server process, the hard limit of 20,000 open files), holds them idle for DURATION
// (default 60s), then closes them. SOCKETS_PER_VU sockets share one VU.
//   k6 run -e BASE_URLS=http://127.0.0.1:18081 -e SOCKETS=19000 idle.js
// run.sh samples the server's VmRSS while this runs and computes bytes per socket from the
// PHASE line setup() prints:
//   quiet   [setupEnd, openAt)           nothing connected: the baseline RSS
//   opening [openAt, openAt + RAMP)      sockets open at an even pace
//   held    [heldFrom, heldTo)           all sockets open and idle: the RSS compared to baseline
// Sockets answer the server's WebSocket pings (k6 does that itself), so none should be dropped.
// With two or more BASE_URLS, users register through the first instance and the sockets go to
// the others only: registration runs argon2 (19 MiB per hash), and the heap the allocator keeps
// afterwards would otherwise be reused by the sockets and hide part of their cost. run.sh samples
// the RSS of the socket instances only.
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { envNum, envSeconds, baseUrls, wsUrl, authHeaders, newRunId, registerMany } from './lib/common.js';

const sockets = envNum('SOCKETS', 1000);
const perVu = envNum('SOCKETS_PER_VU', 200);
const cfg = {
  sockets,
  perVu,
  vus: Math.ceil(sockets / perVu),
  // At most 16 sockets per user: the server refuses more than 32 per user and instance.
  users: Math.min(sockets, envNum('USERS', Math.ceil(sockets / 16))),
  quiet: envSeconds('QUIET', 5),
  ramp: envSeconds('RAMP', Math.max(5, Math.ceil(sockets / 1000))),
  settle: envSeconds('SETTLE', 5),
  duration: envSeconds('DURATION', 60),
  bases: baseUrls(),
};
cfg.setupBase = cfg.bases[0];
cfg.socketBases = cfg.bases.length > 1 ? cfg.bases.slice(1) : cfg.bases;
const total = cfg.quiet + cfg.ramp + cfg.settle + cfg.duration;

const socketsOpened = new Counter('sockets_opened');
const socketsHeld = new Counter('sockets_held');
const hellos = new Counter('ws_hello');
const wsFailures = new Counter('ws_failures');

export const options = {
  setupTimeout: '600s',
  batch: 32,
  batchPerHost: 32,
  scenarios: {
    idle: {
      executor: 'per-vu-iterations',
      exec: 'idle',
      vus: cfg.vus,
      iterations: 1,
      maxDuration: `${Math.ceil(total + 60)}s`,
    },
  },
  thresholds: {
    sockets_opened: [`count==${cfg.sockets}`],
    sockets_held: [`count==${cfg.sockets}`],
    ws_failures: ['count==0'],
    http_req_failed: ['rate==0'],
  },
};

export function setup() {
  const run = newRunId();
  const names = [];
  for (let i = 0; i < cfg.users; i++) names.push(`i${run}_u${i}`);
  const users = registerMany(cfg.setupBase, names);
  const setupEnd = Date.now();
  const openAt = setupEnd + cfg.quiet * 1000;
  const heldFrom = openAt + (cfg.ramp + cfg.settle) * 1000;
  const heldTo = heldFrom + cfg.duration * 1000;
  // Parsed by run.sh: keep the format.
  console.log(`PHASE setupEnd=${setupEnd} openAt=${openAt} heldFrom=${heldFrom} heldTo=${heldTo} sockets=${cfg.sockets}`);
  return { tokens: users.map((u) => u.token), openAt, heldFrom, heldTo };
}

let errorsLogged = 0; // per VU

function hold(data, g) {
  let closing = false;
  let open = false;
  const ws = new WebSocket(wsUrl(cfg.socketBases[g % cfg.socketBases.length]), null, {
    headers: authHeaders(data.tokens[g % data.tokens.length]),
    tags: { name: 'idle' },
  });
  ws.onopen = () => {
    open = true;
    socketsOpened.add(1);
  };
  ws.onmessage = (e) => {
    if (e.data.indexOf('"hello"') >= 0) hellos.add(1);
  };
  ws.onerror = (e) => {
    if (!closing) {
      wsFailures.add(1, { kind: 'error' });
      if (errorsLogged++ < 5) console.warn(`socket ${g}: ${e && e.error}`);
    }
  };
  ws.onclose = () => {
    if (!closing) {
      open = false;
      wsFailures.add(1, { kind: 'closed_early' });
    }
  };
  setTimeout(() => {
    closing = true;
    if (open) {
      socketsHeld.add(1);
      ws.close();
    }
  }, Math.max(0, data.heldTo + 1000 - Date.now()));
}

export function idle(data) {
  wsFailures.add(0);
  const v = exec.scenario.iterationInTest;
  for (let s = 0; s < cfg.perVu; s++) {
    const g = v * cfg.perVu + s;
    if (g >= cfg.sockets) break;
    const at = data.openAt + (g * cfg.ramp * 1000) / cfg.sockets;
    setTimeout(() => hold(data, g), Math.max(0, at - Date.now()));
  }
}

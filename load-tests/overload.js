// overload: the likes scenario offered well beyond what one instance can do: RATE likes/s
// (default 3,000, about three times one instance's capacity on a 2-core machine) for DURATION
// (default 30s) to the instance(s) in BASE_URLS, open loop. run.sh overload measures the
// capacity first (a short sweep of the plain likes scenario on the same instance) and passes it
// as CAPACITY; see README.md, "overload".
//
// Same users, posts, schedule and sockets as lib/likes-core.js (setup and teardown are its own):
// one VU per author holds the author's socket and sends the likes on the author's posts, every
// like a first like of a fresh (liker, post) pair, as an asynchronous request at its scheduled
// time. What differs is what an answer may be: under overload the server may refuse a like
// with 503 (problem+json, Retry-After), and the VU knows the answer and the frame of every like:
//
//   like_admitted_duration  HTTP time (connecting + sending + waiting + receiving) of likes answered 200
//   like_refused_duration   the same for 503 answers: how fast a refusal comes back
//   likes_ok / likes_refused  answered 200 / 503; goodput = likes_ok / DURATION
//   refusals_without_retry_after  503s without `Retry-After` or without problem+json (must be 0)
//   likes_other_status{status}   any other answer (must be 0); likes_other_5xx: of them 5xx
//   likes_transport_errors  no HTTP answer (connection refused/reset, REQUEST_TIMEOUT), after one
//                           retry of a keep-alive race (likes_retried counts those; PUT is idempotent)
//   notify_latency          like request start -> notification frame, admitted likes
//   notifications_missing   admitted likes whose frame never arrived (DRAIN after the last like)
//   notifications_late      admitted likes whose frame came more than LATE_MS (1000) after the like
//   notifications_for_refused  frames of likes answered 503 (must be 0: a refused like stores
//                           nothing, notifies nobody)
//   notifications_for_failed   frames of likes with another answer or none (a like the client gave
//                           up on may still have been stored: reported, not a verdict)
//   likes_dropped{cause}    likes the generator did not send, its own limit, like k6's
//                           dropped_iterations: cause "late" when the like's time was more than
//                           MAX_LATE_MS (100) ago when the VU got to it (the generator is short of
//                           CPU), cause "pool" when MAX_VUS (10,000) likes were already waiting for
//                           an answer (as k6's maxVUs). Any drop makes the run a measurement of
//                           the generator, not of the server: threshold count == 0.
//   like_send_lag           how late each sent like left (MAX_SEND_LAG_P99_MS, 50)
//
// Thresholds (k6 exits 99 when one is crossed): admitted p99 <= ADMITTED_P99_MS (100), refusal
// p50 <= REFUSED_P50_MS (10) and p99 <= REFUSED_P99_MS (50), goodput >= GOODPUT_SHARE (0.9) x
// CAPACITY likes/s (when CAPACITY is set), no other status, no transport error, no missing or
// misdirected notification, every refusal with Retry-After, no drop.
import http from 'k6/http';
import exec from 'k6/execution';
import { Trend, Counter } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { envNum, envSeconds, wsUrl, authHeaders, readInbox, parseFrame } from './lib/common.js';
import { likesConfig, likesSetup, likesTeardown } from './lib/likes-core.js';

const cfg = Object.assign(likesConfig({ rate: 3000, duration: 30, drain: 8, p50: 1e9, p99: 1e9 }), {
  capacity: envNum('CAPACITY', 0),
  goodputShare: envNum('GOODPUT_SHARE', 0.9),
  admittedP99: envNum('ADMITTED_P99_MS', 100),
  refusedP50: envNum('REFUSED_P50_MS', 10),
  refusedP99: envNum('REFUSED_P99_MS', 50),
  lateMs: envNum('LATE_MS', 1000),
  maxLateMs: envNum('MAX_LATE_MS', 100),
  maxVus: envNum('MAX_VUS', 10000),
  maxLagP99: envNum('MAX_SEND_LAG_P99_MS', 50),
  requestTimeout: envSeconds('REQUEST_TIMEOUT', 5),
});
if (cfg.requestTimeout >= cfg.drain) throw new Error('REQUEST_TIMEOUT must be shorter than DRAIN: every like is answered before the check');

const notifyLatency = new Trend('notify_latency', true);
const admittedDuration = new Trend('like_admitted_duration', true);
const refusedDuration = new Trend('like_refused_duration', true);
const otherDuration = new Trend('like_other_duration', true);
const sendLag = new Trend('like_send_lag', true);
const likesSent = new Counter('likes_sent');
const likesDropped = new Counter('likes_dropped');
const likesOk = new Counter('likes_ok');
const likesRefused = new Counter('likes_refused');
const refusalsWithoutRetryAfter = new Counter('refusals_without_retry_after');
const likesOtherStatus = new Counter('likes_other_status');
const likesOther5xx = new Counter('likes_other_5xx');
const likesTransportErrors = new Counter('likes_transport_errors');
const likesRetried = new Counter('likes_retried');
const likesUnanswered = new Counter('likes_unanswered');
const notificationsReceived = new Counter('notifications_received');
const notificationsMissing = new Counter('notifications_missing');
const notificationsLate = new Counter('notifications_late');
const notificationsForRefused = new Counter('notifications_for_refused');
const notificationsForFailed = new Counter('notifications_for_failed');
const notificationsUnexpected = new Counter('notifications_unexpected');
const notificationsDuplicated = new Counter('notifications_duplicated');
const notificationsOutOfOrder = new Counter('notifications_out_of_order');
const inboxNotOnSocket = new Counter('inbox_not_on_socket');
const inboxNotifications = new Counter('inbox_notifications');
const wsFailures = new Counter('ws_failures');
const wsReconnects = new Counter('ws_reconnects');

const thresholds = {
  like_admitted_duration: [`p(99)<=${cfg.admittedP99}`],
  like_refused_duration: [`p(50)<=${cfg.refusedP50}`, `p(99)<=${cfg.refusedP99}`],
  like_send_lag: [`p(99)<=${cfg.maxLagP99}`],
  likes_ok: [`count>=${cfg.capacity > 0 ? Math.floor(cfg.goodputShare * cfg.capacity * cfg.duration) : 1}`],
  likes_dropped: ['count==0'],
  'likes_dropped{cause:late}': ['count>=0'], // shown in the summary (a verdict through likes_dropped)
  'likes_dropped{cause:pool}': ['count>=0'],
  refusals_without_retry_after: ['count==0'],
  likes_other_status: ['count==0'],
  likes_other_5xx: ['count==0'],
  likes_transport_errors: ['count==0'],
  likes_unanswered: ['count==0'],
  notifications_missing: ['count==0'],
  notifications_for_refused: ['count==0'],
  notifications_unexpected: ['count==0'],
  notifications_duplicated: ['count==0'],
  notifications_out_of_order: ['count==0'],
  notifications_not_created: ['count==0'],
  inbox_not_on_socket: ['count==0'],
  ws_failures: ['count==0'],
  ws_reconnects: ['count==0'],
};

export const options = {
  // k6's CPU per request is what limits the offered rate on 2 cores: no per-URL tag (every post
  // has its own URL) and no tags nobody reads.
  systemTags: ['status', 'method', 'name', 'scenario', 'expected_response', 'error_code'],
  setupTimeout: '900s',
  teardownTimeout: '600s',
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'count'],
  scenarios: {
    authors: {
      executor: 'per-vu-iterations',
      exec: 'authors',
      vus: cfg.authors,
      iterations: 1,
      maxDuration: `${Math.ceil(cfg.warmup + cfg.duration + cfg.drain + 120)}s`,
    },
  },
  thresholds,
};

export function setup() {
  return likesSetup(cfg);
}
export function teardown(data) {
  likesTeardown(data);
}

let warned = 0; // per VU

export function authors(data) {
  // Every counter in the summary, even at 0.
  [likesDropped, likesOk, likesRefused, refusalsWithoutRetryAfter, likesOtherStatus, likesOther5xx,
    likesTransportErrors, likesRetried, likesUnanswered, notificationsReceived,
    notificationsMissing, notificationsLate, notificationsForRefused, notificationsForFailed, notificationsUnexpected,
    notificationsDuplicated, notificationsOutOfOrder, inboxNotOnSocket, wsFailures, wsReconnects,
  ].forEach((c) => c.add(0));
  const i = exec.scenario.iterationInTest;
  const author = data.authors[i];
  if (!author) return;
  const nb = cfg.bases.length;
  const home = i % nb;
  const A = data.authors.length;
  const PPA = author.posts.length;
  const L = data.likers.length;
  const intervalMs = (1000 * A) / cfg.rate;
  const firstAt = data.t0 + (1000 * i) / cfg.rate;
  const total = Math.min(Math.floor((cfg.rate * cfg.duration - i - 1) / A) + 1, PPA * L);
  const endAt = data.t0 + cfg.duration * 1000 + cfg.drain * 1000;
  // This VU's share of MAX_VUS likes waiting for an answer.
  const poolSize = Math.max(1, Math.floor(cfg.maxVus / A));
  const timeout = `${cfg.requestTimeout}s`;

  // `${post}:${liker}` -> {t0, status (undefined until answered), frameAt}
  const likes = new Map();
  const seen = new Set();
  let lastId = 0;
  let closing = false;
  let opened = false;
  let sent = 0;
  let inFlight = 0;

  let ws = null;
  let reconnects = 0;
  function connect() {
    const query = lastId > 0 ? `?since=${lastId}` : '';
    const sock = new WebSocket(wsUrl(cfg.bases[home], query), null, { headers: authHeaders(author.token), tags: { name: 'ws' } });
    ws = sock;
    sock.onopen = () => {
      opened = true;
    };
    sock.onerror = (e) => {
      if (!closing) console.warn(`socket of author ${author.id}: ${e && e.error}`);
    };
    sock.onclose = (e) => {
      if (closing || sock !== ws) return;
      opened = false;
      wsReconnects.add(1, { code: String(e && e.code) });
      if (reconnects++ >= 20) {
        wsFailures.add(1, { kind: 'gave_up' });
        return;
      }
      setTimeout(() => {
        if (!closing) connect();
      }, 200);
    };
    sock.onmessage = (e) => {
      const now = Date.now();
      const m = parseFrame(e.data);
      if (!m || m.type !== 'notification' || !m.notification) return;
      const n = m.notification;
      if (seen.has(n.id)) {
        notificationsDuplicated.add(1);
        return;
      }
      seen.add(n.id);
      if (n.id < lastId) notificationsOutOfOrder.add(1);
      lastId = Math.max(lastId, n.id);
      notificationsReceived.add(1);
      const like = likes.get(`${n.post_id}:${n.actor && n.actor.id}`);
      if (!like || like.frameAt !== undefined) {
        notificationsUnexpected.add(1);
        return;
      }
      like.frameAt = now;
    };
  }
  connect();

  function answered(like, res) {
    inFlight--;
    like.status = res.status;
    const ms = res.timings.connecting + res.timings.duration;
    if (res.status === 200) {
      // The body is not read (responseType none, for the generator's CPU): a like that changed
      // nothing would notify nobody and show as missing, and likes_stored counts what changed.
      likesOk.add(1);
      admittedDuration.add(ms);
      return;
    }
    if (res.status === 503) {
      likesRefused.add(1);
      refusedDuration.add(ms);
      const ct = String(res.headers['Content-Type'] || '');
      if (!res.headers['Retry-After'] || !ct.startsWith('application/problem+json')) refusalsWithoutRetryAfter.add(1);
      return;
    }
    if (res.status === 0) {
      likesTransportErrors.add(1, { error: String(res.error_code) });
    } else {
      likesOtherStatus.add(1, { status: String(res.status) });
      if (res.status >= 500) likesOther5xx.add(1);
      otherDuration.add(ms);
    }
    if (warned++ < 3) console.warn(`like: ${res.status} ${res.error || ''}`);
  }

  function fire(k, due) {
    const now = Date.now();
    if (now - due > cfg.maxLateMs) {
      likesDropped.add(1, { cause: 'late' });
      return;
    }
    if (inFlight >= poolSize) {
      likesDropped.add(1, { cause: 'pool' });
      return;
    }
    const post = author.posts[k % PPA];
    const liker = data.likers[(Math.floor(k / PPA) + i) % L];
    const bi = (k + i) % nb;
    const like = { t0: now, status: undefined, frameAt: undefined };
    likes.set(`${post}:${liker.id}`, like);
    sendLag.add(Math.max(0, now - due));
    likesSent.add(1);
    inFlight++;
    const put = () =>
      http.asyncRequest('PUT', `${cfg.bases[bi]}/api/v1/posts/${post}/like`, null, {
        headers: authHeaders(liker.token),
        tags: { name: 'like' },
        timeout,
        responseType: 'none',
        // 503 is an answer this scenario expects; k6's http_req_failed counts the rest.
        responseCallback: http.expectedStatuses(200, 503),
      });
    put()
      .then((res) => {
        // A keep-alive race (the server closed an idle connection as the request left on it):
        // retried once, like a client would; PUT is idempotent.
        if (res.status !== 0 || res.error_code === 1050) return res; // 1050: our own timeout
        likesRetried.add(1);
        return put();
      })
      .then((res) => answered(like, res));
  }

  function tick() {
    while (sent < total && Date.now() >= firstAt + sent * intervalMs) {
      fire(sent, firstAt + sent * intervalMs);
      sent++;
    }
    if (sent < total) setTimeout(tick, Math.max(0, firstAt + sent * intervalMs - Date.now()));
  }

  function finish() {
    closing = true;
    let missing = 0;
    for (const like of likes.values()) {
      if (like.status === undefined) {
        likesUnanswered.add(1);
      } else if (like.status === 200) {
        if (like.frameAt === undefined) {
          missing++;
        } else {
          notifyLatency.add(like.frameAt - like.t0);
          if (like.frameAt - like.t0 > cfg.lateMs) notificationsLate.add(1);
        }
      } else if (like.frameAt !== undefined) {
        if (like.status === 503) notificationsForRefused.add(1);
        else notificationsForFailed.add(1, { status: String(like.status) });
      }
    }
    notificationsMissing.add(missing);
    if (missing > 0) console.error(`author ${author.id}: ${missing} admitted likes never notified`);
    if (opened && ws) ws.close();
    const inbox = readInbox(cfg.bases[home], author.token);
    if (!inbox.ok) {
      console.error(`inbox of author ${author.id}: ${inbox.error}`);
      wsFailures.add(1, { kind: 'inbox' });
      return;
    }
    inboxNotifications.add(inbox.ids.length);
    let notOnSocket = 0;
    for (const id of inbox.ids) if (!seen.has(id)) notOnSocket++;
    inboxNotOnSocket.add(notOnSocket);
  }

  setTimeout(() => {
    if (!opened) {
      wsFailures.add(1, { kind: 'not_open_at_start' });
      console.error(`socket of author ${author.id} not open when the likes start`);
    }
    tick();
  }, Math.max(0, firstAt - Date.now()));
  setTimeout(finish, Math.max(0, endAt - Date.now()));
}

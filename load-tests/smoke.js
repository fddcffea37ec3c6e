// smoke: the likes scenario at CI size: 20 likes/s for 10 s against BASE_URL(S), 4 authors.
// The whole run (setup included) takes about 20 s.
//   k6 run -e BASE_URL=http://127.0.0.1:18081 smoke.js
// Latency thresholds are loose, because CI runs a debug build on a busy 2-core machine:
// P50_MS (default 250), P99_MS (default 2000), MAX_SEND_LAG_P99_MS (default 500).
// Correctness thresholds are strict: every like answered 200, no missing, unexpected,
// duplicate, out-of-order or uncreated notification, no socket failure.
import { likesConfig, likesOptions, likesSetup, likesTeardown, authorsFn } from './lib/likes-core.js';

const cfg = likesConfig({
  rate: 20,
  duration: 10,
  postsPerAuthor: 5,
  warmup: 2,
  drain: 5,
  p50: 250,
  p99: 2000,
  maxLagP99: 500,
});
export const options = likesOptions(cfg);

export function setup() {
  return likesSetup(cfg);
}
export function authors(data) {
  authorsFn(data);
}
export function teardown(data) {
  likesTeardown(data);
}

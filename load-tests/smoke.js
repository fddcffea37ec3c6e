// smoke: the likes scenario at CI size: 20 likes/s for 10 s against one BASE_URL, with a probe
// at 5 likes/s. The whole run (setup included) takes well under 30 s.
//   k6 run -e BASE_URL=http://127.0.0.1:18081 smoke.js
// Latency thresholds are loose (debug builds run here): P50_MS (default 50), P99_MS (default 250).
// Correctness thresholds are strict: no failed request, no missing, duplicate or uncreated notification.
import { likesConfig, likesOptions, likesSetup, likesTeardown, authorsFn, likerFn, probeFn } from './lib/likes-core.js';

const cfg = likesConfig({
  rate: 20,
  duration: 10,
  probeRate: 5,
  postsPerAuthor: 5,
  warmup: 2,
  drain: 3,
  p50: 50,
  p99: 250,
  preVUs: 5,
  maxVUs: 20,
});
export const options = likesOptions(cfg);

export function setup() {
  return likesSetup(cfg);
}
export function authors(data) {
  authorsFn(data);
}
export function liker(data) {
  likerFn(data);
}
export function probe(data) {
  probeFn(data);
}
export function teardown(data) {
  likesTeardown(data);
}

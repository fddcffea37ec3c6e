// likes: RATE likes/s (default 1,000) for DURATION (default 60s) through every instance in
// BASE_URLS (comma separated, used round robin); see lib/likes-core.js for what is measured.
//   k6 run -e BASE_URLS=http://127.0.0.1:18081,http://127.0.0.1:18082 likes.js
// Targets (issue): request start -> notification frame p50 <= 2 ms, p99 <= 10 ms, zero missing.
import { likesConfig, likesOptions, likesSetup, likesTeardown, authorsFn, likerFn, probeFn } from './lib/likes-core.js';

const cfg = likesConfig({ rate: 1000, duration: 60, probeRate: 20, p50: 2, p99: 10 });
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

// likes: RATE likes/s (default 1,000) for DURATION (default 60s) through every instance in
// BASE_URLS (comma separated); see lib/likes-core.js for what is measured and how.
//   k6 run -e BASE_URLS=http://127.0.0.1:18081,http://127.0.0.1:18082 likes.js
// Targets: like request start -> notification frame p50 <= 2 ms, p99 <= 10 ms
// (P50_MS, P99_MS), zero missing notifications. k6 exits 99 when any threshold is crossed.
import { likesConfig, likesOptions, likesSetup, likesTeardown, authorsFn } from './lib/likes-core.js';

const cfg = likesConfig({ rate: 1000, duration: 60, p50: 2, p99: 10 });
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

#!/usr/bin/env bash
# figures.sh RESULT.json: the figures that matter from a run.sh result, one per line.
set -euo pipefail
f=$1
jq -r '
  def r(x): if x == null then "-" else ((x * 100 | round) / 100 | tostring) end;
  def trend(n): if .metrics[n] then "\(n): med \(r(.metrics[n].med)) ms, p99 \(r(.metrics[n]["p(99)"])) ms, max \(r(.metrics[n].max)) ms, n=\(.metrics[n].count // "?")" else empty end;
  def counter(n): if .metrics[n] then "\(n): \(.metrics[n].count) (\(r(.metrics[n].rate))/s over the whole run)" else empty end;
  "scenario \(.pulse_run.scenario // "?") on \(.pulse_run.instances // "?") instance(s), backend \(.pulse_run.backend // "?"), k6 exit \(.pulse_run.k6_exit // "?")",
  trend("notify_latency"), trend("notify_latency{path:same}"), trend("notify_latency{path:cross}"),
  trend("commit_to_frame"), trend("like_duration"), trend("fanout_latency"), trend("like_send_lag"),
  counter("likes_ok"), counter("likes_failed"), counter("likes_retried"), counter("notifications_received"), counter("inbox_notifications"),
  counter("notifications_missing"), counter("notifications_not_created"), counter("notifications_duplicated"),
  counter("notifications_unexpected"), counter("inbox_not_on_socket"),
  counter("like_count_frames"), counter("like_count_frames_in_phase"), counter("sockets_opened"), counter("sockets_held"), counter("stale_final_count"),
  counter("ws_failures"), counter("ws_reconnects"), counter("dropped_iterations"),
  (if .metrics.http_req_failed then "http_req_failed: \(r(.metrics.http_req_failed.value * 100))% (\(.metrics.http_req_failed.passes) of \(.metrics.http_req_failed.passes + .metrics.http_req_failed.fails))" else empty end),
  (if .pulse_run.cpu then "CPU in the measured phase (\(.pulse_run.cpu.seconds) s, \(.pulse_run.cpu.units) units): " + ([.pulse_run.cpu | to_entries[] | select(.key | endswith("_cpu_ms_per_unit")) | "\(.key | sub("_cpu_ms_per_unit"; "")) \(.value) ms"] | join(", ")) + " per unit; machine \(.pulse_run.cpu.machine_cores_busy) cores busy, of which other work \(.pulse_run.cpu.other_cpu_s) CPU-s" else empty end),
  (if .pulse_run.load_before then "load average before the run: \(.pulse_run.load_before)" else empty end),
  (if .pulse_run.rss then "RSS: baseline \(.pulse_run.rss.baseline_kib) KiB, held \(.pulse_run.rss.held_median_kib) KiB, \(.pulse_run.rss.sockets_held) sockets: \(.pulse_run.rss.bytes_per_socket) bytes/socket" else empty end),
  ([.metrics | to_entries[] | select(.value.thresholds) | .key as $k | .value.thresholds | to_entries[] | select(.value == true) | "\($k) \(.key)"] | if length > 0 then "thresholds crossed: " + join("; ") else "thresholds: all passed" end)
' "$f"

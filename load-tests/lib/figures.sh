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
  trend("like_admitted_duration"), trend("like_refused_duration"), counter("likes_sent"), counter("likes_refused"),
  counter("refusals_without_retry_after"), counter("likes_other_status"), counter("likes_other_5xx"),
  counter("likes_transport_errors"), counter("likes_dropped"), counter("notifications_late"), counter("notifications_for_refused"), counter("notifications_for_failed"),
  (if .pulse_run.overload then (.pulse_run.overload | (
    "overload: offered \(.offered) likes in \(.duration_s) s (\(.sent) sent, dropped by the generator \(.dropped): late \(.dropped_late), pool \(.dropped_pool); send lag p99 \(r(.send_lag_p99_ms)) ms)",
    "  admitted (200): \(.admitted), p50 / p95 / p99 \(r(.admitted_p50_ms)) / \(r(.admitted_p95_ms)) / \(r(.admitted_p99_ms)) ms",
    "  refused (503): \(.refused), p50 / p99 \(r(.refused_p50_ms)) / \(r(.refused_p99_ms)) ms, without Retry-After or problem+json \(.refused_without_retry_after)",
    "  other statuses \(.other_status) (5xx \(.other_5xx)), transport errors \(.transport_errors) (retried \(.retried)), unanswered \(.unanswered)",
    "  goodput \(.goodput) likes/s = \(if .goodput_share == null then "-" else "\(.goodput_share * 1000 | round / 10) %" end) of capacity \(.capacity) (\(.capacity_method))",
    "  notifications of admitted likes: \(.notifications_arrived) arrived (p50 / p99 \(r(.notify_p50_ms)) / \(r(.notify_p99_ms)) ms), missing \(.notifications_missing), late \(.notifications_late), for refused likes \(.notifications_for_refused), for failed likes \(.notifications_for_failed // 0) (frames in all \(.frames_received // "-")); likes stored \(.likes_stored // "-")",
    "  pulse_requests_shed_total at the end \(.shed_total_end // "absent"), during the overload phase \(.shed_in_overload // "-"); pulse_requests_queued max \(.queued_max // "absent") (1/s samples)",
    (if .server_likes_by_status then (.server_likes_by_status | to_entries[] | "  server (pulse_http_request_duration_seconds, overload phase): \(.key): \(.value.count), within 10 / 50 / 100 / 250 ms: \(.value["le_0.01"]) / \(.value["le_0.05"]) / \(.value["le_0.1"]) / \(.value["le_0.25"])") else empty end),
    (.capacity_steps[] | "  capacity step \(.rate)/s: held \(.held), goodput \(.goodput // "-"), like p99 \(r(.like_p99_ms)) ms, notify p99 \(r(.notify_p99_ms)) ms, send lag p99 \(r(.send_lag_p99_ms)) ms, failed \(.failed // "-"), missing \(.missing // "-")" + (if .cpu then "; CPU ms per like: postgres \(.cpu.postgres_cpu_ms_per_unit), pulse1 \(.cpu.pulse1_cpu_ms_per_unit), k6 \(.cpu.k6_cpu_ms_per_unit); other work \(.cpu.other_cpu_s) CPU-s" else "" end))
  )) else empty end),
  (if .metrics.http_req_failed then "http_req_failed: \(r(.metrics.http_req_failed.value * 100))% (\(.metrics.http_req_failed.passes) of \(.metrics.http_req_failed.passes + .metrics.http_req_failed.fails))" else empty end),
  (if .pulse_run.cpu then "CPU in the measured phase (\(.pulse_run.cpu.seconds) s, \(.pulse_run.cpu.units) units): " + ([.pulse_run.cpu | to_entries[] | select(.key | endswith("_cpu_ms_per_unit")) | "\(.key | sub("_cpu_ms_per_unit"; "")) \(.value) ms"] | join(", ")) + " per unit; machine \(.pulse_run.cpu.machine_cores_busy) cores busy, of which other work \(.pulse_run.cpu.other_cpu_s) CPU-s" else empty end),
  (if .pulse_run.postgres_writes.wal then "PostgreSQL WAL in the measured phase: \(.pulse_run.postgres_writes.wal.wal_bytes_per_unit) bytes per unit" else empty end),
  (if .pulse_run.postgres_writes.tables_whole_run and .pulse_run.postgres_writes.likes_ok > 0 then (.pulse_run.postgres_writes as $w | "PostgreSQL rows per like ok over the whole run (setup included), inserted / updated (HOT) / deleted: " + ([$w.tables_whole_run | to_entries[] | "\(.key) \(.value.inserted / $w.likes_ok * 1000 | round / 1000) / \(.value.updated / $w.likes_ok * 1000 | round / 1000) (\(.value.hot_updated / $w.likes_ok * 1000 | round / 1000)) / \(.value.deleted / $w.likes_ok * 1000 | round / 1000)"] | join(", "))) else empty end),
  (if .pulse_run.load_before then "load average before the run: \(.pulse_run.load_before)" else empty end),
  (if .pulse_run.rss then "RSS: baseline \(.pulse_run.rss.baseline_kib) KiB, held \(.pulse_run.rss.held_median_kib) KiB, \(.pulse_run.rss.sockets_held) sockets: \(.pulse_run.rss.bytes_per_socket) bytes/socket" else empty end),
  ([.metrics | to_entries[] | select(.value.thresholds) | .key as $k | .value.thresholds | to_entries[] | select(.value == true) | "\($k) \(.key)"] | if length > 0 then "thresholds crossed: " + join("; ") else "thresholds: all passed" end)
' "$f"

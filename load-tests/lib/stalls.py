#!/usr/bin/env python3
"""Moments when likes were slow together, from the Rust driver's raw samples.

    SAMPLES_OUT=/tmp/samples.json load-tests/run.sh hot-post --driver rust
    python3 load-tests/lib/stalls.py /tmp/samples.json [SLOW_MS]

Prints the like phase's p50 and p99, then each stall: likes slower than SLOW_MS (8) that started
within 100 ms of each other, when (seconds into the phase), how many, and the slowest. A p99 made
of one or two stalls that hit every scenario alike (a slow fsync, say) is the machine's; slow
likes spread over the whole run are the scenario's.
"""
import json
import sys


def main():
    samples = json.load(open(sys.argv[1]))["samples"]
    slow_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
    likes = sorted(zip(samples["likeStart"], samples["likeDuration"]))
    if not likes:
        sys.exit("no likes in the samples")
    t0 = likes[0][0]
    durations = sorted(d for _, d in likes)
    n = len(durations)
    print(f"likes {n}, p50 {durations[n // 2]:.2f} ms, p99 {durations[min(n - 1, n * 99 // 100)]:.2f} ms")
    stalls = []
    for start, duration in likes:
        if duration <= slow_ms:
            continue
        if stalls and start - stalls[-1][1] < 100:
            stalls[-1][1] = start
            stalls[-1][2] += 1
            stalls[-1][3] = max(stalls[-1][3], duration)
        else:
            stalls.append([start, start, 1, duration])
    for first, last, count, worst in stalls:
        print(f"  {(first - t0) / 1000:7.3f}-{(last - t0) / 1000:7.3f} s: {count:5d} likes over {slow_ms:g} ms, slowest {worst:.1f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# HTTP submission throughput and /metrics scrape time (issue #6), against halyard-smtpd started
# with bench/config-http/ (fsync on, every entry suspended so nothing is delivered; submission
# on 127.0.0.1:8025, monitor on 127.0.0.1:9090). Steps: start the daemon, wait for /ready 200,
# scrape /metrics with an empty queue, submit N messages of SIZE bytes over C keep-alive
# connections (this fills the queue with N entries), scrape with N queued, submit N more (the
# daemon's code is now warm), scrape with 2N queued, stop.
# Usage (from the repository root, after npm install / npx tsc -p .): bash bench/http.sh
# Env: N (10000) C (50) SIZE (5120) SCRAPES (50) LOG_LEVEL (warn, as the SMTP benches)
#      PROFILE (unset; a folder: run the daemon under node --cpu-prof, the .cpuprofile is
#      written there when it stops)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}; C=${C:-50}; SIZE=${SIZE:-5120}; SCRAPES=${SCRAPES:-50}; LOG_LEVEL=${LOG_LEVEL:-warn}
DIR=/tmp/halyard-bench-http
rm -rf "$DIR" && mkdir -p "$DIR"
NODE_ARGS=()
if [ -n "${PROFILE:-}" ]; then mkdir -p "$PROFILE"; NODE_ARGS=(--cpu-prof --cpu-prof-dir "$PROFILE"); fi
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
HALYARD_LOG_LEVEL=$LOG_LEVEL node "${NODE_ARGS[@]}" bin/halyard-smtpd -c bench/config-http/smtpd.yaml >"$DIR/daemon.log" 2>&1 &
HPID=$!
stop() {
  kill -TERM "$HPID" 2>/dev/null || return 0
  for _ in $(seq 1 150); do kill -0 "$HPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$HPID" 2>/dev/null || true
  wait "$HPID" 2>/dev/null || true
}
trap stop EXIT
ready=0
for _ in $(seq 1 200); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9090/ready)" = 200 ]; then ready=1; break; fi
  kill -0 "$HPID" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then echo "daemon not ready; log:" >&2; cat "$DIR/daemon.log" >&2; exit 1; fi
echo "== /metrics, empty queue, $SCRAPES sequential scrapes"
node dist/bench/metrics-scrape.js --scrapes "$SCRAPES"
echo "== HTTP submission, first pass after start: $N requests, $SIZE bytes, $C keep-alive connections"
node dist/bench/http-submission.js --requests "$N" --concurrency "$C" --size "$SIZE"
echo "== /metrics with $N entries queued, $SCRAPES sequential scrapes"
node dist/bench/metrics-scrape.js --scrapes "$SCRAPES" --min-queued "$N"
echo "== HTTP submission, second pass (daemon warmed up): $N requests, $SIZE bytes, $C keep-alive connections"
node dist/bench/http-submission.js --requests "$N" --concurrency "$C" --size "$SIZE"
echo "== /metrics with $((2 * N)) entries queued, $SCRAPES sequential scrapes"
node dist/bench/metrics-scrape.js --scrapes "$SCRAPES" --min-queued "$((2 * N))"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

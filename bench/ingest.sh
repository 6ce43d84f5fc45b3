#!/usr/bin/env bash
# Side-by-side ingest and relay benchmark: Halyard and Postfix 3.7 on this machine, same harness, same
# N/S/SIZE, fsync on for both, both relaying to smtp-sink. Prints the shared harness's
# ingest and end-to-end lines for each, then Halyard's
# end-of-DATA → 250 latency at full speed and at a paced rate.
# Usage (as root, from the repository root, after npm install): bash bench/ingest.sh
# Env: N (10000) S (50) SIZE (5120) RATE (1000) SHARED (../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}; S=${S:-50}; SIZE=${SIZE:-5120}; RATE=${RATE:-1000}; SHARED=${SHARED:-../shared}
rm -rf /tmp/halyard-bench && mkdir -p /tmp/halyard-bench
SINK_PORT=2526 POSTFIX_PORT=2600 bash "$SHARED/bench/peer-postfix.sh" >/dev/null
HALYARD_LOG_LEVEL=warn node bin/halyard-smtpd -c bench/config/smtpd.yaml >/tmp/halyard-bench/daemon.log 2>&1 &
HPID=$!
trap 'kill $HPID 2>/dev/null; postfix stop >/dev/null 2>&1 || true; pkill -x smtp-sink || true' EXIT
for _ in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/2525) 2>/dev/null && break; sleep 0.1; done
echo "== Halyard (127.0.0.1:2525)"
PORT=2525 N=$N S=$S SIZE=$SIZE \
  QUEUE_EMPTY_CMD='[ -z "$(node bin/halyard-spoolcat --spool /tmp/halyard-bench/spool | head -c 1)" ]' \
  bash "$SHARED/bench/relay-bench.sh"
echo "== Postfix (127.0.0.1:2600)"
PORT=2600 N=$N S=$S SIZE=$SIZE QUEUE_EMPTY_CMD='mailq | grep -q "Mail queue is empty"' bash "$SHARED/bench/relay-bench.sh"
echo "== Halyard end of DATA -> 250 latency, full speed, then paced at $RATE msg/s"
node dist/bench/eod-latency.js --port 2525 --messages "$N" --sessions "$S" --size "$SIZE"
node dist/bench/eod-latency.js --port 2525 --messages "$N" --sessions "$S" --size "$SIZE" --rate "$RATE"

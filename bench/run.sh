#!/usr/bin/env bash
# `npm run bench`: the whole benchmark suite of issue #7 (bench/suite.ts) in one command.
# Steps: raise the soft open-files limit (10,000 idle connections need more than 10,000 file
# descriptors in the daemon), install the peers when missing (Postfix 3.7, whose package brings
# smtp-source and smtp-sink, and bc: as root only), build, run dist/bench/suite.js.
# Usage (from anywhere): bash bench/run.sh [--quick] [--only ceiling,relay,postfix,latency,idle,http,queued,receive]
#                                          [--profile <dir>] [--work <dir>] [--shared <dir>]
# Needs: node 20, npm install done; root for Postfix (peer-postfix.sh writes /etc/postfix).
set -euo pipefail
cd "$(dirname "$0")/.."
# The daemon needs one descriptor per connection (10,000 idle ones) plus the spool and listeners.
need=12000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  ulimit -Hn "$need" 2>/dev/null || echo "note: hard open-files limit $hard cannot be raised to $need; the idle-connections part will not run" >&2
  hard=$(ulimit -Hn)
fi
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -Sn 65536; else ulimit -Sn "$hard"; fi
if ! command -v smtp-source >/dev/null || ! command -v bc >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing postfix and bc (Debian packages) for the peer and the load generator" >&2
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq && apt-get install -y -qq postfix bc >/dev/null
  else
    echo "note: smtp-source/Postfix missing and not root: the SMTP parts will not run" >&2
  fi
fi
npx tsc -p . >/dev/null || echo "note: tsc reported errors (dist/ is emitted anyway); see npx tsc -p ." >&2
exec node dist/bench/suite.js "$@"

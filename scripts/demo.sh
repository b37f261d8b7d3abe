#!/usr/bin/env bash
# `just demo`: build glassbox in release mode, make certificates, and run it in the foreground
# until Ctrl-C. With DEMO_EXIT=1 it stops by itself after DEMO_DURATION (default 60s).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DEMO_DURATION:-60s}
cargo build --release -p glassbox
./target/release/glassbox certs
bind=${GLASSBOX_BIND:-127.0.0.1:8443}
port=${bind##*:}
base="https://localhost:$port"

cat <<MSG

glassbox is starting on $base (JSON logs below and in ./logs/).
Try, from another terminal:
  curl --cacert certs/ca.crt $base/
  curl --cacert certs/ca.crt $base/sleep/250
  curl --cacert certs/ca.crt -i $base/code/418
  curl --cacert certs/ca.crt -X POST $base/work
  curl --cacert certs/ca.crt -X POST $base/messages -H 'Content-Type: application/json' --data '{"message":"foo"}'
  curl --cacert certs/ca.crt -H 'Content-Type: image/png' --data-binary @some.png $base/randomize
  curl --cacert certs/ca.crt $base/status
  curl --cacert certs/ca.crt $base/health
  curl --cacert certs/ca.crt $base/metrics
Stop with Ctrl-C.

MSG

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  ./target/release/glassbox serve &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true' EXIT
  seconds=$(python3 -c "import sys,re; m=re.fullmatch(r'(\d+)(ms|s|m)?', sys.argv[1]); n=int(m[1]); print({'ms': n/1000, 's': n, None: n, 'm': n*60}[m[2]])" "$duration")
  for _ in $(seq 50); do curl -sf --cacert certs/ca.crt "$base/health" >/dev/null && break; sleep 0.2; done
  curl -sf --cacert certs/ca.crt "$base/" >/dev/null
  sleep "$seconds"
  curl -sf --cacert certs/ca.crt "$base/status"; echo
  kill -TERM "$pid"
  wait "$pid"
  trap - EXIT
else
  exec ./target/release/glassbox serve
fi

#!/usr/bin/env bash
# The load generator must not be what limits a demo: goose (loadgen --hello-only, GET / with no
# pause) against wrk, both on the reference hello world over TLS, alternating in one session.
# Prints requests/s and the ratio, and CPU seconds per 1,000 requests for each client.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64: wrk connections and
# goose users), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

cargo build --release --quiet -p glassbox -p glassbox-reference -p loadgen
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null
seconds=${duration%s}
TIMEFORMAT='%U %S'

# cpu_per_k REQUESTS TIMEFILE: CPU milliseconds (user + system) per 1,000 requests.
cpu_per_k() { awk -v n="$1" '{ printf "%.1f", ($1 + $2) * 1000 * 1000 / n }' "$2"; }

echo "GET / on the reference over TLS: wrk -t2 -c$connections against loadgen -u $connections, ${seconds}s each, $rounds rounds"
for round in $(seq "$rounds"); do
  port=$(free_port)
  ./target/release/glassbox-reference "127.0.0.1:$port" "$work/certs" >/dev/null &
  pids+=($!)
  wait_port "$port"
  url="https://localhost:$port/"

  wrk -t2 -c"$connections" -d2s "$url" >/dev/null
  { time wrk -t2 -c"$connections" -d"${seconds}s" "$url" >"$work/wrk.out"; } 2>"$work/wrk.time"
  wrk_rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.out")
  wrk_requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")

  # goose starts all users in the first second and resets its metrics once they run, so its
  # report's requests over its duration are the steady rate; the CPU covers the whole process.
  { time ./target/release/loadgen --host "$url" --ca-cert "$work/certs/ca.crt" --hello-only \
      --users "$connections" --increase-rate "$connections" --run-time "${seconds}s" \
      --think-time 0s --metrics-bind 127.0.0.1:0 --no-progress --no-print-metrics --quiet \
      --report-file "$work/goose.json" --summary "$work/summary.json" >/dev/null 2>"$work/loadgen.err"; } 2>"$work/goose.time"
  read -r goose_rps all_requests < <(python3 - "$work/goose.json" "$work/summary.json" <<'PY'
import json, sys
report, summary = (json.load(open(p)) for p in sys.argv[1:3])
steady = report["raw_metrics"]["requests"]["GET /"]["raw_data"]["counter"]
print(steady / report["raw_metrics"]["duration"], summary["requests"])
PY
)
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

  printf '  round %d: wrk %8.0f req/s (%s ms CPU per 1k)   loadgen %8.0f req/s (%s ms CPU per 1k)   ratio %.2f\n' \
    "$round" "$wrk_rps" "$(cpu_per_k "$wrk_requests" "$work/wrk.time")" \
    "$goose_rps" "$(cpu_per_k "$all_requests" "$work/goose.time")" \
    "$(echo "$goose_rps / $wrk_rps" | bc -l)"
  echo "$(echo "$goose_rps / $wrk_rps" | bc -l)" >>"$work/ratios"
done
printf 'median loadgen/wrk requests/s ratio over %d rounds: %.2f\n' "$rounds" "$(median <"$work/ratios")"

#!/usr/bin/env bash
# The math endpoints over TLS with wrk, next to glassbox's own GET / measured in the same run
# (alternating rounds), with requests/s, p99 and the ratio to GET /.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

cargo build --release --quiet -p glassbox
work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null
port=$(free_port)
./target/release/glassbox serve --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
  --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
pid=$!
wait_port "$port"

paths=(/ /fibonacci/400/ /factorial/400/)
echo "glassbox over TLS, wrk -t2 -c$connections -d$duration, $rounds rounds"
for round in $(seq "$rounds"); do
  for i in "${!paths[@]}"; do
    wrk_run "https://localhost:$port${paths[$i]}" "$work/wrk.out"
    read -r rps p99 < <(wrk_summary "$work/wrk.out")
    echo "$rps $p99" >>"$work/$i"
    printf '  round %d  %-16s %9.0f req/s   p99 %7.3f ms\n' "$round" "${paths[$i]}" "$rps" "$p99"
  done
done

echo
echo "median of $rounds rounds"
base=$(awk '{ print $1 }' "$work/0" | median)
for i in "${!paths[@]}"; do
  rps=$(awk '{ print $1 }' "$work/$i" | median)
  p99=$(awk '{ print $2 }' "$work/$i" | median)
  printf '  %-16s %9.0f req/s   p99 %7.3f ms   %.3f x GET /\n' "${paths[$i]}" "$rps" "$p99" "$(echo "$rps / $base" | bc -l)"
done
echo "  target (issue 3): the math routes >= 84000 req/s (4 x the ~21k a Python Sanic server does here without TLS)"

#!/usr/bin/env bash
# The math endpoints over TLS with wrk, next to glassbox's own GET / measured in the same run
# (alternating rounds), with requests/s, p99 and the ratio to GET /.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet -p glassbox
work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./target/release/glassbox serve --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
  --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

paths=(/ /fibonacci/400/ /factorial/400/)
echo "glassbox over TLS, wrk -t2 -c$connections -d$duration, $rounds rounds"
for round in $(seq "$rounds"); do
  for i in "${!paths[@]}"; do
    url="https://localhost:$port${paths[$i]}"
    wrk -t2 -c"$connections" -d2s "$url" >/dev/null
    wrk -t2 -c"$connections" -d"$duration" --latency "$url" >"$work/wrk.out"
    rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.out")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")")
    bad=$(awk '/Non-2xx|Socket errors/ { print }' "$work/wrk.out")
    [ -z "$bad" ] || echo "  ${paths[$i]}: $bad"
    echo "$rps $p99" >>"$work/$i"
    printf '  round %d  %-16s %9.0f req/s   p99 %7.3f ms\n' "$round" "${paths[$i]}" "$rps" "$p99"
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
echo "median of $rounds rounds"
base=$(awk '{ print $1 }' "$work/0" | median)
for i in "${!paths[@]}"; do
  rps=$(awk '{ print $1 }' "$work/$i" | median)
  p99=$(awk '{ print $2 }' "$work/$i" | median)
  printf '  %-16s %9.0f req/s   p99 %7.3f ms   %.3f x GET /\n' "${paths[$i]}" "$rps" "$p99" "$(echo "$rps / $base" | bc -l)"
done
echo "  target (issue 3): the math routes >= 84000 req/s (4 x the ~21k a Python Sanic server does here without TLS)"

#!/usr/bin/env bash
# What a dashboard poll costs the service. The timeline is filled first by the load generator
# (every scenario, about twenty routes) with a 100 ms sample interval and a 30 s window: 300
# samples, as many as the default 1 s over 5 minutes. Then, each with one wrk connection so
# nothing queues: GET / and GET /dashboard/data polled as the page does (only the samples
# after the last one seen), read from glassbox's own server-side HDR histograms in /status;
# and the page's first load of the whole timeline, timed by wrk.
#
# Environment: BENCH_DURATION (default 10s) for each wrk run.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

cargo build --release --quiet -p glassbox -p loadgen
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port=$(free_port)
./target/release/glassbox serve --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
  --data-dir "$work/data" --log-dir "$work/logs" --dashboard-interval 100ms \
  --dashboard-window 30s --work-sleep-max 500ms --total-latency 100ms >/dev/null &
pids+=($!)
wait_port "$port"
base="https://localhost:$port"
get() { curl -s --cacert "$work/certs/ca.crt" "$base$1"; }

echo "filling the timeline: loadgen, 12 users, 35 s"
./target/release/loadgen --host "$base" --ca-cert "$work/certs/ca.crt" --users 12 \
  --increase-rate 12 --run-time 35s --metrics-bind 127.0.0.1:0 --no-progress \
  --no-print-metrics --quiet >/dev/null 2>&1

get /dashboard/data | python3 -c '
import json, sys
text = sys.stdin.read(); d = json.loads(text)
routes = {(r["method"], r["route"]) for p in d["points"] for r in p["routes"]}
samples, capacity, rows = len(d["points"]), d["capacity"], len(d["routes"])
print(f"timeline: {samples} samples of {capacity}, {len(routes)} routes in them, "
      f"{rows} rows in the table; the whole timeline is {len(text) / 1024:.0f} KiB")'

wrk -t1 -c1 -d"$duration" "$base/" >/dev/null
wrk -t1 -c1 -d"$duration" -s scripts/bench-dashboard.lua "$base/dashboard/data" >/dev/null
echo "server-side latency, one connection (glassbox's HDR histograms: arrival to response head):"
get /status | python3 -c '
import json, sys
routes = {(r["method"], r["route"]): r for r in json.load(sys.stdin)["data"]["routes"]}
for label, key in [("GET /", "/"), ("a poll: one sample + the table", "/dashboard/data")]:
    r = routes[("GET", key)]; p50, p99, n = r["latency_us"]["p50"], r["latency_us"]["p99"], r["count"]
    print(f"  {label:32s} p50 {p50:5d} us   p99 {p99:5d} us   ({n} requests)")'
printf '  a poll answer: %s bytes\n' "$(get "/dashboard/data?since=$(get /dashboard/data | python3 -c 'import json,sys; print(json.load(sys.stdin)["last"] - 1)')" | wc -c)"

wrk -t1 -c1 -d"$duration" --latency "$base/dashboard/data" >"$work/full.out"
echo "the first load of the whole timeline, client side (wrk, TLS on loopback included):"
printf '  p50 %s ms   p99 %s ms   %s loads/s\n' \
  "$(to_ms "$(awk '$1 == "50%" { print $2 }' "$work/full.out")")" \
  "$(to_ms "$(awk '$1 == "99%" { print $2 }' "$work/full.out")")" \
  "$(awk '/^Requests\/sec/ { print $2 }' "$work/full.out")"

#!/usr/bin/env bash
# POST /messages with distinct messages over TLS with wrk: the embedded store (durable: every
# 201 is on disk) and Redis, next to glassbox's own GET / measured in the same rounds. Prints
# requests/s, p99, the ratio to GET / and how many messages each durable commit carried.
#
# The embedded database lives under target/ on the real disk, so its fsyncs are real.
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3),
# BENCH_PIN=1 (wrk on a core of its own, see bench-lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 1; }

cargo build --release --quiet -p glassbox
mkdir -p target
work=$(mktemp -d -p target bench-messages.XXXXXX)
work=$(cd "$work" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null

redis_port=$(free_port)
"${server_pin[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work" --save "" \
  --appendonly yes --appendfsync everysec --logfile "$work/redis.log" &
pids+=($!)
wait_port "$redis_port"

# start NAME ARGS...: a glassbox on a free port; sets the variable port_NAME.
start() {
  local name=$1 port
  shift
  port=$(free_port)
  "${server_pin[@]}" ./target/release/glassbox serve --io-threads "$server_cores" --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
    --data-dir "$work/data-$name" --log-dir "$work/logs-$name" "$@" >/dev/null &
  pids+=($!)
  wait_port "$port"
  printf -v "port_$name" '%s' "$port"
}
start embedded
start redis --store "redis://127.0.0.1:$redis_port/0"

names=(get-hello post-embedded post-redis)
echo "glassbox over TLS, wrk -t$wrk_threads -c$connections -d$duration, $rounds rounds; $pinning"
for round in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    case $name in
      get-hello) args=("https://localhost:$port_embedded/") ;;
      post-embedded) args=("https://localhost:$port_embedded/messages" -s scripts/bench-messages.lua) ;;
      post-redis) args=("https://localhost:$port_redis/messages" -s scripts/bench-messages.lua) ;;
    esac
    url=${args[0]}
    wrk_run "$url" "$work/wrk.out" "${args[@]:1}"
    read -r rps p99 < <(wrk_summary "$work/wrk.out")
    echo "$rps $p99" >>"$work/$name"
    printf '  round %d  %-14s %9.0f req/s   p99 %7.3f ms\n' "$round" "$name" "$rps" "$p99"
  done
done

metric() { curl -s --cacert "$work/certs/ca.crt" "https://localhost:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
commits=$(metric "$port_embedded" glassbox_store_commit_batch_size_count)
written=$(metric "$port_embedded" glassbox_store_commit_batch_size_sum)

echo
echo "median of $rounds rounds"
base=$(awk '{ print $1 }' "$work/get-hello" | median)
for name in "${names[@]}"; do
  rps=$(awk '{ print $1 }' "$work/$name" | median)
  p99=$(awk '{ print $2 }' "$work/$name" | median)
  printf '  %-14s %9.0f req/s   p99 %7.3f ms   %.3f x GET /\n' "$name" "$rps" "$p99" "$(echo "$rps / $base" | bc -l)"
done
printf '  embedded store: %.0f messages in %.0f durable commits, %.1f messages per fsync\n' \
  "$written" "$commits" "$(echo "$written / $commits" | bc -l)"
echo "  target (issue 4): post-embedded >= 0.20 x GET / (group commit)"

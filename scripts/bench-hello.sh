#!/usr/bin/env bash
# GET / over TLS with wrk: glassbox (all telemetry on) against the hyper+rustls reference
# hello world, alternating runs in one session so both see the same machine. Prints the
# requests/s ratio, p99 latencies and glassbox's peak RSS under load.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

cargo build --release --quiet -p glassbox -p glassbox-reference
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null


# run NAME PID PORT: warm up, then measure; appends "rps p99_ms peak_rss_kb" to $work/NAME.
run() {
  local name=$1 pid=$2 port=$3 url="https://localhost:$3/" peak=0 rss
  # The server's CPU over the measured run only (wrk_run warms up for 2 s first).
  (sleep 2.5; pid_ticks "$pid" >"$work/ticks.before") &
  local ticks_pid=$!
  wrk_run "$url" "$work/wrk.out" &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.25
  done
  wait "$wrk_pid" "$ticks_pid"
  local after rps p99 cpu
  after=$(pid_ticks "$pid")
  read -r rps p99 < <(wrk_summary "$work/wrk.out")
  # Microseconds of server CPU (user + system) per request; the measured run is about 0.5 s
  # longer than the CPU window, a constant share for both servers.
  cpu=$(echo "($after - $(cat "$work/ticks.before")) * 1000000 / $(getconf CLK_TCK) / $(wrk_requests "$work/wrk.out")" | bc -l)
  echo "$rps $p99 $peak $cpu" >>"$work/$name"
  printf '  %-10s %10.0f req/s   p99 %7.3f ms   peak RSS %6.1f MB   CPU %5.1f us/request\n' "$name" "$rps" "$p99" "$(echo "$peak / 1024" | bc -l)" "$cpu"
}

echo "GET / over TLS, wrk -t2 -c$connections -d$duration, $rounds alternating rounds"
for round in $(seq "$rounds"); do
  echo "round $round"
  port=$(free_port)
  ./target/release/glassbox-reference "127.0.0.1:$port" "$work/certs" >/dev/null &
  pids+=($!); wait_port "$port"; run reference "${pids[-1]}" "$port"; kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

  port=$(free_port)
  ./target/release/glassbox serve --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
    --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
  pids+=($!); wait_port "$port"; run glassbox "${pids[-1]}" "$port"; kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  rm -rf "$work/logs"
done

col() { awk -v c="$1" '{ print $c }' "$work/$2" | median; }
# Each round's ratio compares two runs a few seconds apart; their median resists the noise
# of a shared machine better than a ratio of medians.
# Columns after paste: glassbox rps p99 rss cpu, then the reference's.
ratios=$(paste -d' ' "$work/glassbox" "$work/reference" | awk '{ printf "%.3f\n", $1 / $5 }')
gb_rss=$(awk '{ print $3 }' "$work/glassbox" | sort -n | tail -1)
echo
echo "median of $rounds rounds"
printf '  reference  %10.0f req/s   p99 %7.3f ms\n' "$(col 1 reference)" "$(col 2 reference)"
printf '  glassbox   %10.0f req/s   p99 %7.3f ms   peak RSS %.1f MB (target < 50 MB)\n' \
  "$(col 1 glassbox)" "$(col 2 glassbox)" "$(echo "$gb_rss / 1024" | bc -l)"
echo "  ratio per round: $(echo $ratios)"
printf '  ratio      %10s x reference, median of rounds (target >= 0.85)\n' "$(echo "$ratios" | median)"
printf '  server CPU per request: reference %.1f us, glassbox %.1f us (medians; %.2f x)\n' \
  "$(col 4 reference)" "$(col 4 glassbox)" "$(echo "$(col 4 glassbox) / $(col 4 reference)" | bc -l)"

#!/usr/bin/env bash
# GET / over TLS with wrk: glassbox (all telemetry on) against the hyper+rustls reference
# hello world, alternating runs in one session so both see the same machine. Prints the
# requests/s ratio, p99 latencies and glassbox's peak RSS under load.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3),
# BENCH_PIN=1 (wrk on a core of its own, see bench-lib.sh), BENCH_LOG_OFF=1 (each round also
# runs glassbox with `--log-level warn`, no access lines, to see what the access log costs).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

cargo build --release --quiet -p glassbox -p glassbox-reference
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null


# run NAME PID PORT: warm up, then measure; appends "rps p99_ms peak_rss_kb cpu_us" to $work/NAME.
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

# run_glassbox NAME ARGS...: one measured run of a fresh glassbox started with ARGS.
run_glassbox() {
  local name=$1 port
  shift
  port=$(free_port)
  "${server_pin[@]}" ./target/release/glassbox serve --io-threads "$server_cores" \
    --bind "127.0.0.1:$port" --certs-dir "$work/certs" --data-dir "$work/data" \
    --log-dir "$work/logs" "$@" >/dev/null &
  pids+=($!); wait_port "$port"; run "$name" "${pids[-1]}" "$port"; kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  rm -rf "$work/logs" "$work/data"
}

echo "GET / over TLS, wrk -t$wrk_threads -c$connections -d$duration, $rounds alternating rounds; $pinning"
for round in $(seq "$rounds"); do
  echo "round $round"
  port=$(free_port)
  "${server_pin[@]}" ./target/release/glassbox-reference "127.0.0.1:$port" "$work/certs" >/dev/null &
  pids+=($!); wait_port "$port"; run reference "${pids[-1]}" "$port"; kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

  run_glassbox glassbox
  [ "${BENCH_LOG_OFF:-0}" != 1 ] || run_glassbox no-access --log-level warn
done

col() { awk -v c="$1" '{ print $c }' "$work/$2" | median; }
# Each round's ratio compares two runs a few seconds apart; their median resists the noise
# of a shared machine better than a ratio of medians.
# per_round NAME COLUMN: NAME's figure over the reference's in each round, one per line.
per_round() { paste -d' ' "$work/$1" "$work/reference" | awk -v c="$2" '{ printf "%.3f\n", $c / $(c + 4) }'; }
ratios=$(per_round glassbox 1)
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
p99_ratios=$(per_round glassbox 2 | sort -g)
printf '  p99 over the reference'"'"'s, round by round: median %s x (%s)\n' \
  "$(median <<<"$p99_ratios")" "$(echo $p99_ratios)"
if [ -s "$work/no-access" ]; then
  printf '  no-access  %10.0f req/s   p99 %7.3f ms   CPU %.1f us/request   (--log-level warn)\n' \
    "$(col 1 no-access)" "$(col 2 no-access)" "$(col 4 no-access)"
  printf '  no-access: requests/s %s x, p99 %s x the reference'"'"'s (medians of rounds)\n' \
    "$(per_round no-access 1 | median)" "$(per_round no-access 2 | median)"
fi

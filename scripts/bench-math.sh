#!/usr/bin/env bash
# The math endpoints over TLS with wrk, next to glassbox's own GET / and to the Sanic seed's
# service (reference/sanic, plain HTTP, one worker per core) and to the bare hyper + rustls hello
# world (reference/, the ceiling of anything over TLS here), measured in the same run, alternating
# in each round: requests/s, p99, server CPU per request, and the ratios.
#
# By default wrk shares the machine's cores with the servers, so a server's requests/s also
# pay for the client's side of TLS, which Sanic over plain HTTP does not ask of wrk. With
# BENCH_PIN=1 wrk runs on the last core and every server on the others (Sanic with one worker
# per core it gets, glassbox with as many I/O threads): requests/s then compare the servers.
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3),
# BENCH_SANIC=0 to leave the Sanic server out, BENCH_PIN=1 to pin client and servers apart.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

cargo build --release --quiet -p glassbox -p glassbox-reference
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null
port=$(free_port)
setsid "${server_pin[@]}" ./target/release/glassbox serve --io-threads "$server_cores" --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
  --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
glassbox=$!
pids+=("$glassbox")
wait_port "$port"

reference_port=$(free_port)
setsid "${server_pin[@]}" ./target/release/glassbox-reference "127.0.0.1:$reference_port" "$work/certs" >/dev/null &
reference=$!
pids+=("$reference")
wait_port "$reference_port"

targets=("glassbox $glassbox https://localhost:$port/" \
  "glassbox $glassbox https://localhost:$port/fibonacci/400/" \
  "glassbox $glassbox https://localhost:$port/factorial/400/" \
  "hello $reference https://localhost:$reference_port/")
if [ "${BENCH_SANIC:-1}" != 0 ]; then
  python=target/py/bin/python
  test -x "$python" || python3 -m venv target/py
  "$python" -c 'import sanic' 2>/dev/null ||
    target/py/bin/pip install --quiet -r reference/sanic/requirements.txt
  sanic_port=$(free_port)
  setsid "${server_pin[@]}" "$python" reference/sanic/server.py --port "$sanic_port" --workers "$server_cores" \
    >"$work/sanic.log" 2>&1 &
  sanic=$!
  pids+=("$sanic")
  wait_port "$sanic_port"
  targets+=("sanic $sanic http://127.0.0.1:$sanic_port/fibonacci/400/" \
    "sanic $sanic http://127.0.0.1:$sanic_port/factorial/400/")
fi

ticks=$(getconf CLK_TCK)
echo "wrk -t$wrk_threads -c$connections -d$duration, $rounds rounds; glassbox over TLS, Sanic ($server_cores workers) over plain HTTP; $pinning"
for round in $(seq "$rounds"); do
  for i in "${!targets[@]}"; do
    read -r server sid url <<<"${targets[$i]}"
    "${client_pin[@]}" wrk -t"$wrk_threads" -c"$connections" -d2s "$url" >/dev/null
    before=$(cpu_ticks "$sid")
    "${client_pin[@]}" wrk -t"$wrk_threads" -c"$connections" -d"$duration" --latency "$url" >"$work/wrk.out"
    after=$(cpu_ticks "$sid")
    read -r rps p99 < <(wrk_summary "$work/wrk.out")
    cpu=$(echo "($after - $before) * 1000000 / $ticks / $(wrk_requests "$work/wrk.out")" | bc -l)
    echo "$rps $p99 $cpu" >>"$work/$i"
    printf '  round %d  %-8s %-16s %9.0f req/s   p99 %7.3f ms   server CPU %5.1f us/request\n' \
      "$round" "$server" "/${url#*//*/}" "$rps" "$p99" "$cpu"
  done
done

column() { awk -v c="$2" '{ print $c }' "$work/$1" | median; }
echo
echo "median of $rounds rounds"
for i in "${!targets[@]}"; do
  read -r server _ url <<<"${targets[$i]}"
  printf '  %-8s %-16s %9.0f req/s   p99 %7.3f ms   server CPU %5.1f us/request   %.3f x glassbox GET /\n' \
    "$server" "/${url#*//*/}" "$(column "$i" 1)" "$(column "$i" 2)" "$(column "$i" 3)" \
    "$(echo "$(column "$i" 1) / $(column 0 1)" | bc -l)"
done
if [ "${BENCH_SANIC:-1}" != 0 ]; then
  echo
  echo "glassbox (TLS) against Sanic (plain HTTP), same route, same run; target (issue 3): >= 4 x in requests/s"
  for k in 1 2; do
    read -r _ _ url <<<"${targets[$k]}"
    # Each round's own ratio too: the two servers were measured in it a minute apart at most,
    # so the machine's slower drifts cancel; its spread shows what one round can say.
    ratios=$(paste -d ' ' "$work/$k" "$work/$((k + 3))" | awk '{ print $1 / $4 }' | sort -g)
    printf '  %-16s requests/s %.2f x   server CPU per request %.2f x less   round by round %.2f x (%.2f-%.2f)\n' \
      "/${url#*//*/}" \
      "$(echo "$(column "$k" 1) / $(column $((k + 3)) 1)" | bc -l)" \
      "$(echo "$(column $((k + 3)) 3) / $(column "$k" 3)" | bc -l)" \
      "$(median <<<"$ratios")" "$(head -1 <<<"$ratios")" "$(tail -1 <<<"$ratios")"
  done
  printf '  the hello world over TLS (no work at all) against Sanic fibonacci: %.2f x\n' \
    "$(echo "$(column 3 1) / $(column 4 1)" | bc -l)"
fi

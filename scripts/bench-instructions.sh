#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: unlike requests/s, the count does
# not move with the load on this shared machine, so small changes to the hot path show.
# Each server runs twice under callgrind, serving 500 and then 2,500 requests after the same
# warm-up; the difference of the totals divided by 2,000 is the cost of one request. Work that
# follows the clock rather than the requests would leak into that difference (a second served
# under valgrind is a second more of it), so glassbox's dashboard sampler, which runs once a
# second whatever the load, is set to once an hour here. The log writer's flushes still follow
# the clock, so the count inside the connections (hyper's dispatcher, which runs the whole
# service for each request; the access line is formatted there) is printed too: it is the
# steadier of the two.
#
# Environment: BENCH_PATHS (default "/"), space-separated paths to measure on glassbox.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }

cargo build --release --quiet -p glassbox -p glassbox-reference
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null

# count NAME PATH CMD...: instructions per request (PORT in CMD is replaced by a free port).
count() {
  local name=$1 path=$2 n total=() dispatch=()
  shift 2
  for n in 500 2500; do
    local port
    port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$work/$name.$n" "${@//PORT/$port}" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
    python3 scripts/requests.py "$port" 100 "$work/certs/ca.crt" "$path"
    python3 scripts/requests.py "$port" "$n" "$work/certs/ca.crt" "$path"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    total+=("$(callgrind_annotate "$work/$name.$n" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')")
    # The runtime's worker threads, inclusive: every connection task (TLS, HTTP, the service),
    # without the log writer's thread.
    dispatch+=("$(callgrind_annotate --inclusive=yes "$work/$name.$n" 2>/dev/null |
      awk '!found && /multi_thread::worker::run \[/ { gsub(",", "", $1); print $1; found = 1 }')")
  done
  echo $(( (total[1] - total[0]) / 2000 )) $(( (dispatch[1] - dispatch[0]) / 2000 ))
}

read -r ref ref_dispatch < <(count reference / ./target/release/glassbox-reference 127.0.0.1:PORT "$work/certs")
printf '  %-28s %8d instructions/request (%d on the runtime workers)\n' "reference GET /" "$ref" "$ref_dispatch"
for path in ${BENCH_PATHS:-/}; do
  read -r gb gb_dispatch < <(count glassbox "$path" ./target/release/glassbox serve --bind 127.0.0.1:PORT \
    --certs-dir "$work/certs" --data-dir "$work/data" --log-dir "$work/logs" \
    --dashboard-interval 1h --dashboard-window 2h)
  printf '  %-28s %8d instructions/request   %.2f x reference (%d on the workers, %.2f x)\n' \
    "glassbox GET $path" "$gb" "$(echo "$gb / $ref" | bc -l)" "$gb_dispatch" "$(echo "$gb_dispatch / $ref_dispatch" | bc -l)"
done

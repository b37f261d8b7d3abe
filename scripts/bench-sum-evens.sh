#!/usr/bin/env bash
# /sum-evens throughput for 100 MB and 1 GB files: the parser alone on an in-memory buffer, the
# whole task from an on-disk file, and the full upload over TLS to the result; each next to
# `cat file > /dev/null` (the read ceiling) or, for the upload, to curl sending the same file to
# the reference server, which reads it and throws it away. With BENCH_BIG_GB=5 it also times a
# 5 GB upload-to-result against the same reference and samples glassbox's peak RSS.
#
# Files go under target/bench-sum-evens/ (kept between runs: generating them takes a while).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh
cargo build --release --quiet -p glassbox -p glassbox-reference
cargo build --release --quiet -p glassbox --example sum_evens_bench
bench=./target/release/examples/sum_evens_bench
dir=target/bench-sum-evens
mkdir -p "$dir"
work=$(mktemp -d -p target bench-sum-evens-run.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null
ca="$work/certs/ca.crt"

now() { date +%s.%N; }
gbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.2f", b / 1e9 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# best SECONDS... : the smallest.
best() { printf '%s\n' "$@" | sort -g | head -1; }

port=$(free_port)
./target/release/glassbox serve --bind "127.0.0.1:$port" --certs-dir "$work/certs" \
  --data-dir "$work/data" --log-dir "$work/logs" --log-level warn >/dev/null &
pids+=($!)
glassbox_pid=${pids[-1]}
ref_port=$(free_port)
./target/release/glassbox-reference "127.0.0.1:$ref_port" "$work/certs" >/dev/null &
pids+=($!)
wait_port "$port"
wait_port "$ref_port"

# upload FILE: seconds from the start of the upload to the finished result.
upload() {
  local start token state
  start=$(now)
  token=$(curl -sS --fail-with-body --cacert "$ca" -H 'Content-Type: text/plain' -X POST -T "$1" \
    "https://localhost:$port/sum-evens" | sed 's/.*"token":"\([0-9a-f]*\)".*/\1/')
  [ ${#token} = 32 ] || { echo "upload refused: $token" >&2; exit 1; }
  while :; do
    state=$(curl -sS --fail-with-body --cacert "$ca" "https://localhost:$port/sum-evens/$token/status")
    case $state in
      *finished*) break ;;
      *errored*) echo "errored: $state" >&2; exit 1 ;;
    esac
    sleep 0.05
  done
  awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'
}
# discard FILE: seconds for curl to send it to the reference server.
discard() {
  local start
  start=$(now)
  curl -sf --cacert "$ca" -H 'Content-Type: text/plain' -X POST -T "$1" \
    "https://localhost:$ref_port/" >/dev/null
  awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'
}
cat_time() {
  local start
  start=$(now)
  cat "$1" >/dev/null
  awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'
}

echo "sum-evens, $(nproc) cores; best of 3 runs each"
for mb in 100 1024; do
  file="$dir/numbers-$mb.txt"
  [ -f "$file" ] || "$bench" generate "$file" "$mb"
  bytes=$(stat -c %s "$file")
  echo "$mb MB file ($bytes bytes):"
  "$bench" parse "$mb" | sed 's/^/  /'
  c=$(best "$(cat_time "$file")" "$(cat_time "$file")" "$(cat_time "$file")")
  t=$(best "$("$bench" file "$file" | cut -d' ' -f1)" "$("$bench" file "$file" | cut -d' ' -f1)" "$("$bench" file "$file" | cut -d' ' -f1)")
  u=$(best "$(upload "$file")" "$(upload "$file")" "$(upload "$file")")
  d=$(best "$(discard "$file")" "$(discard "$file")" "$(discard "$file")")
  printf '  cat > /dev/null (read ceiling)         %6.2f GB/s\n' "$(gbps "$bytes" "$c")"
  printf '  whole task from the file, all cores    %6.2f GB/s   %s x cat\n' "$(gbps "$bytes" "$t")" "$(ratio "$c" "$t")"
  printf '  curl upload to a discarding server     %6.2f GB/s\n' "$(gbps "$bytes" "$d")"
  printf '  upload over TLS to the result          %6.2f GB/s   %s x the discarding upload'"'"'s time\n' \
    "$(gbps "$bytes" "$u")" "$(ratio "$u" "$d")"
done

if [ -n "${BENCH_BIG_GB:-}" ]; then
  file="$dir/numbers-${BENCH_BIG_GB}g.txt"
  [ -f "$file" ] || "$bench" generate "$file" $((BENCH_BIG_GB * 1024))
  bytes=$(stat -c %s "$file")
  d=$(discard "$file")
  peak=0
  upload "$file" >"$work/big" &
  up=$!
  while kill -0 "$up" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$glassbox_pid/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.1
  done
  wait "$up"
  u=$(cat "$work/big")
  echo "$BENCH_BIG_GB GB file, once:"
  printf '  curl upload to a discarding server     %7.1f s\n' "$d"
  printf '  upload over TLS to the result          %7.1f s   %s x (target <= 2)\n' "$u" "$(ratio "$u" "$d")"
  printf '  glassbox peak RSS meanwhile            %7.1f MB (target < 100 MB)\n' "$(echo "$peak / 1024" | bc -l)"
fi

#!/usr/bin/env bash
# /randomize throughput with 1, 2 and 4 workers, lead time at a fixed submission rate, and GET /
# of the same build in the same run (the work is in scripts/bench-randomize.py).
#
# Environment: BENCH_IMAGES (default 24), BENCH_DURATION (10s), BENCH_CONNECTIONS (64).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p glassbox
work=$(mktemp -d -p target bench-randomize.XXXXXX)
trap 'rm -rf "$work"' EXIT
./target/release/glassbox certs --certs-dir "$work/certs" >/dev/null
python3 scripts/bench-randomize.py ./target/release/glassbox "$work"

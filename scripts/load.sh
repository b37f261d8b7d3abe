#!/usr/bin/env bash
# `just load`, `just load-ramp`, `just load-spike`, `just load-soak`: a goose load shape
# (`just load-rate`: the open model instead, 200 transactions a second on schedule)
# against glassbox (--host defaults to https://localhost:8443), with the reports in
# reports/<time>-<preset>/. Extra arguments are loadgen and goose options; a later one wins
# over the preset's (`just load --users 50`), and --host points it at any glassbox.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=$1
shift
case $preset in
  steady) shape=(--users 20 --increase-rate 10 --run-time 60s) ;;
  # Up to 40 users over a minute, hold a minute, down.
  ramp) shape=(--test-plan "5,10s;40,60s;40,60s;0,10s") ;;
  # A quiet baseline, a sudden twelvefold burst for 30 s, back to the baseline.
  spike) shape=(--test-plan "5,5s;5,30s;60,5s;60,30s;5,5s;5,30s;0,5s") ;;
  # Ten users for half an hour: leaks and slow drifts show up here.
  soak) shape=(--test-plan "10,30s;10,30m;0,30s") ;;
  # Open model: starts on a schedule whatever the latency; goose writes no reports then.
  rate) shape=(--rate 200 --arrival poisson --run-time 60s --reconcile) ;;
  *) echo "unknown preset $preset (steady, ramp, spike, soak, rate)" >&2; exit 2 ;;
esac
run="reports/$(date +%Y%m%d-%H%M%S)-$preset"
mkdir -p "$run"
cargo build --release --quiet -p loadgen
echo "reports go to $run/"
if [ "$preset" = rate ]; then
  exec ./target/release/loadgen "${shape[@]}" --summary "$run/loadgen.json" "$@"
fi
exec ./target/release/loadgen "${shape[@]}" \
  --report-file "$run/report.html" --report-file "$run/report.json" \
  --report-file "$run/report.md" --summary "$run/loadgen.json" "$@"

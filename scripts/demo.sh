#!/usr/bin/env bash
# `just demo`: build in release mode, make certificates, start glassbox (embedded store and
# queue) and Prometheus if it is installed, drive every endpoint with the load generator for
# DEMO_DURATION (default 60s), print the reconciliation and where to look next, then keep
# glassbox running until Ctrl-C. With DEMO_EXIT=1 it stops after the report instead.
# With INCIDENT=1 (`just incident`) an incident act follows the load: steady requests, a store
# fault for INCIDENT_FAULT (default 40s), recovery, and the timeline every view gave of it.
#
# The load is the open model (DEMO_RATE transactions a second, default 100, on a Poisson
# schedule), so the latency table has the client's raw and corrected latency next to the
# server's; DEMO_USERS=N runs goose's closed loop of N users instead, with goose's reports.
#
# Knobs (environment): DEMO_DURATION, DEMO_RATE, DEMO_USERS, DEMO_EXIT, GLASSBOX_BIND
# (default 127.0.0.1:8443), LOADGEN_METRICS_BIND (default 127.0.0.1:9899),
# DEMO_PROMETHEUS_PORT (default 9090), DEMO_PROMETHEUS=0 to leave Prometheus out, INCIDENT,
# INCIDENT_FAULT.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DEMO_DURATION:-60s}
users=${DEMO_USERS:-}
rate=${DEMO_RATE:-100}
bind=${GLASSBOX_BIND:-127.0.0.1:8443}
port=${bind##*:}
base="https://localhost:$port"
loadgen_metrics=${LOADGEN_METRICS_BIND:-127.0.0.1:9899}
prometheus_port=${DEMO_PROMETHEUS_PORT:-9090}
run="reports/$(date +%Y%m%d-%H%M%S)"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

# Refuses to start when something already answers on an address the demo needs: the demo would
# otherwise measure that process (and leave it running), not the glassbox it starts.
taken() {
    local host=${1%:*} port=${1##*:}
    host=${host#[}
    host=${host%]}
    case $host in 0.0.0.0 | "") host=127.0.0.1 ;; :: ) host=::1 ;; esac
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}
if taken "$bind"; then
    echo "just demo: $bind is taken by another process (another glassbox?); stop it, or pick a free address with GLASSBOX_BIND, e.g. GLASSBOX_BIND=127.0.0.1:8444 just demo" >&2
    exit 1
fi
if taken "$loadgen_metrics"; then
    echo "just demo: $loadgen_metrics (the load generator's metrics) is taken by another process; pick a free address with LOADGEN_METRICS_BIND, e.g. LOADGEN_METRICS_BIND=127.0.0.1:9900 just demo" >&2
    exit 1
fi

say "Building glassbox and the load generator (release)"
cargo build --release -p glassbox -p loadgen
./target/release/glassbox certs
mkdir -p "$run"

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say "Starting glassbox on $base (embedded store and queue; data in ./data, logs in ./logs)"
# --allow-faults: the /faults API, so a fault can be injected while the demo runs (README).
# --dashboard-prometheus: the dashboard shows the alerts of the Prometheus started below.
with_prometheus=0
if [ "${DEMO_PROMETHEUS:-1}" != 0 ] && command -v prometheus >/dev/null; then
    with_prometheus=1
fi
glassbox_flags=(--allow-faults)
if [ "$with_prometheus" = 1 ]; then
    glassbox_flags+=(--dashboard-prometheus "http://localhost:$prometheus_port")
fi
GLASSBOX_BIND=$bind ./target/release/glassbox serve "${glassbox_flags[@]}" >"$run/glassbox.stdout.log" 2>&1 &
pids+=($!)
# Ready when our process says it listens and answers; if it exits first, its own words say why.
for _ in $(seq 100); do
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
        echo "just demo: glassbox did not start:" >&2
        grep -v '^{' "$run/glassbox.stdout.log" >&2 || tail -5 "$run/glassbox.stdout.log" >&2
        exit 1
    fi
    grep -q '"message":"listening"' "$run/glassbox.stdout.log" &&
        curl -sf --cacert certs/ca.crt "$base/health" >/dev/null && break
    sleep 0.1
done
curl -sf --cacert certs/ca.crt "$base/health" >/dev/null

prometheus_url=""
if [ "$with_prometheus" = 1 ]; then
    say "Starting Prometheus on http://localhost:$prometheus_port (scraping glassbox and the loadgen every 5s)"
    sed -e "s|../../certs/ca.crt|$PWD/certs/ca.crt|" \
        -e "s|rules/glassbox.rules.yml|$PWD/dashboards/prometheus/rules/glassbox.rules.yml|" \
        -e "s|rules/demo.rules.yml|$PWD/dashboards/prometheus/rules/demo.rules.yml|" \
        -e "s|localhost:8443|localhost:$port|" \
        -e "s|localhost:9899|localhost:${loadgen_metrics##*:}|" \
        dashboards/prometheus/prometheus.yml >"$run/prometheus.yml"
    prometheus --config.file="$run/prometheus.yml" --storage.tsdb.path=data/prometheus \
        --enable-feature=exemplar-storage \
        --web.listen-address="127.0.0.1:$prometheus_port" >"$run/prometheus.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null && break
        sleep 0.1
    done
    if kill -0 "${pids[-1]}" 2>/dev/null && curl -sf "http://127.0.0.1:$prometheus_port/-/ready" >/dev/null; then
        prometheus_url="http://localhost:$prometheus_port"
    else
        echo "Prometheus did not start (is port $prometheus_port taken? see $run/prometheus.log); going on without it" >&2
    fi
else
    say "Prometheus is not installed: skipping it (the built-in /status and /metrics still work)"
fi

status=0
common=(--host "$base" --ca-cert certs/ca.crt --run-time "$duration" \
    --metrics-bind "$loadgen_metrics" --reconcile --summary "$run/loadgen.json")
if [ -n "$users" ]; then
    say "Driving every endpoint with $users goose users for $duration (watch it live: $base/dashboard)"
    ./target/release/loadgen "${common[@]}" \
        --users "$users" --increase-rate "$users" --no-reset-metrics \
        --report-file "$run/report.html" --report-file "$run/report.json" \
        --report-file "$run/report.md" --no-print-metrics --quiet || status=$?
    reports="$run/report.html   goose: requests, time to first byte (ms), graphs
              $run/report.md, $run/report.json, and $run/loadgen.json (the tables above)"
else
    say "Driving every endpoint at $rate transactions a second (open model, Poisson arrivals) for $duration (watch it live: $base/dashboard)"
    ./target/release/loadgen "${common[@]}" --rate "$rate" --arrival poisson || status=$?
    reports="$run/loadgen.json   the tables above as JSON, with the schedule's report"
fi

if [ "${INCIDENT:-0}" = 1 ]; then
    fault=${INCIDENT_FAULT:-40s}
    say "The incident: 20 s of steady load, the message store failing for $fault, then recovery (watch $base/dashboard)"
    incident_flags=(--host "$base" --ca-cert certs/ca.crt --fault "$fault" --report "$run/incident.json")
    if [ -n "$prometheus_url" ]; then
        incident_flags+=(--prometheus "http://127.0.0.1:$prometheus_port")
    fi
    ./target/release/incident "${incident_flags[@]}" || status=$?
fi

log_file=$(ls -t logs/glassbox.*.log 2>/dev/null | head -1 || true)
say "Where to look next"
cat <<MSG
  reports     $reports
  dashboard   $base/dashboard    live charts, the route table and recent log lines (open it in a browser)
  glassbox    $base/status       counts and HDR percentiles per route, store, queue
              $base/metrics      Prometheus text: http_server_request_duration_seconds, ...
              $base/openapi.json every endpoint
              (curl --cacert certs/ca.crt $base/status)
  logs        ${log_file:-logs/}   one JSON line per request, with its request id
MSG
if [ -n "$prometheus_url" ]; then
    cat <<MSG
  Prometheus  $prometheus_url/graph?g0.expr=sum+by+(http_route)+(rate(http_server_request_duration_seconds_count[1m]))
              client next to server: loadgen_request_duration_seconds, loadgen_request_corrected_duration_seconds (scraped while the loadgen ran)
MSG
fi

if [ "$status" -ne 0 ]; then
    echo "The load generator or the incident exited with status $status (loadgen 3: the server's counts differ from the requests made; incident 1: the timeline is out of order or incomplete)." >&2
fi
if [ "${DEMO_EXIT:-0}" = 1 ]; then
    exit "$status"
fi
say "glassbox keeps running on $base for browsing; Ctrl-C stops everything the demo started."
trap 'exit 0' INT TERM
wait "${pids[0]}"

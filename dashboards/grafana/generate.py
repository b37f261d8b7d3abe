#!/usr/bin/env python3
"""Writes glassbox's Grafana dashboards (dashboards/*.json) from the panel lists below.

`just dashboards` runs it; the JSON it writes is committed, and the tests read the JSON (every
PromQL query runs against a real Prometheus, every LogQL field is checked against real log lines).
Each panel says in its description which series or log field its numbers come from.
"""

import json
from pathlib import Path

PROM = {"type": "prometheus", "uid": "glassbox-prometheus"}
LOKI = {"type": "loki", "uid": "glassbox-loki"}
HERE = Path(__file__).resolve().parent / "dashboards"

# OpenTelemetry's label names on the http_server_* and loadgen_* series; $route is the
# dashboards' route variable.
SEL = 'instance=~"$instance", http_route=~"$route"'
RATE = "[$__rate_interval]"


def grid(panels, width=12, height=8):
    """Lays panels out two to a row."""
    x = y = 0
    for panel in panels:
        w = panel.pop("_w", width)
        if x + w > 24:
            x, y = 0, y + height
        panel["gridPos"] = {"x": x, "y": y, "w": w, "h": height}
        x += w
    return panels


def timeseries(title, description, targets, unit, log=False, stack=False):
    custom = {"lineWidth": 1, "fillOpacity": 10 if stack else 0, "showPoints": "never"}
    if log:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": PROM,
        "targets": [
            {"refId": chr(65 + i), "datasource": PROM, "expr": expr, "legendFormat": legend,
             # glassbox's request-duration buckets carry request_id exemplars (OpenMetrics
             # scrape): a latency query over them shows them, each linking to its log lines.
             "exemplar": f"{SERVER}_bucket" in expr}
            for i, (expr, legend) in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, description, expr, unit, thresholds=None):
    steps = [{"color": "green", "value": None}] + [
        {"color": color, "value": value} for value, color in (thresholds or [])
    ]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": PROM,
        "targets": [{"refId": "A", "datasource": PROM, "expr": expr, "instant": True}],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        "_w": 6,
    }


def variables(*names):
    out = []
    queries = {
        "instance": 'label_values(up{job="glassbox"}, instance)',
        "route": 'label_values(http_server_request_duration_seconds_count{instance=~"$instance"}, http_route)',
        "kind": "label_values(glassbox_tasks_submitted_total, kind)",
    }
    for name in names:
        out.append({
            "name": name,
            "label": name,
            "type": "query",
            "datasource": PROM,
            "query": {"query": queries[name], "refId": name},
            "definition": queries[name],
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        })
    return out


# Every dashboard marks the injected faults (the /faults API, --allow-faults): a region from a
# fault's start to its end, named after it, from glassbox_fault_active.
FAULTS_ANNOTATION = {
    "name": "Injected faults",
    "datasource": PROM,
    "enable": True,
    "iconColor": "red",
    "expr": "max by (fault, kind, route) (glassbox_fault_active) == 1",
    "step": "5s",
    "titleFormat": "fault {{fault}}",
    "textFormat": "{{kind}} on {{route}}",
    "tagKeys": "kind,route",
    "useValueForTime": False,
}


def dashboard(uid, title, description, panels, templating, refresh="10s"):
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["glassbox"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": refresh,
        "time": {"from": "now-15m", "to": "now"},
        "templating": {"list": templating},
        "annotations": {"list": [FAULTS_ANNOTATION]},
        "links": [{"type": "dashboards", "tags": ["glassbox"], "asDropdown": True, "title": "glassbox"}],
        "panels": grid(panels),
    }


SERVER = "http_server_request_duration_seconds"
CLIENT = "loadgen_request_duration_seconds"
CORRECTED = "loadgen_request_corrected_duration_seconds"

overview = dashboard(
    "glassbox-overview",
    "glassbox · Overview",
    "Rate, errors and duration per route, from glassbox's own /metrics.",
    [
        stat("Requests/s", f"All requests per second: rate of {SERVER}_count.",
             f'sum(rate({SERVER}_count{{{SEL}}}{RATE}))', "reqps"),
        stat("5xx ratio", f"Share of answers with a 5xx status ({SERVER}_count by http_response_status_code).",
             f'(sum(rate({SERVER}_count{{{SEL}, http_response_status_code=~"5.."}}{RATE})) or vector(0)) / sum(rate({SERVER}_count{{{SEL}}}{RATE}))',
             "percentunit", [(0.01, "orange"), (0.05, "red")]),
        stat("Availability budget burn (1h)",
             "5xx ratio over the last hour outside /code and /work (recording rule "
             "glassbox:slo_availability_errors:ratio_rate1h) divided by the 0.1% budget: 1 spends the "
             "month's budget in a month, 14.4 pages.",
             "glassbox:slo_availability_errors:ratio_rate1h / 0.001", "none", [(6, "orange"), (14.4, "red")]),
        stat("Certificate expires in",
             "glassbox_certificate_expiry_timestamp_seconds minus now: the served certificate.",
             f'min(glassbox_certificate_expiry_timestamp_seconds{{instance=~"$instance"}}) - time()', "s",
             ),
        timeseries("Requests/s by route", f"rate({SERVER}_count) by route template; unmatched paths are one route.",
                   [(f"sum by (http_route) (rate({SERVER}_count{{{SEL}}}{RATE}))", "{{http_route}}")], "reqps"),
        timeseries("5xx answers/s by route", f"rate({SERVER}_count{{http_response_status_code=~\"5..\"}}) by route.",
                   [(f'sum by (http_route) (rate({SERVER}_count{{{SEL}, http_response_status_code=~"5.."}}{RATE}))', "{{http_route}}")], "reqps"),
        timeseries("p99 latency by route",
                   f"histogram_quantile(0.99) of {SERVER} (server side: arrival in the service to response head), by route.",
                   [(f"histogram_quantile(0.99, sum by (http_route, le) (rate({SERVER}_bucket{{{SEL}}}{RATE})))", "{{http_route}}")],
                   "s", log=True),
        timeseries("p50, p90, p99 latency, all selected routes",
                   f"Quantiles of the {SERVER} histogram (buckets 100 µs to 60 s) over the selected routes.",
                   [(f"histogram_quantile({q}, sum by (le) (rate({SERVER}_bucket{{{SEL}}}{RATE})))", f"p{int(q * 100)}")
                    for q in (0.5, 0.9, 0.99)], "s", log=True),
        timeseries("Answers/s by status code", f"rate({SERVER}_count) by http_response_status_code.",
                   [(f"sum by (http_response_status_code) (rate({SERVER}_count{{{SEL}}}{RATE}))", "{{http_response_status_code}}")], "reqps", stack=True),
        timeseries("In flight and refused by bound",
                   "http_server_active_requests (gauge, now) and the rate of glassbox_overloads_total by bound: "
                   "503s at the concurrency limit (permits), request body memory (body_memory) and the task "
                   "queue (queue), and at one address's --client-share of each (client_permits, "
                   "client_body_memory, client_queue).",
                   [(f'sum(http_server_active_requests{{instance=~"$instance"}})', "in flight"),
                    (f'sum by (bound) (rate(glassbox_overloads_total{{instance=~"$instance"}}{RATE})) or vector(0)', "refused/s: {{bound}}")],
                   "short"),
        timeseries("Connections open, and closed by reason",
                   "glassbox_connections_open (gauge, now) and the rate of glassbox_connections_closed_total by "
                   "reason: idle and evicted are housekeeping; header_timeout, write_timeout, over_limit, over_rate, "
                   "head_too_large, bad_head, protocol_error and no_descriptors are clients cut for breaking a bound.",
                   [(f'sum(glassbox_connections_open{{instance=~"$instance"}})', "open"),
                    (f'sum by (reason) (rate(glassbox_connections_closed_total{{instance=~"$instance"}}{RATE}))', "closed/s: {{reason}}")],
                   "short"),
        timeseries("TLS handshakes and failures",
                   "glassbox_tls_handshakes_total by version and ALPN; glassbox_tls_handshake_failures_total by reason.",
                   [(f'sum by (version, alpn) (rate(glassbox_tls_handshakes_total{{instance=~"$instance"}}{RATE}))', "{{version}} {{alpn}}"),
                    (f'sum by (reason) (rate(glassbox_tls_handshake_failures_total{{instance=~"$instance"}}{RATE}))', "failed: {{reason}}")],
                   "ops"),
        timeseries("Process CPU and memory",
                   "process_cpu_seconds_total (rate: cores busy) and process_resident_memory_bytes, read from /proc at scrape time.",
                   [(f'rate(process_cpu_seconds_total{{job="glassbox", instance=~"$instance"}}{RATE})', "CPU cores {{instance}}"),
                    (f'process_resident_memory_bytes{{job="glassbox", instance=~"$instance"}} / 1e9', "RSS GB {{instance}}")],
                   "short"),
        timeseries("SLO burn rates",
                   "Recording rules glassbox:slo_*:ratio_rate1h and _rate6h divided by their budgets (0.1% of requests 5xx; "
                   "1% of quick requests over 250 ms). Alerts page at 14.4 (1 h) and 6 (6 h).",
                   [("glassbox:slo_availability_errors:ratio_rate1h / 0.001", "availability 1h"),
                    ("glassbox:slo_availability_errors:ratio_rate6h / 0.001", "availability 6h"),
                    ("glassbox:slo_latency_slow:ratio_rate1h / 0.01", "latency 1h"),
                    ("glassbox:slo_latency_slow:ratio_rate6h / 0.01", "latency 6h")], "none"),
        timeseries("Error budget remaining (30 days)",
                   "Recording rules glassbox:slo_availability_error_budget_remaining:ratio30d and "
                   "glassbox:slo_latency_error_budget_remaining:ratio30d: 1 minus the bad share of the last 30 days "
                   "(or as much as Prometheus holds) over the budget. 100% is untouched, 0 is spent, below 0 overspent.",
                   [("glassbox:slo_availability_error_budget_remaining:ratio30d", "availability"),
                    ("glassbox:slo_latency_error_budget_remaining:ratio30d", "latency")], "percentunit"),
    ],
    variables("instance", "route"),
)

loadtest = dashboard(
    "glassbox-loadtest",
    "glassbox · Load test",
    "The load generator's view of each route next to the server's: full client latency "
    "(loadgen HDR to the last body byte) against server latency (arrival to response head).",
    [
        timeseries("Requests/s by route: client and server",
                   f"Client: rate({CLIENT}_count) (answered requests); server: rate({SERVER}_count).",
                   [(f'sum by (http_route) (rate({CLIENT}_count{{http_route=~"$route"}}{RATE}))', "client {{http_route}}"),
                    (f'sum by (http_route) (rate({SERVER}_count{{{SEL}}}{RATE}))', "server {{http_route}}")], "reqps"),
        timeseries("p99 by route: client (raw and corrected) and server",
                   f"histogram_quantile(0.99) of {CLIENT} (client, from the send), {CORRECTED} (client, from the "
                   f"time the open model's schedule said the request was due; only with --rate) and {SERVER} "
                   "(server), same buckets. Corrected above raw is time the request spent waiting to go out: "
                   "a stall the raw latency hides.",
                   [(f'histogram_quantile(0.99, sum by (http_route, le) (rate({CLIENT}_bucket{{http_route=~"$route"}}{RATE})))', "client {{http_route}}"),
                    (f'histogram_quantile(0.99, sum by (http_route, le) (rate({CORRECTED}_bucket{{http_route=~"$route"}}{RATE})))', "corrected {{http_route}}"),
                    (f"histogram_quantile(0.99, sum by (http_route, le) (rate({SERVER}_bucket{{{SEL}}}{RATE})))", "server {{http_route}}")],
                   "s", log=True),
        timeseries("Open model: starts on schedule and late",
                   "With --rate: loadgen_target_rate (asked), the rate of loadgen_starts_total (started) and of "
                   "loadgen_late_starts_total (sent 5 ms or more after they were due, because every connection "
                   "was busy or the client could not keep up).",
                   [("sum(loadgen_target_rate)", "asked/s"),
                    (f"sum(rate(loadgen_starts_total{RATE}))", "started/s"),
                    (f"sum(rate(loadgen_late_starts_total{RATE}))", "late/s")], "ops"),
        timeseries("The gap at p50 and p99: client minus server",
                   "What the client waited beyond the server's own measure: TLS, the network, the kernel, "
                   "nginx if in between, and the client's queueing. Differences of histogram quantiles, per route.",
                   [(f'histogram_quantile({q}, sum by (http_route, le) (rate({CLIENT}_bucket{{http_route=~"$route"}}{RATE}))) '
                     f"- on (http_route) histogram_quantile({q}, sum by (http_route, le) (rate({SERVER}_bucket{{{SEL}}}{RATE})))",
                     f"p{int(q * 100)} gap {{{{http_route}}}}") for q in (0.5, 0.99)], "s"),
        timeseries("Users, requests in flight, requests without an answer",
                   "loadgen_users (goose's closed model; 0 with --rate), loadgen_requests_in_flight, and the rate of "
                   "loadgen_transport_errors_total "
                   "(refused, reset, timed out, untrusted certificate).",
                   [("sum(loadgen_users)", "users"),
                    ('sum(loadgen_requests_in_flight{http_route=~"$route"})', "in flight"),
                    (f'sum(rate(loadgen_transport_errors_total{{http_route=~"$route"}}{RATE}))', "no answer/s")], "short"),
        timeseries("Client answers/s by status code", f"rate({CLIENT}_count) by http_response_status_code.",
                   [(f'sum by (http_response_status_code) (rate({CLIENT}_count{{http_route=~"$route"}}{RATE}))', "{{http_response_status_code}}")],
                   "reqps", stack=True),
    ],
    variables("instance", "route"),
)

store_queue = dashboard(
    "glassbox-store-queue",
    "glassbox · Store and queue",
    "The message store behind /messages and the task queue behind /randomize and /sum-evens.",
    [
        timeseries("Store latency by operation",
                   "glassbox_store_operation_duration_seconds (measured around the backend call, timeouts included): p50 and p99.",
                   [(f'histogram_quantile({q}, sum by (operation, le) (rate(glassbox_store_operation_duration_seconds_bucket{{instance=~"$instance"}}{RATE})))',
                     f"p{int(q * 100)} {{{{operation}}}}") for q in (0.5, 0.99)], "s", log=True),
        timeseries("Store calls and failures",
                   "Rate of glassbox_store_operation_duration_seconds_count by operation and outcome, and of "
                   "glassbox_store_errors_total by kind (timeout, connection, backend, full).",
                   [(f'sum by (operation, outcome) (rate(glassbox_store_operation_duration_seconds_count{{instance=~"$instance"}}{RATE}))', "{{operation}} {{outcome}}"),
                    (f'sum by (kind) (rate(glassbox_store_errors_total{{instance=~"$instance"}}{RATE}))', "failed: {{kind}}")], "ops"),
        timeseries("Messages stored and commit batches",
                   "glassbox_store_messages (counted at scrape) and the p50 of glassbox_store_commit_batch_size "
                   "(messages per durable commit of the embedded store).",
                   [(f'max(glassbox_store_messages{{instance=~"$instance"}})', "messages"),
                    (f'histogram_quantile(0.5, sum by (le) (rate(glassbox_store_commit_batch_size_bucket{{instance=~"$instance"}}{RATE})))', "p50 batch")],
                   "short"),
        timeseries("Queue depth and workers",
                   "glassbox_queue_depth (tasks waiting, counted at scrape), glassbox_workers and glassbox_workers_busy.",
                   [(f'max(glassbox_queue_depth{{instance=~"$instance"}})', "waiting"),
                    ("sum(glassbox_workers)", "workers"),
                    ("sum(glassbox_workers_busy)", "busy")], "short"),
        timeseries("Task wait, execution and lead time p99 by kind",
                   "histogram_quantile(0.99) of glassbox_task_wait_seconds (queued to taken), "
                   "glassbox_task_execution_seconds (taken to done), glassbox_task_lead_seconds (request to done).",
                   [(f'histogram_quantile(0.99, sum by (kind, le) (rate(glassbox_task_{part}_seconds_bucket{{kind=~"$kind"}}{RATE})))',
                     f"{part} {{{{kind}}}}") for part in ("wait", "execution", "lead")], "s", log=True),
        timeseries("Tasks submitted and ended by kind",
                   "Rates of glassbox_tasks_submitted_total and of glassbox_task_lead_seconds_count by outcome.",
                   [(f'sum by (kind) (rate(glassbox_tasks_submitted_total{{kind=~"$kind"}}{RATE}))', "submitted {{kind}}"),
                    (f'sum by (kind, outcome) (rate(glassbox_task_lead_seconds_count{{kind=~"$kind"}}{RATE}))', "{{outcome}} {{kind}}")],
                   "ops"),
        timeseries("Tasks by state", "glassbox_tasks by state (retained until they expire).",
                   [("max by (state) (glassbox_tasks)", "{{state}}")], "short", stack=True),
        timeseries("Data directory: room and what clients hold",
                   "glassbox_disk_room_bytes (free above --min-free-disk, at scrape) and glassbox_disk_held_bytes "
                   "(uploads being stored, task payloads and results, messages, as each process counts them). "
                   "One address may hold --client-share of the room it could have; past it, 507.",
                   [(f'min(glassbox_disk_room_bytes{{instance=~"$instance"}})', "room"),
                    (f'sum(glassbox_disk_held_bytes{{instance=~"$instance"}})', "held")], "bytes"),
    ],
    variables("instance", "kind"),
)


def logs_panel(title, description, expr):
    return {
        "type": "logs",
        "title": title,
        "description": description,
        "datasource": LOKI,
        "targets": [{"refId": "A", "datasource": LOKI, "expr": expr, "queryType": "range"}],
        "options": {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True},
        "_w": 24,
    }


def loki_timeseries(title, description, expr, legend, unit):
    panel = timeseries(title, description, [], unit, stack=True)
    panel["datasource"] = LOKI
    panel["targets"] = [{"refId": "A", "datasource": LOKI, "expr": expr, "legendFormat": legend, "queryType": "range"}]
    return panel


logs = dashboard(
    "glassbox-logs",
    "glassbox · Logs",
    "glassbox's JSON log lines in Loki, shipped by Alloy: labels service and level; route, status, "
    "method and request_id as structured metadata.",
    [
        loki_timeseries("Log lines by level", "Lines per interval by the level label.",
                        'sum by (level) (count_over_time({service="glassbox"}[$__auto]))', "{{level}}", "short"),
        loki_timeseries("Requests by status", "Access lines (message request) per interval by their status.",
                        'sum by (status) (count_over_time({service="glassbox"} | status != "" [$__auto]))', "{{status}}", "short"),
        logs_panel("Slowest requests", "Access lines that took longer than 250 ms (latency_ms from the line).",
                   '{service="glassbox"} | json | message="request" | latency_ms > 250'),
        logs_panel("Recent errors", "Lines at level ERROR: 5xx answers and failures the service logged.",
                   '{service="glassbox", level="ERROR"}'),
    ],
    [],
)

for name, board in [("overview", overview), ("loadtest", loadtest), ("store-queue", store_queue), ("logs", logs)]:
    (HERE / f"{name}.json").write_text(json.dumps(board, indent=2) + "\n")
    print(f"wrote {HERE / (name + '.json')}")

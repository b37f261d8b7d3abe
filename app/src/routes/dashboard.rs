//! The built-in dashboard: the page and its assets (compiled in), the JSON it polls, and
//! `GET /logs`, the recent log lines a person can also curl. The concurrency limit never
//! sheds these ([`Policy::ADMIN`]), so the dashboard stays up while the service is overloaded.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::table::{Policy, Route};
use super::{Routes, handlers};
use crate::app::AppState;
use crate::dashboard::assets;
use crate::dashboard::timeline::Stamped;
use crate::dashboard::{Point, TableRow};
use crate::error::{ApiError, ErrorBody};
use crate::telemetry::log_ring::{Level, Query, StatusFilter};

/// Most lines one `/logs` call returns, and how many it returns unless told.
pub(crate) const MAX_LIMIT: usize = 1000;
pub(crate) const DEFAULT_LIMIT: usize = 100;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(handlers!(page), Policy::ADMIN.compressed())
        .route(handlers!(script), Policy::ADMIN.compressed())
        .route(handlers!(style), Policy::ADMIN.compressed())
        .route(handlers!(data), Policy::ADMIN.compressed())
        .route(handlers!(logs), Policy::ADMIN.compressed())
}

/// Content Security Policy of the page: everything from glassbox itself, nothing else (but
/// `--dashboard-prometheus`'s alerts, when set).
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The live dashboard page.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String)))]
async fn page(State(state): State<AppState>) -> impl IntoResponse {
    // The page may also read the alerts of the Prometheus it is told about.
    let csp = match &state.config.dashboard_prometheus {
        Some(origin) => CSP.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' {origin}"),
        ),
        None => CSP.to_owned(),
    };
    (
        [(header::CONTENT_SECURITY_POLICY, csp)],
        asset("text/html; charset=utf-8", assets::INDEX_HTML),
    )
}

/// The dashboard's script.
#[utoipa::path(get, path = "/dashboard/app.js", tag = "dashboard",
    responses((status = 200, description = "The dashboard's script", content_type = "text/javascript", body = String)))]
async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", assets::APP_JS)
}

/// The dashboard's style sheet.
#[utoipa::path(get, path = "/dashboard/app.css", tag = "dashboard",
    responses((status = 200, description = "The dashboard's style sheet", content_type = "text/css", body = String)))]
async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", assets::APP_CSS)
}

/// A compiled-in asset, revalidated on every load so a new binary's page is never stale.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// What the page polls.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DashboardData {
    /// Milliseconds between samples.
    pub interval_ms: u64,
    /// Samples kept; the page shows at most this many.
    pub capacity: usize,
    /// The newest sample's sequence number (0 before the first).
    pub last: u64,
    /// The samples after `since`, oldest first: each a [`Point`] with its `seq`.
    #[schema(value_type = Vec<Object>)]
    pub points: Vec<Stamped<Point>>,
    /// Per method and route since the service started.
    #[schema(value_type = Vec<TableRow>)]
    pub routes: Arc<Vec<TableRow>>,
    /// Every route the service serves and how it treats it (its `family` tells the page its own
    /// routes); only in the first answer, without `since`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Route>>)]
    pub route_table: Option<Vec<Route>>,
    /// Injected faults active now or ended within the window, oldest first: the page draws
    /// each as a band across its charts.
    pub faults: Vec<crate::faults::FaultView>,
    /// The demo burn-rate alert when pending or firing, evaluated in glassbox from these
    /// samples (the rule of `dashboards/prometheus/rules/demo.rules.yml`).
    pub alerts: Vec<crate::dashboard::alerts::AlertView>,
    /// `--dashboard-prometheus`: the page shows that Prometheus' alerts while it answers.
    pub prometheus: Option<String>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DataParams {
    /// Only samples after this sequence number (the `last` of the previous answer).
    #[param(minimum = 0)]
    since: Option<i64>,
}

/// The dashboard's samples after `since`, and the route table.
#[utoipa::path(get, path = "/dashboard/data", tag = "dashboard", params(DataParams),
    responses(
        (status = 200, description = "Samples and the route table", body = DashboardData),
        (status = 400, description = "A bad parameter", body = ErrorBody),
    ))]
async fn data(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<DashboardData>, ApiError> {
    let mut since = None;
    for (key, value) in pairs(query.as_deref()) {
        match key.as_str() {
            "since" => set_once(&mut since, "since", parse_u64("since", &value)?)?,
            other => return Err(unknown(other, "since")),
        }
    }
    let dashboard = &state.dashboard;
    let (points, last) = dashboard.timeline.since(since);
    Ok(Json(DashboardData {
        interval_ms: u64::try_from(dashboard.interval.as_millis()).unwrap_or(u64::MAX),
        capacity: dashboard.timeline.capacity(),
        last,
        points,
        routes: dashboard.table(),
        route_table: since.is_none().then(|| state.routes.routes().to_vec()),
        faults: state.faults.since(window_start_ms(dashboard.window())),
        alerts: dashboard
            .alerts
            .active(window_start_ms(std::time::Duration::ZERO)),
        prometheus: state.config.dashboard_prometheus.clone(),
    }))
}

/// Unix milliseconds `window` ago.
fn window_start_ms(window: std::time::Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.saturating_sub(window).as_millis()).unwrap_or(0)
}

/// Recent log lines.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogsData {
    /// Newest first.
    pub lines: Vec<LogLine>,
    /// The newest line's sequence number: pass it as `since` to get only newer lines.
    pub last: u64,
    /// Lines the service keeps in memory; older ones are only in the log file.
    pub capacity: usize,
}

/// One log line as written to the log file, with its sequence number.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogLine {
    pub seq: u64,
    #[schema(value_type = Object)]
    pub line: Box<RawValue>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct LogsParams {
    /// This level and more severe.
    #[param(inline)]
    level: Option<LevelName>,
    /// Only lines of this route template, e.g. `/work` or `unmatched`.
    #[param(min_length = 1)]
    route: Option<String>,
    /// Only lines with this status (`404`) or status class (`5xx`).
    #[param(pattern = "^([1-5][0-9]{2}|[1-5][xX]{2})$")]
    status: Option<String>,
    /// Only the lines of this request: its access line and any it logged on the way.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    request_id: Option<String>,
    /// At most this many lines, the newest (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only lines after this sequence number.
    #[param(minimum = 0)]
    since: Option<i64>,
}

/// The level names `/logs` takes.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum LevelName {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The most recent log lines (the same JSON objects as the log file), newest first, filtered
/// by level, route and status.
#[utoipa::path(get, path = "/logs", tag = "dashboard", params(LogsParams),
    responses(
        (status = 200, description = "Matching lines, newest first", body = LogsData),
        (status = 400, description = "A bad parameter", body = ErrorBody),
    ))]
async fn logs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<LogsData>, ApiError> {
    let query = logs_query(query.as_deref())?;
    let ring = &state.dashboard.logs;
    let (entries, last) = ring.query(&query);
    Ok(Json(LogsData {
        // The ring keeps lines as text; each is one JSON object the log writer wrote.
        lines: entries
            .into_iter()
            .filter_map(|e| {
                Some(LogLine {
                    seq: e.seq,
                    line: RawValue::from_string(e.line).ok()?,
                })
            })
            .collect(),
        last,
        capacity: ring.capacity(),
    }))
}

const LOGS_PARAMS: &str = "level, route, status, request_id, limit, since";

/// Parses `/logs`'s query string; every mistake is a 400 saying what was wrong.
pub(crate) fn logs_query(query: Option<&str>) -> Result<Query, ApiError> {
    let (mut level, mut route, mut status, mut limit, mut since) = (None, None, None, None, None);
    let mut request_id = None;
    for (key, value) in pairs(query) {
        match key.as_str() {
            "level" => {
                let parsed = Level::parse(&value).ok_or_else(|| {
                    bad(format!("invalid level: {value} (one of {})", Level::NAMES))
                })?;
                set_once(&mut level, "level", parsed)?;
            }
            "route" => {
                if value.is_empty() {
                    return Err(bad("invalid route: empty".to_owned()));
                }
                set_once(&mut route, "route", value)?;
            }
            "status" => {
                let parsed = StatusFilter::parse(&value).ok_or_else(|| {
                    bad(format!(
                        "invalid status: {value} (a code such as 404, or a class such as 5xx)"
                    ))
                })?;
                set_once(&mut status, "status", parsed)?;
            }
            "request_id" => {
                let sane = (1..=128).contains(&value.len())
                    && value.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                    });
                if !sane {
                    return Err(bad(format!(
                        "invalid request_id: {value} (1 to 128 letters, digits and -_.:)"
                    )));
                }
                set_once(&mut request_id, "request_id", value)?;
            }
            "limit" => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(format!("invalid limit: {value} (1 to {MAX_LIMIT})")))?;
                set_once(&mut limit, "limit", n)?;
            }
            "since" => set_once(&mut since, "since", parse_u64("since", &value)?)?,
            other => return Err(unknown(other, LOGS_PARAMS)),
        }
    }
    Ok(Query {
        level,
        route,
        status,
        request_id,
        since,
        limit: limit.unwrap_or(DEFAULT_LIMIT),
    })
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message.into())
}

fn unknown(name: &str, known: &str) -> ApiError {
    bad(format!("unknown parameter: {name} (known: {known})"))
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), ApiError> {
    if slot.replace(value).is_some() {
        return Err(bad(format!("{name} given more than once")));
    }
    Ok(())
}

/// A sequence number: 0 to the largest signed 64-bit integer, as the document says.
fn parse_u64(name: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            bad(format!(
                "invalid {name}: {value} (a sequence number, 0 or more)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(query: &str) -> String {
        match logs_query(Some(query)) {
            Err(ApiError::BadRequest(message)) => message.into_owned(),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn a_full_query_parses() {
        let q = logs_query(Some(
            "level=error&route=%2Fwork&status=5xx&limit=50&since=7",
        ))
        .unwrap();
        assert_eq!(q.level, Some(Level::Error));
        assert_eq!(q.route.as_deref(), Some("/work"));
        assert_eq!(q.status, Some(StatusFilter::Class(5)));
        assert_eq!((q.limit, q.since), (50, Some(7)));
        assert_eq!(logs_query(None).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_parameters_say_what_is_wrong() {
        assert_eq!(
            error("since=9223372036854775808"),
            "invalid since: 9223372036854775808 (a sequence number, 0 or more)"
        );
        assert_eq!(
            error("level=INFO"),
            "invalid level: INFO (one of trace, debug, info, warn, error)"
        );
        assert_eq!(
            error("level=loud"),
            "invalid level: loud (one of trace, debug, info, warn, error)"
        );
        assert_eq!(
            error("status=6xx"),
            "invalid status: 6xx (a code such as 404, or a class such as 5xx)"
        );
        assert_eq!(error("limit=0"), "invalid limit: 0 (1 to 1000)");
        assert_eq!(error("limit=1001"), "invalid limit: 1001 (1 to 1000)");
        assert_eq!(error("limit=ten"), "invalid limit: ten (1 to 1000)");
        assert_eq!(
            error("since=-1"),
            "invalid since: -1 (a sequence number, 0 or more)"
        );
        assert_eq!(error("route="), "invalid route: empty");
        assert_eq!(
            error("request_id=a%20b"),
            "invalid request_id: a b (1 to 128 letters, digits and -_.:)"
        );
        assert_eq!(
            error("request_id="),
            "invalid request_id:  (1 to 128 letters, digits and -_.:)"
        );
        assert_eq!(
            logs_query(Some("request_id=abc-1.x:y_z"))
                .unwrap()
                .request_id
                .as_deref(),
            Some("abc-1.x:y_z")
        );
        assert_eq!(error("level=info&level=warn"), "level given more than once");
        assert_eq!(
            error("colour=red"),
            "unknown parameter: colour (known: level, route, status, request_id, limit, since)"
        );
    }
}

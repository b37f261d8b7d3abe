//! The Deepgram seed's endpoints: `/`, `/sleep/{ms}`, `/code/{code}` and `POST /work`, all in
//! the `{"result":"success","data":{...}}` envelope.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{PathArgs, is_digits};
use super::table::Policy;
use super::{Routes, handlers};
use crate::app::AppState;
use crate::config::Config;
use crate::error::{ApiError, ErrorBody, Failed};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(handlers!(hello), Policy::API)
        .route(handlers!(sleep), Policy::API)
        .route(handlers!(code), Policy::API)
        .route(handlers!(work), Policy::API)
}

/// Always `"success"` in the seed's envelope, whatever the status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Success {
    Success,
}

/// The seed's envelope: `{"result":"success","data":{...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Envelope<T> {
    pub result: Success,
    pub data: T,
}

/// Wraps `data` in the success envelope.
pub(crate) fn success<T: Serialize>(data: T) -> Json<Envelope<T>> {
    Json(Envelope {
        result: Success::Success,
        data,
    })
}

/// Answers `status` with `body`, except where HTTP forbids a body (204, 205, 304).
fn with_status(status: StatusCode, body: impl IntoResponse) -> Response {
    match status.as_u16() {
        204 | 205 | 304 => status.into_response(),
        _ => (status, body).into_response(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Hello {
    /// Always "Hello, world!".
    pub message: String,
}

/// The body of `GET /`, built once: it is the benchmark's hot path.
const HELLO: &str = r#"{"result":"success","data":{"message":"Hello, world!"}}"#;

/// A static greeting.
#[utoipa::path(get, path = "/", tag = "deepgram",
    responses((status = 200, description = "The greeting", body = Envelope<Hello>)))]
async fn hello() -> Response {
    // Built as it goes out: the `(headers, &str)` form set `text/plain` first and then
    // replaced it, two header inserts and a copy-on-write string for a constant.
    let mut response = Response::new(axum::body::Body::from(HELLO));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, super::JSON);
    response
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Elapsed {
    /// Milliseconds actually slept, measured, with microsecond precision.
    pub elapsed: f64,
}

/// Sleeps `ms` milliseconds, then reports the measured time.
#[utoipa::path(get, path = "/sleep/{ms}", tag = "deepgram",
    params(("ms" = u64, Path, minimum = 0, maximum = 60000,
        description = "Milliseconds to sleep; the maximum is the service's --max-sleep")),
    responses(
        (status = 200, description = "Slept", body = Envelope<Elapsed>),
        (status = 400, description = "Over the configured maximum: `sleep too long`", body = Failed),
        (status = 404, description = "Not a number of milliseconds (digits only, as the seed)", body = ErrorBody),
    ))]
async fn sleep(
    State(state): State<AppState>,
    PathArgs(args): PathArgs,
) -> Result<Json<Envelope<Elapsed>>, ApiError> {
    let ms = args.first().map(String::as_str).unwrap_or_default();
    if !is_digits(ms) {
        return Err(ApiError::NotFound);
    }
    // Digits that overflow are still a (very) long sleep.
    let requested = ms.parse::<u64>().unwrap_or(u64::MAX);
    if u128::from(requested) > state.config.max_sleep.as_millis() {
        return Err(ApiError::Failed("sleep too long"));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(requested)).await;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    Ok(success(Elapsed {
        elapsed: (elapsed * 1000.0).round() / 1000.0,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Code {
    pub code: u16,
}

/// Answers with the status code asked for.
#[utoipa::path(get, path = "/code/{code}", tag = "deepgram",
    params(("code" = u16, Path, minimum = 200, maximum = 599, description = "The status to answer with")),
    responses(
        (status = "2XX", description = "That status", body = Envelope<Code>),
        (status = 204, description = "No Content: no body"),
        (status = 205, description = "Reset Content: no body"),
        (status = "3XX", description = "That status", body = Envelope<Code>),
        (status = 304, description = "Not Modified: no body"),
        (status = 400, description = "Not digits naming a status in 200..=599: `invalid code`", body = Failed),
        (status = "4XX", description = "That status", body = Envelope<Code>),
        (status = "5XX", description = "That status", body = Envelope<Code>),
    ))]
async fn code(PathArgs(args): PathArgs) -> Result<Response, ApiError> {
    let status = args
        .first()
        .filter(|c| is_digits(c))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (200..600).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ApiError::Failed("invalid code"))?;
    Ok(with_status(
        status,
        success(Code {
            code: status.as_u16(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkDone {
    /// Milliseconds slept, drawn uniformly from the configured range.
    pub elapsed: u64,
    /// The status this response has.
    pub code: u16,
}

/// Sleeps a random time, then answers a weighted random status. The body says success whatever
/// the status, as the seed's did.
#[utoipa::path(post, path = "/work", tag = "deepgram",
    responses(
        (status = 200, description = "Drawn with weight 0.95 by default", body = Envelope<WorkDone>),
        (status = "4XX", description = "Drawn with weight 0.04 (400) by default", body = Envelope<WorkDone>),
        (status = "5XX", description = "Drawn with weight 0.01 (500) by default", body = Envelope<WorkDone>),
        (status = 413, description = "Request body over the limit", body = ErrorBody),
    ))]
async fn work(State(state): State<AppState>) -> Response {
    let (sleep_ms, code) = state.work.draw();
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_status(
        status,
        success(WorkDone {
            elapsed: sleep_ms,
            code,
        }),
    )
}

/// The random choices of `/work`: a uniform sleep and a weighted status.
#[derive(Debug)]
pub(crate) struct WorkPlan {
    min_ms: u64,
    max_ms: u64,
    codes: Vec<u16>,
    weights: WeightedIndex<f64>,
    rng: Mutex<StdRng>,
}

impl WorkPlan {
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<Self> {
        let (codes, weights): (Vec<u16>, Vec<f64>) = config.work_weights.0.iter().copied().unzip();
        let min_ms = u64::try_from(config.work_sleep_min.as_millis())?;
        let max_ms = u64::try_from(config.work_sleep_max.as_millis())?;
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Ok(Self {
            min_ms,
            max_ms,
            codes,
            weights: WeightedIndex::new(weights)?,
            rng: Mutex::new(rng),
        })
    }

    /// A sleep in `min..max` milliseconds and a status code.
    pub(crate) fn draw(&self) -> (u64, u16) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let sleep = rng.random_range(self.min_ms..self.max_ms);
        let code = self.codes[self.weights.sample(&mut *rng)];
        (sleep, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_greeting_is_the_envelope() {
        let built = success(Hello {
            message: "Hello, world!".into(),
        })
        .0;
        assert_eq!(serde_json::to_string(&built).unwrap(), HELLO);
    }
}

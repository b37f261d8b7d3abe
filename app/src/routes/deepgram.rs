//! The Deepgram seed's endpoints: `/`, `/sleep/{ms}`, `/code/{code}` and `POST /work`, all in
//! the `{"result":"success","data":{...}}` envelope.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(hello))
        .route("/sleep/{ms}", get(sleep))
        .route("/code/{code}", get(code))
        .route("/work", post(work))
}

/// The success envelope.
pub fn success(data: Value) -> Json<Value> {
    Json(Value::Object(serde_json::Map::from_iter([
        ("result".to_owned(), Value::from("success")),
        ("data".to_owned(), data),
    ])))
}

/// Answers `status` with `body`, except where HTTP forbids a body (204, 205, 304).
fn with_status(status: StatusCode, body: Json<Value>) -> Response {
    match status.as_u16() {
        204 | 205 | 304 => status.into_response(),
        _ => (status, body).into_response(),
    }
}

/// The body of `GET /`, built once: it is the benchmark's hot path.
const HELLO: &str = r#"{"result":"success","data":{"message":"Hello, world!"}}"#;

/// `GET /`: a static greeting.
async fn hello() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], HELLO)
}

/// `GET /sleep/{ms}`: sleeps, then reports the measured time in milliseconds.
async fn sleep(
    State(state): State<AppState>,
    Path(ms): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // As in the seed, whose route only matched digits, anything else is not found.
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
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
    Ok(success(
        json!({"elapsed": (elapsed * 1000.0).round() / 1000.0}),
    ))
}

/// `GET /code/{code}`: answers with that status code.
async fn code(Path(code): Path<String>) -> Result<Response, ApiError> {
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| (200..600).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ApiError::Failed("invalid code"))?;
    Ok(with_status(
        status,
        success(json!({"code": status.as_u16()})),
    ))
}

/// `POST /work`: sleeps a random time, then answers a weighted random status. The body says
/// success whatever the status, as the seed's did.
async fn work(State(state): State<AppState>) -> Response {
    let (sleep_ms, code) = state.work.draw();
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_status(status, success(json!({"elapsed": sleep_ms, "code": code})))
}

/// The random choices of `/work`: a uniform sleep and a weighted status.
#[derive(Debug)]
pub struct WorkPlan {
    min_ms: u64,
    max_ms: u64,
    codes: Vec<u16>,
    weights: WeightedIndex<f64>,
    rng: Mutex<StdRng>,
}

impl WorkPlan {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let (codes, weights): (Vec<u16>, Vec<f64>) = config.work_weights.0.iter().copied().unzip();
        let min_ms = u64::try_from(config.work_sleep_min.as_millis())?;
        let max_ms = u64::try_from(config.work_sleep_max.as_millis())?;
        anyhow::ensure!(min_ms < max_ms, "the /work sleep range is empty");
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
    pub fn draw(&self) -> (u64, u16) {
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
        let built = success(json!({"message": "Hello, world!"})).0;
        assert_eq!(serde_json::to_string(&built).unwrap(), HELLO);
    }
}

//! The Sanic seed's math on big integers and the DLG seed's `/total`. The math answers in
//! microseconds, so it runs inline; the sum behind `/total` runs on the compute pool.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{PathArgs, is_digits};
use super::table::Policy;
use super::{Routes, handlers};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::math;

pub(crate) const MAX_FIBONACCI: u32 = 400;
pub(crate) const MAX_FACTORIAL: u32 = 400;
pub(crate) const MAX_ACKERMANN_M: u32 = 3;
pub(crate) const MAX_ACKERMANN_N: u32 = 4;
// fibonacci() works in fixed-width words and refuses larger n.
const _: () = assert!(MAX_FIBONACCI <= math::FIBONACCI_MAX_N);

pub(crate) fn routes() -> Routes {
    // The Sanic seed's routes answered with and without their trailing slash.
    let math = Policy::API.optional_slash();
    Routes::new()
        .route(handlers!(fibonacci), math)
        .route(handlers!(factorial), math)
        .route(handlers!(ackermann), math)
        .route(handlers!(total), Policy::API)
}

/// `{"response":"<decimal>"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MathAnswer {
    /// The exact value in decimal digits.
    #[schema(pattern = "^[0-9]+$")]
    pub response: String,
}

/// A whole number in `0..=max`, written in decimal digits only; anything else is refused
/// with the text as given.
fn parse_arg(raw: Option<&String>, max: u32) -> Result<u32, ApiError> {
    let raw = raw.map(String::as_str).unwrap_or_default();
    if !is_digits(raw) {
        return Err(ApiError::InvalidNumber(raw.to_owned()));
    }
    raw.parse::<u32>()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| ApiError::InvalidNumber(raw.to_owned()))
}

/// The n-th Fibonacci number (fib(0) = 0).
#[utoipa::path(get, path = "/fibonacci/{n}/", tag = "math",
    params(("n" = u32, Path, minimum = 0, maximum = 400)),
    responses(
        (status = 200, description = "fib(n)", body = MathAnswer),
        (status = 400, description = "`invalid number: <n>`: negative, not an integer, or over 400", body = ErrorBody),
    ))]
async fn fibonacci(PathArgs(args): PathArgs) -> Result<DecimalAnswer, ApiError> {
    let n = parse_arg(args.first(), MAX_FIBONACCI)?;
    Ok(answer(&math::fibonacci(n)))
}

/// n! (0! = 1).
#[utoipa::path(get, path = "/factorial/{n}/", tag = "math",
    params(("n" = u32, Path, minimum = 0, maximum = 400)),
    responses(
        (status = 200, description = "n!", body = MathAnswer),
        (status = 400, description = "`invalid number: <n>`: negative, not an integer, or over 400", body = ErrorBody),
    ))]
async fn factorial(PathArgs(args): PathArgs) -> Result<DecimalAnswer, ApiError> {
    let n = parse_arg(args.first(), MAX_FACTORIAL)?;
    Ok(answer(&math::factorial(n)))
}

/// The Ackermann function A(m, n).
#[utoipa::path(get, path = "/ackermann/{m}/{n}/", tag = "math",
    params(
        ("m" = u32, Path, minimum = 0, maximum = 3),
        ("n" = u32, Path, minimum = 0, maximum = 4),
    ),
    responses(
        (status = 200, description = "A(m, n)", body = MathAnswer),
        (status = 400, description = "`invalid number: <x>` for the first bad parameter, m before n", body = ErrorBody),
    ))]
async fn ackermann(PathArgs(args): PathArgs) -> Result<DecimalAnswer, ApiError> {
    let m = parse_arg(args.first(), MAX_ACKERMANN_M)?;
    let n = parse_arg(args.get(1), MAX_ACKERMANN_N)?;
    Ok(answer(&math::ackermann(m, n)))
}

/// A [`MathAnswer`], written straight into the body: the digits need no escaping, and the
/// serialiser's escaping scan cost more than computing a Fibonacci number.
#[derive(Debug)]
struct DecimalAnswer(Vec<u8>);

impl IntoResponse for DecimalAnswer {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, super::JSON)], self.0).into_response()
    }
}

fn answer(value: &math::Decimal) -> DecimalAnswer {
    const START: &[u8] = b"{\"response\":\"";
    const END: &[u8] = b"\"}";
    let mut body = Vec::with_capacity(START.len() + value.digits() + END.len());
    body.extend_from_slice(START);
    value.write(&mut body);
    body.extend_from_slice(END);
    DecimalAnswer(body)
}

/// `{"total":500000500000}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Total {
    pub total: u64,
}

/// The sum of the numbers the numbers API returns (0..=1,000,000 after one second, by default).
/// Concurrent calls share one fetch and one sum.
#[utoipa::path(get, path = "/total", tag = "total",
    responses(
        (status = 200, description = "The sum", body = Total),
        (status = 502, description = "No total from the numbers API: `numbers API failed: <why>`", body = ErrorBody),
        (status = 503, description = "Overloaded, retry later", body = ErrorBody),
    ))]
async fn total(State(state): State<AppState>) -> Result<Json<Total>, ApiError> {
    let total = state.totals.total().await.map_err(ApiError::Upstream)?;
    Ok(Json(Total { total }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let arg = |s: &str, max| parse_arg(Some(&s.to_owned()), max).map_err(|e| e.to_string());
        assert_eq!(arg("0", 3), Ok(0));
        assert_eq!(arg("3", 3), Ok(3));
        assert_eq!(arg("007", 400), Ok(7));
        for bad in [
            "4",
            "-1",
            "abc",
            "1e3",
            "+1",
            " 1",
            "1.0",
            "",
            "1234567890123456789012345678901234567890",
        ] {
            assert_eq!(
                arg(bad, 3),
                Err(format!("invalid number: {bad}")),
                "{bad:?}"
            );
        }
        assert!(parse_arg(None, 3).is_err());
    }

    #[test]
    fn answers_are_the_serialised_math_answer() {
        let mut values: Vec<_> = [0, 7, 125, u64::MAX].map(math::Decimal::from).into();
        values.push(math::factorial(400));
        for value in values {
            let expected = serde_json::to_vec(&MathAnswer {
                response: value.to_string(),
            })
            .unwrap();
            assert_eq!(answer(&value).0, expected);
        }
    }
}

//! The Sanic seed's big-integer endpoints and the DLG seed's slow `/total`.

use goose::prelude::*;
use rand::Rng;

use crate::request::{Call, fail, send};

/// GET /fibonacci/{n}/ for n up to the limit, 400.
pub async fn fibonacci(user: &mut GooseUser) -> TransactionResult {
    let n = rand::rng().random_range(0..=400);
    number(user, "/fibonacci/{n}/", &format!("/fibonacci/{n}/")).await
}

/// GET /factorial/{n}/ for n up to the limit, 400.
pub async fn factorial(user: &mut GooseUser) -> TransactionResult {
    let n = rand::rng().random_range(0..=400);
    number(user, "/factorial/{n}/", &format!("/factorial/{n}/")).await
}

/// GET /ackermann/{m}/{n}/ within the limits (m ≤ 3, n ≤ 4).
pub async fn ackermann(user: &mut GooseUser) -> TransactionResult {
    let (m, n) = {
        let mut rng = rand::rng();
        (rng.random_range(0..=3), rng.random_range(0..=4))
    };
    number(user, "/ackermann/{m}/{n}/", &format!("/ackermann/{m}/{n}/")).await
}

/// GET /total: the sum of the simulated numbers API, slow by design.
pub async fn total(user: &mut GooseUser) -> TransactionResult {
    let mut reply = send(user, Call::get("/total", "/total").expect(200)).await?;
    let total = reply
        .json()
        .and_then(|body| body.get("total").and_then(serde_json::Value::as_u64));
    if reply.status == Some(200) && total.is_none() {
        return fail(user, &mut reply, "no total");
    }
    Ok(())
}

async fn number(user: &mut GooseUser, route: &'static str, path: &str) -> TransactionResult {
    let mut reply = send(user, Call::get(route, path).expect(200)).await?;
    let digits = reply.field("response");
    if reply.status == Some(200)
        && !digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    {
        return fail(user, &mut reply, "the response is not a decimal number");
    }
    Ok(())
}

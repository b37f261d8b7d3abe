//! The Deepgram seed: hello, sleep, code, work, and the service's status and health.

use goose::prelude::*;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::request::{Call, fail, send};

/// Status codes `/code/{code}` is asked for: the common ones, and 204 and 304 without a body.
const CODES: &[u16] = &[
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 418, 429, 500, 502, 503,
];

/// GET / answers the greeting.
pub async fn hello(user: &mut GooseUser) -> TransactionResult {
    let mut reply = send(user, Call::get("/", "/").expect(200)).await?;
    if reply.status == Some(200) && !String::from_utf8_lossy(&reply.body).contains("Hello, world!")
    {
        return fail(user, &mut reply, "no greeting");
    }
    Ok(())
}

/// GET /sleep/{ms} for up to half a second.
pub async fn sleep(user: &mut GooseUser) -> TransactionResult {
    let ms = rand::rng().random_range(0..=500);
    send(
        user,
        Call::get("/sleep/{ms}", &format!("/sleep/{ms}")).expect(200),
    )
    .await?;
    Ok(())
}

/// GET /code/{code}: the status asked for comes back.
pub async fn code(user: &mut GooseUser) -> TransactionResult {
    let code = *CODES.choose(&mut rand::rng()).expect("CODES is not empty");
    send(
        user,
        Call::get("/code/{code}", &format!("/code/{code}")).expect(code),
    )
    .await?;
    Ok(())
}

/// POST /work: a slow request whose status is drawn by the server; the body names it.
pub async fn work(user: &mut GooseUser) -> TransactionResult {
    let mut reply = send(user, Call::post("/work", "/work")).await?;
    let Some(status) = reply.status else {
        return Ok(());
    };
    let code = reply.json().and_then(|body| {
        body.pointer("/data/code")
            .and_then(serde_json::Value::as_u64)
    });
    if code == Some(u64::from(status)) && [200, 400, 500].contains(&status) {
        // A 400 or 500 from /work is the service doing as told, not a failure.
        user.set_success(&mut reply.request)
    } else {
        fail(user, &mut reply, "the body's code is not the status")
    }
}

/// GET /status: the service's own numbers.
pub async fn status(user: &mut GooseUser) -> TransactionResult {
    send(user, Call::get("/status", "/status").expect(200)).await?;
    Ok(())
}

/// GET /health: every check passes.
pub async fn health(user: &mut GooseUser) -> TransactionResult {
    send(user, Call::get("/health", "/health").expect(200)).await?;
    Ok(())
}

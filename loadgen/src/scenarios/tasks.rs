//! The SpaceTime seed's task queue: submit, poll the status, fetch the result, for
//! `/randomize` (a PNG to shuffle) and `/sum-evens` (a file of numbers to sum).

use std::time::{Duration, Instant};

use goose::prelude::*;

use crate::context;
use crate::payloads;
use crate::request::{Call, Reply, fail, send};

/// How often a task's status is polled, and for how long before giving up.
const POLL_EVERY: Duration = Duration::from_millis(50);
const POLL_FOR: Duration = Duration::from_secs(60);

/// The routes of one task kind.
struct Kind {
    submit: &'static str,
    status: &'static str,
    result: &'static str,
}

const RANDOMIZE: Kind = Kind {
    submit: "/randomize",
    status: "/randomize/{token}/status",
    result: "/randomize/{token}/result",
};

const SUM_EVENS: Kind = Kind {
    submit: "/sum-evens",
    status: "/sum-evens/{token}/status",
    result: "/sum-evens/{token}/result",
};

/// Shuffle a PNG: submit, wait for it, fetch a PNG of the same size.
pub async fn randomize(user: &mut GooseUser) -> TransactionResult {
    let png = context::get().png.clone();
    let Some(mut result) = run(user, &RANDOMIZE, "image/png", png).await? else {
        return Ok(());
    };
    if !result.body.starts_with(b"\x89PNG\r\n\x1a\n") {
        return fail(user, &mut result, "the result is not a PNG");
    }
    Ok(())
}

/// Sum the even numbers of a small generated file and compare with the known sum.
pub async fn sum_evens(user: &mut GooseUser) -> TransactionResult {
    let (text, expected) = payloads::numbers(&mut rand::rng(), 5_000);
    let Some(mut result) = run(user, &SUM_EVENS, "text/plain", text.into_bytes()).await? else {
        return Ok(());
    };
    if result.field("sum").as_deref() != Some(expected.as_str()) {
        return fail(user, &mut result, "the sum is wrong");
    }
    Ok(())
}

/// Submits `body`, polls until the task is finished, and fetches the result; `None` when any
/// step went wrong (goose has recorded why).
async fn run(
    user: &mut GooseUser,
    kind: &Kind,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<Option<Reply>, Box<TransactionError>> {
    let mut submitted = send(
        user,
        Call::post(kind.submit, kind.submit)
            .body(content_type, body)
            .expect(201),
    )
    .await?;
    if submitted.status != Some(201) {
        return Ok(None);
    }
    let Some(token) = submitted.field("token") else {
        fail(user, &mut submitted, "no token")?;
        return Ok(None);
    };
    let status_path = format!("{}/{token}/status", kind.submit);
    let deadline = Instant::now() + POLL_FOR;
    loop {
        let mut status = send(user, Call::get(kind.status, &status_path).expect(200)).await?;
        match status.field("status").as_deref() {
            Some("finished") => break,
            Some("requested" | "received") if Instant::now() < deadline => {
                tokio::time::sleep(POLL_EVERY).await;
            }
            Some("requested" | "received") => {
                fail(user, &mut status, "the task did not finish in time")?;
                return Ok(None);
            }
            _ if status.status.is_none() => return Ok(None),
            _ => {
                fail(user, &mut status, "the task errored")?;
                return Ok(None);
            }
        }
    }
    let result_path = format!("{}/{token}/result", kind.submit);
    let result = send(user, Call::get(kind.result, &result_path).expect(200)).await?;
    Ok((result.status == Some(200)).then_some(result))
}

//! Sending one request through goose and recording it: goose keeps its metrics and reports,
//! the [`Recorder`](crate::recorder::Recorder) gets the full latency and the status.

use std::time::Instant;

use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use reqwest::Method;
use serde_json::Value;

use crate::recorder::RouteKey;
use crate::{context, open};

/// One request: method, the route template glassbox labels it with, the concrete path, and
/// what a correct service answers.
#[derive(Debug)]
pub struct Call<'a> {
    method: Method,
    route: &'static str,
    path: &'a str,
    expect: Option<u16>,
    body: Option<(&'static str, Vec<u8>)>,
}

impl<'a> Call<'a> {
    pub fn get(route: &'static str, path: &'a str) -> Self {
        Self::new(Method::GET, route, path)
    }

    pub fn post(route: &'static str, path: &'a str) -> Self {
        Self::new(Method::POST, route, path)
    }

    pub fn new(method: Method, route: &'static str, path: &'a str) -> Self {
        Self {
            method,
            route,
            path,
            expect: None,
            body: None,
        }
    }

    /// The status a correct service answers; any other is a goose failure. Without it, goose
    /// counts non-2xx answers as failures.
    pub fn expect(mut self, status: u16) -> Self {
        self.expect = Some(status);
        self
    }

    pub fn body(mut self, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type, body.into()));
        self
    }
}

/// The answer, or its absence.
#[derive(Debug)]
pub struct Reply {
    /// `None` when no response came (goose has recorded the failure).
    pub status: Option<u16>,
    pub body: Vec<u8>,
    pub request: GooseRequestMetric,
}

impl Reply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The string field `key` of a JSON body.
    pub fn field(&self, key: &str) -> Option<String> {
        self.json()?.get(key)?.as_str().map(str::to_owned)
    }
}

fn goose_method(method: &Method) -> GooseMethod {
    match *method {
        Method::POST => GooseMethod::Post,
        Method::PUT => GooseMethod::Put,
        Method::DELETE => GooseMethod::Delete,
        Method::PATCH => GooseMethod::Patch,
        Method::HEAD => GooseMethod::Head,
        _ => GooseMethod::Get,
    }
}

/// Sends `call` as `user`, reads the whole body, and records it.
pub async fn send(user: &mut GooseUser, call: Call<'_>) -> Result<Reply, Box<TransactionError>> {
    let method = goose_method(&call.method);
    let mut builder = user.get_request_builder(&method, call.path)?;
    if let Some((content_type, body)) = call.body {
        builder = builder
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
    }
    let mut request = GooseRequest::builder()
        .method(method)
        .path(call.path)
        .name(call.route)
        .set_request_builder(builder);
    if let Some(status) = call.expect {
        request = request.expect_status_code(status);
    }
    let recorder = &context::get().recorder;
    let key = RouteKey::new(call.method.as_str(), call.route);
    // The open model's due time for a transaction's first request; a follow-up is due when
    // it is sent.
    let due = open::take_due().map(|due| due.unwrap_or_else(Instant::now));
    let in_flight = recorder.start(&key);
    let goose = user.request(request.build()).await?;
    let ttfb = goose.request.response_time_micros();
    let mut request = goose.request;
    let reply = match goose.response {
        Ok(response) => {
            let status = response.status().as_u16();
            let body_started = Instant::now();
            let body = response.bytes().await;
            let micros = ttfb + body_started.elapsed().as_micros() as u64;
            let corrected = due.map(|due| (due.elapsed().as_micros() as u64).max(micros));
            recorder.record(&key, Some(status), micros, corrected);
            match body {
                Ok(body) => Reply {
                    status: Some(status),
                    body: body.to_vec(),
                    request,
                },
                Err(err) => {
                    let _ = user.set_failure(
                        &format!("reading the body: {err}"),
                        &mut request,
                        None,
                        None,
                    );
                    Reply {
                        status: Some(status),
                        body: Vec::new(),
                        request,
                    }
                }
            }
        }
        Err(_) => {
            recorder.record(&key, None, ttfb, None);
            Reply {
                status: None,
                body: Vec::new(),
                request,
            }
        }
    };
    drop(in_flight);
    Ok(reply)
}

/// Marks `reply` failed for `why` (a wrong body, say), with the body in goose's error log.
pub fn fail(user: &mut GooseUser, reply: &mut Reply, why: &str) -> TransactionResult {
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    user.set_failure(why, &mut reply.request, None, Some(&body))
}

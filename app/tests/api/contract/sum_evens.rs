//! `/sum-evens` end to end: exact sums checked against an independent computation, bad tokens
//! with their offsets, uploads refused or cut off leaving nothing, fairness between clients.

use std::time::Duration;

use num_bigint::BigInt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use testkit::client::{answer, tls_client_config};
use testkit::{Endpoint, InProcess, eventually};

pub const MIB: usize = 1 << 20;

/// The plain computation: split on separators, parse each token as a big integer.
fn expected(text: &[u8]) -> Value {
    let mut sum = BigInt::default();
    let (mut numbers, mut evens) = (0u64, 0u64);
    for token in text.split(|b| b" \t\n\x0b\x0c\r,".contains(b)) {
        if token.is_empty() {
            continue;
        }
        let token = std::str::from_utf8(token).unwrap();
        let value: BigInt = token.trim_start_matches('+').parse().unwrap();
        numbers += 1;
        if &value % 2 == BigInt::default() {
            evens += 1;
            sum += value;
        }
    }
    json!({"sum": sum.to_string(), "numbers": numbers, "evens": evens, "bytes": text.len()})
}

/// Random numbers with random signs and lengths (some of 40 digits), mixed separators, and a
/// number straddling every MiB boundary (the read blocks, and the 8 MiB chunks among them).
pub fn generated(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(bytes + 64);
    out.extend_from_slice(b"\r\n, ");
    while out.len() < bytes {
        let to_boundary = MIB - out.len() % MIB;
        let digits = if to_boundary <= 30 {
            40
        } else if rng.random_bool(0.02) {
            rng.random_range(20..=45)
        } else {
            rng.random_range(1..=19)
        };
        match rng.random_range(0..10) {
            0..=2 => out.push(b'-'),
            3 => out.push(b'+'),
            _ => {}
        }
        for _ in 0..digits {
            out.push(b'0' + rng.random_range(0..10u8));
        }
        let separator: &[u8] = match rng.random_range(0..6) {
            0 => b"\r\n",
            1 => b",",
            2 => b", ",
            3 => b"\t",
            4 => b" ",
            _ => b"\n",
        };
        out.extend_from_slice(separator);
    }
    out.extend_from_slice(b"1234"); // no final separator
    for boundary in (MIB..out.len()).step_by(MIB) {
        assert!(
            out[boundary - 1].is_ascii_digit() && out[boundary].is_ascii_digit(),
            "a number straddles byte {boundary}"
        );
    }
    out
}

pub struct Api<'a>(pub &'a Endpoint);

impl Api<'_> {
    async fn submit_as(&self, client: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = self.0.client.post(self.0.url("/sum-evens"));
        answer(
            request
                .header(CONTENT_TYPE, "text/plain")
                .header("x-client-id", client)
                .body(body),
        )
        .await
    }

    pub async fn token(&self, body: Vec<u8>) -> String {
        self.token_as("tests", body).await
    }

    async fn token_as(&self, client: &str, body: Vec<u8>) -> String {
        let (status, body) = self.submit_as(client, body).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn status(&self, token: &str) -> Value {
        let (code, body) = self.0.get_json(&format!("/sum-evens/{token}/status")).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    pub async fn done(&self, token: &str) -> Value {
        eventually("the sum to end", || async {
            matches!(
                self.status(token).await["status"].as_str(),
                Some("finished" | "errored")
            )
        })
        .await;
        self.status(token).await
    }

    pub async fn result(&self, token: &str) -> (u16, Value) {
        self.0.get_json(&format!("/sum-evens/{token}/result")).await
    }

    /// The whole round: upload, wait, compare with the independent computation.
    pub async fn check(&self, text: Vec<u8>) {
        let want = expected(&text);
        let total = text.len();
        let token = self.token(text).await;
        let status = self.done(&token).await;
        assert_eq!(status["status"], "finished", "{status}");
        assert_eq!(
            (
                status["bytes_done"].as_u64(),
                status["bytes_total"].as_u64()
            ),
            (Some(total as u64), Some(total as u64))
        );
        assert_eq!(self.result(&token).await, (200, want));
    }

    pub async fn errors_at(&self, text: &[u8], offset: u64) {
        let token = self.token(text.to_vec()).await;
        let status = self.done(&token).await;
        assert_eq!(status["status"], "errored", "{status}");
        let error = status["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("bad token at byte {offset}:")),
            "{error} for {text:?}"
        );
        assert_eq!(self.result(&token).await.0, 404);
    }
}

fn payload_files(app: &InProcess) -> Vec<String> {
    std::fs::read_dir(app.data_dir().join("tasks/payloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn sums_are_exact_and_bad_tokens_are_located() {
    let app = InProcess::start(&[]).await;
    let api = Api(&app);
    for text in [
        &b""[..],
        b" \r\n,,\t ",
        b"2 4 6",
        b"1,2\r\n3,4\r\n",
        b"-2 +4 -0 +0 00 7",
        b"\n\n1234567890123456789012345678901234567890\n-9999999999999999999999999999999999999998,",
    ] {
        api.check(text.to_vec()).await;
    }
    api.check(generated(17 * MIB + 4321, 1)).await;

    for (text, offset) in [
        (&b"2 4 12a 6"[..], 4),
        (b"1\n--3", 2),
        (b"8, + 2", 3),
        (b"2 4\x006", 2),
        (b"10 20 \x00", 6),
    ] {
        api.errors_at(text, offset).await;
    }
    // A bad token past the first chunks is found where it is, and only the first one counts.
    let mut big = generated(9 * MIB, 2);
    let at = big.len();
    big.extend_from_slice(b" 12a 3.5 x");
    api.errors_at(&big, at as u64 + 1).await;

    let (status, body) = api
        .0
        .get_json("/sum-evens/0123456789abcdef0123456789abcdef/status")
        .await;
    assert_eq!((status, body), (404, json!({"error": "unknown token"})));
    let (status, body) = api.result("0123456789abcdef0123456789abcdef").await;
    assert_eq!((status, body), (404, json!({"message": "not found"})));

    // A worker measures a task just after recording its end.
    eventually("every task to be measured", || async {
        app.metrics()
            .await
            .lines()
            .filter(|l| {
                l.starts_with("glassbox_task_lead_seconds_count{") && l.contains("sum-evens")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
            == 13.0
    })
    .await;
    let metrics = app.metrics().await;
    let count = |outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("glassbox_task_lead_seconds_count{")
                    && l.contains(r#"kind="sum-evens""#)
                    && l.contains(&format!(r#"outcome="{outcome}""#))
            })
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
    };
    assert_eq!(count("finished"), Some(7.0));
    assert_eq!(count("errored"), Some(6.0));
    assert!(
        payload_files(&app).is_empty(),
        "payloads go once their task ends"
    );
}

#[tokio::test]
async fn refused_and_broken_uploads_leave_nothing() {
    let app = InProcess::start(&["--max-upload-bytes", "1000"]).await;
    let api = Api(&app);
    let response = app
        .client
        .post(app.url("/sum-evens"))
        .header(CONTENT_TYPE, "application/json")
        .body("1 2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "Content-Type must be text/plain"})
    );
    // Over the limit, declared and streamed.
    let (status, body) = api.submit_as("a", vec![b'2'; 2000]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "request body too large", "limit_bytes": 1000})
        )
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(b"2 ".repeat(300))).collect();
    let response = app
        .client
        .post(app.url("/sum-evens"))
        .header(CONTENT_TYPE, "text/plain")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // A client that promises 1000 bytes, sends 100 and hangs up.
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_client_config(&app.ca)));
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let head = "POST /sum-evens HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&b"2 ".repeat(50)).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tls.shutdown().await;
    drop(tls);

    // Four requests to /sum-evens so far; the fourth ends when the service sees the hang-up.
    eventually("the cut-off upload to be over", || async {
        app.status().await["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["route"] == "/sum-evens")
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
            == 4
    })
    .await;
    assert!(payload_files(&app).is_empty(), "{:?}", payload_files(&app));
    let queue = app.status().await["queue"]["counts"].clone();
    assert_eq!(
        queue,
        json!({"depth":0,"requested":0,"received":0,"finished":0,"errored":0}),
        "no task"
    );
}

#[tokio::test]
async fn a_small_job_does_not_wait_behind_another_clients_big_one() {
    // Summed from their payload files when a worker takes them (as after a restart), so the
    // big job is a backlog of chunks when the small one comes; an upload summed while it
    // arrives goes through the same turns (the scheduler's unit tests).
    let app = InProcess::start(&[
        "--workers",
        "2",
        "--compute-threads",
        "2",
        "--sum-while-receiving",
        "false",
    ])
    .await;
    let api = Api(&app);
    let big_text = b"2 4 6 8 10 12 14 16\n".repeat(160 * MIB / 20);
    let small_text = generated(MIB, 3);
    let big_chunks = (big_text.len() as u64).div_ceil(8 * MIB as u64);
    let bytes = (big_text.len() + small_text.len()) as u64;
    let big = api.token_as("big-client", big_text).await;
    eventually("the big job to be under way", || async {
        api.status(&big).await["bytes_done"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let before = api.status(&big).await["bytes_done"].as_u64().unwrap();
    let small = api.token_as("small-client", small_text.clone()).await;
    assert_eq!(api.done(&small).await["status"], "finished");
    let after = api.status(&big).await;
    let during = after["bytes_done"].as_u64().unwrap() - before;
    // Round robin: while the small job's one chunk waited and ran, the big job could take its
    // turns, the chunks already running, and what its last progress report had not yet said.
    let bound = 6 * 8 * MIB as u64;
    assert!(
        during <= bound && after["status"] != "finished",
        "the big job went on {during} bytes ({} of {big_chunks} chunks) while the small one ran",
        during / (8 * MIB as u64)
    );
    assert_eq!(api.result(&small).await, (200, expected(&small_text)));
    assert_eq!(api.done(&big).await["status"], "finished");
    assert_eq!(
        summed(&app, "receiving").await,
        0,
        "nothing summed on arrival"
    );
    assert_eq!(
        summed(&app, "received").await,
        bytes,
        "every byte summed from the files"
    );
}

/// `glassbox_sum_evens_summed_bytes_total{phase}`.
async fn summed(app: &Endpoint, phase: &str) -> u64 {
    let series = format!("glassbox_sum_evens_summed_bytes_total{{phase=\"{phase}\"}}");
    testkit::exposition::sample(&app.metrics().await, &series).unwrap_or(0.0) as u64
}

/// The upload is still open when its first chunks are summed; the rest is summed as it lands
/// and the result is exact.
#[tokio::test]
async fn an_upload_is_summed_while_it_arrives() {
    let app = InProcess::start(&["--workers", "2", "--compute-threads", "2"]).await;
    let api = Api(&app);
    // Generating is slow unoptimised: a 4 MiB piece, nine times.
    let text = generated(4 * MIB, 11).repeat(9);
    let (first, rest) = text.split_at(32 * MIB);
    let (pieces, arriving) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body = futures_util::stream::unfold(arriving, |mut arriving| async move {
        let piece = arriving.recv().await?;
        Some((Ok::<_, std::io::Error>(piece), arriving))
    });
    let upload = tokio::spawn(answer(
        app.client
            .post(app.url("/sum-evens"))
            .header(CONTENT_TYPE, "text/plain")
            .body(reqwest::Body::wrap_stream(body)),
    ));
    for piece in first.chunks(MIB) {
        pieces.send(piece.to_vec()).await.unwrap();
    }
    // 32 MiB handed to the client (a few may still wait in its channel and buffers): well past
    // the separators after the first two chunks' ends.
    eventually("two chunks summed while the upload is open", || async {
        summed(&app, "receiving").await >= 16 * MIB as u64
    })
    .await;
    assert!(!upload.is_finished(), "the upload is still open");
    for piece in rest.chunks(MIB) {
        pieces.send(piece.to_vec()).await.unwrap();
    }
    drop(pieces);
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let done = api.done(token).await;
    assert_eq!(done["status"], "finished", "{done}");
    assert_eq!(done["bytes_done"], done["bytes_total"], "{done}");
    assert_eq!(api.result(token).await, (200, expected(&text)));
    let (receiving, received) = (
        summed(&app, "receiving").await,
        summed(&app, "received").await,
    );
    assert_eq!(
        receiving + received,
        text.len() as u64,
        "every byte summed once, while it arrived or after"
    );
}

//! The task queue and `/randomize` against the embedded queue and its in-process workers; the
//! same round trip and refusals run against Redis with `glassbox worker` processes in
//! [`crate::e2e`].

use std::path::Path;

use png::{BitDepth, ColorType};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use testkit::client::answer;
use testkit::{Endpoint, InProcess, eventually};

/// A 16-bit RGB image whose every pixel is distinct: (x, y, 7).
pub fn distinct_png(width: u32, height: u32) -> (Vec<u8>, Vec<u8>) {
    let mut raw = Vec::new();
    for y in 0..height {
        for x in 0..width {
            for v in [x as u16, y as u16, 7] {
                raw.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(ColorType::Rgb);
    encoder.set_depth(BitDepth::Sixteen);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&raw).unwrap();
    writer.finish().unwrap();
    (png, raw)
}

fn decode(png: &[u8]) -> (png::OutputInfo, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

/// The CRC-32 PNG chunks carry (polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid little PNG whose header claims `width` × `height`: a decompression bomb's header.
fn bomb(width: u32, height: u32) -> Vec<u8> {
    let (mut png, _) = distinct_png(1, 1);
    // The IHDR chunk's data starts after the 8-byte signature, length and type.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// Where requests go: the service's URL and client.
pub struct Api<'a>(pub &'a Endpoint);

impl Api<'_> {
    pub async fn submit(&self, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let request = self.0.client.post(self.0.url("/randomize"));
        answer(request.header(CONTENT_TYPE, content_type).body(body)).await
    }

    pub async fn token(&self, png: &[u8]) -> String {
        let (status, body) = self.submit("image/png", png.to_vec()).await;
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().unwrap().to_owned();
        assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()));
        token
    }

    pub async fn status(&self, token: &str) -> (u16, Value) {
        self.0.get_json(&format!("/randomize/{token}/status")).await
    }

    pub async fn state(&self, token: &str) -> String {
        let (code, body) = self.status(token).await;
        assert_eq!(code, 200, "{body}");
        body["status"].as_str().unwrap().to_owned()
    }

    pub async fn wait_until_done(&self, token: &str) -> String {
        eventually("the task to end", || async {
            let state = self.state(token).await;
            state == "finished" || state == "errored"
        })
        .await;
        self.state(token).await
    }

    pub async fn result(&self, token: &str) -> reqwest::Response {
        self.0.get(&format!("/randomize/{token}/result")).await
    }
}

/// The result has the input's size and colour type, exactly its pixels, and its edges.
pub fn assert_randomized(input: &[u8], width: usize, height: usize, output: &[u8]) {
    let (info, pixels) = decode(output);
    assert_eq!((info.width as usize, info.height as usize), (width, height));
    assert_eq!(
        (info.color_type, info.bit_depth),
        (ColorType::Rgb, BitDepth::Sixteen)
    );
    let px =
        |buf: &[u8], x: usize, y: usize| buf[(y * width + x) * 6..(y * width + x) * 6 + 6].to_vec();
    let (whole_x, whole_y) = (width / 60 * 60, height / 60 * 60);
    let mut moved = false;
    for y in 0..height {
        for x in 0..width {
            if x >= whole_x || y >= whole_y {
                assert_eq!(px(&pixels, x, y), px(input, x, y), "edge pixel ({x},{y})");
            } else {
                moved |= px(&pixels, x, y) != px(input, x, y);
            }
        }
    }
    assert!(moved, "some tile moved");
    let mut a: Vec<_> = input.chunks(6).collect();
    let mut b: Vec<_> = pixels.chunks(6).collect();
    a.sort();
    b.sort();
    assert!(a == b, "the same multiset of pixels");
}

/// The full round trip with a fixed seed: shuffled, lossless, reproducible.
pub async fn round_trip(api: &Api<'_>) {
    let (png, raw) = distinct_png(250, 190);
    let token = api.token(&png).await;
    assert_eq!(api.wait_until_done(&token).await, "finished");
    let response = api.result(&token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "image/png");
    let first = response.bytes().await.unwrap();
    assert_randomized(&raw, 250, 190, &first);
    let again = api.token(&png).await;
    assert_eq!(api.wait_until_done(&again).await, "finished");
    let second = api.result(&again).await.bytes().await.unwrap();
    assert_eq!(
        decode(&first).1,
        decode(&second).1,
        "a fixed seed gives the same tile order"
    );
}

/// Every malformed upload is refused before it is queued; unknown tokens are 404s.
pub async fn refusals(api: &Api<'_>) {
    let (png, _) = distinct_png(70, 70);
    let (status, body) = api.submit("text/plain", png.clone()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "Content-Type must be image/png"})
        )
    );
    let (status, body) = api.submit("image/png", Vec::new()).await;
    assert_eq!(status, 400, "zero bytes: {body}");
    let (status, body) = api.submit("image/png", b"GIF89a not a png".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("not a valid PNG"),
        "{body}"
    );
    let (status, body) = api.submit("image/png", bomb(100_000, 100_000)).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("10000000000 pixels"),
        "{body}"
    );

    for token in ["0123456789abcdef0123456789abcdef", "nope", "%00"] {
        let (code, body) = api.status(token).await;
        assert_eq!(
            (code, body),
            (404, json!({"error": "unknown token"})),
            "{token}"
        );
        let response = api.result(token).await;
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"message": "not found"})
        );
    }
    let response = api.0.get("/randomize").await;
    assert_eq!(response.status(), 405);

    // A damaged file past its header is accepted, then errors with a reason.
    let truncated = png[..png.len() - 30].to_vec();
    let token = api.token(&truncated).await;
    assert_eq!(api.wait_until_done(&token).await, "errored");
    let (_, body) = api.status(&token).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("not a valid PNG"),
        "{body}"
    );
    assert_eq!(api.result(&token).await.status(), 404);
}

#[tokio::test]
async fn randomize_on_the_embedded_queue() {
    let app = InProcess::start(&["--seed", "7", "--workers", "2"]).await;
    let api = Api(&app);
    round_trip(&api).await;
    refusals(&api).await;

    // Three tasks ended: two finished, one errored. Every count agrees (a worker measures a
    // task just after recording its end).
    eventually("every task to be measured", || async {
        app.scrape()
            .await
            .sum("glassbox_task_lead_seconds_count", &[])
            == 3.0
    })
    .await;
    let metrics = app.scrape().await;
    assert_eq!(
        metrics.sum("glassbox_tasks_submitted_total", &[("kind", "randomize")]),
        3.0
    );
    for (outcome, n) in [("finished", 2.0), ("errored", 1.0)] {
        for family in ["wait", "execution", "lead"] {
            let name = format!("glassbox_task_{family}_seconds_count");
            assert_eq!(
                metrics.sum(&name, &[("outcome", outcome)]),
                n,
                "{family} {outcome}"
            );
        }
    }
    assert_eq!(metrics.sum("glassbox_tasks", &[("state", "finished")]), 2.0);
    assert_eq!(metrics.sum("glassbox_tasks", &[("state", "errored")]), 1.0);
    assert_eq!(metrics.sum("glassbox_queue_depth", &[]), 0.0);
    assert_eq!(metrics.sum("glassbox_workers", &[]), 2.0);
    assert_eq!(metrics.sum("glassbox_workers_busy", &[]), 0.0);

    let status = app.status().await;
    let queue = &status["queue"];
    assert_eq!(queue["backend"], "embedded");
    assert_eq!(queue["workers"], 2);
    assert_eq!(
        queue["counts"],
        json!({"depth":0,"requested":0,"received":0,"finished":2,"errored":1})
    );
    let kind = &queue["kinds"][0];
    assert_eq!(
        (
            kind["kind"].as_str(),
            kind["finished"].as_u64(),
            kind["errored"].as_u64()
        ),
        (Some("randomize"), Some(2), Some(1))
    );
    assert!(
        kind["lead_ms"]["max"].as_u64().unwrap() >= kind["execution_ms"]["max"].as_u64().unwrap()
    );
    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["data"]["checks"]["queue"]["status"], "pass");
}

#[tokio::test]
async fn states_move_in_order_and_a_full_queue_refuses() {
    let app = InProcess::start(&[
        "--workers",
        "1",
        "--queue-capacity",
        "1",
        "--randomize-delay",
        "1500ms",
    ])
    .await;
    let api = Api(&app);
    let (png, _) = distinct_png(120, 120);
    let first = api.token(&png).await;
    eventually("the worker to take the first task", || async {
        api.state(&first).await == "received"
    })
    .await;
    assert_eq!(api.result(&first).await.status(), 404, "not finished yet");
    let second = api.token(&png).await;
    assert_eq!(api.state(&second).await, "requested");
    let response = app
        .client
        .post(app.url("/randomize"))
        .header(CONTENT_TYPE, "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "the queue holds one task");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(app.status().await["queue"]["counts"]["depth"], 1);
    let metrics = app.scrape().await;
    assert_eq!(metrics.sum("glassbox_workers_busy", &[]), 1.0);
    assert_eq!(metrics.sum("glassbox_queue_depth", &[]), 1.0);
    assert_eq!(
        metrics.sum("glassbox_tasks", &[("state", "requested")]),
        1.0
    );
    assert_eq!(metrics.sum("glassbox_tasks", &[("state", "received")]), 1.0);
    assert_eq!(api.wait_until_done(&first).await, "finished");
    assert_eq!(api.wait_until_done(&second).await, "finished");
    assert_eq!(api.result(&second).await.status(), 200);
}

/// The flags [`queue_places`] expects: four places, two for each address, and the test's own
/// address trusted to name the client in `X-Forwarded-For`.
pub const PLACES: [&str; 6] = [
    "--queue-capacity",
    "4",
    "--client-share",
    "0.5",
    "--trusted-proxies",
    "127.0.0.1",
];

/// With [`PLACES`] and nothing taken from the queue meanwhile: an address holds two of the four
/// places whatever ids it sends, its third task gets 503 (a `/sum-evens` upload before its
/// bytes are read) while other addresses are still served, and the fifth task in all gets 503.
pub async fn queue_places(app: &Endpoint) {
    let (png, _) = distinct_png(60, 60);
    let submit = |address: &str, id: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/randomize"))
            .header(CONTENT_TYPE, "image/png")
            .header("x-forwarded-for", address)
            .body(png.clone());
        if let Some(id) = id {
            request = request.header("x-client-id", id);
        }
        request.send()
    };
    let refused = |response: reqwest::Response, why: &str| {
        let why = why.to_owned();
        async move {
            assert_eq!(response.status(), 503, "{why}");
            assert_eq!(response.headers()["retry-after"], "1", "{why}");
            assert_eq!(
                response.json::<Value>().await.unwrap(),
                json!({"error": "overloaded, retry later"}),
                "{why}"
            );
        }
    };
    for id in ["a", "b"] {
        let response = submit("192.0.2.1", Some(id)).await.unwrap();
        assert_eq!(response.status(), 201, "192.0.2.1 id {id}");
    }
    for id in [Some("c"), None] {
        let response = submit("192.0.2.1", id).await.unwrap();
        refused(response, &format!("a third task of 192.0.2.1 (id {id:?})")).await;
    }
    // Refused before it is stored: its bytes are read and dropped, so the client sees the 503.
    let upload = app
        .client
        .post(app.url("/sum-evens"))
        .header(CONTENT_TYPE, "text/plain")
        .header("x-forwarded-for", "192.0.2.1")
        .body("2 4 6\n".repeat(1 << 20))
        .send()
        .await
        .unwrap();
    refused(upload, "an upload from 192.0.2.1").await;
    for address in ["192.0.2.2", "192.0.2.3"] {
        let response = submit(address, None).await.unwrap();
        assert_eq!(response.status(), 201, "{address}");
    }
    let response = submit("192.0.2.4", None).await.unwrap();
    refused(response, "the fifth task in all").await;
    let metrics = app.scrape().await;
    let overloads = |route: &str, bound: &str| {
        metrics.sum(
            "glassbox_overloads_total",
            &[("route", route), ("bound", bound)],
        )
    };
    assert_eq!(overloads("/randomize", "client_queue"), 2.0);
    assert_eq!(overloads("/sum-evens", "client_queue"), 1.0);
    assert_eq!(overloads("/randomize", "queue"), 1.0);
    let queue = &app.status().await["queue"];
    assert_eq!(
        (
            &queue["counts"]["depth"],
            &queue["capacity"],
            &queue["client_places"]
        ),
        (&json!(4), &json!(4), &json!(2))
    );
}

#[tokio::test]
async fn an_address_holds_its_share_of_the_queue() {
    let mut flags = vec!["--workers", "1", "--randomize-delay", "60s"];
    flags.extend(PLACES);
    let app = InProcess::start(&flags).await;
    // The one worker is busy with a task whose place is free again.
    let api = Api(&app);
    let (png, _) = distinct_png(60, 60);
    let running = api.token(&png).await;
    eventually("the worker to take the first task", || async {
        api.state(&running).await == "received"
    })
    .await;
    queue_places(&app).await;

    // curl sending a large upload with `Expect: 100-continue` (as `-T` does over HTTP/1.1) gets
    // the 503 without sending a byte of it; over HTTP/2 (no `Expect`) it gets the 503 after
    // its body is read and dropped. 12 MiB: within --max-image-bytes, and no PNG (were it read,
    // /randomize would answer 400).
    let dir = tempfile::tempdir().unwrap();
    let numbers = dir.path().join("numbers.txt");
    std::fs::write(&numbers, "2 4 6\n".repeat(2 << 20)).unwrap();
    for (path, content_type, http, sent) in [
        ("/sum-evens", "text/plain", "--http1.1", "0"),
        ("/sum-evens", "text/plain", "--http2", "12582912"),
        ("/randomize", "image/png", "--http1.1", "0"),
        ("/randomize", "image/png", "--http2", "12582912"),
    ] {
        let output = tokio::process::Command::new("curl")
            .args(["--silent", "--output", "/dev/null", http, "--cacert"])
            .arg(&app.ca)
            .args(["--max-time", "30", "-X", "POST", "-H"])
            .arg(format!("Content-Type: {content_type}"))
            .arg("--upload-file")
            .arg(&numbers)
            .args(["--write-out", "%{http_code} %{size_upload}"])
            .arg(app.url(path))
            .output()
            .await
            .expect("curl runs");
        assert!(output.status.success(), "curl {http} {path}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("503 {sent}"),
            "curl {http} {path}: status and bytes sent"
        );
    }
}

/// On the embedded queue a task's payload counts in its client's share of the disk until the
/// task has run and the payload is gone, and its result until it expires (with Redis the files
/// are other processes' to remove, and only uploads being stored count).
#[tokio::test]
async fn a_task_s_payload_and_result_are_held_in_its_client_s_share_of_the_disk() {
    let app = InProcess::start(&["--workers", "1", "--randomize-delay", "1s"]).await;
    let held = || async {
        app.status().await["limits"]["disk_held_bytes"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(held().await, 0);
    let api = Api(&app);
    let (png, _) = distinct_png(60, 60);
    let token = api.token(&png).await;
    assert_eq!(
        held().await,
        png.len() as u64,
        "held while it waits or runs"
    );
    assert_eq!(api.wait_until_done(&token).await, "finished");
    let result = app
        .client
        .get(app.url(&format!("/randomize/{token}/result")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    eventually("the payload's hold to go, the result's to stay", || async {
        held().await == result.len() as u64
    })
    .await;
}

#[tokio::test]
async fn waiting_tasks_are_taken_round_robin_between_clients() {
    let app = InProcess::start(&["--workers", "1", "--randomize-delay", "400ms"]).await;
    let (png, _) = distinct_png(60, 60);
    let submit = |client: &'static str| {
        let request = app
            .client
            .post(app.url("/randomize"))
            .header(CONTENT_TYPE, "image/png")
            .header("x-client-id", client)
            .body(png.clone());
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let api = Api(&app);
    let busy = submit("busy").await;
    eventually("the worker to take the first task", || async {
        api.state(&busy).await == "received"
    })
    .await;
    let (second, third) = (submit("busy").await, submit("busy").await);
    let other = submit("other").await;
    assert_eq!(api.wait_until_done(&other).await, "finished");
    assert_eq!(
        api.state(&second).await,
        "finished",
        "busy's second went first"
    );
    assert_ne!(
        api.state(&third).await,
        "finished",
        "other's one task did not wait for it"
    );
    assert_eq!(api.wait_until_done(&third).await, "finished");
}

/// Ended tasks are forgotten `--task-ttl` after they end, with their files in `data`.
pub async fn expiry(app: &Endpoint, data: &Path) {
    let api = Api(app);
    let (png, _) = distinct_png(60, 60);
    let token = api.token(&png).await;
    assert_eq!(api.wait_until_done(&token).await, "finished");
    let result = data.join("tasks/results").join(&token);
    assert!(result.exists());
    eventually("the task to expire", || async {
        api.status(&token).await.0 == 404
    })
    .await;
    assert_eq!(api.result(&token).await.status(), 404);
    assert!(!result.exists(), "the result file went with the task");
    assert!(!data.join("tasks/payloads").join(&token).exists());
}

#[tokio::test]
async fn ended_tasks_expire() {
    let app = InProcess::start(&["--task-ttl", "1s"]).await;
    expiry(&app, &app.data_dir()).await;
    assert_eq!(app.status().await["queue"]["counts"]["finished"], 0);
}

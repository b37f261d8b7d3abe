//! Request heads against `--max-head-bytes`: curl's oversized headers get 431 over both
//! protocols, a head that is not HTTP gets 400, all are counted, and heads held unfinished
//! keep no more than twice the limit each.

use std::path::Path;
use std::time::Duration;

use testkit::{Process, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::slow_clients::{connect, h1_status};

/// What curl got: the status, curl's exit code and the body.
type Curled = (u16, i32, String);

/// `curl {http} -H "X-Pad: <pad bytes>"` for `GET /`, or with `body` for `POST /messages`.
async fn curl_with_header(app: &Process, http: &str, pad: usize, body: Option<&Path>) -> Curled {
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["--silent", http, "--cacert"])
        .arg(&app.ca)
        .args(["--max-time", "30", "--header"])
        .arg(format!("X-Pad: {}", "p".repeat(pad)))
        .args(["--write-out", "\n%{http_code}"]);
    match body {
        Some(body) => command
            .args([
                "--header",
                "Content-Type: application/json",
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .arg(app.url("/messages")),
        None => command.arg(app.url("/")),
    };
    let output = command
        .output()
        .await
        .expect("curl runs (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    (
        code.parse().unwrap_or(0),
        output.status.code().unwrap_or(-1),
        body.to_owned(),
    )
}

/// Heads over `--max-head-bytes` (8 KiB here) get the middleware's 431, after the body they
/// came with is read, so curl sees it over both protocols even while it is still sending 500
/// KB; each is counted under its route. Heads over twice the limit are cut by the protocol
/// layer while they arrive (431 with no body; over HTTP/1 counted as the connection closed,
/// which lingers so that a client still sending sees the answer), and a head that is not HTTP
/// gets 400, counted the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_max_head_bytes_get_431_and_heads_not_http_400_and_all_are_counted() {
    const TIMES: usize = 10;
    let app = Process::spawn(&["--max-head-bytes", "8KiB"]).await;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'x'; 500_000]).unwrap();
    let refusal = r#"{"error":"request head too large","limit_bytes":8192}"#;
    for http in ["--http1.1", "--http2"] {
        for _ in 0..TIMES {
            let (status, exit, _) = curl_with_header(&app, http, 6 * 1024, None).await;
            assert_eq!((status, exit), (200, 0), "{http}: 6 KiB");
            let soft = curl_with_header(&app, http, 9 * 1024, None).await;
            assert_eq!(soft, (431, 0, refusal.to_owned()), "{http}: 9 KiB");
            let with_body = curl_with_header(&app, http, 9 * 1024, Some(&body)).await;
            assert_eq!(
                with_body,
                (431, 0, refusal.to_owned()),
                "{http}: 9 KiB, a body"
            );
            let (status, exit, _) = curl_with_header(&app, http, 20 * 1024, None).await;
            assert_eq!((status, exit), (431, 0), "{http}: 20 KiB");
        }
    }
    // hyper's own 431 over HTTP/1.1, while curl is still sending 500 KB
    // (`a_connection_whose_head_hyper_refused_lingers` tries it without curl's timing).
    for _ in 0..TIMES {
        let (status, exit, _) = curl_with_header(&app, "--http1.1", 20 * 1024, Some(&body)).await;
        assert_eq!((status, exit), (431, 0), "20 KiB, a body");
    }
    let mut tls = connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"http/1.1").await;
    tls.write_all(b"BLAH / HTTP/9\r\n\r\n").await.unwrap();
    assert_eq!(h1_status(&mut tls).await, 400);

    let scrape = app.scrape().await;
    let answered = |method, route| {
        let labels = [
            ("http_request_method", method),
            ("http_route", route),
            ("http_response_status_code", "431"),
        ];
        scrape.get("http_server_request_duration_seconds_count", &labels)
    };
    assert_eq!(answered("GET", "/"), Some(2.0 * TIMES as f64));
    assert_eq!(answered("POST", "/messages"), Some(2.0 * TIMES as f64));
    // The protocol layer's refusals: HTTP/1 ends the connection with them, and the connection
    // counts them; HTTP/2's 431 ends a stream only, and nothing sees it.
    let closed = |reason| scrape.get("glassbox_connections_closed_total", &[("reason", reason)]);
    assert_eq!(closed("head_too_large"), Some(2.0 * TIMES as f64));
    assert_eq!(closed("bad_head"), Some(1.0));
    let status = app.status().await["connections"]["closed_total"].clone();
    assert_eq!(status["head_too_large"], 2 * TIMES, "{status}");
    assert_eq!(status["bad_head"], 1, "{status}");
}

/// After hyper's 431 the connection goes on reading what its client sends, for a while: a
/// client still sending its body (curl writes it in pieces, and gives up on a failed write,
/// exit 55) would otherwise be reset by the kernel, for closing with bytes unread, before it
/// read the answer. Here the client reads the 431 first, then sends 1 MiB more: all of it is
/// taken. Closed at once instead, the server resets the connection and the writes fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_head_hyper_refused_lingers() {
    let app = Process::spawn(&["--max-head-bytes", "8KiB"]).await;
    let mut tls = connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"http/1.1").await;
    let head = format!(
        "POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 2000000\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(20 * 1024)
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(h1_status(&mut tls).await, 431);
    // Time enough for a server that does not linger to have closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0;
    for _ in 0..64 {
        let written = async {
            tls.write_all(&chunk).await?;
            tls.flush().await
        };
        if let Err(error) = written.await {
            panic!("the write after {sent} bytes failed: {error}");
        }
        sent += chunk.len();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(sent, 1 << 20);
}

/// Opens `count` HTTP/1.1 connections and sends each `bytes` of a request head that never
/// ends, keeping them open; returns them.
async fn unfinished_heads(
    app: &Process,
    count: usize,
    bytes: usize,
) -> Vec<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut head = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    while head.len() < bytes {
        head.extend_from_slice(format!("X-Pad: {}\r\n", "p".repeat(1000)).as_bytes());
    }
    head.truncate(bytes);
    let mut open = Vec::with_capacity(count);
    for _ in 0..count {
        let mut tls = connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"http/1.1").await;
        // A head the server refused is cut short: the write then fails, which is fine.
        let _ = tls.write_all(&head).await;
        let _ = tls.flush().await;
        open.push(tls);
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_held_unfinished_keep_at_most_twice_max_head_bytes_each() {
    const CONNECTIONS: usize = 200;
    let app = Process::spawn(&["--header-read-timeout", "3s"]).await;
    let closed = |status: serde_json::Value, reason: &str| {
        status["connections"]["closed_total"][reason]
            .as_u64()
            .unwrap()
    };

    // Heads of 200 KB: each is refused once 32 KiB of it has arrived (twice the default 16
    // KiB). hyper's own bound, the whole of its read buffer (about 400 KiB), let each of these
    // take 200 KB and wait.
    let before = app.rss_bytes();
    let big = unfinished_heads(&app, CONNECTIONS, 200_000).await;
    eventually("every oversized head refused", || async {
        closed(app.status().await, "head_too_large") == CONNECTIONS as u64
    })
    .await;
    let big_grown = app.rss_bytes().saturating_sub(before);
    drop(big);

    // Heads just under that, held: each keeps its connection and its 31 KiB until the header
    // timeout.
    let before = app.rss_bytes();
    let mut held = unfinished_heads(&app, CONNECTIONS, 31 * 1024).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_grown = app.rss_bytes().saturating_sub(before);
    // The connection asking for /status is open too.
    let open = app.status().await["connections"]["open"].as_u64().unwrap();
    assert!(open > CONNECTIONS as u64, "{open} open");
    eventually("every held head timed out", || async {
        closed(app.status().await, "header_timeout") == CONNECTIONS as u64
    })
    .await;
    let mut byte = [0u8; 1];
    let ended = tokio::time::timeout(Duration::from_secs(5), held[0].read(&mut byte)).await;
    assert!(
        matches!(ended, Ok(Ok(0) | Err(_))),
        "a timed-out head's connection is closed: {ended:?}"
    );
    drop(held);

    // Each connection costs its TLS session and buffers besides the head: 96 KiB in all is
    // three times the 32 KiB, and under half of what one 200 KB head took before.
    let bound = CONNECTIONS as u64 * 96 * 1024;
    assert!(big_grown < bound, "200 KB heads grew RSS by {big_grown}");
    assert!(held_grown < bound, "31 KiB heads grew RSS by {held_grown}");
    testkit::drill(
        &format!("{CONNECTIONS} HTTP/1.1 connections each sending a 200 KB request head"),
        "431 once twice --max-head-bytes (32 KiB) has arrived; RSS grows < 96 KiB a connection",
        &format!(
            "{CONNECTIONS} refused (head_too_large); RSS +{:.1} MB",
            big_grown as f64 / 1e6
        ),
    );
    testkit::drill(
        &format!("{CONNECTIONS} HTTP/1.1 connections each holding a 31 KiB unfinished head"),
        "closed at --header-read-timeout (3 s); RSS grows < 96 KiB a connection",
        &format!(
            "{CONNECTIONS} closed (header_timeout); RSS +{:.1} MB",
            held_grown as f64 / 1e6
        ),
    );
}

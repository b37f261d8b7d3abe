//! The bounds a client could try to exceed besides time (`slow_clients`): concurrent HTTP/2
//! streams per connection, connections, request bodies held in memory (upload blocks on their
//! way to the disk among them), upload blocks kept for the sums reading them, and the spool
//! file of an upload that stops.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use testkit::disk::Tmpfs;
use testkit::{InProcess, Process, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::slow_clients::{
    END_HEADERS, END_STREAM, HEADERS, RST_STREAM, SETTINGS, connect, frame, h1_status, next_frame,
    try_connect,
};

const LOCAL: &str = "127.0.0.1";

fn local() -> IpAddr {
    LOCAL.parse().unwrap()
}

/// `GET https://localhost{path}` in HPACK, with nothing added to the dynamic table.
fn get_block(path: &str) -> Vec<u8> {
    // :method GET, :scheme https, :path and :authority as literals without indexing.
    let mut block = vec![0x82, 0x87, 0x04, u8::try_from(path.len()).unwrap()];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"localhost");
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_max_streams_are_refused_and_the_others_answered() {
    let app = InProcess::start(&["--max-streams", "4"]).await;
    let mut tls = connect(app.addr, &app.ca, LOCAL.parse().unwrap(), b"h2").await;
    // Ten requests at once, before the server's SETTINGS could have been read: a client
    // that ignores the advertised limit.
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for n in 0..10u32 {
        out.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            2 * n + 1,
            &get_block("/sleep/1000"),
        ));
    }
    tls.write_all(&out).await.unwrap();
    let (mut answered, mut refused) = (Vec::new(), Vec::new());
    let read = async {
        while answered.len() + refused.len() < 10 {
            let (kind, _, stream, payload) = next_frame(&mut tls).await.expect("a frame");
            match kind {
                HEADERS => answered.push(stream),
                // REFUSED_STREAM (0x7): the client may retry it, nothing was processed.
                RST_STREAM => {
                    assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), 0x7);
                    refused.push(stream);
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("every stream is answered or refused");
    assert_eq!(
        (answered.len(), refused.len()),
        (4, 6),
        "{answered:?} {refused:?}"
    );
    assert_eq!(app.get("/health").await.status(), 200);
    testkit::drill(
        "10 HTTP/2 streams at once on one connection",
        "--max-streams 4: the rest refused (REFUSED_STREAM), nothing lost",
        &format!(
            "{} answered, {} refused with REFUSED_STREAM",
            answered.len(),
            refused.len()
        ),
    );
}

/// A connection's HTTP/2 streams run in its own task (`server/streams.rs`): one that waits
/// must not hold up the others. Streams 1 and 3 sleep, 5, 7 and 9 ask for quick answers; the
/// quick ones are answered first, and the sleeping ones after, on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_stream_does_not_hold_up_the_others_on_its_connection() {
    let app = InProcess::start(&[]).await;
    let mut tls = connect(app.addr, &app.ca, LOCAL.parse().unwrap(), b"h2").await;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for (stream, path) in [
        (1, "/sleep/1500"),
        (3, "/sleep/1500"),
        (5, "/"),
        (7, "/fibonacci/1000/"),
        (9, "/health"),
    ] {
        out.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            stream,
            &get_block(path),
        ));
    }
    tls.write_all(&out).await.unwrap();
    let mut answered = Vec::new();
    let read = async {
        while answered.len() < 5 {
            let (kind, _, stream, _) = next_frame(&mut tls).await.expect("a frame");
            assert_ne!(kind, RST_STREAM, "stream {stream} reset");
            if kind == HEADERS {
                answered.push(stream);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("every stream is answered");
    let (quick, slow) = answered.split_at(3);
    let mut quick = quick.to_vec();
    quick.sort_unstable();
    assert_eq!(quick, [5, 7, 9], "answered in the order {answered:?}");
    assert!(slow.contains(&1) && slow.contains(&3), "{answered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_and_idle_ones_make_room() {
    // The admin listener has places of its own, so it can watch the public one fill up.
    let app = InProcess::start(&["--max-connections", "4", "--admin-bind", "127.0.0.1:0"]).await;
    let admin = app.admin.as_ref().expect("an admin listener");
    let me: IpAddr = LOCAL.parse().unwrap();
    // Four connections, each busy with a slow request. Until the service has read a
    // request its connection is idle, and a new one would take its place.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut tls = connect(app.addr, &app.ca, me, b"http/1.1").await;
        tls.write_all(b"GET /sleep/2000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        busy.push(tls);
    }
    eventually("four requests in flight", || async {
        // Those four and this /status.
        admin.status().await["requests_in_flight"].as_u64() == Some(5)
    })
    .await;
    assert!(
        app.client.get(app.url("/status")).send().await.is_err(),
        "a request on a fifth connection was answered"
    );
    // A fifth is closed at once: no connection is idle enough to give way. It ends in its
    // TLS handshake or, at the latest, before an answer.
    let start = Instant::now();
    let fifth = async {
        let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let config = testkit::client::tls_client_config(&app.ca);
        let Ok(mut tls) = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
        else {
            return 0;
        };
        let _ = tls
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let mut byte = [0u8; 1];
        tls.read(&mut byte).await.unwrap_or(0)
    };
    let read = tokio::time::timeout(Duration::from_secs(5), fifth)
        .await
        .expect("closed at once, not left waiting");
    assert_eq!(read, 0, "the fifth connection got an answer");
    let closed_after = start.elapsed();
    // Once the slow requests are answered their connections are idle, and a new one evicts
    // the longest idle.
    for tls in &mut busy {
        assert_eq!(h1_status(tls).await, 200);
    }
    let status = app.status().await;
    let closed = &status["connections"]["closed_total"];
    assert!(closed["over_limit"].as_u64().unwrap() >= 1, "{status}");
    assert!(closed["evicted"].as_u64().unwrap() >= 1, "{status}");
    // Four on the public listener, and the admin listener's own.
    assert!(
        status["connections"]["open"].as_u64().unwrap() <= 5,
        "{status}"
    );
    testkit::drill(
        "5 connections against --max-connections 4",
        "the fifth closed at once while all are busy; an idle one gives way later",
        &format!(
            "the fifth closed after {:.0} ms; closed over the limit {}, evicted {}",
            closed_after.as_secs_f64() * 1e3,
            closed["over_limit"],
            closed["evicted"]
        ),
    );
}

/// A POST of `declared` bytes of `chunk` repeated to `path` on a new HTTP/1.1 connection, all
/// but its last byte sent; then the status of the answer (0 if the connection broke first).
async fn all_but_the_last_byte_of(
    app: &Process,
    from: IpAddr,
    path: &str,
    content_type: &str,
    declared: usize,
    chunk: &[u8],
) -> u16 {
    let mut tls = connect(app.addr, &app.ca, from, b"http/1.1").await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut left = declared - 1;
    while left > 0 {
        let n = left.min(chunk.len());
        // A refused body is drained only so far: a failed write is the server closing.
        if tls.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        left -= n;
    }
    let _ = tls.flush().await;
    let mut head = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(30), tls.read_exact(&mut head)).await {
        Ok(Ok(_)) => std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap(),
        _ => 0,
    }
}

/// The peak RSS and the peak of `/status`'s `limits.{limit}`, sampled every 50 ms for `span`.
async fn peaks(app: &Process, limit: &str, span: Duration) -> (u64, u64) {
    let start = Instant::now();
    let (mut peak_rss, mut peak_limit) = (0, 0);
    while start.elapsed() < span {
        peak_rss = peak_rss.max(app.rss_bytes());
        let status = app.status().await;
        peak_limit = peak_limit.max(status["limits"][limit].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (peak_rss, peak_limit)
}

/// What twelve uploads held one byte short did to a glassbox with a `--max-buffered-bytes`
/// budget and a 3 s body timeout ([`twelve_held_uploads`]).
struct HeldUploads {
    /// Each upload's status, sorted: 408 or 503.
    statuses: Vec<u16>,
    /// `/status`'s `limits.buffered_bytes` at its highest.
    peak_buffered: u64,
    /// How far RSS rose above where it was before the uploads.
    grown: u64,
}

impl HeldUploads {
    fn count(&self, code: u16) -> usize {
        self.statuses.iter().filter(|&&s| s == code).count()
    }
}

/// Twelve uploads at once of `declared` bytes of `chunk` repeated to `path`, each held one
/// byte short, against `--max-buffered-bytes budget` and `--body-timeout 3s`. Whatever the
/// route, each ends in 408 (held until the body timeout) or 503 (no room in the budget), the
/// budget is never passed, and it is all free again afterwards.
async fn twelve_held_uploads(
    budget: u64,
    path: &str,
    content_type: &str,
    declared: usize,
    chunk: &[u8],
) -> HeldUploads {
    let app = Process::spawn(&[
        "--max-buffered-bytes",
        &budget.to_string(),
        "--body-timeout",
        "3s",
    ])
    .await;
    let before = app.rss_bytes();
    let uploads: Vec<_> = (0..12)
        .map(|_| all_but_the_last_byte_of(&app, local(), path, content_type, declared, chunk))
        .collect();
    let (mut statuses, (peak_rss, peak_buffered)) = tokio::join!(
        futures_util::future::join_all(uploads),
        peaks(&app, "buffered_bytes", Duration::from_secs(4))
    );
    statuses.sort_unstable();
    let held = HeldUploads {
        statuses,
        peak_buffered,
        grown: peak_rss.saturating_sub(before),
    };
    assert_eq!(held.count(408) + held.count(503), 12, "{:?}", held.statuses);
    assert!(peak_buffered <= budget, "{peak_buffered}");
    eventually("the budget to be free again", || async {
        app.status().await["limits"]["buffered_bytes"] == 0
    })
    .await;
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_held_one_byte_short_share_the_buffered_budget() {
    const BUDGET: u64 = 64 * 1024 * 1024;
    let held = twelve_held_uploads(
        BUDGET,
        "/randomize",
        "image/png",
        30_000_000,
        &[b'7'; 64 * 1024],
    )
    .await;
    assert!(
        held.count(408) >= 1,
        "some were held until the body timeout: {:?}",
        held.statuses
    );
    // Twelve whole bodies would be 360 MB. The allocator may keep buffers freed by refused
    // bodies for reuse (glibc raises its mmap threshold after a large free), so RSS can pass
    // the budget, but not by another budget.
    assert!(
        held.grown < 2 * BUDGET + 16 * 1024 * 1024,
        "RSS grew by {} MB with a {} MB budget",
        held.grown / 1_000_000,
        BUDGET / 1_000_000
    );
    testkit::drill(
        "12 /randomize uploads of 30 MB held one byte short",
        "bodies in memory within --max-buffered-bytes 64 MiB; 503 beyond, 408 after --body-timeout",
        &format!(
            "peak buffered {:.1} MB, RSS +{:.1} MB; {} x 408, {} x 503",
            held.peak_buffered as f64 / 1e6,
            held.grown as f64 / 1e6,
            held.count(408),
            held.count(503)
        ),
    );
}

/// One client holding uploads one byte short takes its `--client-share` of
/// `--max-buffered-bytes` and no more, so other clients' bodies are still read. Before the
/// share, eight such uploads of 8 MiB from one address held all 64 MiB, and every other
/// client's `POST /messages` got 503 until their body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holding_uploads_leaves_the_rest_of_the_budget_to_others() {
    const MIB: usize = 1024 * 1024;
    let app = Process::spawn(&[
        "--max-buffered-bytes",
        &(64 * MIB).to_string(),
        "--body-timeout",
        "10s",
    ])
    .await;
    let limits = app.status().await["limits"].clone();
    assert_eq!(limits["client_buffered_bytes"], 32 * MIB, "{limits}");
    let hostile: IpAddr = "127.0.0.66".parse().unwrap();
    let chunk = [b'7'; 64 * 1024];
    let app = &app;
    let buffered = || async {
        app.status().await["limits"]["buffered_bytes"]
            .as_u64()
            .unwrap()
    };
    // The first four one after another, so that uploads growing side by side do not refuse
    // each other; the last four once those hold the share. A refused upload is answered once
    // its body has been drained: five seconds, since the byte it withholds never comes.
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let uploads: Vec<_> = (0..8)
        .map(|i: usize| {
            let (refused, chunk) = (&refused, &chunk);
            async move {
                eventually("the uploads before it to be held", || async {
                    buffered().await >= (i.min(4) * 8 * MIB) as u64
                })
                .await;
                let status = all_but_the_last_byte_of(
                    app,
                    hostile,
                    "/randomize",
                    "image/png",
                    8 * MIB,
                    chunk,
                )
                .await;
                if status == 503 {
                    refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                status
            }
        })
        .collect();
    let others = async {
        eventually(
            "the hostile client's uploads to be held or refused",
            || async { refused.load(std::sync::atomic::Ordering::SeqCst) == 4 },
        )
        .await;
        let held = buffered().await;
        let message = app
            .client
            .post(app.url("/messages"))
            .header("content-type", "application/json")
            .body(r#"{"message":"still served"}"#)
            .send()
            .await
            .unwrap()
            .status();
        // Another address sends a whole 8 MiB body: it is read (and found not to be a PNG).
        let other = all_but_the_last_byte_of(
            app,
            "127.0.0.7".parse().unwrap(),
            "/randomize",
            "image/png",
            8 * MIB,
            &chunk,
        );
        let other = tokio::time::timeout(Duration::from_secs(1), other).await;
        (held, message, other)
    };
    let (mut statuses, (held, message, other)) =
        tokio::join!(futures_util::future::join_all(uploads), others);
    statuses.sort_unstable();
    assert_eq!(held, 32 * MIB as u64, "the hostile client holds its share");
    assert_eq!(message, 201, "another client's message is read");
    assert!(
        other.is_err(),
        "another client's upload is read, and held until its body timeout too: {other:?}"
    );
    assert_eq!(statuses, [408, 408, 408, 408, 503, 503, 503, 503]);
    let metrics = app.scrape().await;
    assert_eq!(
        metrics.sum(
            "glassbox_overloads_total",
            &[("route", "/randomize"), ("bound", "client_body_memory")]
        ),
        4.0
    );
    assert_eq!(metrics.sum("glassbox_overloads_total", &[]), 4.0);
    testkit::drill(
        "one address holds 8 /randomize uploads of 8 MiB one byte short",
        "--client-share (0.5) of --max-buffered-bytes 64 MiB per address; others still served",
        &format!(
            "it held {:.1} MB, 4 x 408 and 4 x 503; another address's message 201",
            held as f64 / 1e6
        ),
    );
}

/// An address opening connections faster than `--max-connection-rate` has the rest closed
/// before their TLS handshake, counted as `over_rate`, while another address connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_client_s_rate_are_closed_before_their_handshake() {
    const TRIES: usize = 60;
    let app = InProcess::start(&["--max-connection-rate", "20"]).await;
    let flood: IpAddr = "127.0.0.2".parse().unwrap();
    let started = Instant::now();
    let mut handshakes = 0;
    for _ in 0..TRIES {
        if let Ok(mut tls) = try_connect(app.addr, &app.ca, flood, b"http/1.1").await {
            // The server may close it right after the handshake: a request says whether it
            // was served.
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .unwrap();
            assert_eq!(h1_status(&mut tls).await, 200);
            handshakes += 1;
        }
    }
    let took = started.elapsed();
    // Twenty at once, then twenty a second while the tries went on.
    let most = 20 + (took.as_secs_f64() * 20.0).ceil() as usize;
    assert!(
        (20..=most.min(TRIES - 1)).contains(&handshakes),
        "{handshakes} of {TRIES} in {took:?}"
    );
    let other = try_connect(app.addr, &app.ca, "127.0.0.3".parse().unwrap(), b"http/1.1").await;
    assert!(other.is_ok(), "another address connects: {other:?}");
    let closed = app.status().await["connections"]["closed_total"]["over_rate"].clone();
    assert_eq!(closed, TRIES - handshakes, "every refused one is counted");
    testkit::drill(
        "one address opens 60 connections in a row against --max-connection-rate 20",
        "a second's worth at once, then the rate; the rest closed before the handshake",
        &format!(
            "{handshakes} served in {:.2} s, {} closed (over_rate); another address connected",
            took.as_secs_f64(),
            TRIES - handshakes
        ),
    );
}

/// An upload summed as it arrives keeps its latest blocks in memory for the sum: eight of them
/// held one byte short must not keep more than `max_sum_kept_bytes` (64 MiB) between them,
/// where each alone would keep 16 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sum_evens_uploads_held_one_byte_short_keep_at_most_64_mib_for_their_sums() {
    const MIB: u64 = 1024 * 1024;
    let app = Process::spawn(&["--body-timeout", "3s"]).await;
    let limits = app.status().await["limits"].clone();
    let max = limits["max_sum_kept_bytes"].as_u64().unwrap();
    assert_eq!(max, 64 * MIB, "{limits}");
    let before = app.rss_bytes();
    let numbers = b"2 ".repeat(32 * 1024);
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            all_but_the_last_byte_of(
                &app,
                local(),
                "/sum-evens",
                "text/plain",
                24 << 20,
                &numbers,
            )
        })
        .collect();
    let (statuses, (peak_rss, peak_kept)) = tokio::join!(
        futures_util::future::join_all(uploads),
        peaks(&app, "sum_kept_bytes", Duration::from_secs(5))
    );
    assert!(statuses.iter().all(|&s| s == 408), "{statuses:?}");
    assert!(peak_kept <= max, "kept {peak_kept} of at most {max}");
    assert!(
        peak_kept >= max / 2,
        "the uploads' sums read from memory: kept {peak_kept}"
    );
    let grown = peak_rss.saturating_sub(before);
    // Kept blocks, each upload's two spool buffers and the connections' buffers; eight
    // uploads keeping 16 MiB each would be 128 MiB of kept blocks alone.
    assert!(grown < 2 * max, "RSS grew by {} MB", grown / 1_000_000);
    eventually("the kept blocks to be given back", || async {
        app.status().await["limits"]["sum_kept_bytes"] == 0
    })
    .await;
    testkit::drill(
        "8 /sum-evens uploads of 24 MiB held one byte short",
        "blocks kept in memory for their sums within 64 MiB in all (16 MiB each); 408 after --body-timeout",
        &format!(
            "peak kept {:.1} MB, RSS +{:.1} MB; {} x 408",
            peak_kept as f64 / 1e6,
            grown as f64 / 1e6,
            statuses.len()
        ),
    );
}

/// A body sent to a route that reads none is read and dropped as it arrives. Left unread, it
/// waited in its HTTP/2 stream's window until the handler returned: 40 connections sending
/// 8 MiB each to `GET /sleep/20000` held 690 MB for the 20 s (`--max-connections` allows
/// 10,000). Here 32 streams send 960 KiB each, within `--max-body-bytes`, to a route that
/// answers after 3 s; a 33rd sends 1.5 MiB and gets 413 without waiting for its route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sent_to_routes_that_read_none_wait_in_no_window() {
    const KIB: usize = 1024;
    let app = Process::spawn(&[]).await;
    let before = app.rss_bytes();
    let request = |path: &str| {
        http::Request::get(format!("https://localhost{path}"))
            .body(())
            .unwrap()
    };
    let send = |size: usize, path: &'static str| {
        let app = &app;
        async move {
            let tls = connect(app.addr, &app.ca, LOCAL.parse().unwrap(), b"h2").await;
            let (mut send, connection) = h2::client::handshake(tls).await.unwrap();
            tokio::spawn(connection);
            let mut answers = Vec::new();
            for _ in 0..2 {
                send = send.ready().await.unwrap();
                let (answer, mut body) = send.send_request(request(path), false).unwrap();
                body.send_data(axum::body::Bytes::from(vec![b'x'; size]), true)
                    .unwrap();
                answers.push((answer, body));
            }
            answers
        }
    };
    let mut answers = Vec::new();
    for _ in 0..16 {
        answers.extend(send(960 * KIB, "/sleep/3000").await);
    }
    let start = Instant::now();
    let (too_large, _) = send(1536 * KIB, "/sleep/20000").await.remove(0);
    let too_large = tokio::time::timeout(Duration::from_secs(10), too_large)
        .await
        .expect("413 before the route's 20 s")
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let refused_in = start.elapsed();
    let mut peak = 0;
    while start.elapsed() < Duration::from_secs(2) {
        peak = peak.max(app.rss_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (answer, _body) in answers {
        let answer = tokio::time::timeout(Duration::from_secs(20), answer)
            .await
            .expect("every route answers")
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let grown = peak.saturating_sub(before);
    // 32 streams of 960 KiB waiting would be 31 MB.
    assert!(grown < 12_000_000, "RSS grew by {} MB", grown / 1_000_000);
    testkit::drill(
        "32 HTTP/2 streams sending 960 KiB each to GET /sleep/3000, one 1.5 MiB",
        "a body a route does not read is read and dropped as it arrives; 413 past --max-body-bytes without waiting for the route",
        &format!(
            "RSS +{:.1} MB; 32 x 200; 413 in {} ms",
            grown as f64 / 1e6,
            refused_in.as_millis()
        ),
    );
}

/// An upload's spool blocks are request body in memory: they come out of
/// `--max-buffered-bytes`, two 1 MiB blocks at least, so uploads held one byte short cannot
/// take more than the budget however many there are (each held up to five blocks of its own
/// before, outside any budget: 200 such uploads held 750 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sum_evens_uploads_held_one_byte_short_take_their_blocks_from_the_buffered_budget() {
    const MIB: u64 = 1024 * 1024;
    let numbers = b"2 ".repeat(32 * 1024);
    let held = twelve_held_uploads(8 * MIB, "/sum-evens", "text/plain", 24 << 20, &numbers).await;
    // Each upload let in holds at least two blocks until its 408.
    assert!(
        (1..=4).contains(&held.count(408)),
        "at most four uploads fit in 8 MiB: {:?}",
        held.statuses
    );
    assert!(
        held.peak_buffered >= 2 * MIB,
        "the spools' blocks are counted: {}",
        held.peak_buffered
    );
    testkit::drill(
        "12 /sum-evens uploads of 24 MiB held one byte short",
        "spool blocks within --max-buffered-bytes 8 MiB (2 to 5 MiB an upload); 503 beyond, 408 after --body-timeout",
        &format!(
            "peak buffered {:.1} MB; {} x 408, {} x 503",
            held.peak_buffered as f64 / 1e6,
            held.count(408),
            held.count(503)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_stops_gets_408_and_leaves_no_spool_file() {
    let app = InProcess::start(&["--body-timeout", "1s"]).await;
    let payloads = app.data_dir().join("tasks/payloads");
    let files = || std::fs::read_dir(&payloads).unwrap().count();
    let mut tls = connect(app.addr, &app.ca, LOCAL.parse().unwrap(), b"http/1.1").await;
    tls.write_all(
        b"POST /sum-evens HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
          Content-Length: 100000\r\n\r\n",
    )
    .await
    .unwrap();
    tls.write_all(&b"2 4 6 8\n".repeat(1000)).await.unwrap();
    tls.flush().await.unwrap();
    eventually("the upload to be spooling", || async { files() == 1 }).await;
    assert_eq!(h1_status(&mut tls).await, 408);
    eventually("the spool file to be gone", || async { files() == 0 }).await;
    assert_eq!(app.status().await["limits"]["permits_in_use"], 0);
}

/// curl uploading `file` to `/sum-evens` from the address `from`: the status and the bytes it
/// sent.
async fn curl_upload(app: &Process, from: IpAddr, http: &str, file: &std::path::Path) -> String {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--output", "/dev/null", http, "--cacert"])
        .arg(&app.ca)
        .arg("--interface")
        .arg(from.to_string())
        .args([
            "--max-time",
            "30",
            "-X",
            "POST",
            "-H",
            "Content-Type: text/plain",
        ])
        .arg("--upload-file")
        .arg(file)
        .args(["--write-out", "%{http_code} %{size_upload}"])
        .arg(app.url("/sum-evens"))
        .output()
        .await
        .expect("curl runs");
    assert!(output.status.success(), "curl {http}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One address filling the disk with uploads holds its `--client-share` of the room above
/// `--min-free-disk` and no more: its next upload gets 507 before a byte of it is stored, and
/// another address's uploads are stored. Before the share, one address's uploads held one byte
/// short took the disk down to the minimum, and every other client's upload got 507 until
/// they timed out. The data directory is a tmpfs (root only: skipped with a message otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_filling_the_disk_leaves_the_rest_of_the_room_to_others() {
    const MIB: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("data"), 64) else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let app = Process::spawn_in(dir, &["--min-free-disk", "4MiB", "--body-timeout", "60s"]).await;
    let limits = app.status().await["limits"].clone();
    assert_eq!(limits["client_disk_share"], 0.5, "{limits}");
    assert_eq!(limits["disk_held_bytes"], 0, "{limits}");
    let room = limits["disk_room_bytes"].as_u64().unwrap();
    let held = || async {
        app.status().await["limits"]["disk_held_bytes"]
            .as_u64()
            .unwrap()
    };
    let (hostile, other): (IpAddr, IpAddr) =
        ("127.0.0.68".parse().unwrap(), "127.0.0.69".parse().unwrap());
    let numbers = b"2 ".repeat(32 * 1024);

    // The hostile address holds an upload of 45 % of the room, one byte short.
    let first = (room * 45 / 100 / MIB * MIB) as usize;
    let holding = {
        let (addr, ca) = (app.addr, app.ca.clone());
        let numbers = numbers.clone();
        tokio::spawn(async move {
            let mut tls = connect(addr, &ca, hostile, b"http/1.1").await;
            let head = format!(
                "POST /sum-evens HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
                 Content-Length: {first}\r\n\r\n"
            );
            tls.write_all(head.as_bytes()).await.unwrap();
            let mut left = first - 1;
            while left > 0 {
                let n = left.min(numbers.len());
                tls.write_all(&numbers[..n]).await.unwrap();
                left -= n;
            }
            tls.flush().await.unwrap();
            // Held until this task is aborted.
            std::future::pending::<()>().await;
        })
    };
    eventually(
        "the first upload to be stored but for its last byte",
        || async { held().await >= first as u64 - 1 },
    )
    .await;

    // A second as large from it would take it past half the room: 507, told before the body.
    let second =
        all_but_the_last_byte_of(&app, hostile, "/sum-evens", "text/plain", first, &numbers).await;
    assert_eq!(second, 507, "the hostile address's second upload");
    // curl, with a fifth of the room: the hostile address is refused over both protocols
    // (over HTTP/1.1 `Expect: 100-continue` has it send nothing), the other is stored.
    let fifth = files.path().join("fifth.txt");
    std::fs::write(&fifth, b"2 ".repeat((room / 5 / 2) as usize)).unwrap();
    let size = std::fs::metadata(&fifth).unwrap().len();
    assert_eq!(
        curl_upload(&app, hostile, "--http1.1", &fifth).await,
        "507 0"
    );
    let over_h2 = curl_upload(&app, hostile, "--http2", &fifth).await;
    assert!(over_h2.starts_with("507 "), "{over_h2}");
    let mut stored = Vec::new();
    for http in ["--http2", "--http1.1"] {
        stored.push(curl_upload(&app, other, http, &fifth).await);
        // Its task finishes and its payload goes, with what it held.
        eventually(
            "the other address's payload to be summed and removed",
            || async { held().await < first as u64 + MIB },
        )
        .await;
    }
    assert_eq!(stored, [format!("201 {size}"), format!("201 {size}")]);
    let metrics = app.scrape().await;
    let answered = |status: &str| metrics.answered("/sum-evens", status);
    assert_eq!((answered("507"), answered("201")), (3.0, 2.0));
    // The first upload and the other address's two results, as /status has them.
    let gauge = |name: &str| metrics.sum(name, &[]);
    assert!(
        (first as f64..first as f64 + 4096.0).contains(&gauge("glassbox_disk_held_bytes")),
        "{}",
        gauge("glassbox_disk_held_bytes")
    );
    // All but the spool's last, unfinished block is on the disk.
    let taken = room as f64 - gauge("glassbox_disk_room_bytes");
    assert!(
        taken >= (first as u64 - 2 * MIB) as f64,
        "the room fell by {taken} with {first} bytes spooled"
    );
    eventually("the access lines to say which bound refused", || async {
        app.logs()
            .iter()
            .filter(|line| line.to_string().contains("--client-share 0.5 of the"))
            .count()
            == 3
    })
    .await;

    // Once it lets go, its share is back.
    holding.abort();
    // What stays held is the other address's two results (a few hundred bytes).
    eventually("the held upload's spool to be gone", || async {
        held().await < 4096
    })
    .await;
    assert_eq!(
        curl_upload(&app, hostile, "--http1.1", &fifth).await,
        format!("201 {size}")
    );
    testkit::drill(
        "one address holds a /sum-evens upload of 45 % of the disk's room, then sends more",
        "--client-share (0.5) of the room above --min-free-disk per address; others still stored",
        &format!(
            "of {:.1} MB: its second upload and curl's (h2, h1.1, 0 bytes sent) 507; \
             another address's two 201; 201 again once it let go",
            room as f64 / 1e6
        ),
    );
}

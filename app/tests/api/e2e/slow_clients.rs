//! Slow and idle clients against their bounds, with raw HTTP/1.1 and HTTP/2 (the `h2` crate,
//! the one hyper's server is built on, as a client) from their own loopback address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::{Method, Request};
use testkit::client::{client_from, tls_client_config};
use testkit::{InProcess, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

const ATTACKER: &str = "127.0.0.2";

/// A TLS connection to `addr` from `from`, offering `alpn`.
pub(crate) async fn connect(
    addr: SocketAddr,
    ca: &std::path::Path,
    from: IpAddr,
    alpn: &[u8],
) -> TlsStream<TcpStream> {
    try_connect(addr, ca, from, alpn).await.unwrap()
}

/// [`connect`], or why the connection or its handshake failed.
pub(crate) async fn try_connect(
    addr: SocketAddr,
    ca: &std::path::Path,
    from: IpAddr,
    alpn: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let tcp = socket.connect(addr).await?;
    let mut config = tls_client_config(ca);
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
}

/// An HTTP/2 connection from `from`; the connection task runs in the background and its
/// handle says when the server closed it.
async fn h2_connect(
    app: &InProcess,
    from: IpAddr,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tls = connect(app.addr, &app.ca, from, b"h2").await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    let running = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, running)
}

/// A POST to /messages that declares 100 bytes and sends none.
fn stalled_post() -> Request<()> {
    Request::builder()
        .method(Method::POST)
        .uri("https://localhost/messages")
        .header("content-type", "application/json")
        .header("content-length", "100")
        .body(())
        .unwrap()
}

/// The status code at the start of an HTTP/1.1 response on `tls`.
pub(crate) async fn h1_status(tls: &mut TlsStream<TcpStream>) -> u16 {
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_from_one_address_hold_its_share_and_end_in_408() {
    let app = InProcess::start(&[
        "--max-concurrency",
        "16",
        "--client-share",
        "0.5",
        "--body-timeout",
        "2s",
    ])
    .await;
    let attacker: IpAddr = ATTACKER.parse().unwrap();
    let start = Instant::now();

    // HTTP/2: one connection, 20 streams, each a body that never comes.
    let (mut send, _h2) = h2_connect(&app, attacker).await;
    let mut h2_answers = Vec::new();
    let mut held_streams = Vec::new();
    for _ in 0..20 {
        send = send.ready().await.unwrap();
        let (answer, stream) = send.send_request(stalled_post(), false).unwrap();
        h2_answers.push(answer);
        held_streams.push(stream);
    }
    // HTTP/1.1: six connections, each a head and no body.
    let mut h1 = Vec::new();
    for _ in 0..6 {
        let mut tls = connect(app.addr, &app.ca, attacker, b"http/1.1").await;
        tls.write_all(
            b"POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
        h1.push(tls);
    }
    eventually("the attacker to hold its share", || async {
        app.status().await["limits"]["permits_in_use"] == 8
    })
    .await;

    // Everyone else is served meanwhile.
    for _ in 0..20 {
        assert_eq!(app.get("/").await.status(), 200);
        assert_eq!(app.get("/health").await.status(), 200);
    }
    let status = app.status().await;
    assert_eq!(status["limits"]["permits_in_use"], 8, "{status}");
    assert_eq!(status["limits"]["client_permits"], 8);

    // The attacker's requests end: 408 for those that held a permit, 503 for the others.
    let mut statuses = Vec::new();
    for answer in h2_answers {
        statuses.push(answer.await.unwrap().status().as_u16());
    }
    for tls in &mut h1 {
        statuses.push(h1_status(tls).await);
    }
    statuses.sort_unstable();
    let count = |code| statuses.iter().filter(|&&s| s == code).count();
    assert_eq!((count(408), count(503)), (8, 18), "{statuses:?}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the body timeout ended them: {:?}",
        start.elapsed()
    );
    eventually("every permit to be free", || async {
        app.status().await["limits"]["permits_in_use"] == 0
    })
    .await;
    // The 408s are in the access statistics with the route.
    let status = app.status().await;
    let messages = testkit::glassbox::route_in(&status, "/messages");
    assert_eq!(messages["status_codes"]["408"], 8, "{status}");
    testkit::drill(
        "slow bodies from 127.0.0.2: 20 HTTP/2 streams, 6 HTTP/1.1 connections",
        "at most its share (8 of 16 permits); 408 after --body-timeout 2s; others served",
        &format!(
            "held 8; 127.0.0.1 got 40 of 40 x 200 meanwhile; {} x 408, {} x 503 within {:.1} s; \
             every permit free after",
            count(408),
            count(503),
            start.elapsed().as_secs_f64()
        ),
    );
    drop(held_streams);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_the_idle_timeout() {
    let app = InProcess::start(&["--idle-timeout", "1s"]).await;
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    let mut h2 = Vec::new();
    for _ in 0..5 {
        let (send, running) = h2_connect(&app, me).await;
        let mut send = send.ready().await.unwrap();
        let request = Request::builder()
            .uri("https://localhost/")
            .body(())
            .unwrap();
        let (answer, _) = send.send_request(request, true).unwrap();
        assert_eq!(answer.await.unwrap().status(), 200);
        h2.push((send, running));
    }
    let mut h1 = connect(app.addr, &app.ca, me, b"http/1.1").await;
    h1.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(h1_status(&mut h1).await, 200);
    let start = Instant::now();
    for (_send, running) in h2 {
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("the server closed the idle HTTP/2 connection (GOAWAY)")
            .unwrap();
    }
    // The HTTP/1.1 connection ends too: the rest of the response, then end of stream.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), h1.read_to_end(&mut rest))
        .await
        .expect("the server closed the idle HTTP/1.1 connection")
        .ok();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "not before the timeout"
    );
    let status = app.status().await;
    let idle = status["connections"]["closed_total"]["idle"]
        .as_u64()
        .unwrap();
    assert!(idle >= 6, "{status}");
    testkit::drill(
        "5 idle HTTP/2 and 1 idle HTTP/1.1 connections",
        "closed after --idle-timeout 1s (HTTP/2 with a GOAWAY)",
        &format!(
            "all closed within {:.1} s; closed_total.idle {idle}",
            waited.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_is_not_idle() {
    let app = InProcess::start(&["--idle-timeout", "1s"]).await;
    let other = client_from(&app.ca, "127.0.0.1".parse().unwrap());
    // A request longer than the idle timeout keeps its connection.
    let response = other.get(app.url("/sleep/2500")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// `GET /health` on a connection of its own; its status, or 0 when the connection failed.
async fn health_on_a_new_connection(addr: SocketAddr, ca: &std::path::Path) -> u16 {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut config = tls_client_config(ca);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await;
    let Ok(mut tls) = tls else {
        return 0;
    };
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    h1_status(&mut tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_256_descriptors_300_idle_connections_leave_health_reachable() {
    testkit::need("prlimit", "apt-get install util-linux");
    let app = testkit::Process::spawn_via(&["prlimit", "--nofile=256:256", "--"], &[]).await;
    let mut idle = Vec::new();
    for n in 1..=300 {
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        let mut config = tls_client_config(&app.ca);
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await;
        // A connection the server closed to make room may fail its handshake; that is the
        // bound working, not the service failing.
        if let Ok(tls) = tls {
            idle.push(tls);
        }
        if n % 25 == 0 {
            let status = health_on_a_new_connection(app.addr, &app.ca).await;
            assert_eq!(
                status,
                200,
                "after {n} idle connections; the service said: {:#?}",
                app.stdout_lines()
            );
        }
    }
    let status = app.status().await;
    let open = status["connections"]["open"].as_u64().unwrap();
    assert!(open <= 256 - 64 + 1, "{status}");
    assert!(
        status["connections"]["closed_total"]["evicted"]
            .as_u64()
            .unwrap()
            > 0,
        "{status}"
    );
    assert_eq!(health_on_a_new_connection(app.addr, &app.ca).await, 200);
    testkit::drill(
        "prlimit --nofile=256: 300 idle HTTP/2 connections",
        "/health reachable throughout; at most 192 connections open",
        &format!(
            "13 of 13 /health probes 200; {open} open at the end; {} evicted",
            status["connections"]["closed_total"]["evicted"]
        ),
    );
    drop(idle);
}

/// An 8-bit RGB PNG of noise, `side` × `side`: it does not compress, so its size is about
/// 3 bytes a pixel, and so is the randomized result.
fn noise_png(side: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<u8> = (0..side * side * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, side, side);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_readers_that_never_read_a_10_mb_result_hold_no_copy_of_it() {
    let app = testkit::Process::spawn(&["--write-timeout", "3s"]).await;
    let api = crate::contract::tasks::Api(&app);
    let png = noise_png(1830);
    assert!(png.len() > 10_000_000, "{}", png.len());
    let token = api.token(&png).await;
    assert_eq!(api.wait_until_done(&token).await, "finished");
    let result_len = api.result(&token).await.bytes().await.unwrap().len();
    assert!(result_len > 10_000_000, "{result_len}");
    let before = app.rss_bytes();

    // One HTTP/2 connection whose streams open no window: nothing of a response can be sent.
    let tls = connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"h2").await;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    let closed = tokio::spawn(async move { conn.await.is_ok() });
    let mut send = send;
    let mut heads = Vec::new();
    for _ in 0..100 {
        send = send.ready().await.unwrap();
        let request = Request::builder()
            .uri(format!("https://localhost/randomize/{token}/result"))
            .body(())
            .unwrap();
        heads.push(send.send_request(request, true).unwrap().0);
    }
    let mut peak = 0;
    // Kept: a response dropped here would reset its stream.
    let mut responses = Vec::new();
    for head in heads {
        let response = head.await.unwrap();
        assert_eq!(response.status(), 200);
        responses.push(response);
        peak = peak.max(app.rss_bytes());
    }
    let status = app.status().await;
    assert_eq!(status["limits"]["permits_in_use"], 100, "{status}");
    // Whole results in memory would be a gigabyte; streamed ones are a chunk at most each.
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "RSS grew by {} MB with 100 stalled readers",
        grown / 1_000_000
    );
    // The write timeout drops the connection and frees every permit.
    tokio::time::timeout(Duration::from_secs(20), closed)
        .await
        .expect("the stalled connection is closed")
        .unwrap();
    eventually("the permits to come back", || async {
        app.status().await["limits"]["permits_in_use"] == 0
    })
    .await;
    let status = app.status().await;
    assert!(
        status["connections"]["closed_total"]["write_timeout"]
            .as_u64()
            .unwrap()
            >= 1,
        "{status}"
    );
    testkit::drill(
        &format!(
            "100 zero-window HTTP/2 readers of a {:.1} MB result",
            result_len as f64 / 1e6
        ),
        "RSS grows < 64 MB; permits held until sent; dropped at --write-timeout 3s",
        &format!(
            "RSS +{:.1} MB (from {:.1} MB); 100 permits held, all free after the drop",
            grown as f64 / 1e6,
            before as f64 / 1e6
        ),
    );
    drop(responses);
}

/// One HTTP/2 frame: its 9-byte header and `payload`.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The next frame on `tls`: its type, flags, stream and payload; nothing once the connection
/// ends.
pub(crate) async fn next_frame(tls: &mut TlsStream<TcpStream>) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], id, payload))
}

pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// `GET https://localhost/` in HPACK: three static-table entries and a literal authority.
fn get_root_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 9];
    block.extend_from_slice(b"localhost");
    block
}

/// Writes the client preface and `frames` to a new HTTP/2 connection, then reads until the
/// server's GOAWAY (its error code) or the end of the connection (`None`).
async fn flood(app: &InProcess, frames: Vec<u8>) -> Option<u32> {
    let mut tls = connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"h2").await;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frames);
    // The server may stop reading once it has had enough: a failed write is fine.
    let _ = tls.write_all(&out).await;
    let read = async {
        loop {
            let (kind, _, _, payload) = next_frame(&mut tls).await?;
            if kind == GOAWAY {
                return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server answers the flood within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_and_continuation_floods_get_goaway() {
    let app = InProcess::start(&[]).await;
    // Rapid reset (CVE-2023-44487): streams opened and cancelled at once, thousands of them.
    let mut frames = Vec::new();
    for n in 0..5000u32 {
        let stream = 2 * n + 1;
        frames.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            stream,
            &get_root_block(),
        ));
        frames.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let code = flood(&app, frames).await;
    // ENHANCE_YOUR_CALM (0xb).
    assert_eq!(code, Some(0xb), "rapid reset");

    // CONTINUATION flood (CVE-2024-27316 and kin): one header block that never ends.
    let mut frames = frame(HEADERS, 0, 1, &get_root_block());
    let filler = vec![0x40u8; 16 * 1024 - 9];
    for _ in 0..2000 {
        frames.extend(frame(CONTINUATION, 0, 1, &filler));
    }
    let code = flood(&app, frames).await;
    assert!(code.is_some(), "a CONTINUATION flood ends in a GOAWAY");

    // The service is unharmed, and says what it did.
    assert_eq!(app.get("/health").await.status(), 200);
    let counted = || async {
        app.scrape().await.get(
            "glassbox_connections_closed_total",
            &[("reason", "protocol_error")],
        )
    };
    eventually("both connections counted", || async {
        counted().await == Some(2.0)
    })
    .await;
    testkit::drill(
        "rapid reset (5,000 streams opened and reset) and CONTINUATION flood",
        "GOAWAY, counted as protocol_error; the service keeps answering",
        &format!(
            "GOAWAY 0xb (ENHANCE_YOUR_CALM); GOAWAY {:#x}; closed protocol_error {}; /health 200",
            code.unwrap_or_default(),
            counted().await.unwrap_or_default()
        ),
    );
}

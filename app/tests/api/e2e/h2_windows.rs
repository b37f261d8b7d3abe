//! `--h2-stream-window` and `--h2-connection-window` are what glassbox announces to an HTTP/2
//! client (read with nghttp2's `nghttp -v`, which prints the frames it receives).

use std::process::Command;

use testkit::{Process, need};

use super::slow_clients::{
    END_HEADERS, END_STREAM, GOAWAY, HEADERS, RST_STREAM, SETTINGS, frame, next_frame,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http2_windows_announced_are_the_flags() {
    let nghttp = need(
        "nghttp",
        ".ci/run installs it (apt-get install nghttp2-client)",
    );
    let app = Process::spawn(&[
        "--h2-stream-window",
        "4MiB",
        "--h2-connection-window",
        "8MiB",
    ])
    .await;
    let url = app.url("/");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(nghttp).args(["-nv", &url]).output().unwrap()
    })
    .await
    .unwrap();
    let frames = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{frames}");
    assert!(
        frames.contains("[SETTINGS_INITIAL_WINDOW_SIZE(0x04):4194304]"),
        "the stream window:\n{frames}"
    );
    // The connection window starts at the protocol's 65,535 bytes and is raised at once.
    let increment = (8u64 << 20) - 65_535;
    assert!(
        frames.contains(&format!("(window_size_increment={increment})")),
        "the connection window:\n{frames}"
    );
}

const DATA: u8 = 0;
const ACK: u8 = 0x1;
const WINDOW_UPDATE: u8 = 8;
const FLOW_CONTROL_ERROR: u32 = 3;

/// An HPACK header block of literals never Huffman-coded (RFC 7541), after the indexed
/// `first` fields: each `(static index, value)` as a literal without indexing.
fn header_block(first: &[u8], literals: &[(u8, &str)]) -> Vec<u8> {
    let mut out = first.to_vec();
    for (index, value) in literals {
        if *index < 15 {
            out.push(*index);
        } else {
            out.extend_from_slice(&[0x0f, index - 15]);
        }
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Reads frames until one of `kind` on `stream` (or any stream for GOAWAY; for SETTINGS, not
/// an acknowledgement) arrives, or the connection ends, for at most 10 s; its payload.
async fn wait_for(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    kind: u8,
    stream: u32,
) -> Option<Vec<u8>> {
    let wanted = async {
        loop {
            let (k, flags, id, payload) = next_frame(tls).await?;
            let settings_not_ack = k != SETTINGS || flags & ACK == 0;
            if k == kind && (id == stream || kind == GOAWAY) && settings_not_ack {
                return Some(payload);
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), wanted)
        .await
        .ok()
        .flatten()
}

/// A client that sends request bodies past the windows it was given: the server holds at
/// most the windows' bytes for it (the memory an HTTP/2 connection may cost, as the README
/// says) and ends the stream, or the connection, with FLOW_CONTROL_ERROR. The route does not
/// read its body (a latency fault holds it back), so the windows are all that stops the
/// client: 256 KiB in one burst against 64 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_past_the_windows_is_stopped() {
    use tokio::io::AsyncWriteExt;
    for (stream_window, connection_window, closes) in
        [("65535", "1MiB", false), ("1MiB", "65535", true)]
    {
        let app = testkit::InProcess::start(&[
            "--allow-faults",
            "--h2-stream-window",
            stream_window,
            "--h2-connection-window",
            connection_window,
        ])
        .await;
        let fault = app
            .client
            .put(app.url("/faults/hold"))
            .json(
                &serde_json::json!({"kind": "latency", "route": "/sum-evens", "latency_ms": 5000}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(fault.status(), 201);
        let mut tls =
            super::slow_clients::connect(app.addr, &app.ca, "127.0.0.1".parse().unwrap(), b"h2")
                .await;
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend(frame(SETTINGS, 0, 0, &[])); // none changed
        tls.write_all(&preface).await.unwrap();
        // The server's stream window takes effect once its SETTINGS are acknowledged (frames
        // are taken in order, so the acknowledgement goes first in the burst), and a
        // connection window over the protocol's 65,535 bytes once its WINDOW_UPDATE is out.
        let raised = connection_window != "65535";
        let opened = async {
            let (mut settings, mut update) = (false, !raised);
            while !(settings && update) {
                let (kind, flags, stream, _) = next_frame(&mut tls).await?;
                settings |= kind == SETTINGS && flags & ACK == 0;
                update |= kind == WINDOW_UPDATE && stream == 0;
            }
            Some(())
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), opened)
            .await
            .ok()
            .flatten()
            .expect("the server's SETTINGS and connection window");
        let mut burst = frame(SETTINGS, ACK, 0, &[]);
        let post = header_block(
            &[0x83, 0x87], // :method POST, :scheme https
            &[(4, "/sum-evens"), (1, "localhost"), (31, "text/plain")],
        );
        burst.extend(frame(HEADERS, END_HEADERS, 1, &post));
        let chunk = b"2\n".repeat(8192);
        for _ in 0..16 {
            burst.extend(frame(DATA, 0, 1, &chunk));
        }
        // The server may stop reading once it has ended the connection.
        let _ = tls.write_all(&burst).await;
        if closes {
            let goaway = wait_for(&mut tls, GOAWAY, 0)
                .await
                .expect("a GOAWAY before the connection closes");
            let code = u32::from_be_bytes(goaway[4..8].try_into().unwrap());
            assert_eq!(code, FLOW_CONTROL_ERROR, "past the connection window");
        } else {
            let reset = wait_for(&mut tls, RST_STREAM, 1)
                .await
                .expect("the stream is reset");
            let code = u32::from_be_bytes(reset[..4].try_into().unwrap());
            assert_eq!(code, FLOW_CONTROL_ERROR, "past the stream window");
            // Only that stream ended: the connection serves the next request.
            let get = header_block(&[0x82, 0x87, 0x84], &[(1, "localhost")]);
            tls.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 3, &get))
                .await
                .unwrap();
            let head = wait_for(&mut tls, HEADERS, 3)
                .await
                .expect("an answer on the same connection");
            assert_eq!(head[0], 0x88, ":status 200, indexed");
        }
        testkit::drill(
            &format!(
                "HTTP/2 body past the {} window (256 KiB burst, route not reading)",
                if closes { "connection" } else { "stream" }
            ),
            "the server buffers at most the window, then FLOW_CONTROL_ERROR",
            if closes {
                "GOAWAY(FLOW_CONTROL_ERROR)"
            } else {
                "RST_STREAM(FLOW_CONTROL_ERROR), connection still serving"
            },
        );
    }
}

//! TLS: only the generated CA is needed, other CAs and old protocol versions are refused,
//! and both HTTP versions are offered by ALPN.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use testkit::client::{client_trusting, install_provider, root_store, tls_client_config};
use testkit::exposition::sample;
use testkit::{Endpoint, InProcess, eventually};

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused() {
    let app = InProcess::start(&[]).await;
    let other = tempfile::tempdir().unwrap();
    glassbox::certs::ensure(other.path(), &[]).unwrap();
    let stranger = client_trusting(&other.path().join("ca.crt"));
    let err = stranger
        .get(app.url("/"))
        .send()
        .await
        .expect_err("certificate is not trusted");
    let chain = format!("{err:?}");
    assert!(
        chain.contains("InvalidCertificate(UnknownIssuer)"),
        "{chain}"
    );
    eventually("the failure to be counted", || async {
        let metrics = app.metrics().await;
        sample(
            &metrics,
            r#"glassbox_tls_handshake_failures_total{reason="alert_received"}"#,
        ) == Some(1.0)
    })
    .await;
}

async fn handshake(
    app: &Endpoint,
    config: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(app.addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn tls_12_and_13_with_alpn_h2_http11_and_http10() {
    let app = InProcess::start(&[]).await;
    install_provider();
    for (version, name) in [
        (&rustls::version::TLS12, "TLSv1_2"),
        (&rustls::version::TLS13, "TLSv1_3"),
    ] {
        for alpn in [&b"h2"[..], &b"http/1.1"[..], &b"http/1.0"[..]] {
            let mut config = rustls::ClientConfig::builder_with_protocol_versions(&[version])
                .with_root_certificates(root_store(&app.ca))
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            let stream = handshake(&app, config).await.expect("handshake succeeds");
            let (_, session) = stream.get_ref();
            assert_eq!(format!("{:?}", session.protocol_version().unwrap()), name);
            assert_eq!(session.alpn_protocol(), Some(alpn));
        }
    }
    // HTTP/1.1 over the negotiated stream answers as the contract says.
    let mut config = tls_client_config(&app.ca);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut stream = handshake(&app, config).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(r#"{"result":"success","data":{"message":"Hello, world!"}}"#));
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"glassbox_tls_handshakes_total{version="TLSv1.2",alpn="h2"}"#
        ),
        Some(1.0)
    );
}

/// A TLS 1.1 ClientHello, written out by hand because no maintained TLS library still sends one.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x03, 0x02]); // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    let suites: [u16; 4] = [0xc013, 0xc014, 0x002f, 0x0035]; // ECDHE-RSA/RSA with AES-CBC-SHA
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut ext = Vec::new();
    // server_name: localhost
    let host = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host);
    ext.extend_from_slice(&0u16.to_be_bytes());
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);

    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 framing
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn tls_11_is_refused() {
    let app = InProcess::start(&[]).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut reply),
    )
    .await
    .expect("the server closes the connection");
    // The only answer is a fatal alert record (type 21): no ServerHello (type 22) is sent.
    assert!(!reply.is_empty(), "an alert is sent");
    assert_eq!(reply[0], 21, "alert record, got {reply:?}");
    assert_eq!(reply[5], 2, "fatal");
    // rustls answers handshake_failure (40) or protocol_version (70): either way, refused.
    assert!(matches!(reply[6], 40 | 70), "alert {}", reply[6]);
    eventually("the refusal to be counted", || async {
        let metrics = app.metrics().await;
        sample(
            &metrics,
            r#"glassbox_tls_handshake_failures_total{reason="peer_incompatible"}"#,
        ) == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn plain_http_is_not_served() {
    let app = InProcess::start(&[]).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut reply),
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&reply).contains("Hello"),
        "{reply:?}"
    );
}

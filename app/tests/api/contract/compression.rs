//! Large text responses are compressed by `Accept-Encoding` (gzip, br, zstd) and decode to
//! what an uncompressed request gets; the seed endpoints' small bodies never are.

use std::io::Read;

use testkit::{Endpoint, InProcess, Process};

/// `GET path` asking for `encoding`: the `Content-Encoding` answered, and the body decoded.
async fn fetch(app: &Endpoint, path: &str, encoding: &str) -> (Option<String>, String, bool) {
    let response = app
        .client
        .get(app.url(path))
        .header("accept-encoding", encoding)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let used = header("content-encoding");
    let varies = header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding"));
    let bytes = response.bytes().await.unwrap();
    let mut text = String::new();
    match used.as_deref() {
        None => text = String::from_utf8(bytes.to_vec()).unwrap(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(&bytes[..], 4096)
                .read_to_string(&mut text)
                .unwrap();
        }
        Some("zstd") => text = String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap(),
        Some(other) => panic!("{path}: unexpected encoding {other}"),
    }
    (used, text, varies)
}

#[tokio::test]
async fn metrics_in_gzip_decode_to_the_plain_exposition() {
    let app = InProcess::start(&[]).await;
    app.get("/").await;
    let (used, gzipped, varies) = fetch(&app, "/metrics", "gzip").await;
    assert_eq!(used.as_deref(), Some("gzip"));
    assert!(
        varies,
        "caches are told the body depends on Accept-Encoding"
    );
    let (used, plain, _) = fetch(&app, "/metrics", "identity").await;
    assert_eq!(used, None);
    // The counters move between the two scrapes; the families and series do not.
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_owned()))
            .filter(|name| !name.starts_with("glassbox_process") && !name.starts_with("process_"))
            .collect()
    };
    let (g, p) = (names(&gzipped), names(&plain));
    assert!(g.len() > 50, "{gzipped}");
    assert!(
        g.iter().all(|n| p.contains(n)),
        "every gzipped series is in the plain scrape"
    );
}

#[tokio::test]
async fn every_large_text_route_speaks_gzip_br_and_zstd() {
    // The real binary, so `/logs` has lines to send.
    let app = Process::spawn(&[]).await;
    for _ in 0..20 {
        app.get("/").await;
    }
    for path in [
        "/metrics",
        "/openapi.json",
        "/status",
        "/dashboard",
        "/dashboard/app.js",
        "/dashboard/data",
        "/logs",
    ] {
        let (_, plain, _) = fetch(&app, path, "identity").await;
        for encoding in ["gzip", "br", "zstd"] {
            let (used, text, _) = fetch(&app, path, encoding).await;
            assert_eq!(used.as_deref(), Some(encoding), "{path}");
            if path == "/openapi.json" || path.starts_with("/dashboard/app") || path == "/dashboard"
            {
                assert_eq!(text, plain, "{path} in {encoding}");
            } else {
                assert!(!text.is_empty(), "{path} in {encoding}");
            }
        }
    }
}

#[tokio::test]
async fn seed_endpoints_are_never_compressed() {
    let app = InProcess::start(&[]).await;
    for path in [
        "/",
        "/code/200",
        "/fibonacci/400/",
        "/factorial/400/",
        "/health",
    ] {
        let (used, _, _) = fetch(&app, path, "gzip, br, zstd").await;
        assert_eq!(used, None, "{path}");
    }
}

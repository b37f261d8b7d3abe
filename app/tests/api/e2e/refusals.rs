//! Refusals reach real clients. Debian's curl speaks HTTP/2 to any HTTPS server that offers
//! it, and curl 7.88 takes the `RST_STREAM` a server sends after answering a request whose
//! body it did not read for an error (exit 92, no status). Every refusal must arrive whole
//! (415, 400, 404 and 405 on a POST, 413, the 503 of a shed request, the 507 of a full disk),
//! over HTTP/2 and HTTP/1.1, with a small body and with one larger than a TLS record. Before
//! the drain of unread bodies, curl lost answers over HTTP/2: one run in five one at a time,
//! one to three in a hundred with eight at once (exit 92, no status).

use std::path::Path;

use futures_util::StreamExt;

use testkit::disk::Tmpfs;
use testkit::{InProcess, which};

/// Times each refusal is tried each way.
const TIMES: usize = 100;
/// curl processes running at once.
const PARALLEL: usize = 8;

/// One refusal: a POST with `content_type` to `path`, expected to get `status`.
struct Refusal {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    status: u16,
}

/// Runs curl `TIMES` times, each a process of its own as a user's shell would (a new
/// connection each time), and returns each run's status and exit code.
async fn curl_times(
    ca: &Path,
    url: &str,
    http: &str,
    content_type: &str,
    body: &Path,
) -> Vec<(u16, i32)> {
    let once = || async {
        let output = tokio::process::Command::new("curl")
            .args(["--silent", "--output", "/dev/null", http, "--cacert"])
            .arg(ca)
            .args(["--max-time", "30", "--header"])
            .arg(format!("Content-Type: {content_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["--write-out", "%{http_code}", url])
            .output()
            .await
            .expect("curl runs");
        let code = String::from_utf8_lossy(&output.stdout).parse().unwrap_or(0);
        (code, output.status.code().unwrap_or(-1))
    };
    futures_util::stream::iter((0..TIMES).map(|_| once()))
        .buffer_unordered(PARALLEL)
        .collect()
        .await
}

/// Every refusal `app` should make, `TIMES` times each way: HTTP/2 and HTTP/1.1, a 17-byte
/// and a 20 KB body. Returns what went wrong, if anything.
async fn check(
    app: &InProcess,
    refusals: &[Refusal],
    dir: &Path,
    rows: &mut Vec<(String, String, String)>,
) -> Vec<String> {
    let small = dir.join("small");
    let large = dir.join("large");
    std::fs::write(&small, b"not what you want").unwrap();
    std::fs::write(&large, vec![b'x'; 20 * 1024]).unwrap();
    let mut wrong = Vec::new();
    for refusal in refusals {
        for http in ["--http2", "--http1.1"] {
            for body in [&small, &large] {
                let got = curl_times(
                    &app.ca,
                    &app.url(refusal.path),
                    http,
                    refusal.content_type,
                    body,
                )
                .await;
                let right = got
                    .iter()
                    .filter(|&&(code, exit)| code == refusal.status && exit == 0)
                    .count();
                let bytes = std::fs::metadata(body).unwrap().len();
                rows.push((
                    format!("curl {http}: {}, {bytes}-byte body", refusal.name),
                    format!("{TIMES} of {TIMES} get {}, no curl error", refusal.status),
                    format!("{right} of {}", got.len()),
                ));
                if got.len() != TIMES || right != TIMES {
                    let mut outcomes = got.clone();
                    outcomes.sort_unstable();
                    outcomes.dedup();
                    wrong.push(format!(
                        "{} ({http}, {} bytes): {right} of {TIMES} got {} with no curl error; \
                         outcomes (status, curl exit): {outcomes:?}",
                        refusal.name, bytes, refusal.status,
                    ));
                }
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_reaches_curl_over_http2_and_http1() {
    assert!(
        which("curl").is_some(),
        "curl is needed (.ci/run installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let app = InProcess::start(&[]).await;
    let mut rows = Vec::new();
    let mut wrong = check(
        &app,
        &[
            Refusal {
                name: "415 from /messages",
                path: "/messages",
                content_type: "text/plain",
                status: 415,
            },
            Refusal {
                name: "400 from /randomize",
                path: "/randomize",
                content_type: "text/plain",
                status: 400,
            },
            Refusal {
                name: "400 from /sum-evens",
                path: "/sum-evens",
                content_type: "application/json",
                status: 400,
            },
            Refusal {
                name: "404 for a POST",
                path: "/no-such-route",
                content_type: "application/json",
                status: 404,
            },
            Refusal {
                name: "405 for a POST",
                path: "/",
                content_type: "application/json",
                status: 405,
            },
        ],
        dir.path(),
        &mut rows,
    )
    .await;

    // 413: the limit below both bodies.
    let strict = InProcess::start(&["--max-body-bytes", "16"]).await;
    wrong.extend(
        check(
            &strict,
            &[Refusal {
                name: "413 from /messages",
                path: "/messages",
                content_type: "application/json",
                status: 413,
            }],
            dir.path(),
            &mut rows,
        )
        .await,
    );

    // 503: the one permit is held by a slow request from this same client.
    let full = InProcess::start(&["--max-concurrency", "1"]).await;
    let holder = full.get_in_background("/sleep/50000", 1).await;
    assert_eq!(full.status().await["limits"]["permits_in_use"], 1);
    wrong.extend(
        check(
            &full,
            &[Refusal {
                name: "503 (shed) from /messages",
                path: "/messages",
                content_type: "application/json",
                status: 503,
            }],
            dir.path(),
            &mut rows,
        )
        .await,
    );
    holder.abort();

    // 503: no room in the body memory for an upload's two spool blocks.
    let no_room = InProcess::start(&["--max-buffered-bytes", "1048576"]).await;
    wrong.extend(
        check(
            &no_room,
            &[Refusal {
                name: "503 (body memory) from /sum-evens",
                path: "/sum-evens",
                content_type: "text/plain",
                status: 503,
            }],
            dir.path(),
            &mut rows,
        )
        .await,
    );
    // Each of those 503s is counted as the bound that refused it.
    let metrics = no_room.scrape().await;
    let answered = |status: &str| metrics.answered("/sum-evens", status);
    let overloads = metrics.sum(
        "glassbox_overloads_total",
        &[("route", "/sum-evens"), ("bound", "body_memory")],
    );
    assert!(
        overloads > 0.0 && overloads == answered("503"),
        "{overloads}"
    );

    // 507: the data directory is a full tmpfs (needs root; skipped with a message otherwise).
    let full_disk = tempfile::tempdir().unwrap();
    if let Some(tmpfs) = Tmpfs::mount(&full_disk.path().join("data"), 16) {
        // No minimum: the disk itself refuses (ENOSPC), the last line of defence.
        let app = InProcess::start_in(full_disk, &["--min-free-disk", "0"]).await;
        let filler = tmpfs.fill("filler");
        wrong.extend(
            check(
                &app,
                &[Refusal {
                    name: "507 (disk full) from /sum-evens",
                    path: "/sum-evens",
                    content_type: "text/plain",
                    status: 507,
                }],
                dir.path(),
                &mut rows,
            )
            .await,
        );
        let left: Vec<_> = std::fs::read_dir(app.data_dir().join("tasks/payloads"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "refused uploads left {left:?}");
        std::fs::remove_file(filler).unwrap();
        drop(app.stop().await);
        drop(tmpfs);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (scenario, bound, observed) in rows {
        testkit::drill(&scenario, &bound, &observed);
    }
}

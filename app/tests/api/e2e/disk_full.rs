//! The data directory on a small tmpfs that fills up and empties again (mounted by the test,
//! so root only: skipped with a message otherwise): writes that would cross `--min-free-disk`
//! get 507 and leave nothing; while writes fail or are refused, `/health` says so; once there is
//! room again, the embedded store and queue take writes without a restart.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::disk::Tmpfs;
use testkit::{InProcess, eventually};

async fn post_message(app: &InProcess, message: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/messages"))
        .json(&json!({ "message": message }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn post_sum(app: &InProcess, text: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/sum-evens"))
        .header("content-type", "text/plain")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Free bytes on the filesystem of `path`, as `stat -f` reports them.
fn free_bytes(path: &std::path::Path) -> u64 {
    let output = std::process::Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(path)
        .output()
        .expect("stat runs");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    fields.next().unwrap() * fields.next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_would_cross_min_free_disk_get_507_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("data"), 32) else {
        return;
    };
    let app = InProcess::start_in(dir, &["--min-free-disk", "8MiB"]).await;
    assert_eq!(post_message(&app, "before").await.0, 201);
    let filler = tmpfs.fill_leaving("filler", 6 << 20);
    let insufficient = json!({"error": "insufficient storage"});

    let (status, body) = post_message(&app, "a message").await;
    assert_eq!((status, &body), (507, &insufficient));
    let (status, body) = post_sum(&app, "2 4 6").await;
    assert_eq!((status, &body), (507, &insufficient));
    let png = crate::contract::tasks::distinct_png(20, 20).0;
    let (status, body) = crate::contract::tasks::Api(&app)
        .submit("image/png", png)
        .await;
    assert_eq!((status.as_u16(), &body), (507, &insufficient));
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 503, "{body}");
    let checks = &body["data"]["checks"];
    assert_eq!(checks["store"]["status"], "fail", "{body}");
    assert_eq!(checks["queue"]["status"], "fail", "{body}");
    assert!(
        checks["queue"]["error"]
            .as_str()
            .unwrap()
            .contains("--min-free-disk"),
        "{body}"
    );
    let payloads: Vec<_> = std::fs::read_dir(app.data_dir().join("tasks/payloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(payloads.is_empty(), "refused writes left {payloads:?}");

    // An upload that starts with room and runs past the minimum on the way: 507, removed.
    std::fs::remove_file(&filler).unwrap();
    let filler = tmpfs.fill_leaving("filler", 12 << 20);
    eventually("/health to pass with 12 MiB free", || async {
        app.get_json("/health").await.0 == 200
    })
    .await;
    // Chunked, so no Content-Length warns ahead: 8 MiB in 64 KiB pieces.
    let chunks = (0..128).map(|_| Ok::<_, std::io::Error>("2 4 6 8\n".repeat(8192)));
    let response = app
        .client
        .post(app.url("/sum-evens"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 507);
    assert_eq!(response.json::<Value>().await.unwrap(), insufficient);
    let payloads: Vec<_> = std::fs::read_dir(app.data_dir().join("tasks/payloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(payloads.is_empty(), "the refused upload left {payloads:?}");

    std::fs::remove_file(filler).unwrap();
    eventually("/health to pass again", || async {
        app.get_json("/health").await.0 == 200
    })
    .await;
    assert_eq!(post_message(&app, "after").await.0, 201);
    assert_eq!(post_sum(&app, "2 4 6").await.0, 201);
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the service stops");
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_and_queue_heal_after_the_disk_was_full() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("data"), 16) else {
        return;
    };
    // No minimum, and no client's share of the room: the disk itself fills up.
    let app = InProcess::start_in(dir, &["--min-free-disk", "0", "--client-share", "1"]).await;
    assert_eq!(post_message(&app, "before").await.0, 201);
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200, "{body}");

    // A message that fits the free space statvfs reports, but not with the pages the
    // database writes around it: the commit meets ENOSPC (the disk check before a write is
    // only a guard; another process can fill the disk between check and write).
    let filler = tmpfs.fill_leaving("filler", 64 * 1024);
    let free = free_bytes(&app.data_dir());
    let (status, body) = post_message(&app, &"m".repeat(free as usize - 1024)).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["data"]["checks"]["store"]["status"], "fail", "{body}");

    // Room again: everything works, with no restart.
    std::fs::remove_file(filler).unwrap();
    eventually("/health to pass again", || async {
        app.get_json("/health").await.0 == 200
    })
    .await;
    let (status, body) = post_message(&app, "after").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_sum(&app, "1 2 3 4").await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    eventually("the sum to finish", || async {
        app.get_json(&format!("/sum-evens/{token}/status")).await.1["status"] == "finished"
    })
    .await;
    let (status, body) = app.get_json(&format!("/sum-evens/{token}/result")).await;
    assert_eq!((status, &body["sum"]), (200, &json!("6")), "{body}");
    let (status, _) = app
        .get_json(&format!(
            "/messages/{}",
            crate::contract::messages::sha256_hex("before")
        ))
        .await;
    assert_eq!(
        status, 200,
        "what was kept before the disk filled is still there"
    );
    let left: Vec<_> = std::fs::read_dir(app.data_dir().join("tasks/payloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "partial uploads left: {left:?}");
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the service stops");
    drop(tmpfs);
}

/// `POST /messages` with `message`, by `client`: the status.
async fn post_from(app: &InProcess, client: &reqwest::Client, message: String) -> u16 {
    let response = client
        .post(app.url("/messages"))
        .json(&json!({ "message": message }))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// One address storing message after message holds its `--client-share` of the room above
/// `--min-free-disk` and no more: then 507, while another address's messages are stored. The
/// store deletes nothing, so its messages stay counted, after a restart too. Before the share,
/// one address filled the disk down to the minimum and every client got 507 from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_s_messages_take_at_most_its_share_of_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("data"), 32) else {
        return;
    };
    let flags = ["--min-free-disk", "4MiB"];
    let app = InProcess::start_in(dir, &flags).await;
    let limits = app.status().await["limits"].clone();
    let room = limits["disk_room_bytes"].as_u64().unwrap();
    let other = testkit::client::client_from(&app.ca, "127.0.0.9".parse().unwrap());
    // 512 KiB messages, each its own, from 127.0.0.1 until it is refused.
    let message = |n: usize| format!("{n:08}{}", "m".repeat(512 * 1024 - 8));
    let mut stored = 0;
    while post_from(&app, &app.client, message(stored)).await == 201 {
        stored += 1;
        assert!(stored < 100, "never refused");
    }
    let held = app.status().await["limits"]["disk_held_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(held, stored as u64 * 512 * 1024);
    assert!(
        held <= room / 2 + 512 * 1024 && stored >= 8,
        "{stored} messages ({held} bytes) of a room of {room}"
    );
    // A message it already stored is still answered (nothing added), another address's new
    // one is stored.
    assert_eq!(post_from(&app, &app.client, message(0)).await, 201);
    assert_eq!(post_from(&app, &other, message(1000)).await, 201);
    assert_eq!(post_from(&app, &app.client, message(1001)).await, 507);

    // After a restart its messages count again.
    let dir = tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the service stops");
    let app = InProcess::start_in(dir, &flags).await;
    assert_eq!(
        app.status().await["limits"]["disk_held_bytes"],
        held + 512 * 1024,
        "both addresses' messages"
    );
    assert_eq!(post_from(&app, &app.client, message(1002)).await, 507);
    let other = testkit::client::client_from(&app.ca, "127.0.0.9".parse().unwrap());
    assert_eq!(post_from(&app, &other, message(1003)).await, 201);
    testkit::drill(
        "one address stores 512 KiB messages until refused, on a 32 MiB disk",
        "--client-share (0.5) of the room above --min-free-disk per address, kept across restarts",
        &format!(
            "{stored} stored ({:.1} MB of a {:.1} MB room), then 507; another address's 201, \
             after a restart too",
            held as f64 / 1e6,
            room as f64 / 1e6
        ),
    );
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("the service stops");
    drop(tmpfs);
}

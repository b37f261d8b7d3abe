//! The JSON log lines, as the log file, stdout and `/logs` carry them: one access line per
//! request with its id, the path as sent, the client behind a trusted proxy only, the level
//! filter, one line per ended task, and `/logs`'s filters; no whole capability in any of them.

use serde_json::Value;
use testkit::{Endpoint, Process, eventually};

use super::get_with_id;
use crate::contract::tasks::{Api, refusals, round_trip};

#[tokio::test]
async fn forwarded_addresses_are_ignored_from_untrusted_peers() {
    let mut app = Process::spawn(&["--trusted-proxies", "10.0.0.0/8"]).await;
    let response = app
        .client
        .get(app.url("/"))
        .header("x-forwarded-for", "198.51.100.9")
        .header("x-request-id", "forged-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let logs = app.stop_and_read_logs();
    let line = logs.iter().find(|l| l["request_id"] == "forged-1").unwrap();
    assert!(
        line["client_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(line.get("proxy_addr").is_none());
}

#[tokio::test]
async fn one_json_log_line_per_request_with_its_id() {
    let mut app = Process::spawn(&[]).await;
    let paths = [
        "/",
        "/code/201",
        "/code/418",
        "/code/502",
        "/nope",
        "/sleep/5",
        "/code/204",
    ];
    let mut sent = Vec::new();
    for path in paths {
        let response = app.get(path).await;
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        sent.push((path, response.status().as_u16(), id));
    }
    let stdout_before_stop = app.stdout_lines().len();
    let lines = app.stop_and_read_logs();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "glassbox::access")
        .collect();
    assert_eq!(
        access.len(),
        sent.len(),
        "exactly one access line per request"
    );
    for (path, status, id) in &sent {
        let matching: Vec<_> = access
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "{path}: one line with id {id}");
        let line = matching[0];
        assert_eq!(line["path"], *path);
        assert_eq!(line["status"], *status);
        assert_eq!(line["method"], "GET");
        let level = match status {
            500.. => "ERROR",
            400..=499 => "WARN",
            _ => "INFO",
        };
        assert_eq!(line["level"], level, "{path}");
        assert!(line["latency_ms"].as_f64().is_some());
        assert!(line["bytes"].as_u64().is_some());
        assert!(
            line["client_addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line["user_agent"].is_string());
        assert!(line["route"].is_string());
    }
    let sleep = access.iter().find(|l| l["path"] == "/sleep/5").unwrap();
    assert_eq!(sleep["route"], "/sleep/{ms}");
    assert!(sleep["latency_ms"].as_f64().unwrap() >= 5.0);
    let nope = access.iter().find(|l| l["path"] == "/nope").unwrap();
    assert_eq!(nope["route"], "unmatched");
    let no_content = access.iter().find(|l| l["path"] == "/code/204").unwrap();
    assert_eq!(no_content["bytes"], 0);

    // Lifecycle events are in the file too, and stdout carries the same lines.
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for event in [
        "listening",
        "shutting down",
        "stopped accepting; draining",
        "stopped",
    ] {
        assert!(
            messages.contains(&event),
            "{event} missing from {messages:?}"
        );
    }
    let stdout = app.stdout_lines();
    assert!(stdout.len() >= stdout_before_stop);
    let stdout_access = stdout
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("stdout lines are JSON"))
        .filter(|l| l["target"] == "glassbox::access")
        .count();
    assert_eq!(stdout_access, sent.len());
}

#[tokio::test]
async fn the_log_level_filters_access_lines() {
    // The helper waits for the `listening` event, an info line of glassbox::service.
    let mut app = Process::spawn(&["--log-level", "warn,glassbox::service=info"]).await;
    for path in ["/", "/code/201", "/code/404", "/code/503"] {
        app.get(path).await;
    }
    let lines = app.stop_and_read_logs();
    let statuses: Vec<u64> = lines
        .iter()
        .filter(|l| l["target"] == "glassbox::access")
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec![404, 503],
        "only 4xx (warn) and 5xx (error) lines remain"
    );
}

#[tokio::test]
async fn logs_filter_by_level_route_and_status_with_limits() {
    let app = Process::spawn(&[]).await;
    for i in 0..3 {
        assert_eq!(get_with_id(&app, "/", &format!("ok-{i}")).await, 200);
        assert_eq!(
            get_with_id(&app, "/code/503", &format!("bad-{i}")).await,
            503
        );
        assert_eq!(
            get_with_id(&app, "/code/404", &format!("missing-{i}")).await,
            404
        );
    }
    eventually("the nine lines in the ring", || async {
        let (_, body) = logs(&app, "?route=/code/{code}").await;
        request_ids(&body).len() == 6
    })
    .await;

    let (status, body) = logs(&app, "?level=error").await;
    assert_eq!(status, 200);
    assert_eq!(
        request_ids(&body),
        ["bad-2", "bad-1", "bad-0"],
        "newest first"
    );
    let line = &body["lines"][0]["line"];
    assert_eq!(line["status"], 503);
    assert_eq!(line["route"], "/code/{code}");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(body["capacity"], 2000);

    let (_, body) = logs(&app, "?status=4xx").await;
    assert!(
        request_ids(&body)
            .iter()
            .all(|id| id.starts_with("missing-"))
    );
    let (_, body) = logs(&app, "?status=404&route=%2Fcode%2F%7Bcode%7D&limit=2").await;
    assert_eq!(request_ids(&body), ["missing-2", "missing-1"]);
    let (_, body) = logs(&app, "?level=warn&route=/").await;
    assert!(
        request_ids(&body).is_empty(),
        "GET / answered 200: info lines"
    );
    let (_, body) = logs(&app, "?route=/").await;
    assert_eq!(request_ids(&body).len(), 3);

    // `since` returns only what came after.
    let (_, body) = logs(&app, "?limit=1").await;
    let last = body["last"].as_u64().unwrap();
    assert_eq!(get_with_id(&app, "/", "after").await, 200);
    eventually("the new line", || async {
        let (_, body) = logs(&app, &format!("?since={last}&route=/")).await;
        request_ids(&body) == ["after"]
    })
    .await;

    for (query, error) in [
        (
            "?level=loud",
            "invalid level: loud (one of trace, debug, info, warn, error)",
        ),
        (
            "?status=6xx",
            "invalid status: 6xx (a code such as 404, or a class such as 5xx)",
        ),
        (
            "?status=abc",
            "invalid status: abc (a code such as 404, or a class such as 5xx)",
        ),
        ("?limit=0", "invalid limit: 0 (1 to 1000)"),
        ("?limit=1001", "invalid limit: 1001 (1 to 1000)"),
        ("?limit=-5", "invalid limit: -5 (1 to 1000)"),
        (
            "?limit=99999999999999999999999",
            "invalid limit: 99999999999999999999999 (1 to 1000)",
        ),
        (
            "?since=x",
            "invalid since: x (a sequence number, 0 or more)",
        ),
        ("?route=", "invalid route: empty"),
        ("?level=info&level=warn", "level given more than once"),
        (
            "?verbose=1",
            "unknown parameter: verbose (known: level, route, status, request_id, limit, since)",
        ),
    ] {
        let (status, body) = logs(&app, query).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{query}"
        );
    }
    let (status, body) = app.get_json("/dashboard/data?since=-1").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "invalid since: -1 (a sequence number, 0 or more)"
    );
}

async fn logs(app: &Endpoint, query: &str) -> (u16, Value) {
    app.get_json(&format!("/logs{query}")).await
}

fn request_ids(body: &Value) -> Vec<String> {
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"]["request_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_path_is_logged_as_sent_and_labelled_by_its_template() {
    let mut app = Process::spawn(&[]).await;
    for path in ["/fibonacci/1", "/fibonacci/2/", "/ackermann/1/2"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let logs = app.stop_and_read_logs();
    let line = |path: &str| {
        logs.iter()
            .find(|l| l["target"] == "glassbox::access" && l["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}"))
            .clone()
    };
    assert_eq!(line("/fibonacci/1")["route"], "/fibonacci/{n}/");
    assert_eq!(line("/fibonacci/2/")["route"], "/fibonacci/{n}/");
    assert_eq!(line("/ackermann/1/2")["route"], "/ackermann/{m}/{n}/");
}

#[tokio::test]
async fn every_ended_task_logs_its_wait_execution_and_lead() {
    let mut app = Process::spawn(&["--seed", "7", "--workers", "2"]).await;
    let api = Api(&app);
    round_trip(&api).await;
    refusals(&api).await;
    let logs = app.stop_and_read_logs();
    let finished: Vec<&Value> = logs
        .iter()
        .filter(|l| l["message"] == "task finished")
        .collect();
    assert_eq!(finished.len(), 3);
    for line in &finished {
        let (wait, exec, lead) = (
            line["wait_ms"].as_u64().unwrap(),
            line["execution_ms"].as_u64().unwrap(),
            line["lead_ms"].as_u64().unwrap(),
        );
        assert_eq!(wait + exec, lead, "{line}");
        assert_eq!(line["kind"], "randomize");
        assert_eq!(line["attempts"], 1);
    }
    assert_eq!(
        finished
            .iter()
            .filter(|l| l["outcome"] == "errored")
            .count(),
        1
    );
    assert_eq!(finished.iter().filter(|l| l["level"] == "WARN").count(), 1);
}

/// SPEC.md, "Logs keep no capabilities": after a client's message and tasks, read back,
/// polled and fetched (and a token sent to a mistyped route), no log line anywhere holds one
/// of its tokens or its digest whole; request-derived fields are bounded.
#[tokio::test]
async fn no_log_line_holds_a_whole_token_or_digest() {
    let mut app = Process::spawn(&["--workers", "2"]).await;
    let messages = crate::contract::messages::Target::direct(&app);
    let (status, body) = messages
        .post_json(&serde_json::json!({"message": "victim secret 4711"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let digest = body["digest"].as_str().unwrap().to_owned();
    assert_eq!(messages.get(&digest).await.0, 200);
    let images = Api(&app);
    let image = images
        .token(&crate::contract::tasks::distinct_png(40, 30).0)
        .await;
    assert_eq!(images.wait_until_done(&image).await, "finished");
    assert_eq!(images.result(&image).await.status(), 200);
    let sums = crate::contract::sum_evens::Api(&app);
    let sum = sums.token(b"1 2 3 4".to_vec()).await;
    sums.done(&sum).await;
    assert_eq!(sums.result(&sum).await.0, 200);
    assert_eq!(
        app.get(&format!("/randomise/{image}/result"))
            .await
            .status(),
        404
    );
    // Long request-derived fields.
    let response = app
        .client
        .get(app.url(&format!("/{}", "x".repeat(4000))))
        .header("user-agent", "u".repeat(6000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let secrets = [digest.as_str(), image.as_str(), sum.as_str()];
    let cut = |secret: &str| format!("{}…", &secret[..8]);
    // Lines reach /logs in batches: wait for the last of them.
    eventually("every request's line in /logs", || async {
        let served = logs(&app, "?limit=1000").await.1.to_string();
        secrets.iter().all(|secret| served.contains(&cut(secret)))
    })
    .await;
    let (code, served) = logs(&app, "?limit=1000").await;
    assert_eq!(code, 200);
    let served = served.to_string();
    let stdout = app.stdout_lines();
    let file = app.stop_and_read_logs();
    let file_text: Vec<String> = file.iter().map(Value::to_string).collect();
    for (sink, text) in [
        ("/logs", served.clone()),
        ("stdout", stdout.join("\n")),
        ("the log file", file_text.join("\n")),
    ] {
        for secret in secrets {
            assert!(!text.contains(secret), "{sink} holds {secret}");
            // What it does hold: the first eight digits.
            assert!(
                text.contains(&format!("{}…", &secret[..8])),
                "{sink}: {secret}"
            );
        }
    }
    let longest = stdout.iter().map(String::len).max().unwrap();
    assert!(longest < 2048, "a line of {longest} bytes");
    let finished: Vec<&Value> = file
        .iter()
        .filter(|l| l["message"] == "task finished")
        .collect();
    assert_eq!(finished.len(), 2);
    for line in finished {
        assert_eq!(line["token"].as_str().unwrap().chars().count(), 9, "{line}");
    }
}

/// Log files roll by size as well as by day, and all of them together stay under
/// `--log-max-total-bytes`: the oldest go first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_roll_by_size_within_a_total_cap() {
    const FILE: u64 = 64 * 1024;
    const TOTAL: u64 = 256 * 1024;
    let mut app = Process::spawn(&[
        "--log-max-file-bytes",
        &FILE.to_string(),
        "--log-max-total-bytes",
        &TOTAL.to_string(),
    ])
    .await;
    // About 300 bytes of access line each: some 1.5 MB of log in all.
    let long_agent = "a".repeat(200);
    for _ in 0..5000 {
        let status = app
            .client
            .get(app.url("/"))
            .header("user-agent", &long_agent)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let dir = app.dir.path().join("logs");
    let sizes = || -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let len = e.metadata().unwrap().len();
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect();
        files.sort();
        files
    };
    let lines = app.stop_and_read_logs();
    let files = sizes();
    // When a file is begun the older ones are trimmed to the cap. A file holds whole lines
    // up to its size and the line that would pass it begins the next part, however many
    // lines the writer batched together.
    let (newest, older) = files.split_last().expect("log files");
    let kept: u64 = older.iter().map(|(_, len)| len).sum();
    assert!(
        kept <= TOTAL,
        "{kept} bytes before the newest file: {files:?}"
    );
    assert!(files.iter().all(|(_, len)| *len <= FILE), "{files:?}");
    assert!(newest.1 > 0, "{files:?}");
    assert!(files.len() >= 3, "{files:?}");
    assert!(
        files.iter().any(|(name, _)| name.contains(".part")),
        "{files:?}"
    );
    // What is kept is the newest: the last request's line is there, the first ones are not.
    let access = lines
        .iter()
        .filter(|l| l["target"] == "glassbox::access")
        .count();
    assert!(access > 0 && access < 5000, "{access} access lines kept");
}

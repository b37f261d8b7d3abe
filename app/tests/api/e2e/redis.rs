//! A real `redis-server` on a free port: the message store and the task queue on Redis, with
//! replicas and `glassbox worker` processes sharing it, and Redis going away and coming back.

use reqwest::StatusCode;
use serde_json::json;
use testkit::servers::Redis;
use testkit::{Process, eventually};

use super::finished_lines;
use crate::contract::messages::{FOO, Target, sha256_hex, suite};
use crate::contract::sum_evens::{self, MIB, generated};
use crate::contract::tasks::{self, assert_randomized, distinct_png, expiry, refusals, round_trip};

#[tokio::test]
async fn the_redis_store_keeps_the_contract_and_replicas_share_it() {
    let redis = Redis::start();
    let url = redis.url();
    let app = Process::spawn(&["--store", &url]).await;
    suite(&Target::direct(&app)).await;
    let status = app.status().await;
    assert_eq!(status["store"]["backend"], "redis");
    assert_eq!(
        status["store"]["location"],
        format!("redis://127.0.0.1:{}/0", redis.port)
    );
    assert_eq!(status["store"]["messages"], 8);

    // A second replica on the same Redis sees what the first stored, and the other way round.
    let other = Process::spawn(&["--store", &url]).await;
    let other_target = Target::direct(&other);
    assert_eq!(
        other_target.get(FOO).await,
        (StatusCode::OK, json!({"message": "foo"}))
    );
    let (status, body) = other_target
        .post_json(&json!({"message": "from the other replica"}))
        .await;
    assert_eq!(status, 201);
    let digest = body["digest"].as_str().unwrap();
    assert_eq!(Target::direct(&app).get(digest).await.0, 200);
    assert_eq!(
        app.scrape()
            .await
            .get("glassbox_store_messages", &[("backend", "redis")]),
        Some(9.0)
    );
}

#[tokio::test]
async fn redis_going_away_is_a_503_and_the_service_heals_when_it_returns() {
    let mut redis = Redis::start();
    let mut app = Process::spawn(&["--store", &redis.url(), "--store-timeout", "500ms"]).await;
    let target = Target::direct(&app);
    let (status, _) = target.post_json(&json!({"message": "before"})).await;
    assert_eq!(status, 201);

    redis.stop();
    let (status, body) = target.post_json(&json!({"message": "during"})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "store unavailable"})
        )
    );
    let response = app
        .client
        .get(app.url(&format!("/messages/{}", sha256_hex("before"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let refused_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 503);
    assert_eq!(health["data"]["health"], "unhealthy");
    assert_eq!(health["data"]["checks"]["store"]["status"], "fail");
    assert_eq!(health["data"]["checks"]["certificate"]["status"], "pass");
    let status = app.status().await;
    assert!(status["store"]["error"].is_string(), "{status}");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("glassbox_store_errors_total{")
                && l.contains(r#"operation="put""#)
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    // The service itself is fine meanwhile.
    assert_eq!(app.get("/").await.status(), 200);

    redis.restart();
    eventually("the store to recover", || async {
        target.post_json(&json!({"message": "after"})).await.0 == 201
    })
    .await;
    assert_eq!(app.get_json("/health").await.0, 200);
    // The append-only file kept what was acknowledged before the outage.
    assert_eq!(
        target.get(&sha256_hex("before")).await,
        (StatusCode::OK, json!({"message": "before"}))
    );
    assert_eq!(
        target.get(&sha256_hex("during")).await.0,
        404,
        "the refused write was not kept"
    );
    // The 503's own access line says why, next to its request id; no other line does.
    let lines = app.stop_and_read_logs();
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["request_id"] == refused_id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let (line, error) = (refused[0], refused[0]["error"].as_str().unwrap_or_default());
    assert_eq!(
        (line["status"].as_u64(), line["level"].as_str()),
        (Some(503), Some("ERROR"))
    );
    assert!(
        error.starts_with("store unavailable: redis get: "),
        "{line}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["message"] != "store operation failed"),
        "no line of its own for the cause"
    );
    let health_line = lines
        .iter()
        .find(|l| l["route"] == "/health" && l["status"] == 503)
        .expect("the failed /health request's line");
    assert!(
        health_line["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unhealthy: store: "),
        "{health_line}"
    );
}

/// Redis at its `maxmemory` (policy `noeviction`, as the compose file sets) refuses writes:
/// a message and a task upload get 507, as on a full disk, reads go on, `/health` fails, the
/// store's errors are counted as `full`; once Redis has room, writes succeed again with no
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_is_a_507_and_the_service_heals_when_it_has_room() {
    let redis = Redis::start();
    let url = redis.url();
    let app = Process::spawn(&["--store", &url, "--queue", &url]).await;
    let target = Target::direct(&app);
    assert_eq!(target.post_json(&json!({"message": "before"})).await.0, 201);

    // One byte: whatever Redis holds is over it.
    redis.config_set("maxmemory", "1");
    let refused = app
        .client
        .post(app.url("/messages"))
        .json(&json!({"message": "while full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(
        refused.headers().get("retry-after").is_none(),
        "a full store is no reason to try again at once"
    );
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "insufficient storage"})
    );
    let upload = app
        .client
        .post(app.url("/sum-evens"))
        .header("content-type", "text/plain")
        .body("1 2 3 4\n")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 507, "a task upload while Redis is full");
    assert_eq!(
        target.get(&sha256_hex("before")).await,
        (StatusCode::OK, json!({"message": "before"})),
        "reads go on"
    );
    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 503);
    assert_eq!(health["data"]["checks"]["store"]["status"], "fail");
    let full_puts = app.scrape().await.get(
        "glassbox_store_errors_total",
        &[("backend", "redis"), ("operation", "put"), ("kind", "full")],
    );
    assert_eq!(full_puts, Some(1.0));
    let payloads: Vec<_> = std::fs::read_dir(app.data_dir().join("tasks/payloads"))
        .map(|dir| dir.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(payloads.is_empty(), "a refused task left {payloads:?}");

    redis.config_set("maxmemory", "0");
    eventually("the store to take writes again", || async {
        target.post_json(&json!({"message": "after"})).await.0 == 201
    })
    .await;
    eventually("/health to pass again", || async {
        app.get_json("/health").await.0 == 200
    })
    .await;
    // A server that refuses writes when full loses nothing: no warning about eviction.
    assert!(
        !app.stdout_lines()
            .iter()
            .any(|l| l.contains("maxmemory-policy")),
        "warned about a Redis that does not evict"
    );
}

/// A Redis that evicts keys at its `maxmemory` would drop messages and tasks without an error:
/// the service says so at start, once for each use it makes of that server.
#[tokio::test]
async fn a_redis_that_evicts_keys_is_warned_about_at_start() {
    let redis = Redis::start();
    redis.config_set("maxmemory", "100mb");
    redis.config_set("maxmemory-policy", "allkeys-lru");
    let url = redis.url();
    let app = Process::spawn(&["--store", &url, "--queue", &url]).await;
    let warnings = || {
        app.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| {
                l["level"] == "WARN"
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("set maxmemory-policy noeviction"))
            })
            .collect::<Vec<_>>()
    };
    eventually("a warning for the store and one for the queue", || async {
        warnings().len() == 2
    })
    .await;
    for line in warnings() {
        assert_eq!(line["policy"], "allkeys-lru", "{line}");
        assert_eq!(line["maxmemory"], 100 << 20, "{line}");
        assert_eq!(
            line["location"],
            format!("redis://127.0.0.1:{}/0", redis.port)
        );
    }
}

/// A store fault on the Redis store is the outage above as every view sees it: the same 503
/// and body, the same failing health check, the same error metric and access line (with the
/// fault's name where Redis' own error was), and the same healing when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fault_on_redis_looks_like_redis_going_away() {
    let redis = Redis::start();
    let mut app = Process::spawn(&["--store", &redis.url(), "--allow-faults"]).await;
    let target = Target::direct(&app);
    assert_eq!(target.post_json(&json!({"message": "before"})).await.0, 201);
    let started = app
        .client
        .put(app.url("/faults/redis-down"))
        .json(&json!({"kind": "store"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    assert_eq!(
        target.post_json(&json!({"message": "during"})).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "store unavailable"})
        )
    );
    let response = app
        .client
        .get(app.url(&format!("/messages/{}", sha256_hex("before"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let refused_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    eventually("/health to fail on the store", || async {
        let (code, health) = app.get_json("/health").await;
        code == 503
            && health["data"]["checks"]["store"]["status"] == "fail"
            && health["data"]["checks"]["certificate"]["status"] == "pass"
    })
    .await;
    let scrape = app.scrape().await;
    assert!(
        scrape.sum(
            "glassbox_store_errors_total",
            &[
                ("backend", "redis"),
                ("operation", "put"),
                ("kind", "connection")
            ]
        ) >= 1.0
    );
    assert_eq!(
        app.get("/").await.status(),
        200,
        "the rest is fine meanwhile"
    );

    let ended = app
        .client
        .delete(app.url("/faults/redis-down"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(target.post_json(&json!({"message": "after"})).await.0, 201);
    eventually("/health to pass again", || async {
        app.get_json("/health").await.0 == 200
    })
    .await;
    assert_eq!(
        target.get(&sha256_hex("during")).await.0,
        404,
        "the refused write was not kept"
    );
    let lines = app.stop_and_read_logs();
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["request_id"] == refused_id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 503);
    assert_eq!(
        refused[0]["error"], "store unavailable: redis get: connection: injected fault redis-down",
        "the outage's line, with the fault where Redis' error was"
    );
}

#[tokio::test]
async fn randomize_on_redis_with_worker_processes() {
    let redis = Redis::start();
    let queue = redis.url();
    let app = Process::spawn(&["--queue", &queue]).await;
    let data = app.data_dir();
    let data = data.to_string_lossy();
    let worker_args = ["--queue", &queue, "--seed", "7", "--workers", "2"];
    let worker = Process::spawn_worker(std::path::Path::new(&*data), &worker_args).await;
    let api = tasks::Api(&app);
    round_trip(&api).await;
    refusals(&api).await;

    let status = app.status().await;
    assert_eq!(status["queue"]["backend"], "redis");
    assert_eq!(status["queue"]["workers"], 0, "the service only enqueues");
    assert_eq!(status["queue"]["counts"]["finished"], 2);
    assert_eq!(status["queue"]["counts"]["errored"], 1);
    let api_metrics = app.scrape().await;
    assert_eq!(api_metrics.sum("glassbox_tasks_submitted_total", &[]), 3.0);
    // The worker measures a task just after recording its end, which the service may see first.
    eventually("the worker to have measured every task", || async {
        worker
            .scrape()
            .await
            .sum("glassbox_task_lead_seconds_count", &[])
            == 3.0
    })
    .await;
    let worker_metrics = worker.scrape().await;
    assert_eq!(
        worker_metrics.sum(
            "glassbox_task_lead_seconds_count",
            &[("outcome", "errored")]
        ),
        1.0
    );
    assert_eq!(worker_metrics.sum("glassbox_workers", &[]), 2.0);
    let (code, worker_status) = worker.get_json("/status").await;
    assert_eq!(code, 200);
    assert_eq!(worker_status["data"]["role"], "worker");
    assert_eq!(worker_status["data"]["queue"]["kinds"][0]["finished"], 2);
    let (code, health) = worker.get_json("/health").await;
    assert_eq!(
        (code, &health["data"]["checks"]["queue"]["status"]),
        (200, &json!("pass"))
    );
}

/// The flags of a worker that holds the one task it takes for a minute under a one-second
/// lease: killed, it leaves its task to the reaper.
fn slow_worker(queue: &str) -> [&str; 8] {
    [
        "--queue",
        queue,
        "--workers",
        "1",
        "--task-lease",
        "1s",
        "--randomize-delay",
        "60s",
    ]
}

#[tokio::test]
async fn a_task_whose_worker_is_killed_runs_on_another() {
    let redis = Redis::start();
    let queue = redis.url();
    let app = Process::spawn(&["--queue", &queue]).await;
    let data = app.data_dir();
    let slow = slow_worker(&queue);
    let mut doomed = Process::spawn_worker(&data, &slow).await;
    let api = tasks::Api(&app);
    let (png, raw) = distinct_png(250, 190);
    let token = api.token(&png).await;
    eventually("the doomed worker to take the task", || async {
        api.state(&token).await == "received"
    })
    .await;
    doomed.kill();

    let fast = ["--queue", &queue, "--workers", "1", "--task-lease", "1s"];
    let rescuer = Process::spawn_worker(&data, &fast).await;
    assert_eq!(api.wait_until_done(&token).await, "finished");
    assert_randomized(
        &raw,
        250,
        190,
        &api.result(&token).await.bytes().await.unwrap(),
    );
    let line = finished_lines(&rescuer, 1).await.remove(0);
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["token"], format!("{}…", &token[..8]));
}

#[tokio::test]
async fn an_address_holds_its_share_of_the_queue_on_redis() {
    let redis = Redis::start();
    let queue = redis.url();
    let mut flags = vec!["--queue", &queue];
    flags.extend(tasks::PLACES);
    let app = Process::spawn(&flags).await;
    tasks::queue_places(&app).await;
    assert_eq!(
        redis.command(&["HGET", "glassbox:tasks:waiting", "addr:192.0.2.1"]),
        Some("2".into())
    );
    // Taken, the tasks count at their addresses no more.
    let _worker = Process::spawn_worker(&app.data_dir(), &["--queue", &queue]).await;
    eventually("the worker to run every task", || async {
        app.status().await["queue"]["counts"]["finished"] == 4
    })
    .await;
    assert_eq!(
        redis.command(&["EXISTS", "glassbox:tasks:waiting"]),
        Some("0".into())
    );
}

/// A task its worker died with counts at its address again once it is back in the queue, and
/// only once.
#[tokio::test]
async fn a_requeued_task_takes_its_place_again_on_redis() {
    let redis = Redis::start();
    let queue = redis.url();
    let places = ["--queue-capacity", "4", "--client-share", "0.5"];
    let mut flags = vec!["--queue", &queue];
    flags.extend(places);
    let app = Process::spawn(&flags).await;
    let waiting = || redis.command(&["HGET", "glassbox:tasks:waiting", "addr:127.0.0.1"]);
    let slow = slow_worker(&queue);
    let mut doomed = Process::spawn_worker(&app.data_dir(), &slow).await;
    let api = tasks::Api(&app);
    let (png, _) = distinct_png(60, 60);
    let first = api.token(&png).await;
    eventually("the doomed worker to take the task", || async {
        api.state(&first).await == "received"
    })
    .await;
    assert_eq!(waiting(), None, "a task taken waits no more");
    let second = api.token(&png).await;
    assert_eq!(waiting(), Some("1".into()));
    doomed.kill();
    // The rescuer takes the second task and keeps at it; its reaper puts the first back.
    let _rescuer = Process::spawn_worker(&app.data_dir(), &slow).await;
    eventually("the second task to be taken", || async {
        api.state(&second).await == "received"
    })
    .await;
    eventually("the first task to be queued again", || async {
        redis.command(&["LLEN", "glassbox:tasks:pending"]) == Some("1".into())
    })
    .await;
    assert_eq!(api.state(&first).await, "requested");
    assert_eq!(waiting(), Some("1".into()), "the first task, once");
    let _third = api.token(&png).await;
    let (status, body) = api.submit("image/png", png.clone()).await;
    assert_eq!(status, 503, "two of the address's tasks wait: {body}");
}

#[tokio::test]
async fn queued_redis_tasks_survive_a_service_restart_and_wait_for_workers() {
    let redis = Redis::start();
    let queue = redis.url();
    let mut app = Process::spawn(&["--queue", &queue]).await;
    let (png, _) = distinct_png(60, 60);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(tasks::Api(&app).token(&png).await);
    }
    assert_eq!(
        app.status().await["queue"]["counts"]["depth"],
        3,
        "no worker yet"
    );
    app.kill();
    let app = Process::spawn_in(app.take_dir(), &["--queue", &queue]).await;
    let api = tasks::Api(&app);
    assert_eq!(api.state(&tokens[0]).await, "requested");
    let _worker = Process::spawn_worker(&app.data_dir(), &["--queue", &queue]).await;
    for token in &tokens {
        assert_eq!(api.wait_until_done(token).await, "finished");
    }
}

#[tokio::test]
async fn ended_tasks_expire_on_redis() {
    let redis = Redis::start();
    let queue = redis.url();
    let app = Process::spawn(&["--queue", &queue, "--task-ttl", "1s"]).await;
    let _worker =
        Process::spawn_worker(&app.data_dir(), &["--queue", &queue, "--task-ttl", "1s"]).await;
    expiry(&app, &app.data_dir()).await;
    assert_eq!(app.status().await["queue"]["counts"]["finished"], 0);
}

#[tokio::test]
async fn sums_run_on_redis_workers_too() {
    let redis = Redis::start();
    let queue = redis.url();
    let app = Process::spawn(&["--queue", &queue]).await;
    let _worker = Process::spawn_worker(&app.data_dir(), &["--queue", &queue]).await;
    let api = sum_evens::Api(&app);
    api.check(generated(3 * MIB, 4)).await;
    api.errors_at(b"2 4 x", 4).await;
}

/// A queue fault set on the service holds the `glassbox worker` processes sharing its Redis
/// queue: the pause travels through Redis, and ends when the fault does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_fault_holds_the_worker_processes_on_redis() {
    let redis = Redis::start();
    let queue = redis.url();
    let app = Process::spawn(&["--queue", &queue, "--allow-faults"]).await;
    let _worker =
        Process::spawn_worker(&app.data_dir(), &["--queue", &queue, "--workers", "1"]).await;
    let started = app
        .client
        .put(app.url("/faults/stalled"))
        .json(&json!({"kind": "queue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let mut paths = Vec::new();
    for numbers in ["2 4", "6 8", "10 12"] {
        let response = app
            .client
            .post(app.url("/sum-evens"))
            .header("content-type", "text/plain")
            .body(numbers)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        paths.push(format!(
            "/sum-evens/{}/status",
            body["token"].as_str().unwrap()
        ));
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut states = Vec::new();
    for path in &paths {
        states.push(
            app.get_json(path).await.1["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The one worker may have been waiting in Redis when the fault began: it holds at most
    // one task, unstarted; nothing finishes.
    assert!(
        states.iter().filter(|s| *s == "requested").count() >= 2
            && states.iter().all(|s| s == "requested" || s == "received"),
        "{states:?}"
    );
    let ended = app
        .client
        .delete(app.url("/faults/stalled"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    for path in &paths {
        eventually("the tasks to finish once the fault ended", || async {
            app.get_json(path).await.1["status"] == "finished"
        })
        .await;
    }
}

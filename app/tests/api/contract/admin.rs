//! `--admin-bind`: the operator's routes (metrics, logs, the dashboard) on a listener of their
//! own, and not on the public one; the service's own routes on both; the API on the public one.

use testkit::InProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_routes_are_on_the_admin_listener_only() {
    let app = InProcess::start(&["--admin-bind", "127.0.0.1:0"]).await;
    let admin = app.admin.as_ref().expect("an admin listener");
    for path in ["/metrics", "/logs", "/dashboard", "/dashboard/data"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 404, "{path} on the public listener: {body}");
        assert_eq!(body["error"], "not found", "{path}");
        assert_eq!(
            admin.get(path).await.status(),
            200,
            "{path} on the admin listener"
        );
    }
    for path in ["/status", "/health", "/openapi.json"] {
        assert_eq!(
            app.get(path).await.status(),
            200,
            "{path} on the public listener"
        );
        assert_eq!(
            admin.get(path).await.status(),
            200,
            "{path} on the admin listener"
        );
    }
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(
        admin.get("/").await.status(),
        404,
        "the API is not on the admin listener"
    );
    // A refused operator's route is a 404 like any unknown path: labelled unmatched, so
    // probing the public port makes no series for the admin routes.
    let metrics = admin.metrics().await;
    let series = |route: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .filter(|l| l.contains(&format!("http_route=\"{route}\"")) && l.contains("\"404\""))
            .count()
    };
    assert_eq!(series("/metrics"), 0, "{metrics}");
    assert!(series("unmatched") > 0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_bind_everything_is_on_one_listener() {
    let app = InProcess::start(&[]).await;
    assert!(app.admin.is_none());
    for path in ["/", "/metrics", "/logs", "/dashboard", "/status"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}

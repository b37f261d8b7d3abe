//! The HTTP surface: one module per seed family, plus the service's own endpoints. Every
//! route is registered together with its OpenAPI description, so the document served at
//! `/openapi.json` cannot miss one.

pub mod body;
pub mod dashboard;
pub mod deepgram;
pub mod math;
pub mod messages;
pub mod ops;
pub mod params;
pub mod randomize;
pub mod sum_evens;
pub mod tasks;
pub mod templates;
pub mod worker;

use axum::Router;
use utoipa::OpenApi;
use utoipa::openapi::path::ParameterIn;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::config::Config;
use crate::error;
use crate::middleware;

/// `Content-Type: application/json` for hand-built bodies. A `&str` value would be copied into
/// a new header value on every response; a static one is not.
pub const JSON: axum::http::HeaderValue = axum::http::HeaderValue::from_static("application/json");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "glassbox",
        description = "Five interview services behind one TLS endpoint, with telemetry you can trust. \
            Every response carries `x-request-id`. Unknown paths answer 404 `{\"error\":\"not found\"}`; \
            a known path with the wrong method answers 405 `{\"error\":\"method not allowed\"}` with `Allow`; \
            bodies over the limit answer 413; the seed endpoints answer 503 with `Retry-After` when the \
            concurrency limit is reached.",
        license(name = "MIT"),
    ),
    tags(
        (name = "deepgram", description = "The Deepgram seed (Tornado): hello, sleep, code, work"),
        (name = "math", description = "The Sanic seed: exact big integers as decimal strings"),
        (name = "total", description = "The DLG seed (Quart): the sum of a slow numbers API"),
        (name = "messages", description = "The Paxos seed: messages kept under their SHA-256 digest"),
        (name = "tasks", description = "The SpaceTime seed: asynchronous tasks with tokens"),
        (name = "observability", description = "The service's own status, health, metrics and this document"),
    )
)]
struct ApiDoc;

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(deepgram::routes())
        .merge(math::routes())
        .merge(messages::routes())
        .merge(randomize::routes())
        .merge(sum_evens::routes())
        .merge(ops::routes())
        .merge(dashboard::routes())
}

/// What the service serves: the router inside [`middleware::Observe`].
pub type Service = middleware::Observe<Router>;

/// The whole router. Every request passes [`middleware::Observe`]: request id, body limit,
/// concurrency limit for the seed endpoints, telemetry, JSON 405 bodies. (Handlers read bodies
/// through [`body::read_limited`] with their route's limit, not through axum's extractors, so
/// there is no `DefaultBodyLimit` to configure.)
pub fn router(state: AppState) -> Service {
    let (router, doc) = api().split_for_parts();
    let templates = templates::Templates::new(doc.paths.paths.keys().map(String::as_str));
    let router = router
        .fallback(|| async { error::not_found() })
        .with_state(state.clone());
    middleware::Observe::new(state, templates, router)
}

/// The OpenAPI 3.1 document for a service with this configuration (limits that are
/// configuration, such as the longest sleep, are filled in from it).
pub fn openapi(config: &Config) -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let max_sleep = u64::try_from(config.max_sleep.as_millis()).unwrap_or(u64::MAX);
    if let Some(get) = doc
        .paths
        .paths
        .get_mut("/sleep/{ms}")
        .and_then(|item| item.get.as_mut())
    {
        for param in get.parameters.iter_mut().flatten() {
            let utoipa::openapi::RefOr::T(param) = param else {
                continue;
            };
            if param.name == "ms"
                && param.parameter_in == ParameterIn::Path
                && let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
                    schema,
                ))) = param.schema.as_mut()
            {
                schema.maximum = Some(utoipa::Number::UInt(max_sleep as usize));
            }
        }
    }
    doc
}

/// [`openapi`] as pretty JSON with a final newline, the form `app/openapi.json` is kept in.
pub fn openapi_json(config: &Config) -> String {
    let mut text = openapi(config)
        .to_pretty_json()
        .expect("the document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use clap::Parser;
    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Cli;
    use crate::health::Health;

    fn templates() -> Vec<String> {
        let config = Cli::parse_from(["glassbox"]).config;
        openapi(&config).paths.paths.keys().cloned().collect()
    }

    /// The template `path` matches, by the rule axum's router uses: `{x}` is one segment, which
    /// may be empty unless it is the last.
    fn matching_template<'a>(templates: &'a [String], path: &str) -> Option<&'a str> {
        templates.iter().map(String::as_str).find(|t| {
            let (ts, ps): (Vec<_>, Vec<_>) = (t.split('/').collect(), path.split('/').collect());
            ts.len() == ps.len()
                && ts.iter().zip(&ps).enumerate().all(|(i, (t, p))| {
                    if t.starts_with('{') {
                        !p.is_empty() || i + 1 < ts.len()
                    } else {
                        t == p
                    }
                })
        })
    }

    /// The `MatchedPath` axum gives `request`, seen by a layer on every route of the bare
    /// router (the fallback has none).
    async fn axum_matched_path(state: AppState, request: Request<Body>) -> Option<String> {
        let seen = Arc::new(Mutex::new(None));
        let recorder = seen.clone();
        let (bare, _) = api().split_for_parts();
        let bare = bare
            .fallback(|| async { error::not_found() })
            .layer(axum::middleware::from_fn(
                move |request: Request<Body>, next: axum::middleware::Next| {
                    let recorder = recorder.clone();
                    async move {
                        *recorder.lock().unwrap() = request
                            .extensions()
                            .get::<axum::extract::MatchedPath>()
                            .map(|m| m.as_str().to_owned());
                        next.run(request).await
                    }
                },
            ))
            .with_state(state);
        bare.oneshot(request).await.unwrap();
        seen.lock().unwrap().take()
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            prop::sample::select(vec![
                "sleep",
                "code",
                "work",
                "status",
                "health",
                "metrics",
                "openapi.json",
                "dashboard",
                "data",
                "app.js",
                "logs",
                "total",
                "messages",
                "randomize",
                "sum-evens",
                "result",
                "fibonacci",
                "factorial",
                "ackermann",
                "0",
                "42",
                "abc",
                "-1",
                "x.y",
            ])
            .prop_map(str::to_owned),
            "[a-z0-9]{1,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The router routes a path exactly when the OpenAPI document has a template for it,
        /// and the service labels it with that template: the one axum's router matched.
        #[test]
        fn the_document_and_the_router_agree(segments in prop::collection::vec(segment(), 0..5), post in any::<bool>()) {
            let path = format!("/{}", segments.join("/"));
            let templates = templates();
            let expected = matching_template(&templates, &path).unwrap_or(crate::telemetry::UNMATCHED_ROUTE);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let routed = runtime.block_on(async {
                let mut config = Cli::parse_from(["glassbox"]).config;
                config.max_sleep = std::time::Duration::ZERO;
                config.work_sleep_min = std::time::Duration::ZERO;
                config.work_sleep_max = std::time::Duration::from_millis(1);
                config.total_latency = std::time::Duration::ZERO;
                config.total_count = 10;
                let state = AppState::for_tests(config, Health::default());
                let method = if post { "POST" } else { "GET" };
                let request = || Request::builder().method(method).uri(&path).body(Body::empty()).unwrap();
                router(state.clone()).oneshot(request()).await.unwrap();
                let label = state.telemetry.stats.snapshot().routes[0].route.clone();
                (label, axum_matched_path(state, request()).await)
            });
            let (routed, axum_matched) = routed;
            // The label is the template axum's own router matched the path with.
            prop_assert_eq!(
                axum_matched.as_deref().unwrap_or(crate::telemetry::UNMATCHED_ROUTE),
                routed.as_str()
            );
            prop_assert_eq!(routed, expected);
        }
    }

    #[test]
    fn every_template_is_routed() {
        let templates = templates();
        assert_eq!(templates.len(), 25, "{templates:?}");
        for template in &templates {
            let concrete = template
                .split('/')
                .map(|s| if s.starts_with('{') { "1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(
                matching_template(&templates, &concrete),
                Some(template.as_str())
            );
        }
    }
}

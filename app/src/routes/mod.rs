//! The HTTP surface: one module per seed family, plus the service's own endpoints. Every
//! route is registered together with its OpenAPI description, so the document served at
//! `/openapi.json` cannot miss one.

pub(crate) mod dashboard;
pub(crate) mod deepgram;
pub(crate) mod direct;
pub(crate) mod faults;
pub(crate) mod math;
pub(crate) mod messages;
pub(crate) mod ops;
pub(crate) mod params;
pub(crate) mod randomize;
pub(crate) mod sum_evens;
pub(crate) mod table;
pub(crate) mod tasks;
pub(crate) mod worker;

use axum::Router;
use serde_json::json;
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::ParameterIn;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

pub(crate) use self::direct::handlers;
use self::direct::{Direct, Handlers};
use self::table::{Policy, Registration, RouteTable, Serving};
use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;
use crate::middleware;

/// `Content-Type: application/json` for hand-built bodies. A `&str` value would be copied into
/// a new header value on every response; a static one is not.
pub(crate) const JSON: axum::http::HeaderValue =
    axum::http::HeaderValue::from_static("application/json");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "glassbox",
        description = "Five interview services behind one TLS endpoint, with telemetry you can trust. \
            Every response carries `x-request-id`. Unknown paths answer 404 `{\"error\":\"not found\"}`; \
            a known path with the wrong method answers 405 `{\"error\":\"method not allowed\"}` with `Allow`; \
            bodies over the limit answer 413; a request head over the limit (`--max-head-bytes`) answers 431 \
            `{\"error\":\"request head too large\",\"limit_bytes\":N}`; the seed endpoints answer 503 with `Retry-After` when the \
            concurrency limit is reached. Each operation's `x-glassbox` says how the service treats \
            it: its body limit, whether it reads a body (one sent to an operation that reads none is \
            read and dropped as it arrives, within the limit), whether it is shed, its listener and whether its trailing slash is optional.",
        license(name = "MIT"),
    ),
    tags(
        (name = "deepgram", description = "The Deepgram seed (Tornado): hello, sleep, code, work"),
        (name = "math", description = "The Sanic seed: exact big integers as decimal strings"),
        (name = "total", description = "The DLG seed (Quart): the sum of a slow numbers API"),
        (name = "messages", description = "The Paxos seed: messages kept under their SHA-256 digest"),
        (name = "tasks", description = "The SpaceTime seed: asynchronous tasks with tokens"),
        (name = "observability", description = "The service's own status, health, metrics and this document"),
        (name = "dashboard", description = "The built-in dashboard: its page, the data it polls, recent log lines"),
        (name = "faults", description = "Faults injected on purpose (--allow-faults): errors, latency, a failing store, stalled workers"),
    )
)]
struct ApiDoc;

/// A family's routes: each handler with its documentation and its [`Policy`], registered
/// together, so the router, the document and the [`RouteTable`] cannot disagree.
pub(crate) struct Routes {
    api: OpenApiRouter<AppState>,
    registrations: Vec<Registration>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Self {
            api: OpenApiRouter::new(),
            registrations: Vec::new(),
        }
    }

    /// Registers handlers (from [`handlers!`]) under `policy`. The route table dispatches
    /// them directly ([`direct`]), except on compressed routes: their compression layer is
    /// the router's.
    pub(crate) fn route(
        mut self,
        (handler, direct): (UtoipaMethodRouter<AppState>, Vec<Direct>),
        policy: Policy,
    ) -> Self {
        let (handler, handlers) = match policy.compress {
            true => {
                let (schemas, paths, method_router) = handler;
                let layered = (schemas, paths, method_router.layer(compression()));
                (layered, Handlers::default())
            }
            false => (handler, Handlers::new(&direct)),
        };
        let (_, paths, method_router) = &handler;
        for (template, item) in &paths.paths {
            let registration = Registration::new(template, item, policy, handlers.clone());
            if let Some(alias) = registration.alias() {
                // Only the router knows the alias: the document and the labels have one route.
                self.api = self.api.route(alias, method_router.clone());
            }
            self.registrations.push(registration);
        }
        self.api = self.api.routes(handler);
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.api = self.api.merge(other.api);
        self.registrations.extend(other.registrations);
        self
    }
}

/// gzip, br and zstd by `Accept-Encoding`, on bodies over [`table::COMPRESS_ABOVE`] bytes
/// (and never on images or already-compressed types, which tower-http leaves alone).
fn compression() -> tower_http::compression::CompressionLayer<
    tower_http::compression::predicate::And<
        tower_http::compression::predicate::DefaultPredicate,
        tower_http::compression::predicate::SizeAbove,
    >,
> {
    use tower_http::compression::predicate::{Predicate, SizeAbove};
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .br(true)
        .zstd(true)
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(
            tower_http::compression::DefaultPredicate::new()
                .and(SizeAbove::new(table::COMPRESS_ABOVE)),
        )
}

fn all() -> Routes {
    Routes {
        api: OpenApiRouter::with_openapi(ApiDoc::openapi()),
        registrations: Vec::new(),
    }
    .merge(deepgram::routes())
    .merge(math::routes())
    .merge(messages::routes())
    .merge(randomize::routes())
    .merge(sum_evens::routes())
    .merge(ops::routes())
    .merge(dashboard::routes())
    .merge(faults::routes())
}

/// Every route of the service, as the router, the table and the document.
pub(crate) struct Built {
    /// The handlers, before the state is known.
    pub(crate) router: Router<AppState>,
    pub(crate) table: RouteTable,
    pub(crate) openapi: utoipa::openapi::OpenApi,
}

/// Builds every route for a service with this configuration.
pub(crate) fn build(config: &Config) -> Built {
    let Routes { api, registrations } = all();
    let (router, mut openapi) = api.split_for_parts();
    let table = RouteTable::new(&registrations, config);
    describe(&mut openapi, &table, config);
    Built {
        router,
        table,
        openapi,
    }
}

/// What the service serves: the router inside [`middleware::Observe`].
pub(crate) type Service = middleware::Observe<Router>;

/// The whole service around `router`. Every request passes [`middleware::Observe`]: request id,
/// the route's policy from the table (body limit, concurrency limit), telemetry, JSON 405
/// bodies. (Handlers read bodies through [`crate::body`] with their route's limit, not through
/// axum's extractors, so there is no `DefaultBodyLimit` to configure.)
/// `serving` says which routes this listener has: the others answer 404, as unknown paths do.
pub(crate) fn service(router: Router<AppState>, state: AppState, serving: Serving) -> Service {
    let router = router
        .fallback(|| async { ApiError::NotFound })
        .with_state(state.clone());
    middleware::Observe::new(state, router, serving)
}

/// Fills in what the document takes from the table and the configuration: each operation's
/// `x-glassbox` policy, the 503 of routes that are shed, the longest sleep.
fn describe(doc: &mut utoipa::openapi::OpenApi, table: &RouteTable, config: &Config) {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for route in table.routes() {
        let Some(item) = doc.paths.paths.get_mut(route.route) else {
            continue;
        };
        for operation in operations_mut(item) {
            let policy = json!({
                "body_limit_bytes": route.body_limit_bytes,
                "reads_body": route.reads_body,
                "body_timeout_ms": route.body_timeout_ms,
                "shed": route.shed,
                "listener": route.listener,
                "trailing_slash": route.trailing_slash,
            });
            operation
                .extensions
                .get_or_insert_with(Extensions::default)
                .insert("x-glassbox".to_owned(), policy);
            if route.shed {
                document_overload(&mut operation.responses);
            }
            if route.trailing_slash == table::Slash::Optional {
                const SLASH: &str = "The trailing slash is optional.";
                operation.description = Some(match operation.description.take() {
                    Some(text) => format!("{text} {SLASH}"),
                    None => SLASH.to_owned(),
                });
            }
        }
    }
    let max_sleep = u64::try_from(config.max_sleep.as_millis()).unwrap_or(u64::MAX);
    if let Some(get) = doc
        .paths
        .paths
        .get_mut("/sleep/{ms}")
        .and_then(|item| item.get.as_mut())
    {
        for param in get.parameters.iter_mut().flatten() {
            let RefOr::T(param) = param else {
                continue;
            };
            if param.name == "ms"
                && param.parameter_in == ParameterIn::Path
                && let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(schema))) =
                    param.schema.as_mut()
            {
                schema.maximum = Some(utoipa::Number::UInt(max_sleep as usize));
            }
        }
    }
}

const OVERLOADED: &str = "at the concurrency limit, `overloaded, retry later` with Retry-After";

/// Adds the concurrency limit's 503 to `responses`, or to the description of the 503 they have.
fn document_overload(responses: &mut utoipa::openapi::Responses) {
    match responses.responses.get_mut("503") {
        Some(RefOr::T(existing)) => {
            if !existing.description.contains(OVERLOADED) {
                existing.description = format!("{}; {OVERLOADED}", existing.description);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let error_body = utoipa::openapi::ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build();
            let response = utoipa::openapi::ResponseBuilder::new()
                .description(format!("Overloaded: {OVERLOADED}"))
                .content("application/json", error_body)
                .build();
            responses
                .responses
                .insert("503".to_owned(), RefOr::T(response));
        }
    }
}

fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> Vec<&mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.head,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
    .collect()
}

impl Built {
    /// The OpenAPI 3.1 document as pretty JSON with a final newline: the form
    /// `app/openapi.json` is kept in.
    pub(crate) fn openapi_json(&self) -> String {
        let mut text = self
            .openapi
            .to_pretty_json()
            .expect("the document serialises");
        text.push('\n');
        text
    }
}

/// The OpenAPI 3.1 document of a service with this configuration, as `glassbox openapi`
/// prints it.
pub(crate) fn openapi_json(config: &Config) -> String {
    build(config).openapi_json()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use proptest::prelude::*;
    use tower::ServiceExt;

    use super::*;
    use crate::health::Health;

    fn built() -> Built {
        build(&crate::config::defaults())
    }

    /// The document's templates, each with whether its trailing slash is optional (from the
    /// table).
    fn templates() -> Vec<(String, bool)> {
        let built = built();
        built
            .openapi
            .paths
            .paths
            .keys()
            .map(|t| {
                let route = built
                    .table
                    .lookup(t)
                    .expect("every template is in the table");
                (t.clone(), route.trailing_slash == table::Slash::Optional)
            })
            .collect()
    }

    /// The template `path` matches, by the rule axum's router uses: `{x}` is one segment, which
    /// may be empty unless it is the last; a template whose slash is optional also matches
    /// without it.
    fn matching_template<'a>(templates: &'a [(String, bool)], path: &str) -> Option<&'a str> {
        let matches = |t: &str| {
            let (ts, ps): (Vec<_>, Vec<_>) = (t.split('/').collect(), path.split('/').collect());
            ts.len() == ps.len()
                && ts.iter().zip(&ps).enumerate().all(|(i, (t, p))| {
                    if t.starts_with('{') {
                        !p.is_empty() || i + 1 < ts.len()
                    } else {
                        t == p
                    }
                })
        };
        templates.iter().find_map(|(t, optional)| {
            let alias = t.strip_suffix('/').filter(|_| *optional);
            (matches(t) || alias.is_some_and(matches)).then_some(t.as_str())
        })
    }

    /// The template a path axum matched belongs to: itself, or the one it is the slashless
    /// alias of.
    fn canonical(templates: &[(String, bool)], matched: &str) -> String {
        templates
            .iter()
            .find(|(t, optional)| *optional && t.strip_suffix('/') == Some(matched))
            .map_or(matched, |(t, _)| t.as_str())
            .to_owned()
    }

    /// The `MatchedPath` axum gives `request`, seen by a layer on every route of the bare
    /// router (the fallback has none).
    async fn axum_matched_path(state: AppState, request: Request<Body>) -> Option<String> {
        let seen = Arc::new(Mutex::new(None));
        let recorder = seen.clone();
        let bare = built()
            .router
            .fallback(|| async { ApiError::NotFound })
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
                let mut config = crate::config::defaults();
                config.max_sleep = std::time::Duration::ZERO;
                config.work_sleep_min = std::time::Duration::ZERO;
                config.work_sleep_max = std::time::Duration::from_millis(1);
                config.total_latency = std::time::Duration::ZERO;
                config.total_count = 10;
                let state = AppState::for_tests(config, Health::default());
                let method = if post { "POST" } else { "GET" };
                let request = || Request::builder().method(method).uri(&path).body(Body::empty()).unwrap();
                service(built().router, state.clone(), Serving::Everything).oneshot(request()).await.unwrap();
                let label = state.telemetry.stats.snapshot().routes[0].route.clone();
                (label, axum_matched_path(state, request()).await)
            });
            let (routed, axum_matched) = routed;
            // The label is the template axum's own router matched the path with.
            prop_assert_eq!(
                axum_matched.map_or(crate::telemetry::UNMATCHED_ROUTE.to_owned(), |m| canonical(&templates, &m)),
                routed.as_str()
            );
            prop_assert_eq!(routed, expected);
        }
    }

    /// `--help` says which routes are never shed; the table decides it.
    #[test]
    fn the_help_names_no_route_and_points_at_the_table() {
        // Which routes are never shed is the route table's to say; a list in the help text
        // would be a second copy to drift.
        let command = crate::config::command();
        let help = command
            .get_arguments()
            .find(|arg| arg.get_id() == "max_concurrency")
            .and_then(|arg| arg.get_help())
            .expect("--max-concurrency has a help text")
            .to_string();
        assert!(help.contains("route_table"), "{help}");
        for route in built().table.routes() {
            assert!(!help.contains(&format!("`{}`", route.route)), "{help}");
        }
    }

    #[test]
    fn every_route_has_a_known_family() {
        for route in built().table.routes() {
            assert!(
                table::FAMILIES.contains(&route.family),
                "{}: {}",
                route.route,
                route.family
            );
        }
    }

    #[test]
    fn every_template_is_routed() {
        let templates = templates();
        assert_eq!(templates.len(), 27, "{templates:?}");
        for (template, _) in &templates {
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

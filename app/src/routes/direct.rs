//! Handlers the middleware calls straight from the route table.
//!
//! The middleware has found a request's route in the table before anything runs (its policy
//! says how to treat it). Handing the request on to axum's router would match the path a second
//! time, record the match in the request's extensions, and pass it through the method router's
//! boxed, cloned service and two more future wrappers before the handler runs: callgrind
//! counted about 2,900 instructions a `GET /` for that walk, a tenth of the whole request
//! (BENCHMARKS.md). So each route keeps its handlers by method, and a request whose method one
//! of them was registered for is handed to it directly.
//!
//! What the table does not dispatch still goes to axum's router, which answers it as before: a
//! `HEAD` (the `GET` handler with the body dropped), a method the route does not have (405 with
//! `Allow`), unknown paths (404), and the compressed routes, whose compression layer only the
//! router has.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use utoipa::openapi::path::HttpMethod;

use crate::app::AppState;

/// What a handler returns, as axum's function handlers box it.
pub(crate) type ResponseFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A handler, called with the request and the service's state.
pub(crate) type Call = dyn Fn(Request, AppState) -> ResponseFuture + Send + Sync;

/// One handler function and the methods its documentation registers it for.
#[derive(Clone)]
pub(crate) struct Direct {
    methods: Vec<Method>,
    call: Arc<Call>,
}

impl Direct {
    /// `handler`, answering `methods` (its `#[utoipa::path]`'s, read by [`handlers!`]).
    ///
    /// [`handlers!`]: crate::routes::handlers
    pub(crate) fn new<H, T>(methods: &[HttpMethod], handler: H) -> Self
    where
        H: Handler<T, AppState, Future = ResponseFuture>,
        T: 'static,
    {
        Self {
            methods: methods.iter().map(method).collect(),
            call: Arc::new(move |request, state| handler.clone().call(request, state)),
        }
    }
}

fn method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// A route's handlers by method: what the table dispatches for it.
#[derive(Clone, Default)]
pub(crate) struct Handlers(Vec<(Method, Arc<Call>)>);

impl Handlers {
    /// The handlers of `registered`, one per method.
    pub(crate) fn new(registered: &[Direct]) -> Self {
        Self(
            registered
                .iter()
                .flat_map(|d| d.methods.iter().map(|m| (m.clone(), d.call.clone())))
                .collect(),
        )
    }

    /// The handler registered for `method`, if there is one: the router answers the others.
    pub(crate) fn get(&self, method: &Method) -> Option<&Call> {
        self.0
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, call)| &**call)
    }

    /// The methods dispatched here.
    pub(crate) fn methods(&self) -> impl Iterator<Item = &Method> {
        self.0.iter().map(|(m, _)| m)
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.methods()).finish()
    }
}

/// `utoipa_axum::routes!` for functions that are also dispatched from the route table: the
/// router with their documentation, and each function with the methods it documents.
macro_rules! handlers {
    ($($handler:ident),+ $(,)?) => {
        (
            utoipa_axum::routes!($($handler),+),
            vec![$(
                $crate::routes::direct::Direct::new(
                    &utoipa_axum::paste! {
                        <[<__path_ $handler>] as utoipa::Path>::methods()
                    },
                    $handler,
                )
            ),+],
        )
    };
}
pub(crate) use handlers;

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderMap, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::health::Health;
    use crate::routes::table::Serving;
    use crate::routes::{Built, build, service};

    fn config() -> crate::config::Config {
        let mut config = crate::config::defaults();
        config.total_latency = std::time::Duration::ZERO;
        config.total_count = 10;
        config.allow_faults = true;
        config
    }

    async fn send(
        built: Built,
        state: &AppState,
        method: &str,
        uri: &str,
        body: &'static str,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = service(built.router, state.clone(), Serving::Everything)
            .oneshot(request)
            .await
            .unwrap();
        let (mut parts, body) = response.into_parts();
        parts.headers.remove("x-request-id");
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        // The router adds the length a sized body has; hyper writes it on the wire for an
        // answer from the table (`answers_carry_their_length_over_both_protocols` in the API
        // tests sees it with curl). A HEAD's is its GET's, and both paths route it.
        if method != "HEAD"
            && let Some(length) = parts.headers.remove("content-length")
        {
            assert_eq!(
                length.to_str().unwrap(),
                bytes.len().to_string(),
                "{method} {uri}"
            );
        }
        (parts.status, parts.headers, bytes.to_vec())
    }

    /// Every operation the document lists runs from the table, on every route but the
    /// compressed ones.
    #[test]
    fn the_table_dispatches_every_documented_operation_of_uncompressed_routes() {
        let built = build(&config());
        for route in built.table.routes() {
            let mut dispatched: Vec<&str> = route.handlers.methods().map(Method::as_str).collect();
            dispatched.sort_unstable();
            let mut documented = match route.compressed {
                true => Vec::new(),
                false => route.methods.clone(),
            };
            documented.sort_unstable();
            assert_eq!(dispatched, documented, "{}", route.route);
        }
    }

    /// With a router that has no routes at all, the table still answers what it dispatches;
    /// the rest (a HEAD, a compressed route) reaches the router, here only its 404.
    #[tokio::test]
    async fn the_table_answers_without_the_router() {
        let config = config();
        let state = AppState::for_tests(config.clone(), Health::default());
        let empty = || Built {
            router: axum::Router::new(),
            ..build(&config)
        };
        let (status, _, body) = send(empty(), &state, "GET", "/", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with(br#"{"result":"success""#));
        let (status, _, body) = send(empty(), &state, "GET", "/fibonacci/10", "").await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, &br#"{"response":"55"}"#[..])
        );
        for (method, uri) in [("HEAD", "/"), ("GET", "/metrics"), ("DELETE", "/")] {
            let (status, _, _) = send(empty(), &state, method, uri, "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        }
    }

    /// A request answered from the table gets the answer the router gives it: status, headers
    /// (but the request id) and body, for answers that depend on nothing but the request.
    #[tokio::test]
    async fn the_table_and_the_router_answer_alike() {
        let config = config();
        let direct = AppState::for_tests(config.clone(), Health::default());
        let routed_only = || {
            let built = build(&config);
            Built {
                table: built.table.clone().without_handlers(),
                ..built
            }
        };
        let routed = AppState::for_tests_routed(config.clone(), Health::default(), &routed_only());
        let requests: &[(&str, &str, &'static str)] = &[
            ("GET", "/", ""),
            ("HEAD", "/", ""),
            ("POST", "/", ""),
            ("GET", "/sleep/x", ""),
            ("GET", "/code/418", ""),
            ("GET", "/code/abc", ""),
            ("GET", "/code/99", ""),
            ("GET", "/fibonacci/10/", ""),
            ("GET", "/fibonacci/10", ""),
            ("GET", "/fibonacci/401/", ""),
            ("GET", "/factorial/%2B5", ""),
            ("GET", "/ackermann/2/3/", ""),
            ("GET", "/ackermann/4/1", ""),
            ("GET", "/total", ""),
            ("POST", "/messages", r#"{"message":"foo"}"#),
            ("POST", "/messages", r#"{"message":"#),
            ("POST", "/messages", r#"{"message":7}"#),
            (
                "GET",
                "/messages/2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                "",
            ),
            ("GET", "/messages/nothex", ""),
            ("GET", "/randomize/nope/status", ""),
            ("GET", "/randomize/nope/result", ""),
            ("GET", "/sum-evens/nope/status", ""),
            ("GET", "/sum-evens/nope/result", ""),
            ("POST", "/sum-evens", ""),
            ("GET", "/faults", ""),
            ("PUT", "/faults/nope", r#"{"kind":"nope"}"#),
            ("DELETE", "/faults/nope", ""),
            ("POST", "/health", ""),
            ("GET", "/nope", ""),
        ];
        for &(method, uri, body) in requests {
            let expected = send(routed_only(), &routed, method, uri, body).await;
            let got = send(build(&config), &direct, method, uri, body).await;
            assert_eq!(got.0, expected.0, "{method} {uri}");
            assert_eq!(got.1, expected.1, "{method} {uri}");
            assert_eq!(
                String::from_utf8_lossy(&got.2),
                String::from_utf8_lossy(&expected.2),
                "{method} {uri}"
            );
        }
    }
}

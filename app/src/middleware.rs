//! The one service every request passes through on its way to the router: request ids, the
//! route's policy from the route table (its template, body limit and whether it is shed),
//! telemetry and JSON bodies for 405s.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::Service;

use crate::app::AppState;
use crate::body::guard::{Guarded, Leftover};
use crate::body::unread::{self, Unread};
use crate::body::{self, Limit};
use crate::error::{ApiError, ErrorCause, Overload};
use crate::faults::Injection;
use crate::forwarded::{self, ClientAddr};
use crate::limiter::{Full, Holding, Permit};
use crate::routes::direct::ResponseFuture;
use crate::routes::params::Template;
use crate::routes::table::{Route, Serving};
use crate::server::HttpService;
use crate::telemetry::{InFlight, RequestInfo};

pub(crate) const X_REQUEST_ID: &str = "x-request-id";
/// [`X_REQUEST_ID`] as a header name, so reading and inserting it parse nothing.
static X_REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(X_REQUEST_ID);
const MAX_REQUEST_ID_LEN: usize = 128;
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// Gives every request an id, echoes it on the response, and records the request in the
/// access log, `/status` and `/metrics` once its response is ready.
///
/// It wraps the whole router, and finds the request's route itself (in the route table)
/// rather than being layered onto each route, and it is a hand-written service rather than
/// `axum::middleware::from_fn`: what is decided before the route runs (body limit, admission)
/// is synchronous, so the route is called directly instead of through a boxed, cloned `Next`.
/// Having found the route, it calls the route's handler from the table when the table has one
/// for the method ([`crate::routes::direct`]), and the router otherwise. Callgrind counted each
/// of these differences on every request (BENCHMARKS.md).
#[derive(Debug, Clone)]
pub(crate) struct Observe<S> {
    state: AppState,
    inner: S,
    /// Which routes this listener serves; the others are not found here.
    serving: Serving,
    /// The connection's client (none until the server says: [`HttpService::connected`]).
    peer: Option<SocketAddr>,
}

impl<S> Observe<S> {
    pub(crate) fn new(state: AppState, inner: S, serving: Serving) -> Self {
        Self {
            state,
            inner,
            serving,
            peer: None,
        }
    }
}

impl<S> HttpService for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
    S::Future: Send + 'static,
{
    fn connected(&self, peer: SocketAddr) -> Self {
        Self {
            peer: Some(peer),
            ..self.clone()
        }
    }
}

/// What happens to a request once it is observed.
enum Work<F> {
    /// The route runs, holding a concurrency permit unless it is never shed, after the delay
    /// a latency fault adds: its handler called from the table, or the router; a body the
    /// route does not read is read and dropped meanwhile.
    Run(
        Either<ResponseFuture, Pin<Box<F>>>,
        Option<Permit>,
        Option<Duration>,
        Option<Box<Unread>>,
    ),
    /// An error fault answers instead of the route; the body is still to be drained.
    Inject(Response, Body),
    /// The head or the declared body is over its limit.
    Refuse(Pin<Box<dyn Future<Output = Response> + Send>>),
    /// The route belongs on the other listener: 404, as for a path with no route.
    Elsewhere,
    /// Over the concurrency limit: the 503 is ready, the body is still to be drained.
    Shed(Response, Body),
}

impl<S, B> Service<axum::http::Request<B>> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let state = &self.state;
        // A route that belongs on the other listener is no route here (and is labelled as
        // unmatched, like any unknown path).
        let found = state.routes.lookup(req.uri().path());
        let route = found.filter(|r| r.listener.served_by(self.serving));
        let elsewhere = found.is_some() && route.is_none();
        let body_timeout = route.map_or(state.config.body_timeout, |r| {
            Duration::from_millis(r.body_timeout_ms)
        });
        // Bodies that may still bring bytes are guarded: timed out when they stall, drained
        // when the route leaves them unread. Bodiless requests (every GET) skip the wrapper.
        let leftover = (!req.body().is_end_stream()).then(|| Arc::new(Leftover::default()));
        let mut req = match &leftover {
            Some(leftover) => {
                let waits = waits_for_continue(req.headers());
                req.map(|body| {
                    Body::new(Guarded::new(
                        Body::new(body),
                        body_timeout,
                        waits,
                        leftover.clone(),
                    ))
                })
            }
            None => req.map(Body::new),
        };
        let info = request_info(state, &req, route.map(|r| r.route), self.peer);
        let is_head = req.method() == Method::HEAD;
        let limit = route.map_or(state.config.max_body_bytes, |r| r.body_limit_bytes);
        // What the handlers that read a body need: its limit, and who sends it (the task
        // queues schedule by client).
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            req.extensions_mut().insert(Limit(limit));
            if let Some(client) = info.client() {
                req.extensions_mut().insert(ClientAddr(client));
            }
        }
        if let Some(route) = route.filter(|r| r.route.contains('{')) {
            req.extensions_mut().insert(Template(route.route));
        }
        let max_head = state.config.max_head_bytes;
        let work = if head_bytes(&req) > max_head {
            let limit = usize::try_from(max_head).unwrap_or(usize::MAX);
            let refusal = ApiError::HeadTooLarge { limit };
            Work::Refuse(Box::pin(refuse(req, refusal, body_timeout)))
        } else if elsewhere {
            Work::Elsewhere
        } else {
            match declared_length(&req).filter(|&n| n > limit as u64) {
                Some(_) => {
                    let refusal = ApiError::PayloadTooLarge { limit };
                    Work::Refuse(Box::pin(refuse(req, refusal, body_timeout)))
                }
                None => match route.and_then(|r| state.faults.on_request(r)) {
                    Some(Injection::Error { status, fault }) => {
                        Work::Inject(injected_error(status, &fault), req.into_body())
                    }
                    injected => {
                        let delay = match injected {
                            Some(Injection::Delay(delay)) => Some(delay),
                            _ => None,
                        };
                        match admit(state, route, info.client()) {
                            Ok(permit) => {
                                let unread =
                                    unread_body(&mut req, route, leftover.is_some(), limit);
                                let direct = route.and_then(|r| r.handlers.get(req.method()));
                                let run = match direct {
                                    Some(handler) => Either::Left(handler(req, state.clone())),
                                    None => Either::Right(Box::pin(self.inner.call(req))),
                                };
                                Work::Run(run, permit, delay, unread)
                            }
                            Err(overloaded) => {
                                Work::Shed(overloaded.into_response(), req.into_body())
                            }
                        }
                    }
                },
            }
        };
        let in_flight = InFlight::start(state.telemetry.clone(), info);
        Box::pin(answer(in_flight, work, leftover, body_timeout, is_head))
    }
}

/// Runs what was decided for a request and finishes its telemetry: the request id and
/// `nosniff` on the response, the access line, the metrics.
///
/// Every request allocates this future and moves it there, so it is kept small, within glibc's
/// per-thread cache (1,032 bytes; a larger block goes through the arena, which first merges
/// its free fast chunks: `malloc_consolidate` was 0.45 % of the server's cycles). What only
/// some requests wait for (the router's future, a latency fault's sleep, draining a body the
/// route left unread) is boxed where it happens rather than held inline, and the body is an
/// `async move` block rather than an `async fn`, whose arguments rustc keeps twice, as
/// arguments and as the locals they are moved into: 2,336 → 1,280 → 808 bytes (BENCHMARKS.md).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice, as said above"
)]
fn answer<F>(
    in_flight: InFlight,
    work: Work<F>,
    leftover: Option<Arc<Leftover>>,
    body_timeout: Duration,
    is_head: bool,
) -> impl Future<Output = Result<Response, Infallible>>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    async move {
        let mut response = match work {
            Work::Run(route, permit, delay, unread) => {
                let route = async move {
                    if let Some(delay) = delay {
                        Box::pin(tokio::time::sleep(delay)).await;
                    }
                    match route {
                        Either::Left(direct) => direct.await,
                        Either::Right(routed) => {
                            let Ok(response) = routed.await;
                            response
                        }
                    }
                };
                let response = match unread {
                    None => route.await,
                    Some(unread) => Box::pin(unread::alongside(route, *unread)).await,
                };
                // The route is done with the body; whatever it left unread is read and
                // dropped before the answer goes, so the client gets to see it.
                if let Some(rest) = leftover.as_deref().and_then(Leftover::take) {
                    Box::pin(body::drain(rest, body_timeout)).await;
                }
                let response = with_json_405(response);
                match permit {
                    // A small body already in memory costs nothing more while it goes out
                    // (the connection's write timeout bounds how long); a larger or
                    // streamed one keeps the permit until it is sent.
                    Some(permit) if !is_small(&response) => {
                        response.map(|body| Body::new(Holding::new(body, permit)))
                    }
                    _ => response,
                }
            }
            Work::Refuse(refusal) => refusal.await,
            Work::Elsewhere => {
                if let Some(rest) = leftover.as_deref().and_then(Leftover::take) {
                    Box::pin(body::drain(rest, body_timeout)).await;
                }
                ApiError::NotFound.into_response()
            }
            Work::Shed(response, rest) | Work::Inject(response, rest) => {
                drop(rest);
                if let Some(rest) = leftover.as_deref().and_then(Leftover::take) {
                    Box::pin(body::drain(rest, body_timeout)).await;
                }
                response
            }
        };
        // Every response has a new id: over HTTP/2 it goes as a literal never indexed, so HPACK
        // keeps it out of the connection's table, where it would push out the headers that do
        // repeat and be compared with every id before it.
        let mut request_id = in_flight.info().request_id.clone();
        request_id.set_sensitive(true);
        response
            .headers_mut()
            .insert(X_REQUEST_ID_HEADER.clone(), request_id);
        // Browsers take every body for the type it is sent as, never a sniffed one.
        response
            .headers_mut()
            .insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
        let status = response.status();
        let bytes =
            if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                0
            } else {
                let hint = response.body().size_hint();
                hint.exact().unwrap_or_else(|| hint.lower())
            };
        let cause = response.extensions_mut().remove::<ErrorCause>();
        if let Some(overload) = response.extensions_mut().remove::<Overload>() {
            in_flight.overloaded(overload.bound());
        }
        in_flight.finish(status.as_u16(), bytes, cause.as_ref());
        Ok(response)
    }
}

/// Bodies of a known size up to this give their permit back as soon as they are ready: such a
/// body costs less memory than the HTTP/2 stream or the connection that carries it, which
/// `--max-streams`, `--max-connections` and `--write-timeout` bound. A larger one (a big
/// factorial, a task result) keeps its permit until it is sent.
const SMALL_BODY: u64 = 4 * 1024;

fn is_small(response: &Response) -> bool {
    response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|bytes| bytes <= SMALL_BODY)
}

/// What the access log needs from the request, read before the route takes it.
fn request_info(
    state: &AppState,
    req: &Request,
    matched: Option<&'static str>,
    client_addr: Option<SocketAddr>,
) -> RequestInfo {
    let trusted = &state.config.trusted_proxies;
    let forwarded_for = match client_addr {
        Some(peer) if !trusted.is_empty() => {
            forwarded::client_behind_proxy(peer.ip(), req.headers(), trusted)
        }
        _ => None,
    };
    RequestInfo {
        method: method_label(req.method()),
        matched,
        uri: req.uri().clone(),
        version: version_label(req.version()),
        request_id: incoming_request_id(req.headers()).unwrap_or_else(new_request_id),
        client_addr,
        forwarded_for,
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
    }
}

/// Keeps an incoming id when it is a sane token, so ids can be followed across proxies.
fn incoming_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let value = headers.get(&X_REQUEST_ID_HEADER)?;
    let id = value.as_bytes();
    let sane = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    sane.then(|| value.clone())
}

/// 32 random lowercase hex digits. The id is shared, not copied, by the response header, the
/// exemplar and the statistics: its buffer is reference-counted from the start (a copied
/// slice would be allocated again on its first clone).
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for digit in id.iter_mut().rev() {
        *digit = HEX[(bits & 0xf) as usize];
        bits >>= 4;
    }
    HeaderValue::from_maybe_shared(Bytes::from_owner(id))
        .expect("hex digits are a valid header value")
}

/// Standard methods by name; anything else is one label, as OpenTelemetry advises.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

fn version_label(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "other",
    }
}

/// A permit if the concurrency limit allows the request (`None` for routes the table says are
/// never shed), or `Err` when it is over the limit, in all or for its client: it is then
/// refused with 503 and `Retry-After` instead of queued. Unmatched paths always run (they cost
/// a 404), and so do the service's own endpoints, so operators can watch an overload.
fn admit(
    state: &AppState,
    route: Option<&Route>,
    client: Option<IpAddr>,
) -> Result<Option<Permit>, ApiError> {
    let Some(route) = route.filter(|r| r.shed) else {
        return Ok(None);
    };
    match state.limiter.try_acquire(client) {
        Ok(permit) => Ok(Some(permit)),
        Err(full) => {
            state.telemetry.stats.request_shed();
            state.telemetry.metrics.shed(route.route);
            Err(ApiError::Overloaded(match full {
                Full::All => Overload::Concurrency,
                Full::Client => Overload::ClientShare,
            }))
        }
    }
}

/// The `Content-Length` the client declared, if any.
fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
}

/// Whether the client sent `Expect: 100-continue`: it sends its body only once asked to.
fn waits_for_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Answers `refusal` without handing the request to a handler: a head over
/// `--max-head-bytes`, or a declared body over the limit (bodies without a length are held to
/// it where handlers read them, `routes::body`).
///
/// A client that asked `Expect: 100-continue` has sent nothing yet and never will. Any other
/// client is already sending: the body is read and dropped (up to [`body::DRAIN_LIMIT`]) so the
/// client sees the refusal instead of a connection reset.
async fn refuse(req: Request, refusal: ApiError, stall: Duration) -> Response {
    let drains = !waits_for_continue(req.headers())
        && declared_length(&req).is_none_or(|n| n <= body::DRAIN_LIMIT as u64);
    if drains {
        body::drain(req.into_body(), stall).await;
    }
    refusal.into_response()
}

/// A request head's size as `--max-head-bytes` counts it, the same over both protocols: the
/// method and target, and each header's name and value plus 32 bytes, as HTTP/2 counts a
/// header list (RFC 9113, section 6.5.2).
fn head_bytes(req: &Request) -> u64 {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    (req.method().as_str().len() + target + fields) as u64
}

/// The body of a request to a route that reads none, taken out of the request to be read and
/// dropped while the route runs ([`unread::alongside`]); `None` when there is no body (the
/// request is not `guarded`), when the route reads it, or when the client waits for
/// `100 Continue` (it sends nothing unless asked, and it is not asked).
fn unread_body(
    req: &mut Request,
    route: Option<&Route>,
    guarded: bool,
    limit: usize,
) -> Option<Box<Unread>> {
    let unread = guarded
        && route.is_some_and(|route| !route.reads_body)
        && !waits_for_continue(req.headers());
    unread.then(|| {
        Box::new(Unread {
            body: std::mem::take(req.body_mut()),
            limit,
        })
    })
}

/// Gives the router's bodiless 405s the contract's JSON body; the `Allow` header stays.
fn with_json_405(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.body().size_hint().exact() != Some(0)
    {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut replaced = ApiError::MethodNotAllowed.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name, value.clone());
        }
    }
    replaced
}

/// The answer of an error fault: its status, `{"error":"injected fault"}`, and the fault's name
/// in the access line's `error`.
fn injected_error(status: u16, fault: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (
        status,
        axum::Json(serde_json::json!({"error": "injected fault"})),
    )
        .into_response();
    ErrorCause(format!("injected fault {fault}")).attach(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The future every request allocates stays within glibc's per-thread cache, whose
    /// largest block is 1,032 bytes: a larger one goes through the arena, which first merges
    /// its free fast chunks (`malloc_consolidate`, 0.45 % of the server's cycles under wrk when
    /// this future was 1,280 bytes).
    #[tokio::test]
    async fn the_future_every_request_allocates_fits_the_allocators_thread_cache() {
        let state = crate::app::AppState::for_tests(
            crate::config::defaults(),
            crate::health::Health::default(),
        );
        let info = RequestInfo {
            method: "GET",
            matched: None,
            uri: "/".parse().unwrap(),
            version: "HTTP/1.1",
            request_id: HeaderValue::from_static("a"),
            client_addr: None,
            forwarded_for: None,
            user_agent: None,
        };
        // The router's future is boxed in `Work`, so its type does not change the size.
        let future = answer::<std::future::Ready<Result<Response, Infallible>>>(
            InFlight::start(state.telemetry.clone(), info),
            Work::Elsewhere,
            None,
            Duration::ZERO,
            false,
        );
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1032, "the answer future is {size} bytes");
    }

    /// Every response carries its request id marked sensitive, which HTTP/2's HPACK encoder
    /// sends as a literal never indexed; the headers that repeat stay indexable.
    #[tokio::test]
    async fn the_request_id_goes_out_never_indexed() {
        use tower::ServiceExt;
        let state = crate::app::AppState::for_tests(
            crate::config::defaults(),
            crate::health::Health::default(),
        );
        let built = crate::routes::build(&state.config);
        let response = crate::routes::service(
            built.router,
            state,
            crate::routes::table::Serving::Everything,
        )
        .oneshot(
            axum::http::Request::get("/")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        let id = &response.headers()[X_REQUEST_ID];
        assert_eq!(id.len(), 32);
        assert!(id.is_sensitive(), "the request id is sensitive");
        assert!(!response.headers()[header::CONTENT_TYPE].is_sensitive());
        assert!(!response.headers()[header::X_CONTENT_TYPE_OPTIONS].is_sensitive());
    }

    /// A request that may carry a body gets its limit and its client: the address a trusted
    /// proxy reports, else the connection's peer. A GET gets neither.
    #[tokio::test]
    async fn requests_with_bodies_carry_their_client_and_limit() {
        use std::sync::Mutex;
        use tower::ServiceExt;
        let mut config = crate::config::defaults();
        config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        let state = crate::app::AppState::for_tests(config, crate::health::Health::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        // An unknown path: the middleware hands it to this service, not to a route's handler.
        let inner = tower::service_fn(move |req: Request| {
            let extensions = req.extensions();
            recorder.lock().unwrap().push((
                extensions.get::<ClientAddr>().copied(),
                extensions.get::<Limit>().copied(),
            ));
            async { Ok::<_, Infallible>(StatusCode::NO_CONTENT.into_response()) }
        });
        let observe = Observe::new(state.clone(), inner, Serving::Everything);
        let send = |peer: &str, method: Method, forwarded: Option<&str>| {
            let service = observe.connected(peer.parse().unwrap());
            let mut request = axum::http::Request::builder()
                .method(method)
                .uri("/elsewhere");
            if let Some(client) = forwarded {
                request = request.header("x-forwarded-for", client);
            }
            service.oneshot(request.body(Body::from("x")).unwrap())
        };
        send("10.1.2.3:5000", Method::POST, Some("203.0.113.9"))
            .await
            .unwrap();
        send("192.0.2.7:5000", Method::PUT, Some("203.0.113.9"))
            .await
            .unwrap();
        send("10.1.2.3:5000", Method::GET, Some("203.0.113.9"))
            .await
            .unwrap();
        let limit = Some(Limit(state.config.max_body_bytes));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Some(ClientAddr("203.0.113.9".parse().unwrap())), limit),
                (Some(ClientAddr("192.0.2.7".parse().unwrap())), limit),
                (None, None),
            ]
        );
    }

    #[test]
    fn a_head_counts_its_method_target_and_each_field_with_32_bytes_more() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/messages?x=1")
            .header("host", "localhost")
            .header("x-pad", "abc")
            .body(Body::empty())
            .unwrap();
        assert_eq!(head_bytes(&req), 4 + 13 + (4 + 9 + 32) + (5 + 3 + 32));
    }

    #[test]
    fn request_ids() {
        let mut headers = HeaderMap::new();
        assert_eq!(incoming_request_id(&headers), None);
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(incoming_request_id(&headers).unwrap(), "abc-123_x.y:z");
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(incoming_request_id(&headers), None);
        headers.insert(
            X_REQUEST_ID,
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        );
        assert_eq!(incoming_request_id(&headers), None);
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(|b| b.is_ascii_hexdigit()));
    }
}

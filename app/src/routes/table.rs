//! The route table: every route the service serves, registered once where its family lives,
//! together with how it is treated. Whatever treats routes differently reads this table and
//! keeps no list of its own: the middleware (body limit, load shedding, the metric label), the
//! router (a math route's optional slash), the OpenAPI document (each operation's
//! `x-glassbox` policy), `/status` and the dashboard (served as `route_table`).
//!
//! Paths are matched with the `matchit` version axum routes with, so a path gets the template
//! axum's `MatchedPath` would have given it (a property test in [`super`] compares the two).

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::path::{Operation, PathItem};

use super::direct::Handlers;
use crate::config::Config;

/// How one route is treated, declared next to its handler's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) body: BodyLimit,
    pub(crate) shed: Shedding,
    pub(crate) listener: Listener,
    pub(crate) slash: Slash,
    /// Whether large responses are compressed when the client accepts it.
    pub(crate) compress: bool,
}

impl Policy {
    /// A seed endpoint: reads no body, shed under overload, on the public listener.
    pub(crate) const API: Self = Self {
        body: BodyLimit::Unread,
        shed: Shedding::Shed,
        listener: Listener::Public,
        slash: Slash::Exact,
        compress: false,
    };
    /// The service's own endpoints clients and load balancers use (`/status`, `/health`, the
    /// OpenAPI document): never shed, on every listener.
    pub(crate) const SERVICE: Self = Self {
        shed: Shedding::Never,
        listener: Listener::Both,
        ..Self::API
    };
    /// The operator's endpoints (metrics, logs, the dashboard): never shed, so an overload can
    /// be watched; they belong on the admin listener.
    pub(crate) const ADMIN: Self = Self {
        shed: Shedding::Never,
        listener: Listener::Admin,
        ..Self::API
    };

    /// This policy with another body limit.
    pub(crate) const fn body(self, body: BodyLimit) -> Self {
        Self { body, ..self }
    }

    /// This policy with responses over [`COMPRESS_ABOVE`] bytes compressed (gzip, br or
    /// zstd, by `Accept-Encoding`): for the large text the operator's tools fetch, not for
    /// the seed endpoints' small bodies.
    pub(crate) const fn compressed(self) -> Self {
        Self {
            compress: true,
            ..self
        }
    }

    /// This policy with the trailing slash optional: the route is registered with it, and the
    /// path without it is the same route (same handler, same label).
    pub(crate) const fn optional_slash(self) -> Self {
        Self {
            slash: Slash::Optional,
            ..self
        }
    }
}

/// Responses smaller than this are sent as they are, compressed route or not: below it the
/// encoding's header costs more than it saves.
pub(crate) const COMPRESS_ABOVE: u16 = 1024;

/// Which configured limit holds a route's request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLimit {
    /// The route's handlers read no body. One sent anyway is read and dropped as it arrives,
    /// while the handler runs, so it waits in no buffer (an HTTP/2 stream's window would
    /// otherwise hold up to `--h2-stream-window` of it until the handler returned); past
    /// `--max-body-bytes` the request gets 413 at once.
    Unread,
    /// `--max-body-bytes`.
    Default,
    /// `--max-image-bytes`.
    Image,
    /// `--max-upload-bytes`.
    Upload,
}

impl BodyLimit {
    fn bytes(self, config: &Config) -> usize {
        match self {
            Self::Unread | Self::Default => config.max_body_bytes,
            Self::Image => config.max_image_bytes,
            Self::Upload => config.max_upload_bytes,
        }
    }
}

/// Whether the concurrency limit (`--max-concurrency`) may refuse a route with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shedding {
    Shed,
    Never,
}

/// Which listener a route belongs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Listener {
    /// The API clients call.
    Public,
    /// The operator's: metrics, logs, the dashboard.
    Admin,
    /// Both.
    Both,
}

impl Listener {
    /// Whether a route that belongs on `self` is served by a listener that serves `serving`.
    pub(crate) fn served_by(self, serving: Serving) -> bool {
        match serving {
            Serving::Everything => true,
            Serving::Public => self != Self::Admin,
            Serving::Admin => self != Self::Public,
        }
    }
}

/// What one listener serves: everything (no `--admin-bind`), or its side of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serving {
    Everything,
    /// `--bind` when `--admin-bind` is set: the API and the service's own routes.
    Public,
    /// `--admin-bind`: metrics, logs, the dashboard and the service's own routes.
    Admin,
}

/// Whether a route's trailing slash is part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Slash {
    /// The path must be the template's.
    Exact,
    /// The template ends in `/`, and the path without it is the same route.
    Optional,
}

/// One route as the service treats it, with the configured limits filled in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Route {
    /// The template, as metrics and logs label the route (`/sleep/{ms}`).
    #[schema(value_type = String)]
    pub route: &'static str,
    /// The methods it answers; any other gets 405.
    pub methods: Vec<&'static str>,
    /// The family it belongs to: the seed it comes from, or the service's own parts.
    pub family: &'static str,
    /// Larger request bodies get 413.
    pub body_limit_bytes: usize,
    /// Whether its handlers read a request body; one sent to a route that reads none is read
    /// and dropped by the middleware as it arrives.
    pub reads_body: bool,
    /// A request body that brings no byte for this long ends with 408 (`--body-timeout`).
    pub body_timeout_ms: u64,
    /// Whether the concurrency limit may refuse it with 503.
    pub shed: bool,
    pub listener: Listener,
    pub trailing_slash: Slash,
    /// Whether responses over 1 KiB are compressed (gzip, br, zstd) when the client accepts it.
    pub compressed: bool,
    /// The handlers the middleware calls directly, by method.
    #[serde(skip)]
    pub handlers: Handlers,
}

/// A route registered by its family, before the configuration is known.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) template: String,
    pub(crate) methods: Vec<&'static str>,
    pub(crate) family: &'static str,
    pub(crate) policy: Policy,
    pub(crate) handlers: Handlers,
}

impl Registration {
    /// The registration of `template`, whose methods and family are read from its OpenAPI
    /// path item (the family is its operations' first tag), dispatched to `handlers`.
    pub(crate) fn new(template: &str, item: &PathItem, policy: Policy, handlers: Handlers) -> Self {
        let operations = operations(item);
        let family = operations
            .iter()
            .find_map(|(_, op)| op.tags.as_ref()?.first())
            .map_or("service", |tag| family_name(tag));
        Self {
            template: template.to_owned(),
            methods: operations.iter().map(|(method, _)| *method).collect(),
            family,
            policy,
            handlers,
        }
    }

    /// The path that is the same route when the trailing slash is optional.
    pub(crate) fn alias(&self) -> Option<&str> {
        match self.policy.slash {
            Slash::Optional => self
                .template
                .strip_suffix('/')
                .filter(|alias| !alias.is_empty()),
            Slash::Exact => None,
        }
    }
}

/// The families, as the OpenAPI document tags them; a tag that is not one is a bug the tests
/// catch (`every_route_has_a_known_family`).
pub(crate) const FAMILIES: [&str; 8] = [
    "deepgram",
    "math",
    "total",
    "messages",
    "tasks",
    "observability",
    "dashboard",
    "faults",
];

fn family_name(tag: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|family| **family == tag)
        .copied()
        .unwrap_or("service")
}

/// An item's operations by method name, in the order HTTP lists them.
pub(crate) fn operations(item: &PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("HEAD", &item.head),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("DELETE", &item.delete),
        ("PATCH", &item.patch),
        ("OPTIONS", &item.options),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| Some((method, op.as_ref()?)))
    .collect()
}

/// The one copy of `template` in this process. A request carries its route as a plain
/// `&'static str`, so labelling it (access line, statistics, metrics) writes no reference count
/// that every request to the route shares. The set is bounded by the templates the service
/// registers: every table built in a process registers the same ones.
fn interned(template: &str) -> &'static str {
    static TEMPLATES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut templates = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = templates.get(template) {
        return known;
    }
    let new: &'static str = Box::leak(template.into());
    templates.insert(new);
    new
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Every route and how a path finds its route.
#[derive(Debug, Clone)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
    /// Template (and alias) to index in `routes`.
    matcher: matchit::Router<usize>,
}

impl RouteTable {
    /// The table of these registrations with this configuration's limits.
    pub(crate) fn new(registrations: &[Registration], config: &Config) -> Self {
        let mut matcher = matchit::Router::new();
        let mut routes = Vec::with_capacity(registrations.len());
        for (index, registration) in registrations.iter().enumerate() {
            let paths = std::iter::once(registration.template.as_str()).chain(registration.alias());
            for path in paths {
                matcher
                    .insert(path, index)
                    .unwrap_or_else(|err| panic!("route template {path}: {err}"));
            }
            let policy = registration.policy;
            routes.push(Route {
                route: interned(&registration.template),
                methods: registration.methods.clone(),
                family: registration.family,
                body_limit_bytes: policy.body.bytes(config),
                reads_body: policy.body != BodyLimit::Unread,
                body_timeout_ms: millis(config.body_timeout),
                shed: policy.shed == Shedding::Shed,
                listener: policy.listener,
                trailing_slash: policy.slash,
                compressed: policy.compress,
                handlers: registration.handlers.clone(),
            });
        }
        Self { routes, matcher }
    }

    /// The route `path` belongs to, if any.
    pub(crate) fn lookup(&self, path: &str) -> Option<&Route> {
        let found = self.matcher.at(path).ok()?;
        self.routes.get(*found.value)
    }

    /// Every route, in registration order.
    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// This table with no handler to call directly: every request goes to the router.
    #[cfg(test)]
    pub(crate) fn without_handlers(mut self) -> Self {
        for route in &mut self.routes {
            route.handlers = Handlers::default();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn registration(template: &str, policy: Policy) -> Registration {
        Registration {
            template: template.to_owned(),
            methods: vec!["GET"],
            family: "math",
            policy,
            handlers: Handlers::default(),
        }
    }

    #[test]
    fn paths_find_their_route_and_optional_slashes_their_alias() {
        let config = crate::config::defaults();
        let table = RouteTable::new(
            &[
                registration("/", Policy::API),
                registration("/sleep/{ms}", Policy::API),
                registration("/fibonacci/{n}/", Policy::API.optional_slash()),
                registration("/randomize", Policy::API.body(BodyLimit::Image)),
                registration("/metrics", Policy::ADMIN),
            ],
            &config,
        );
        let route = |path| table.lookup(path).map(|r| r.route.to_string());
        assert_eq!(route("/").as_deref(), Some("/"));
        assert_eq!(route("/sleep/5").as_deref(), Some("/sleep/{ms}"));
        assert_eq!(route("/fibonacci/7/").as_deref(), Some("/fibonacci/{n}/"));
        assert_eq!(route("/fibonacci/7").as_deref(), Some("/fibonacci/{n}/"));
        assert_eq!(route("/sleep/5/"), None, "only optional slashes are");
        assert_eq!(route("/nope"), None);
        let randomize = table.lookup("/randomize").unwrap();
        assert_eq!(randomize.body_limit_bytes, config.max_image_bytes);
        assert!(randomize.shed);
        let metrics = table.lookup("/metrics").unwrap();
        assert_eq!(metrics.body_limit_bytes, config.max_body_bytes);
        assert!(randomize.reads_body && !metrics.reads_body);
        assert!(!metrics.shed);
        assert_eq!(metrics.listener, Listener::Admin);
        assert_eq!(
            Duration::from_millis(randomize.body_timeout_ms),
            config.body_timeout
        );
    }

    #[test]
    fn a_template_is_one_string_however_many_tables_have_it() {
        let config = crate::config::defaults();
        let first = RouteTable::new(&[registration("/interned/{n}", Policy::API)], &config);
        let second = RouteTable::new(&[registration("/interned/{n}", Policy::API)], &config);
        let (a, b) = (first.routes()[0].route, second.routes()[0].route);
        assert_eq!(a, "/interned/{n}");
        assert!(
            std::ptr::eq(a, b),
            "the second table reuses the first one's copy"
        );
    }
}

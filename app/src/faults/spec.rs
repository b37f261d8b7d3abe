//! What `PUT /faults/{name}` takes, and the checks that turn a bad one into a 400 saying why.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::routes::table::{Listener, RouteTable};

/// The longest latency a fault may add, in milliseconds.
pub(crate) const MAX_LATENCY_MS: u64 = 60_000;
/// The longest `duration_s`: a day.
pub(crate) const MAX_DURATION_S: u64 = 86_400;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// `rate` of the route's requests answer `status` with `{"error":"injected fault"}`.
    Error,
    /// `rate` of the route's requests wait `latency_ms` more.
    Latency,
    /// `rate` of the message store's calls fail (503 `store unavailable`), or with
    /// `latency_ms` are slowed.
    Store,
    /// The task workers take no task while it lasts.
    Queue,
}

impl Kind {
    /// "an error", "a latency", ...: for sentences about a fault of this kind.
    pub(crate) fn with_article(self) -> &'static str {
        match self {
            Self::Error => "an error",
            Self::Latency => "a latency",
            Self::Store => "a store",
            Self::Queue => "a queue",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Latency => "latency",
            Self::Store => "store",
            Self::Queue => "queue",
        }
    }
}

/// A fault's settings, the body of `PUT /faults/{name}`: the fields its kind needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub kind: Kind,
    /// A route template as `/status`' `route_table` lists it (`/fibonacci/{n}/`), or `*` for
    /// every API route. Required for `error` and `latency`; `store` and `queue` faults are
    /// about every call, so only `*` (or nothing) is accepted.
    #[serde(default)]
    pub route: Option<String>,
    /// The share of requests (or store calls) affected, 0 to 1; 1 when not given. Not for
    /// `queue`.
    #[serde(default)]
    pub rate: Option<f64>,
    /// The status an `error` fault answers, 500 to 599.
    #[serde(default)]
    pub status: Option<u16>,
    /// The time a `latency` fault adds (required), or a `store` fault makes each affected call
    /// take instead of failing it; 1 to 60000.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// The fault ends by itself after this many seconds (1 to 86400); unset, it lasts until
    /// deleted or a restart.
    #[serde(default)]
    pub duration_s: Option<u64>,
    /// The same seed picks the same requests of the sequence the fault sees; unset, a random
    /// one is chosen and reported (as the fault's `seed`).
    #[serde(default, skip_serializing)]
    pub seed: Option<u64>,
}

/// Why a fault was refused: the 400's `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SpecError(pub String);

impl FaultSpec {
    /// A fault of `kind` with nothing else set.
    #[cfg(test)]
    pub(crate) fn of(kind: Kind) -> Self {
        Self {
            kind,
            route: None,
            rate: None,
            status: None,
            latency_ms: None,
            duration_s: None,
            seed: None,
        }
    }

    /// The share of requests affected.
    pub(crate) fn rate(&self) -> f64 {
        self.rate.unwrap_or(1.0)
    }

    /// The `route` label of its metrics: the template, or `*`.
    pub(crate) fn route_label(&self) -> String {
        self.route.clone().unwrap_or_else(|| "*".to_owned())
    }

    /// Reads and checks a `PUT /faults/{name}` body against the routes the service has.
    pub(crate) fn parse(body: &[u8], routes: &RouteTable) -> Result<Self, SpecError> {
        let invalid = |err: serde_json::Error| SpecError(format!("invalid fault: {err}"));
        // A JSON object only (serde would also take the fields as an array, in order).
        let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
        if !value.is_object() {
            return Err(SpecError("invalid fault: a JSON object is expected".into()));
        }
        let mut spec: Self = serde_json::from_value(value).map_err(invalid)?;
        spec.check(routes)?;
        // What is left out is shown as what it means.
        spec.route.get_or_insert_with(|| "*".to_owned());
        if spec.kind != Kind::Queue {
            spec.rate.get_or_insert(1.0);
        }
        Ok(spec)
    }

    fn check(&self, routes: &RouteTable) -> Result<(), SpecError> {
        let refuse = |why: String| Err(SpecError(why));
        let kind = self.kind.with_article();
        if let Some(rate) = self.rate
            && !(0.0..=1.0).contains(&rate)
        {
            return refuse(format!("rate must be between 0 and 1, not {rate}"));
        }
        if let Some(status) = self.status
            && !(500..=599).contains(&status)
        {
            return refuse(format!("status must be 500 to 599, not {status}"));
        }
        if let Some(ms) = self.latency_ms
            && !(1..=MAX_LATENCY_MS).contains(&ms)
        {
            return refuse(format!(
                "latency_ms must be 1 to {MAX_LATENCY_MS}, not {ms}"
            ));
        }
        if let Some(s) = self.duration_s
            && !(1..=MAX_DURATION_S).contains(&s)
        {
            return refuse(format!("duration_s must be 1 to {MAX_DURATION_S}, not {s}"));
        }
        let not_for = |field: &str, present: bool| match present {
            true => refuse(format!("{field} does not apply to {kind} fault")),
            false => Ok(()),
        };
        match self.kind {
            Kind::Error => {
                self.api_route(routes)?;
                not_for("latency_ms", self.latency_ms.is_some())?;
                if self.status.is_none() {
                    return refuse("an error fault needs status (500 to 599)".into());
                }
            }
            Kind::Latency => {
                self.api_route(routes)?;
                not_for("status", self.status.is_some())?;
                if self.latency_ms.is_none() {
                    return refuse(format!(
                        "a latency fault needs latency_ms (1 to {MAX_LATENCY_MS})"
                    ));
                }
            }
            Kind::Store | Kind::Queue => {
                if self.route.as_deref().is_some_and(|r| r != "*") {
                    return refuse(format!(
                        "{kind} fault is about every {} call: route must be * or left out",
                        if self.kind == Kind::Store {
                            "store"
                        } else {
                            "queue"
                        }
                    ));
                }
                not_for("status", self.status.is_some())?;
                if self.kind == Kind::Queue {
                    not_for("rate", self.rate.is_some())?;
                    not_for("latency_ms", self.latency_ms.is_some())?;
                }
            }
        }
        Ok(())
    }

    /// An `error` or `latency` fault's route: `*` or one of the API's route templates.
    fn api_route(&self, routes: &RouteTable) -> Result<(), SpecError> {
        let kind = self.kind.with_article();
        let Some(template) = self.route.as_deref() else {
            return Err(SpecError(format!(
                "{kind} fault needs route: a route template from /status' route_table, or *"
            )));
        };
        if template == "*" {
            return Ok(());
        }
        match routes.routes().iter().find(|r| *r.route == *template) {
            None => Err(SpecError(format!(
                "unknown route template {template:?}: use one from /status' route_table, or *"
            ))),
            Some(route) if route.listener != Listener::Public => Err(SpecError(format!(
                "{template} is the service's own route; faults apply to the API's routes"
            ))),
            Some(_) => Ok(()),
        }
    }
}

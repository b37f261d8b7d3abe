//! The route templates, matched before the router runs, so the one layer that observes every
//! request can wrap the whole router instead of each route (axum's per-route layers clone and
//! box the route's service on every request; callgrind counted the difference).
//!
//! The templates are the OpenAPI document's paths, which a test keeps equal to the router's,
//! and they are matched with the `matchit` version axum routes with, so a path gets the
//! template axum's `MatchedPath` would have given it (a property test compares the two).

use std::sync::Arc;

/// Route templates by path.
#[derive(Debug, Clone, Default)]
pub struct Templates(matchit::Router<Arc<str>>);

impl Templates {
    /// Templates as axum registers them (`/sleep/{ms}`).
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut router = matchit::Router::new();
        for template in templates {
            router
                .insert(template, Arc::from(template))
                .unwrap_or_else(|err| panic!("route template {template}: {err}"));
        }
        Self(router)
    }

    /// The template `path` matches, if any.
    pub fn route(&self, path: &str) -> Option<&Arc<str>> {
        self.0.at(path).ok().map(|found| found.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates() {
        let templates = Templates::new(["/", "/sleep/{ms}", "/fibonacci/{n}/", "/messages"]);
        let route = |path| templates.route(path).map(|t| t.to_string());
        assert_eq!(route("/").as_deref(), Some("/"));
        assert_eq!(route("/sleep/5").as_deref(), Some("/sleep/{ms}"));
        assert_eq!(route("/fibonacci/7/").as_deref(), Some("/fibonacci/{n}/"));
        assert_eq!(
            route("/fibonacci/7"),
            None,
            "the slash is added before routing"
        );
        assert_eq!(route("/messages/"), None);
        assert_eq!(route("/nope"), None);
    }
}

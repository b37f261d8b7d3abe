//! Path parameters as the client wrote them. axum's `Path` rejects what it cannot decode with
//! its own plain-text 400; the contract wants each endpoint's own error body instead, so
//! handlers take the raw (percent-decoded, lossy) segments and judge them themselves.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::Uri;
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;

/// The path's values for the route template's `{captures}`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArgs(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for PathArgs {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        Ok(Self(captures(template, parts.uri.path())))
    }
}

fn captures(template: &str, path: &str) -> Vec<String> {
    template
        .split('/')
        .zip(path.split('/'))
        .filter(|(t, _)| t.starts_with('{'))
        .map(|(_, segment)| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect()
}

/// Whether a path parameter is a whole number as the contract writes one: ASCII digits only,
/// at least one (`str::parse` would also take a leading `+`).
pub fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The endpoints whose trailing slash is optional (the Sanic seed's math).
const SLASH_OPTIONAL: [&str; 3] = ["/fibonacci/", "/factorial/", "/ackermann/"];

/// The path a request arrived with, when [`canonical_uri`] changed it (for the access log).
#[derive(Debug, Clone)]
pub struct OriginalPath(pub String);

/// Appends the trailing slash the math routes are registered with, so `/fibonacci/10` and
/// `/fibonacci/10/` are one route with one metric label. `None` when nothing changes.
pub fn canonical_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if path.ends_with('/') || !SLASH_OPTIONAL.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    let with_slash = match uri.query() {
        Some(q) => format!("{path}/?{q}"),
        None => format!("{path}/"),
    };
    with_slash.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_follow_the_template() {
        assert_eq!(
            captures("/ackermann/{m}/{n}/", "/ackermann/3/4/"),
            vec!["3", "4"]
        );
        assert_eq!(captures("/sleep/{ms}", "/sleep/%20x"), vec![" x"]);
        assert_eq!(captures("/code/{code}", "/code/%ff"), vec!["\u{fffd}"]);
        assert!(captures("", "/x").is_empty());
    }

    #[test]
    fn digits_only() {
        for yes in ["0", "0400", "99999999999999999999"] {
            assert!(is_digits(yes), "{yes}");
        }
        for no in ["", "+200", "-1", " 200", "1e3", "200.0", "٣"] {
            assert!(!is_digits(no), "{no}");
        }
    }

    #[test]
    fn only_math_paths_gain_a_slash() {
        let canon = |s: &str| canonical_uri(&s.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(canon("/fibonacci/10").as_deref(), Some("/fibonacci/10/"));
        assert_eq!(
            canon("/ackermann/1/2?x=1").as_deref(),
            Some("/ackermann/1/2/?x=1")
        );
        assert_eq!(canon("/fibonacci/10/"), None);
        assert_eq!(canon("/sleep/10"), None);
        assert_eq!(canon("/fibonacci"), None);
    }
}

//! Path parameters as the client wrote them. axum's `Path` rejects what it cannot decode with
//! its own plain-text 400; the contract wants each endpoint's own error body instead, so
//! handlers take the raw (percent-decoded, lossy) segments and judge them themselves.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;

/// The template of the route a request matched, when it has `{captures}`: put in the request's
/// extensions by the middleware, which finds the route in the table, whether the route then
/// runs from the table or through axum's router.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Template(pub &'static str);

/// The path's values for the route template's `{captures}`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathArgs(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for PathArgs {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let template = parts.extensions.get::<Template>().map_or("", |t| t.0);
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
pub(crate) fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
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
}

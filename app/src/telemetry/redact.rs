//! What a log line may say about a request: no capability whole (SPEC.md, "Logs keep no
//! capabilities": a task token or a message digest is the only key to its result or message,
//! and logs are read by more people than the client who holds it), and no field of unbounded
//! length from the request.

use std::borrow::Cow;

/// Hex digits of a capability a log line keeps.
pub(crate) const KEPT_HEX_DIGITS: usize = 8;
/// Longest logged path, in bytes.
pub(crate) const MAX_PATH_BYTES: usize = 512;
/// Longest logged User-Agent, in bytes.
pub(crate) const MAX_USER_AGENT_BYTES: usize = 256;
/// Longest logged error cause, in bytes.
pub(crate) const MAX_ERROR_BYTES: usize = 1024;
/// Marks a cut: the value went on.
const CUT: &str = "…";

/// Path parameters that are capabilities, as route templates name them.
const CAPABILITY_PARAMETERS: [&str; 2] = ["{token}", "{digest}"];
/// In a path no route matched, a segment of this many hex digits or more is taken for one.
const CAPABILITY_LOOKING_LEN: usize = 32;

/// A capability as logs show it: its first 8 hex digits and a cut mark.
pub(crate) fn capability(hex: &str) -> String {
    let mut out = String::with_capacity(KEPT_HEX_DIGITS + CUT.len());
    out.push_str(prefix(hex, KEPT_HEX_DIGITS));
    out.push_str(CUT);
    out
}

/// `path` as the access log shows it, for a request whose route is `template` (`None`: no
/// route matched): segments the template names a capability are cut to their first 8 hex
/// digits, and so are capability-looking segments of unmatched paths (a token sent to a
/// mistyped route is still a token); the whole is at most [`MAX_PATH_BYTES`].
pub(crate) fn path<'a>(template: Option<&str>, path: &'a str) -> Cow<'a, str> {
    let has_capability = match template {
        // Most templates have no parameter at all; one byte's search says so.
        Some(template) => {
            template.contains('{') && CAPABILITY_PARAMETERS.iter().any(|p| template.contains(p))
        }
        None => path.split('/').any(looks_like_capability),
    };
    if !has_capability {
        return bounded(path, MAX_PATH_BYTES);
    }
    let mut template_segments = template.map(|t| t.split('/'));
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let secret = match template_segments.as_mut() {
            Some(segments) => segments
                .next()
                .is_some_and(|t| CAPABILITY_PARAMETERS.contains(&t)),
            None => looks_like_capability(segment),
        };
        if secret {
            out.push_str(&capability(segment));
        } else {
            out.push_str(segment);
        }
    }
    match bounded(&out, MAX_PATH_BYTES) {
        Cow::Borrowed(_) => Cow::Owned(out),
        Cow::Owned(cut) => Cow::Owned(cut),
    }
}

/// `text`, cut to at most `max` bytes (on a character boundary) with a cut mark when longer.
pub(crate) fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(max + CUT.len());
    out.push_str(prefix(text, max));
    out.push_str(CUT);
    Cow::Owned(out)
}

fn looks_like_capability(segment: &str) -> bool {
    segment.len() >= CAPABILITY_LOOKING_LEN && segment.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    const DIGEST: &str = "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999";

    #[test]
    fn capabilities_in_matched_routes_are_cut_to_eight_digits() {
        assert_eq!(
            path(
                Some("/randomize/{token}/result"),
                &format!("/randomize/{TOKEN}/result")
            ),
            "/randomize/01234567…/result"
        );
        assert_eq!(
            path(Some("/messages/{digest}"), &format!("/messages/{DIGEST}")),
            "/messages/aaaabbbb…"
        );
        // Short values are cut too: the parameter is a capability whatever it holds.
        assert_eq!(
            path(Some("/sum-evens/{token}/status"), "/sum-evens/abc/status"),
            "/sum-evens/abc…/status"
        );
    }

    #[test]
    fn other_routes_keep_their_path_even_with_long_numbers() {
        let number = "9".repeat(40);
        let fib = format!("/fibonacci/{number}/");
        assert_eq!(path(Some("/fibonacci/{n}/"), &fib), fib.as_str());
        assert!(matches!(path(Some("/"), "/"), Cow::Borrowed("/")));
    }

    #[test]
    fn unmatched_paths_lose_what_looks_like_a_capability() {
        assert_eq!(
            path(None, &format!("/messagez/{DIGEST}/x")),
            "/messagez/aaaabbbb…/x"
        );
        assert_eq!(path(None, "/nope/1234"), "/nope/1234");
    }

    #[test]
    fn long_values_are_bounded_on_a_character_boundary() {
        let long = format!("/{}", "é".repeat(400));
        let cut = path(None, &long);
        assert!(cut.len() <= MAX_PATH_BYTES + CUT.len(), "{}", cut.len());
        assert!(cut.ends_with(CUT));
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("abcdef", 3), "abc…");
        assert_eq!(bounded("aé", 2), "a…");
    }

    #[test]
    fn capability_keeps_eight_digits() {
        assert_eq!(capability(TOKEN), "01234567…");
        assert_eq!(capability(DIGEST), "aaaabbbb…");
    }
}

//! Deliberately bad requests, so error panels and error budgets have something to show.
//! Each expects the status the contract names; any other answer is a failure.

use goose::prelude::*;
use reqwest::Method;

use crate::request::{Call, send};

/// A request glassbox must refuse, and how.
#[derive(Debug)]
pub struct Bad {
    pub name: &'static str,
    pub method: Method,
    /// The route template glassbox labels it with.
    pub route: &'static str,
    pub path: &'static str,
    pub body: Option<(&'static str, &'static [u8])>,
    pub status: u16,
}

/// The bad requests, one transaction each.
pub const BAD: &[Bad] = &[
    Bad {
        name: "unknown path",
        method: Method::GET,
        route: "unmatched",
        path: "/no/such/page",
        body: None,
        status: 404,
    },
    Bad {
        name: "wrong method",
        method: Method::DELETE,
        route: "/",
        path: "/",
        body: None,
        status: 405,
    },
    Bad {
        name: "sleep too long",
        method: Method::GET,
        route: "/sleep/{ms}",
        path: "/sleep/99999999",
        body: None,
        status: 400,
    },
    Bad {
        name: "invalid code",
        method: Method::GET,
        route: "/code/{code}",
        path: "/code/99",
        body: None,
        status: 400,
    },
    Bad {
        name: "number out of range",
        method: Method::GET,
        route: "/fibonacci/{n}/",
        path: "/fibonacci/401/",
        body: None,
        status: 400,
    },
    Bad {
        name: "not a number",
        method: Method::GET,
        route: "/ackermann/{m}/{n}/",
        path: "/ackermann/1/x/",
        body: None,
        status: 400,
    },
    Bad {
        name: "message not JSON",
        method: Method::POST,
        route: "/messages",
        path: "/messages",
        body: Some(("application/json", b"{\"message\":")),
        status: 400,
    },
    Bad {
        name: "message as text",
        method: Method::POST,
        route: "/messages",
        path: "/messages",
        body: Some(("text/plain", b"hello")),
        status: 415,
    },
    Bad {
        name: "malformed digest",
        method: Method::GET,
        route: "/messages/{digest}",
        path: "/messages/not-a-digest",
        body: None,
        status: 404,
    },
    Bad {
        name: "not a PNG",
        method: Method::POST,
        route: "/randomize",
        path: "/randomize",
        body: Some(("image/png", b"GIF89a, not a PNG")),
        status: 400,
    },
    Bad {
        name: "unknown token",
        method: Method::GET,
        route: "/randomize/{token}/status",
        path: "/randomize/00000000000000000000000000000000/status",
        body: None,
        status: 404,
    },
    Bad {
        name: "result of an unknown task",
        method: Method::GET,
        route: "/sum-evens/{token}/result",
        path: "/sum-evens/00000000000000000000000000000000/result",
        body: None,
        status: 404,
    },
];

/// Sends the bad request `bad`.
pub async fn send_bad(user: &mut GooseUser, bad: &Bad) -> TransactionResult {
    let mut call = Call::new(bad.method.clone(), bad.route, bad.path).expect(bad.status);
    if let Some((content_type, body)) = bad.body {
        call = call.body(content_type, body);
    }
    send(user, call).await?;
    Ok(())
}

//! The Sanic seed's math, the DLG seed's `/total`, and the OpenAPI document.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use testkit::exposition::sample;
use testkit::{Endpoint, InProcess};

async fn response(app: &Endpoint, path: &str) -> (u16, Value) {
    app.get_json(path).await
}

async fn value(app: &Endpoint, path: &str) -> String {
    let (status, body) = response(app, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["response"]
        .as_str()
        .expect("a decimal string")
        .to_owned()
}

/// n! by schoolbook multiplication on decimal digits: independent of the service's big integers.
fn factorial_digits(n: u32) -> String {
    let mut digits = vec![1u32]; // least significant first
    for k in 2..=n {
        let mut carry = 0;
        for d in digits.iter_mut() {
            let x = *d * k + carry;
            *d = x % 10;
            carry = x / 10;
        }
        while carry > 0 {
            digits.push(carry % 10);
            carry /= 10;
        }
    }
    digits
        .iter()
        .rev()
        .map(|d| char::from(b'0' + *d as u8))
        .collect()
}

#[tokio::test]
async fn fibonacci_values_and_bounds() {
    let app = InProcess::start(&[]).await;
    for (n, want) in [
        (0, "0"),
        (1, "1"),
        (2, "1"),
        (3, "2"),
        (4, "3"),
        (5, "5"),
        (6, "8"),
    ] {
        assert_eq!(value(&app, &format!("/fibonacci/{n}/")).await, want);
        assert_eq!(
            value(&app, &format!("/fibonacci/{n}")).await,
            want,
            "without the slash"
        );
    }
    assert_eq!(
        value(&app, "/fibonacci/100/").await,
        "354224848179261915075"
    );
    assert_eq!(
        value(&app, "/fibonacci/399").await,
        "108788617463475645289761992289049744844995705477812699099751202749393926359816304226"
    );
    let fib400 = value(&app, "/fibonacci/400/").await;
    assert_eq!(fib400.len(), 84);
    assert_eq!(
        fib400,
        "176023680645013966468226945392411250770384383304492191886725992896575345044216019675"
    );
}

#[tokio::test]
async fn factorial_values() {
    let app = InProcess::start(&[]).await;
    for (n, want) in [(0, "1"), (1, "1"), (6, "720"), (7, "5040")] {
        assert_eq!(value(&app, &format!("/factorial/{n}/")).await, want);
        assert_eq!(value(&app, &format!("/factorial/{n}")).await, want);
    }
    let f400 = value(&app, "/factorial/400/").await;
    assert_eq!(f400.len(), 869);
    let ours = Sha256::digest(f400.as_bytes());
    let independent = Sha256::digest(factorial_digits(400).as_bytes());
    assert_eq!(ours, independent);
    assert_eq!(
        format!("{ours:x}"),
        "e0c9742ae28a3bbe13ec46de4a88ea0dbd48c62672b09a8ddc2c5d328aa0c731"
    );
}

#[tokio::test]
async fn ackermann_values() {
    let app = InProcess::start(&[]).await;
    for ((m, n), want) in [
        ((0, 0), "1"),
        ((1, 1), "3"),
        ((2, 1), "5"),
        ((3, 4), "125"),
        ((3, 0), "5"),
        ((0, 4), "5"),
    ] {
        assert_eq!(value(&app, &format!("/ackermann/{m}/{n}/")).await, want);
        assert_eq!(value(&app, &format!("/ackermann/{m}/{n}")).await, want);
    }
}

#[tokio::test]
async fn bad_numbers_name_the_first_bad_parameter() {
    let app = InProcess::start(&[]).await;
    let invalid = |x: &str| (400, json!({"error": format!("invalid number: {x}")}));
    let forty_digits = "1234567890123456789012345678901234567890";
    for slash in ["", "/"] {
        for (path, bad) in [
            ("/fibonacci/401", "401"),
            ("/fibonacci/-1", "-1"),
            ("/fibonacci/abc", "abc"),
            ("/fibonacci/1e3", "1e3"),
            (&format!("/fibonacci/{forty_digits}"), forty_digits),
            ("/factorial/401", "401"),
            ("/factorial/-400", "-400"),
            ("/factorial/6.0", "6.0"),
            ("/ackermann/4/0", "4"),
            ("/ackermann/0/5", "5"),
            ("/ackermann/4/5", "4"),
            ("/ackermann/-1/-1", "-1"),
            ("/ackermann/x/1", "x"),
            ("/ackermann/1/1e3", "1e3"),
        ] {
            let path = format!("{path}{slash}");
            assert_eq!(response(&app, &path).await, invalid(bad), "{path}");
        }
    }
    // In range, every bound exactly: accepted.
    for path in [
        "/fibonacci/400",
        "/factorial/400",
        "/ackermann/3/4",
        "/ackermann/0/0",
    ] {
        assert_eq!(response(&app, path).await.0, 200, "{path}");
    }
    // Wrong shapes are unknown routes.
    for path in [
        "/fibonacci/",
        "/fibonacci",
        "/ackermann/1",
        "/ackermann/1/2/3",
    ] {
        assert_eq!(
            response(&app, path).await,
            (404, json!({"error": "not found"})),
            "{path}"
        );
    }
}

#[tokio::test]
async fn math_routes_are_labelled_by_template() {
    let app = InProcess::start(&[]).await;
    for path in [
        "/fibonacci/1",
        "/fibonacci/2/",
        "/fibonacci/abc",
        "/ackermann/1/2",
    ] {
        app.get(path).await;
    }
    let metrics = app.metrics().await;
    let count = |route: &str, status: u16| {
        sample(
            &metrics,
            &format!(
                r#"http_server_request_duration_seconds_count{{http_request_method="GET",http_route="{route}",http_response_status_code="{status}"}}"#
            ),
        )
    };
    assert_eq!(
        count("/fibonacci/{n}/", 200),
        Some(2.0),
        "with and without the slash, one series"
    );
    assert_eq!(count("/fibonacci/{n}/", 400), Some(1.0));
    assert_eq!(count("/ackermann/{m}/{n}/", 200), Some(1.0));
}

#[tokio::test]
async fn total_sums_the_numbers_api() {
    let app = InProcess::start(&["--total-latency", "0ms"]).await;
    let (status, body) = response(&app, "/total").await;
    assert_eq!((status, body), (200, json!({"total": 500_000_500_000u64})));
    let app = InProcess::start(&["--total-latency", "0ms", "--total-count", "10"]).await;
    assert_eq!(response(&app, "/total").await, (200, json!({"total": 55})));
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = InProcess::start(&[]).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("app/openapi.json exists");
    assert!(
        served == committed,
        "app/openapi.json is stale: run `just openapi`"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let max = &doc["paths"]["/sleep/{ms}"]["get"]["parameters"][0]["schema"]["maximum"];
    assert_eq!(
        max, 60000,
        "the document carries the configured maximum sleep"
    );
    let short = InProcess::start(&["--max-sleep", "250ms"]).await;
    let doc: Value = short.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(
        doc["paths"]["/sleep/{ms}"]["get"]["parameters"][0]["schema"]["maximum"],
        250
    );
}

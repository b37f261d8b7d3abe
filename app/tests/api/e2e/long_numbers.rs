//! `/sum-evens` on files that hold one very long number: SPEC.md promises exact sums however
//! large, so the time must grow with the digits, not with their square, memory must not grow
//! with them beyond the number itself, and other clients must not wait behind it.

use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{Process, eventually};

/// An even number of `digits` digits: a repeating pattern that ends in 8.
fn long_even(digits: usize) -> String {
    let mut text: String = "1234567890".chars().cycle().take(digits - 1).collect();
    text.push('8');
    text
}

async fn submit(app: &Process, text: String, client: &str) -> String {
    let response = app
        .client
        .post(app.url("/sum-evens"))
        .header("content-type", "text/plain")
        .header("x-client-id", client)
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn finished(app: &Process, token: &str) -> Value {
    eventually("the sum to finish", || async {
        app.get_json(&format!("/sum-evens/{token}/status")).await.1["status"] == "finished"
    })
    .await;
    app.get_json(&format!("/sum-evens/{token}/result")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_number_of_millions_of_digits_is_summed_in_linear_time_and_bounded_memory() {
    let app = Process::spawn(&[]).await;
    let before = app.rss_bytes();
    let mut times = Vec::new();
    let mut peak = 0;
    for millions in [1, 2, 4] {
        let number = long_even(millions * 1_000_000);
        let start = Instant::now();
        let token = submit(&app, number.clone(), "long").await;
        let result = finished(&app, &token).await;
        times.push(start.elapsed());
        peak = peak.max(app.rss_bytes());
        assert_eq!(result["sum"].as_str().unwrap(), number, "exact");
        assert_eq!(result["evens"], 1);
    }
    // Linear: four times the digits within 3 x 4 times the time (quadratic was 16 x).
    assert!(
        times[2] <= times[0] * 12 + Duration::from_millis(500),
        "1M, 2M, 4M digits took {times:?}"
    );
    let grown = peak.saturating_sub(before);
    assert!(grown < 100 << 20, "RSS grew by {} MB", grown >> 20);

    // Two such tasks do not hold up /total (whose compute shares the cores with them).
    let tokens = [
        submit(&app, long_even(4_000_000), "one").await,
        submit(&app, long_even(4_000_000), "two").await,
    ];
    let start = Instant::now();
    let (status, _) = app.get_json("/total").await;
    let total = start.elapsed();
    assert_eq!(status, 200);
    assert!(total < Duration::from_secs(2), "/total took {total:?}");
    for token in tokens {
        finished(&app, &token).await;
    }
    testkit::drill(
        "/sum-evens of one number of 1M, 2M, 4M digits; /total during two 4M ones",
        "time linear in the digits; RSS + < 100 MB; /total < 2 s",
        &format!(
            "{:.0}, {:.0}, {:.0} ms; RSS +{} MB; /total {:.0} ms",
            times[0].as_secs_f64() * 1e3,
            times[1].as_secs_f64() * 1e3,
            times[2].as_secs_f64() * 1e3,
            grown >> 20,
            total.as_secs_f64() * 1e3
        ),
    );
}

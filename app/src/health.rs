//! Health checks: each backend the service depends on says pass or fail, and `/health`
//! answers 503 when any fails. The certificate check is built in; backends add their own.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, join_all};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::certs::ServerCertInfo;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe write's verdict stands: `/health` polled often writes at most this often.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The last verdict of a probe write (a check that exercises the real write path), reused for
/// [`PROBE_EVERY`]. Callers that come while a probe runs wait for its verdict.
#[derive(Debug, Default)]
pub(crate) struct ProbeCache(tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>);

impl ProbeCache {
    pub(crate) async fn run<F>(&self, probe: impl FnOnce() -> F) -> Result<(), String>
    where
        F: Future<Output = Result<(), String>>,
    {
        let mut last = self.0.lock().await;
        if let Some((at, verdict)) = &*last
            && at.elapsed() < PROBE_EVERY
        {
            return verdict.clone();
        }
        let verdict = probe().await;
        *last = Some((Instant::now(), verdict.clone()));
        verdict
    }

    /// Forgets the last verdict: a real write just failed, so the next check probes afresh.
    pub(crate) fn forget(&self) {
        if let Ok(mut last) = self.0.try_lock() {
            *last = None;
        }
    }
}

/// One health check.
pub(crate) trait Check: Send + Sync + Debug {
    fn name(&self) -> &'static str;
    fn run(&self) -> BoxFuture<'_, CheckResult>;
}

/// A check's verdict and what it saw.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckResult {
    pub status: CheckStatus,
    #[serde(flatten)]
    pub detail: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckStatus {
    Pass,
    Fail,
}

impl CheckResult {
    pub(crate) fn new(status: CheckStatus, detail: Value) -> Self {
        let detail = match detail {
            Value::Object(map) => map.into_iter().collect(),
            other => BTreeMap::from([("detail".to_string(), other)]),
        };
        Self { status, detail }
    }
}

/// The set of checks `/health` runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    checks: Vec<Arc<dyn Check>>,
}

impl Health {
    pub(crate) fn with(mut self, check: impl Check + 'static) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Runs every check at once; healthy when all pass.
    pub(crate) async fn run(&self) -> (bool, BTreeMap<&'static str, CheckResult>) {
        let results = join_all(self.checks.iter().map(|check| async move {
            let result = tokio::time::timeout(CHECK_TIMEOUT, check.run())
                .await
                .unwrap_or_else(|_| {
                    CheckResult::new(
                        CheckStatus::Fail,
                        json!({"error": format!("no answer within {CHECK_TIMEOUT:?}")}),
                    )
                });
            (check.name(), result)
        }))
        .await;
        let healthy = results.iter().all(|(_, r)| r.status == CheckStatus::Pass);
        (healthy, results.into_iter().collect())
    }
}

/// What the failed checks of a run said, as `name: error` joined by `; `: the cause a failed
/// `/health` request's access line carries.
pub(crate) fn failures(results: &BTreeMap<&'static str, CheckResult>) -> String {
    results
        .iter()
        .filter(|(_, result)| result.status == CheckStatus::Fail)
        .map(
            |(name, result)| match result.detail.get("error").and_then(Value::as_str) {
                Some(error) => format!("{name}: {error}"),
                None => format!("{name}: failed"),
            },
        )
        .collect::<Vec<_>>()
        .join("; ")
}

/// Passes while the served certificate is inside its validity period.
#[derive(Debug, Clone)]
pub(crate) struct CertificateCheck {
    pub identity: std::sync::Arc<crate::tls::Identity>,
}

impl CertificateCheck {
    pub(crate) fn evaluate(&self, now: OffsetDateTime) -> CheckResult {
        let info = self.identity.info();
        certificate_result(&info, self.identity.source(), now)
    }
}

/// The certificate check's verdict on `info` at `now`, with what to do when it fails.
fn certificate_result(
    info: &ServerCertInfo,
    source: &crate::tls::Source,
    now: OffsetDateTime,
) -> CheckResult {
    let remaining = info.not_after - now;
    let status = if info.not_before <= now && now < info.not_after {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    let mut detail = json!({
        "source": match source {
            crate::tls::Source::LocalCa { .. } => "local_ca",
            crate::tls::Source::Operator { .. } => "tls_cert",
        },
        "not_after": info.not_after.format(&Rfc3339).unwrap_or_default(),
        "days_remaining": remaining.whole_days(),
        "names": info.names,
    });
    if status == CheckStatus::Fail {
        detail["error"] = if now < info.not_before {
            json!("certificate is not valid yet")
        } else {
            json!(format!(
                "certificate has expired: {}",
                source.renewal_hint()
            ))
        };
    }
    CheckResult::new(status, detail)
}

impl Check for CertificateCheck {
    fn name(&self) -> &'static str {
        "certificate"
    }

    fn run(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin(async move { self.evaluate(OffsetDateTime::now_utc()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration as TimeDuration;

    /// The verdict on a certificate valid from `not_before` to `not_after`.
    struct Cert(OffsetDateTime, OffsetDateTime);

    impl Cert {
        fn evaluate(&self, now: OffsetDateTime) -> CheckResult {
            let info = ServerCertInfo {
                not_before: self.0,
                not_after: self.1,
                names: vec!["localhost".into()],
            };
            let source = crate::tls::Source::Operator {
                cert: "own.crt".into(),
                key: "own.key".into(),
            };
            certificate_result(&info, &source, now)
        }
    }

    fn check(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Cert {
        Cert(not_before, not_after)
    }

    #[test]
    fn certificate_validity() {
        let now = OffsetDateTime::now_utc();
        let day = TimeDuration::days(1);
        assert_eq!(
            check(now - day, now + day).evaluate(now).status,
            CheckStatus::Pass
        );
        let expired = check(now - day * 2, now - day).evaluate(now);
        assert_eq!(expired.status, CheckStatus::Fail);
        assert!(
            expired.detail["error"]
                .as_str()
                .unwrap()
                .contains("expired: replace the files of --tls-cert")
        );
        assert_eq!(
            check(now + day, now + day * 2).evaluate(now).status,
            CheckStatus::Fail
        );
    }

    #[derive(Debug)]
    struct Slow;
    impl Check for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn run(&self) -> BoxFuture<'_, CheckResult> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                CheckResult::new(CheckStatus::Pass, json!({}))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_fails() {
        let now = OffsetDateTime::now_utc();
        let health = Health::default()
            .with(CertificateCheck {
                identity: std::sync::Arc::new(crate::tls::Identity::reporting(ServerCertInfo {
                    not_before: now - TimeDuration::days(1),
                    not_after: now + TimeDuration::days(1),
                    names: vec!["localhost".into()],
                })),
            })
            .with(Slow);
        let (healthy, results) = health.run().await;
        assert!(!healthy);
        assert_eq!(results["certificate"].status, CheckStatus::Pass);
        assert_eq!(results["slow"].status, CheckStatus::Fail);
        assert_eq!(failures(&results), "slow: no answer within 2s");
    }
}

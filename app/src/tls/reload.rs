//! When the served certificate is read again: on SIGHUP, and when its files change (looked at
//! every [`POLL`]). Each attempt is counted in `glassbox_certificate_reloads_total{result}` and
//! logged; a failed one leaves the previous certificate serving.

use std::sync::Arc;
use std::time::Duration;

use super::Identity;
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::Metrics;

/// How often the certificate's files are looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// Reloads `identity` whenever it is asked to or its files change; runs until dropped.
pub async fn watch(identity: Arc<Identity>, telemetry: Arc<Telemetry>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let asked = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let asked = std::future::pending::<()>();
        let trigger = tokio::select! {
            () = asked => "sighup",
            () = tokio::time::sleep(POLL) => "file_change",
        };
        if trigger == "sighup" || identity.changed_on_disk() {
            reload(&identity, &telemetry.metrics, trigger);
        }
    }
}

/// One reload attempt, counted and logged.
pub fn reload(identity: &Identity, metrics: &Metrics, trigger: &'static str) {
    match identity.reload() {
        Ok(info) => {
            metrics.certificate_reload("ok");
            metrics.certificate_expiry(info.not_after.unix_timestamp());
            tracing::info!(
                trigger,
                not_after = %rfc3339(info.not_after),
                names = ?info.names,
                "certificate reloaded"
            );
        }
        Err(err) => {
            metrics.certificate_reload("error");
            tracing::error!(
                trigger,
                error = %format!("{err:#}"),
                "certificate reload failed; the previous certificate keeps serving"
            );
        }
    }
}

/// A time as RFC 3339, as every log field carries it.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

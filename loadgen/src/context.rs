//! What every user shares: the recorder, how to build a client, the think time and the
//! payloads. goose transactions are plain functions, so this is set once, before the run.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result};
use goose::config::GooseConfiguration;

use crate::payloads;
use crate::recorder::Recorder;

#[derive(Debug)]
pub struct Context {
    pub recorder: Recorder,
    pub client: ClientSettings,
    pub think_time: Duration,
    /// A PNG for `/randomize`, made once: every submission sends the same picture.
    pub png: Vec<u8>,
}

static CONTEXT: OnceLock<Context> = OnceLock::new();

/// Sets the shared context; the first call wins.
pub fn init(context: Context) -> &'static Context {
    let _ = CONTEXT.set(context);
    get()
}

/// The shared context.
///
/// # Panics
/// When called before [`init`]: a transaction cannot run before the load test is set up.
pub fn get() -> &'static Context {
    CONTEXT
        .get()
        .expect("the context is set before the load test starts")
}

impl Context {
    pub fn new(client: ClientSettings, think_time: Duration) -> Self {
        Self {
            recorder: Recorder::new(),
            client,
            think_time,
            png: payloads::png(240, 180),
        }
    }
}

/// The HTTP client each user builds: goose's client options (`--timeout`, `--no-gzip`,
/// `--accept-invalid-certs`) plus trust in glassbox's CA.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub ca: Option<reqwest::Certificate>,
    pub timeout: Duration,
    pub gzip: bool,
    pub accept_invalid_certs: bool,
}

impl ClientSettings {
    /// The settings goose's options ask for; an https host needs the CA file.
    pub fn new(goose: &GooseConfiguration, host: &str, ca_cert: &Path) -> Result<Self> {
        let timeout = match goose.timeout.as_deref() {
            None => Duration::from_secs(60),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .with_context(|| format!("--timeout {text}: not a positive number of seconds"))?,
        };
        let ca = if host.starts_with("https://") && !goose.accept_invalid_certs {
            let pem = std::fs::read(ca_cert).with_context(|| {
                format!(
                    "reading the CA certificate {} (start glassbox once or run `just certs` to \
                     create it, or pass --ca-cert)",
                    ca_cert.display()
                )
            })?;
            Some(
                reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", ca_cert.display()))?,
            )
        } else {
            None
        };
        Ok(Self {
            ca,
            timeout,
            gzip: !goose.no_gzip,
            accept_invalid_certs: goose.accept_invalid_certs,
        })
    }

    /// A client builder trusting only the CA (no system roots), as a user of the demo would.
    pub fn builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("glassbox-loadgen/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .gzip(self.gzip)
            .danger_accept_invalid_certs(self.accept_invalid_certs);
        if let Some(ca) = &self.ca {
            builder = builder.tls_certs_only([ca.clone()]);
        }
        builder
    }
}

//! An HTTPS client for what a benchmark asks its servers between measurements (`/status`,
//! `/metrics`, task states): reqwest trusting only the run's CA, on a runtime of its own.

use std::future::Future;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

#[derive(Debug)]
pub(crate) struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub(crate) fn new(ca: &Path) -> Result<Self> {
        Ok(Self {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            client: testkit::client::client_trusting(ca),
        })
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs `future` on the client's runtime.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `GET url`, which must answer 200, as text.
    pub(crate) fn text(&self, url: &str) -> Result<String> {
        self.block_on(async {
            let response = self.client.get(url).send().await.context(url.to_owned())?;
            ensure!(response.status() == 200, "{url}: {}", response.status());
            Ok(response.text().await?)
        })
    }

    /// `GET url`, which must answer 200, as JSON.
    pub(crate) fn json(&self, url: &str) -> Result<Value> {
        let text = self.text(url)?;
        serde_json::from_str(&text).with_context(|| format!("{url} is not JSON"))
    }
}

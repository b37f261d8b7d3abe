//! The certificate glassbox serves, behind a resolver the TLS configuration asks on every
//! handshake, so a new pair takes effect without a restart: either `server.crt` and
//! `server.key` from the local CA's directory, or the operator's own `--tls-cert` and
//! `--tls-key`, which [`Identity::reload`] reads again (on SIGHUP, or when the files change).
//! A pair that cannot be used is refused and the one in use keeps serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs::{self, ServerCertInfo};

/// Where the served certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `server.crt` and `server.key` in `--certs-dir`, issued and renewed by the local CA.
    LocalCa { certs_dir: PathBuf },
    /// The operator's `--tls-cert` (PEM, leaf first, chain allowed) and `--tls-key`, used as
    /// they are: no local CA, no renewal.
    Operator { cert: PathBuf, key: PathBuf },
}

impl Source {
    fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            Self::LocalCa { certs_dir } => {
                let paths = certs::CertPaths::in_dir(certs_dir);
                (paths.server_cert, paths.server_key)
            }
            Self::Operator { cert, key } => (cert.clone(), key.clone()),
        }
    }

    /// What to do about an expired certificate from this source.
    pub fn renewal_hint(&self) -> &'static str {
        match self {
            Self::LocalCa { .. } => "run `glassbox certs` or restart",
            Self::Operator { .. } => {
                "replace the files of --tls-cert and --tls-key (they are read again when they change)"
            }
        }
    }
}

/// The served certificate and key, and what they say about themselves.
pub struct Identity {
    source: Source,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    info: ServerCertInfo,
    /// The files' modification times and sizes when they were read.
    stamp: Stamp,
}

/// What tells a file apart from its next version without reading it.
type Stamp = [Option<(SystemTime, u64)>; 2];

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("source", &self.source)
            .field("info", &self.info())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads the pair `source` names; an error says which file and why.
    pub fn load(source: Source, provider: Arc<CryptoProvider>) -> Result<Self> {
        let loaded = read(&source, &provider, stamp(&source))?;
        Ok(Self {
            source,
            provider,
            current: RwLock::new(loaded),
        })
    }

    /// An identity that reports `info` (its key is a throwaway self-signed one): for tests
    /// of what is reported about a certificate.
    #[cfg(test)]
    pub(crate) fn reporting(info: ServerCertInfo) -> Self {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let provider = super::provider();
        let der = PrivateKeyDer::try_from(key.serialize_der()).expect("a DER key");
        let signing = provider
            .key_provider
            .load_private_key(der)
            .expect("a signing key");
        Self {
            source: Source::LocalCa {
                certs_dir: PathBuf::from("certs"),
            },
            provider,
            current: RwLock::new(Loaded {
                key: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)),
                info,
                stamp: [None, None],
            }),
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The certificate being served.
    pub fn info(&self) -> ServerCertInfo {
        self.lock().info.clone()
    }

    /// Whether either file changed since it was read (or since the last failed attempt).
    pub fn changed_on_disk(&self) -> bool {
        stamp(&self.source) != self.lock().stamp
    }

    /// Reads the pair again and serves it from the next handshake on. A pair that cannot be
    /// used is refused with the reason, and the current one stays; its files' stamp is kept
    /// so the same broken files are not retried until they change again.
    pub fn reload(&self) -> Result<ServerCertInfo> {
        // Taken before reading: a file that changes while it is read is read again.
        let before = stamp(&self.source);
        let read = read(&self.source, &self.provider, before);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        match read {
            Ok(loaded) => {
                let info = loaded.info.clone();
                *current = loaded;
                Ok(info)
            }
            Err(err) => {
                current.stamp = before;
                Err(err)
            }
        }
    }

    fn lock(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.lock().key.clone())
    }
}

fn stamp(source: &Source) -> Stamp {
    let (cert, key) = source.paths();
    let of = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [of(&cert), of(&key)]
}

/// Reads the pair `source` names; `stamp` is its files' stamp, taken before reading.
fn read(source: &Source, provider: &CryptoProvider, stamp: Stamp) -> Result<Loaded> {
    let (cert_path, key_path) = source.paths();
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow!("{} holds no certificate", cert_path.display()))?;
    let info =
        certs::server_info(leaf).with_context(|| format!("parsing {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .with_context(|| format!("loading the key in {}", key_path.display()))?;
    let key = CertifiedKey::new(chain, signing);
    key.keys_match().map_err(|err| {
        anyhow!(
            "{} does not belong to {} ({err})",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        info,
        stamp,
    })
}

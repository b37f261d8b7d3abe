//! The local certificate authority: create, check, reuse and renew `certs/`.
//!
//! A CA (`ca.crt`, `ca.key`) signs a server certificate (`server.crt`, `server.key`) for
//! localhost, 127.0.0.1, ::1 and any configured names. Clients trust `ca.crt` and need no `-k`.
//! A certificate is reused while it is valid for more than [`RENEW_BEFORE`]; otherwise it is
//! replaced, and a CA that must be replaced takes the server certificate with it. A renewed
//! server certificate keeps every name the old one had (another process may have added one).
//! A CA that cannot be read is an error naming the file, never silently replaced: clients
//! trust it, so replacing it is asked for (`glassbox certs --new-ca`). Concurrent starts in
//! one directory take turns (a lock file) and write through temporary files of their own.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

/// Certificates expiring sooner than this are renewed on start.
pub const RENEW_BEFORE: Duration = Duration::days(30);
const CA_LIFETIME: Duration = Duration::days(3650);
const SERVER_LIFETIME: Duration = Duration::days(397);
/// Names every server certificate covers.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Where the four files live.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl CertPaths {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}

/// What [`ensure`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both certificates were valid and kept.
    Reused,
    /// The CA was kept; the server certificate was (re)issued.
    ServerIssued,
    /// A new CA and a new server certificate were made: clients must trust the new `ca.crt`.
    CaCreated,
}

/// The server certificate in use, as the health check and logs describe it.
#[derive(Debug, Clone)]
pub struct ServerCertInfo {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub names: Vec<String>,
}

/// Makes sure `dir` holds a valid CA and server certificate covering `extra_names` (and
/// every name the server certificate already had).
pub fn ensure(dir: &Path, extra_names: &[String]) -> Result<(Outcome, ServerCertInfo)> {
    ensure_with(dir, extra_names, None, false)
}

/// [`ensure`] with the CA's key at `ca_key` instead of `dir/ca.key` (`--ca-key`: kept where
/// only certificates are made), and with `new_ca`, replacing the CA first (`glassbox certs
/// --new-ca`: for a CA that cannot be read or should no longer be trusted; clients must then
/// trust the new `ca.crt`).
pub fn ensure_with(
    dir: &Path,
    extra_names: &[String],
    ca_key: Option<&Path>,
    new_ca: bool,
) -> Result<(Outcome, ServerCertInfo)> {
    let mut paths = CertPaths::in_dir(dir);
    if let Some(ca_key) = ca_key {
        paths.ca_key = ca_key.to_path_buf();
    }
    ensure_at(dir, &paths, extra_names, new_ca, OffsetDateTime::now_utc())
}

fn ensure_at(
    dir: &Path,
    paths: &CertPaths,
    extra_names: &[String],
    new_ca: bool,
    now: OffsetDateTime,
) -> Result<(Outcome, ServerCertInfo)> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(key_dir) = paths.ca_key.parent() {
        fs::create_dir_all(key_dir).with_context(|| format!("creating {}", key_dir.display()))?;
    }
    let _turn = lock(dir)?;
    let mut kept = existing_names(&paths.server_cert);
    kept.extend(extra_names.iter().cloned());
    let names = wanted_names(&kept);

    let absent = !paths.ca_cert.exists() && !paths.ca_key.exists();
    // A server that was given `ca.crt` and its own certificate but not the CA's key (the key
    // kept where certificates are made): it serves what it has while that is valid.
    if !new_ca && paths.ca_cert.exists() && !paths.ca_key.exists() {
        let ca_pem = fs::read_to_string(&paths.ca_cert)
            .with_context(|| format!("reading {}", paths.ca_cert.display()))?;
        if let Err(reason) = usable_server(paths, &ca_pem, &names, now) {
            bail!(
                "server.crt in {} needs replacing ({reason}), but the CA's key is not there \
                 ({} is missing): run `glassbox certs` where the key is, or \
                 `glassbox certs --new-ca` to make a new CA",
                dir.display(),
                paths.ca_key.display()
            );
        }
        restrict_key_mode(&paths.server_key)?;
        return Ok((Outcome::Reused, read_server_info(&paths.server_cert)?));
    }
    let (ca_pem, ca_key, mut outcome) = if new_ca || absent {
        let why = if new_ca {
            "asked to (--new-ca)"
        } else {
            "there is none"
        };
        tracing::info!(dir = %dir.display(), why, "creating a new local CA");
        let (pem, key) = create_ca(paths, &names, now)?;
        (pem, key, Outcome::CaCreated)
    } else {
        match usable_ca(paths, now) {
            Ok((pem, key)) => (pem, key, Outcome::Reused),
            // A CA near its end is renewed; anything else wrong with it is for a person.
            Err(reason @ Unusable::Expiring { .. }) => {
                tracing::info!(reason = %reason, dir = %dir.display(), "creating a new local CA");
                let (pem, key) = create_ca(paths, &names, now)?;
                (pem, key, Outcome::CaCreated)
            }
            Err(reason) => bail!(
                "the local CA in {} cannot be used: {reason}. Clients trust it, so it is not \
                 replaced silently: restore it, or run `glassbox certs --new-ca --certs-dir {}` \
                 to make a new one (and trust the new ca.crt)",
                dir.display(),
                dir.display()
            ),
        }
    };

    if outcome == Outcome::Reused
        && let Err(reason) = usable_server(paths, &ca_pem, &names, now)
    {
        tracing::info!(reason = %reason, "issuing a new server certificate");
        outcome = Outcome::ServerIssued;
    }
    if outcome == Outcome::ServerIssued
        && let Some(name) = outside_constraints(&ca_pem, &names)
    {
        bail!(
            "`{name}` is not among the names the local CA in {} may sign for (it was made for \
             others, and clients would refuse it): run `glassbox certs --new-ca --certs-dir {} \
             --cert-names ...` with every name, then trust the new ca.crt",
            dir.display(),
            dir.display()
        );
    }
    if outcome != Outcome::Reused {
        issue_server(paths, &ca_pem, ca_key, &names, now)?;
    }
    restrict_key_mode(&paths.ca_key)?;
    restrict_key_mode(&paths.server_key)?;
    let info = read_server_info(&paths.server_cert)?;
    Ok((outcome, info))
}

/// The names the server certificate on disk covers (none if it cannot be read).
fn existing_names(server_cert: &Path) -> Vec<String> {
    read_server_info(server_cert)
        .map(|info| info.names)
        .unwrap_or_default()
}

/// Waits for this directory's lock (`.lock`, released when the returned file closes), so that
/// two processes starting at once do not each make a CA and mix their files.
fn lock(dir: &Path) -> Result<fs::File> {
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    #[cfg(unix)]
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// The names the server certificate must cover, defaults first, without duplicates.
pub fn wanted_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|s| s.to_string()).collect();
    for name in extra.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
    }
    names
}

/// Reads the server certificate's validity and names.
pub fn read_server_info(path: &Path) -> Result<ServerCertInfo> {
    let pem = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, pem) = parse_x509_pem(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    server_info(&pem.contents).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

/// The validity and names of a DER certificate.
pub fn server_info(der: &[u8]) -> Result<ServerCertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("{e}"))?;
    Ok(ServerCertInfo {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        names: san_names(&cert),
    })
}

/// Why certificate files on disk cannot be used as they are, so they are made again.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("{file}: {why}")]
    Unreadable { file: &'static str, why: String },
    #[error("ca.crt is not a CA certificate")]
    NotACa,
    #[error("{key} does not belong to {cert}")]
    KeyMismatch {
        key: &'static str,
        cert: &'static str,
    },
    #[error("{file} is not valid yet")]
    NotYetValid { file: &'static str },
    #[error("{file} expires at {not_after}, within the renewal window")]
    Expiring {
        file: &'static str,
        not_after: OffsetDateTime,
    },
    #[error("server.crt is not signed by ca.crt")]
    NotSigned,
    #[error("server.crt does not cover {0}")]
    MissingName(String),
}

/// `file` could not be read or parsed, for this reason.
fn unreadable(file: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Unusable {
    move |why| Unusable::Unreadable {
        file,
        why: why.to_string(),
    }
}

fn usable_ca(paths: &CertPaths, now: OffsetDateTime) -> Result<(String, KeyPair), Unusable> {
    let (crt, key_file) = (unreadable("ca.crt"), unreadable("ca.key"));
    let pem = fs::read_to_string(&paths.ca_cert).map_err(|e| crt(&e))?;
    let key_pem = fs::read_to_string(&paths.ca_key).map_err(|e| key_file(&e))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| key_file(&e))?;
    let (_, parsed) = parse_x509_pem(pem.as_bytes()).map_err(|e| crt(&e))?;
    let cert = parsed.parse_x509().map_err(|e| crt(&e))?;
    if !cert.is_ca() {
        return Err(Unusable::NotACa);
    }
    check_dates(&cert, now, "ca.crt")?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(Unusable::KeyMismatch {
            key: "ca.key",
            cert: "ca.crt",
        });
    }
    Ok((pem, key))
}

fn usable_server(
    paths: &CertPaths,
    ca_pem: &str,
    names: &[String],
    now: OffsetDateTime,
) -> Result<(), Unusable> {
    let (crt, key_file) = (unreadable("server.crt"), unreadable("server.key"));
    let pem = fs::read(&paths.server_cert).map_err(|e| crt(&e))?;
    let key_pem = fs::read_to_string(&paths.server_key).map_err(|e| key_file(&e))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| key_file(&e))?;
    let (_, parsed) = parse_x509_pem(&pem).map_err(|e| crt(&e))?;
    let cert = parsed.parse_x509().map_err(|e| crt(&e))?;
    check_dates(&cert, now, "server.crt")?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(Unusable::KeyMismatch {
            key: "server.key",
            cert: "server.crt",
        });
    }
    let ca_crt = unreadable("ca.crt");
    let (_, ca_parsed) = parse_x509_pem(ca_pem.as_bytes()).map_err(|e| ca_crt(&e))?;
    let ca = ca_parsed.parse_x509().map_err(|e| ca_crt(&e))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| Unusable::NotSigned)?;
    let covered = san_names(&cert);
    if let Some(missing) = names.iter().find(|n| !covers(&covered, n)) {
        return Err(Unusable::MissingName(missing.clone()));
    }
    Ok(())
}

/// The first of `names` the CA's name constraints do not permit (a CA without constraints,
/// made before they were added, permits every name).
fn outside_constraints(ca_pem: &str, names: &[String]) -> Option<String> {
    let (_, parsed) = parse_x509_pem(ca_pem.as_bytes()).ok()?;
    let ca = parsed.parse_x509().ok()?;
    let constraints = ca.name_constraints().ok()??;
    let permitted = constraints.value.permitted_subtrees.as_ref()?;
    let dns: Vec<&str> = permitted
        .iter()
        .filter_map(|s| match s.base {
            GeneralName::DNSName(name) => Some(name),
            _ => None,
        })
        .collect();
    let ips: Vec<&[u8]> = permitted
        .iter()
        .filter_map(|s| match s.base {
            GeneralName::IPAddress(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    names
        .iter()
        .find(|name| match name.parse::<IpAddr>() {
            Ok(ip) => !ips.is_empty() && !ips.iter().any(|net| ip_in(ip, net)),
            Err(_) => {
                !dns.is_empty()
                    && !dns.iter().any(|base| {
                        let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
                        name == base || name.ends_with(&format!(".{base}"))
                    })
            }
        })
        .cloned()
}

/// Whether `ip` is in `net`, an address and mask of the same length.
fn ip_in(ip: IpAddr, net: &[u8]) -> bool {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    net.len() == bytes.len() * 2
        && bytes
            .iter()
            .zip(&net[..bytes.len()])
            .zip(&net[bytes.len()..])
            .all(|((b, n), m)| b & m == n & m)
}

fn check_dates(
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
    file: &'static str,
) -> Result<(), Unusable> {
    let validity = cert.validity();
    if validity.not_before.to_datetime() > now {
        return Err(Unusable::NotYetValid { file });
    }
    let not_after = validity.not_after.to_datetime();
    if not_after - now < RENEW_BEFORE {
        return Err(Unusable::Expiring { file, not_after });
    }
    Ok(())
}

fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn covers(covered: &[String], name: &str) -> bool {
    match name.parse::<IpAddr>() {
        Ok(ip) => covered.iter().any(|c| c.parse::<IpAddr>().ok() == Some(ip)),
        Err(_) => covered.iter().any(|c| c.eq_ignore_ascii_case(name)),
    }
}

fn create_ca(
    paths: &CertPaths,
    names: &[String],
    now: OffsetDateTime,
) -> Result<(String, KeyPair)> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // A name of its own, so two glassbox CAs in one trust store are told apart.
    let tag = format!("{:08x}", rand::random::<u32>());
    dn.push(DnType::CommonName, format!("glassbox local CA {tag}"));
    dn.push(DnType::OrganizationName, "glassbox");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // It may sign only for the names it was made for (a leaked key, or a CA trusted system-wide,
    // cannot vouch for anyone else's site): each DNS name and its subdomains, each address.
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => {
                    let bits = if ip.is_ipv4() { 32 } else { 128 };
                    GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, bits))
                }
                Err(_) => GeneralSubtree::DnsName(name.clone()),
            })
            .collect(),
        excluded_subtrees: Vec::new(),
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + CA_LIFETIME;
    let cert = params.self_signed(&key).context("signing the CA")?;
    let pem = cert.pem();
    write_file(&paths.ca_cert, pem.as_bytes(), false)?;
    write_file(&paths.ca_key, key.serialize_pem().as_bytes(), true)?;
    Ok((pem, key))
}

fn issue_server(
    paths: &CertPaths,
    ca_pem: &str,
    ca_key: KeyPair,
    names: &[String],
    now: OffsetDateTime,
) -> Result<()> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).context("loading the CA to sign with")?;
    let key = KeyPair::generate().context("generating the server key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "glassbox");
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .with_context(|| format!("`{n}` is not a valid DNS name")),
        })
        .collect::<Result<_>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + SERVER_LIFETIME;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;
    write_file(&paths.server_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&paths.server_cert, cert.pem().as_bytes(), false)?;
    Ok(())
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    // A name of its own: another process writing the same file cannot interleave with it.
    let tmp = path.with_extension(format!(
        "{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn restrict_key_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {} to mode 0600", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_key_mode(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`ensure_at`] with the files in `dir`, as of `now`.
    fn at(
        dir: &Path,
        names: &[String],
        new_ca: bool,
        now: OffsetDateTime,
    ) -> Result<(Outcome, ServerCertInfo)> {
        ensure_at(dir, &CertPaths::in_dir(dir), names, new_ca, now)
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn creates_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let (outcome, info) = ensure(dir.path(), &[]).unwrap();
        assert_eq!(outcome, Outcome::CaCreated);
        for name in DEFAULT_NAMES {
            assert!(
                covers(&info.names, name),
                "{name} missing from {:?}",
                info.names
            );
        }
        let paths = CertPaths::in_dir(dir.path());
        let before = modified(&paths.server_cert);
        let (outcome, _) = ensure(dir.path(), &[]).unwrap();
        assert_eq!(outcome, Outcome::Reused);
        assert_eq!(modified(&paths.server_cert), before);
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        let paths = CertPaths::in_dir(dir.path());
        for key in [&paths.ca_key, &paths.server_key] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        // A loosened mode is tightened again on the next start.
        fs::set_permissions(&paths.server_key, fs::Permissions::from_mode(0o644)).unwrap();
        ensure(dir.path(), &[]).unwrap();
        let mode = fs::metadata(&paths.server_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_new_name_the_ca_permits_reissues_only_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &["glassbox-1".into(), "10.1.2.3".into()]).unwrap();
        let ca_before = fs::read(dir.path().join("ca.crt")).unwrap();
        // Under a name the CA was made for.
        let (outcome, info) = ensure(dir.path(), &["api.glassbox-1".into()]).unwrap();
        assert_eq!(outcome, Outcome::ServerIssued);
        assert!(covers(&info.names, "api.glassbox-1"));
        assert!(covers(&info.names, "10.1.2.3"));
        assert_eq!(fs::read(dir.path().join("ca.crt")).unwrap(), ca_before);
    }

    #[test]
    fn the_ca_signs_only_for_the_names_it_was_made_for() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &["glassbox-1".into()]).unwrap();
        let ca = fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        let outside = |name: &str| outside_constraints(&ca, &[name.to_owned()]);
        assert_eq!(outside("example.com").as_deref(), Some("example.com"));
        assert_eq!(outside("10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(outside("a.glassbox-1"), None);
        assert_eq!(outside("::1"), None);
        // A name outside: refused, with what to do.
        let err = format!(
            "{:#}",
            ensure(dir.path(), &["example.com".into()]).unwrap_err()
        );
        assert!(
            err.contains("example.com") && err.contains("--new-ca"),
            "{err}"
        );
        let (outcome, info) = ensure_with(dir.path(), &["example.com".into()], None, true).unwrap();
        assert_eq!(outcome, Outcome::CaCreated);
        assert!(covers(&info.names, "example.com"));
        assert!(
            covers(&info.names, "glassbox-1"),
            "the names it had are kept"
        );
    }

    #[test]
    fn renews_a_server_certificate_inside_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        // Issued long ago, so it now expires within the renewal window.
        at(
            dir.path(),
            &[],
            false,
            now - SERVER_LIFETIME + Duration::days(10),
        )
        .unwrap();
        let (outcome, info) = at(dir.path(), &[], false, now).unwrap();
        assert_eq!(outcome, Outcome::ServerIssued);
        assert!(info.not_after - now > RENEW_BEFORE);
    }

    #[test]
    fn replaces_an_expiring_ca_and_its_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        at(
            dir.path(),
            &[],
            false,
            now - CA_LIFETIME + Duration::days(5),
        )
        .unwrap();
        let (outcome, _) = at(dir.path(), &[], false, now).unwrap();
        assert_eq!(outcome, Outcome::CaCreated);
    }

    #[test]
    fn a_server_certificate_from_another_ca_is_replaced() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        ensure(ours.path(), &[]).unwrap();
        ensure(theirs.path(), &[]).unwrap();
        for file in ["server.crt", "server.key"] {
            fs::copy(theirs.path().join(file), ours.path().join(file)).unwrap();
        }
        let (outcome, _) = ensure(ours.path(), &[]).unwrap();
        assert_eq!(outcome, Outcome::ServerIssued);
    }

    #[test]
    fn a_broken_ca_is_an_error_with_its_path_and_new_ca_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        fs::write(dir.path().join("ca.key"), "not a key").unwrap();
        let err = format!("{:#}", ensure(dir.path(), &[]).unwrap_err());
        assert!(err.contains("ca.key"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("--new-ca"), "{err}");
        // Untouched: the CA is not replaced behind the user's back.
        assert_eq!(
            fs::read_to_string(dir.path().join("ca.key")).unwrap(),
            "not a key"
        );
        let (outcome, _) = ensure_with(dir.path(), &[], None, true).unwrap();
        assert_eq!(outcome, Outcome::CaCreated);
        assert_eq!(ensure(dir.path(), &[]).unwrap().0, Outcome::Reused);
    }

    #[test]
    fn without_the_ca_key_a_valid_server_certificate_is_served_and_an_old_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        at(dir.path(), &[], false, now).unwrap();
        fs::remove_file(dir.path().join("ca.key")).unwrap();
        let (outcome, _) = at(dir.path(), &[], false, now).unwrap();
        assert_eq!(outcome, Outcome::Reused);
        let later = now + SERVER_LIFETIME - Duration::days(5);
        let err = format!("{:#}", at(dir.path(), &[], false, later).unwrap_err());
        assert!(
            err.contains("ca.key") && err.contains("is missing"),
            "{err}"
        );
        assert!(
            !dir.path().join("ca.key").exists(),
            "no CA was made behind the user's back"
        );
    }

    #[test]
    fn the_ca_key_may_live_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let key_dir = tempfile::tempdir().unwrap();
        let key = key_dir.path().join("keys/ca.key");
        let (outcome, _) = ensure_with(dir.path(), &[], Some(&key), false).unwrap();
        assert_eq!(outcome, Outcome::CaCreated);
        assert!(key.exists());
        assert!(
            !dir.path().join("ca.key").exists(),
            "the key stays where it was put"
        );
        // A new name is signed with the key from there.
        let (outcome, info) =
            ensure_with(dir.path(), &["api.localhost".into()], Some(&key), false).unwrap();
        assert_eq!(outcome, Outcome::ServerIssued);
        assert!(covers(&info.names, "api.localhost"));
        // And a server without it serves what it has.
        assert_eq!(ensure(dir.path(), &[]).unwrap().0, Outcome::Reused);
    }

    #[test]
    fn a_garbage_server_certificate_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &[]).unwrap();
        for file in ["server.crt", "server.key"] {
            fs::write(dir.path().join(file), "not a certificate").unwrap();
        }
        let (outcome, _) = ensure(dir.path(), &[]).unwrap();
        assert_eq!(outcome, Outcome::ServerIssued);
    }

    #[test]
    fn renewal_keeps_every_name_the_certificate_had() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let added = vec!["worker".to_string(), "10.1.2.3".to_string()];
        at(
            dir.path(),
            &added,
            false,
            now - SERVER_LIFETIME + Duration::days(10),
        )
        .unwrap();
        // Renewed inside the window by a process that names none of them.
        let (outcome, info) = at(dir.path(), &[], false, now).unwrap();
        assert_eq!(outcome, Outcome::ServerIssued);
        for name in ["worker", "10.1.2.3", "localhost"] {
            assert!(
                info.names.iter().any(|n| n == name),
                "{name}: {:?}",
                info.names
            );
        }
    }

    #[test]
    fn concurrent_starts_agree_on_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let starts: Vec<_> = (0..4)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    ensure(&path, &[format!("replica-{i}.localhost")]).unwrap()
                })
            })
            .collect();
        let created = starts
            .into_iter()
            .map(|s| s.join().unwrap().0)
            .filter(|o| *o == Outcome::CaCreated)
            .count();
        assert_eq!(created, 1, "one CA for all");
        // The files on disk belong together, and the last certificate has every name.
        let paths = CertPaths::in_dir(&path);
        let ca = fs::read_to_string(&paths.ca_cert).unwrap();
        let names = wanted_names(&[]);
        assert!(usable_server(&paths, &ca, &names, OffsetDateTime::now_utc()).is_ok());
        let info = read_server_info(&paths.server_cert).unwrap();
        for i in 0..4 {
            assert!(
                info.names.contains(&format!("replica-{i}.localhost")),
                "{:?}",
                info.names
            );
        }
        let leftovers: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn names_are_deduplicated() {
        let names = wanted_names(&["LOCALHOST".into(), " api ".into(), "api".into(), "".into()]);
        assert_eq!(names, vec!["localhost", "127.0.0.1", "::1", "api"]);
    }
}

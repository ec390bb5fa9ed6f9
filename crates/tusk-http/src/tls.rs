//! HTTPS on tusk's own listener: the certificate and key from PEM files, reloaded in place
//! (cert-manager and certbot rotate files where they are), HTTP/2 and HTTP/1.1 by ALPN, and
//! optionally mutual TLS against a client CA.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// The lowest TLS version a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

/// Where the listener's certificate, key and (for mutual TLS) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM: the server certificate, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM: CAs a client certificate must chain to; without it, clients are not asked for one.
    pub client_ca_file: Option<PathBuf>,
    /// The lowest version offered.
    pub min_version: TlsVersion,
}

/// Why TLS cannot be set up (at start) or reloaded. Each names the setting it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{}: cannot read {}: {source}", named(.setting), .path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file holds no usable PEM item of the kind expected.
    #[error("{}: {} holds no {what} (PEM)", named(.setting), .path.display())]
    Missing {
        setting: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    /// The key cannot be used, or does not belong to the certificate.
    #[error("{}: {} does not fit the certificate in tls_cert_file: {reason}", named("tls_key_file"), .path.display())]
    Key { path: PathBuf, reason: String },
    /// The certificate's validity period is over (or cannot be read).
    #[error("{}: the certificate in {} {reason}", named("tls_cert_file"), .path.display())]
    Validity { path: PathBuf, reason: String },
    /// The client CA file cannot be used to verify client certificates.
    #[error("{}: {}: {reason}", named("tls_client_ca_file"), .path.display())]
    ClientCa { path: PathBuf, reason: String },
}

/// A setting as the operator may have written it: TOML key, flag and environment variable.
fn named(key: &str) -> String {
    format!(
        "{key} (--{}, TUSK_{})",
        key.replace('_', "-"),
        key.to_ascii_uppercase()
    )
}

/// The current certificate, swapped in place by [`TlsSettings::reload`]; new handshakes use the
/// new one, connections already set up keep theirs.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|current| Arc::clone(&current))
    }
}

/// The listener's TLS: the rustls configuration and the certificate in use.
#[derive(Debug)]
pub struct TlsSettings {
    config: TlsConfig,
    current: Arc<CurrentCert>,
    server: Arc<ServerConfig>,
    /// What the certificate and key files looked like when last loaded.
    stamp: RwLock<FileStamp>,
}

/// Enough of two files' metadata to notice that either changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct FileStamp(Vec<Option<(SystemTime, u64)>>);

impl FileStamp {
    fn of(paths: &[&Path]) -> Self {
        Self(
            paths
                .iter()
                .map(|p| {
                    std::fs::metadata(p)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())))
                })
                .collect(),
        )
    }
}

impl TlsSettings {
    /// Load and check everything: readable files, a certificate chain, a key that matches its
    /// first certificate, a certificate that has not expired, a usable client CA. Errors name
    /// the setting.
    pub fn load(config: TlsConfig) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = FileStamp::of(&[&config.cert_file, &config.key_file]);
        let key = load_certified_key(&config, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(key))));
        let versions: &[&'static rustls::SupportedProtocolVersion] = match config.min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Key {
                path: config.key_file.clone(),
                reason: e.to_string(),
            })?;
        let builder = match &config.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let ca_error = |reason: String| TlsError::ClientCa {
                    path: path.clone(),
                    reason,
                };
                let mut roots = RootCertStore::empty();
                for cert in read_certs("tls_client_ca_file", path)? {
                    roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| ca_error(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_cert_resolver(current.clone());
        // HTTP/2 first: browsers and phones multiplex; HTTP/1.1 for everyone else.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let settings = Arc::new(Self {
            config,
            current,
            server: Arc::new(server),
            stamp: RwLock::new(stamp),
        });
        settings.record_expiry();
        Ok(settings)
    }

    /// The rustls configuration for the listener.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server)
    }

    /// Read the certificate and key again; on success new handshakes use them. A failure keeps
    /// the pair in use (and is counted in `tusk_tls_reloads_total{result="failed"}`).
    pub fn reload(&self) -> Result<(), TlsError> {
        let metrics = tusk_metrics::metrics();
        let provider = rustls::crypto::ring::default_provider();
        let stamp = FileStamp::of(&[&self.config.cert_file, &self.config.key_file]);
        match load_certified_key(&self.config, &provider) {
            Ok(key) => {
                if let Ok(mut current) = self.current.0.write() {
                    *current = Arc::new(key);
                }
                if let Ok(mut last) = self.stamp.write() {
                    *last = stamp;
                }
                self.record_expiry();
                metrics.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(cert = %self.config.cert_file.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(err) => {
                // Not retried until the files change again.
                if let Ok(mut last) = self.stamp.write() {
                    *last = stamp;
                }
                metrics.tls_reloads.with_label_values(&["failed"]).inc();
                tracing::warn!(error = %err, "TLS certificate not reloaded; the previous one stays in use");
                Err(err)
            }
        }
    }

    /// Reload if the certificate or key file changed since the last load.
    pub fn reload_if_changed(&self) {
        let now = FileStamp::of(&[&self.config.cert_file, &self.config.key_file]);
        let changed = self.stamp.read().map(|last| *last != now).unwrap_or(true);
        if changed {
            let _ = self.reload();
        }
    }

    /// Check the files every `interval` until `stop`, reloading when they change.
    pub async fn watch_files(
        self: Arc<Self>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let settings = Arc::clone(&self);
            // Reading files blocks; the runtime's workers serve requests.
            let _ = tokio::task::spawn_blocking(move || settings.reload_if_changed()).await;
        }
    }

    /// When the certificate in use expires (Unix seconds), if it could be read.
    pub fn expires_at(&self) -> Option<u64> {
        let current = self.current.0.read().ok()?;
        not_after(current.cert.first()?.as_ref())
    }

    fn record_expiry(&self) {
        if let Some(at) = self.expires_at() {
            tusk_metrics::metrics()
                .tls_cert_expiry
                .set(i64::try_from(at).unwrap_or(i64::MAX));
        }
    }
}

fn read_file(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(setting, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Missing {
            setting,
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The certificate chain and key of `config`, checked to match and to be valid now.
fn load_certified_key(
    config: &TlsConfig,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs("tls_cert_file", &config.cert_file)?;
    let key_pem = read_file("tls_key_file", &config.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Missing {
        setting: "tls_key_file",
        path: config.key_file.clone(),
        what: "private key",
    })?;
    let validity = |reason: String| TlsError::Validity {
        path: config.cert_file.clone(),
        reason,
    };
    let not_after = not_after(certs[0].as_ref())
        .ok_or_else(|| validity("cannot be read (not an X.509 certificate?)".to_owned()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if not_after <= now {
        return Err(validity(format!(
            "expired at {} (Unix time {not_after})",
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(not_after))
        )));
    }
    CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::Key {
        path: config.key_file.clone(),
        reason: e.to_string(),
    })
}

/// The end of an X.509 certificate's validity (`notAfter`), in Unix seconds, read from its DER:
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... }`.
pub(crate) fn not_after(der: &[u8]) -> Option<u64> {
    let (cert, _) = der_item(der, 0x30)?;
    let (mut tbs, _) = der_item(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der_item(tbs, 0xa0)?.1;
    }
    let (_, rest) = der_item(tbs, 0x02)?; // serialNumber
    let (_, rest) = der_item(rest, 0x30)?; // signature
    let (_, rest) = der_item(rest, 0x30)?; // issuer
    let (validity, _) = der_item(rest, 0x30)?;
    let (_, rest) = der_any(validity)?; // notBefore
    let (tag, time) = (rest.first().copied()?, der_any(rest)?.0);
    let text = std::str::from_utf8(time).ok()?;
    match tag {
        // UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280).
        0x17 if text.len() == 13 => {
            let yy: i64 = text[..2].parse().ok()?;
            let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            unix_seconds(year, &text[2..12])
        }
        // GeneralizedTime YYYYMMDDHHMMSSZ.
        0x18 if text.len() == 15 => unix_seconds(text[..4].parse().ok()?, &text[4..14]),
        _ => None,
    }
}

/// The content of the DER item at the start of `input` if its tag is `tag`, and what follows.
fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    der_any(input)
}

/// The content of the DER item at the start of `input`, and what follows it.
fn der_any(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + count)
    };
    let end = header.checked_add(len)?;
    Some((input.get(header..end)?, input.get(end..)?))
}

/// `MMDDHHMMSS` of `year`, UTC, in Unix seconds.
fn unix_seconds(year: i64, rest: &str) -> Option<u64> {
    let field = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from 1970-01-01 to year-month-day (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_to_unix_seconds() {
        assert_eq!(unix_seconds(1970, "0101000000"), Some(0));
        assert_eq!(unix_seconds(2000, "0301000000"), Some(951_868_800));
        assert_eq!(unix_seconds(2026, "1206052556"), Some(1_796_534_756));
        assert_eq!(unix_seconds(2026, "1306000000"), None);
    }

    /// A certificate reduced to the fields `not_after` walks, with both time forms.
    fn cert_with_validity(not_before: &[u8], not_after_item: &[u8], version: bool) -> Vec<u8> {
        let wrap = |tag: u8, content: &[u8]| {
            let mut out = vec![tag];
            if content.len() < 0x80 {
                out.push(content.len() as u8);
            } else {
                out.push(0x82);
                out.extend_from_slice(&(content.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(content);
            out
        };
        let mut tbs = Vec::new();
        if version {
            tbs.extend(wrap(0xa0, &wrap(0x02, &[2])));
        }
        tbs.extend(wrap(0x02, &[0x01, 0x02]));
        tbs.extend(wrap(0x30, &[]));
        tbs.extend(wrap(0x30, &[0u8; 200]));
        let mut validity = not_before.to_vec();
        validity.extend_from_slice(not_after_item);
        tbs.extend(wrap(0x30, &validity));
        wrap(0x30, &wrap(0x30, &tbs))
    }

    #[test]
    fn not_after_reads_utc_and_generalized_time() {
        let before = [&[0x17, 13][..], b"250101000000Z"].concat();
        let utc = [&[0x17, 13][..], b"261206052556Z"].concat();
        assert_eq!(
            not_after(&cert_with_validity(&before, &utc, true)),
            Some(1_796_534_756)
        );
        let generalized = [&[0x18, 15][..], b"20501231235959Z"].concat();
        assert_eq!(
            not_after(&cert_with_validity(&before, &generalized, false)),
            Some(2_556_143_999)
        );
        assert_eq!(not_after(b"not a certificate"), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}

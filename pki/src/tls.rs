//! TLS configuration from certificate files: the coordinator's rustls server
//! config (client certificates required, verified against the ripcord CA) and
//! the tonic client config used by agents and the CLI.

use crate::Error;
use crate::inspect::{self, CertInfo};
use ripcord_engine::Identity;
use ripcord_engine::Role;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// The three files a ripcord program needs to speak TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The ripcord CA certificate that every peer must be signed by.
    pub ca: PathBuf,
    /// This program's own certificate.
    pub cert: PathBuf,
    /// This program's private key.
    pub key: PathBuf,
}

/// Installs ring as rustls's process-wide crypto provider. Every `main` and
/// test harness calls this first; calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad = |reason: String| Error::BadFile { path: path.to_path_buf(), reason };
    let pem = crate::files::read(path)?;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = crate::files::read(path)?;
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| Error::BadFile { path: path.to_path_buf(), reason: format!("not a PEM private key: {e}") })
}

/// Reads this program's own certificate and checks it was issued for
/// `expected` — a coordinator started with an agent certificate is a
/// configuration mistake worth stopping for.
pub fn own_certificate(files: &TlsFiles, expected: Role) -> Result<CertInfo, Error> {
    let certs = load_certs(&files.cert)?;
    let info =
        inspect::info(&certs[0]).map_err(|e| Error::BadFile { path: files.cert.clone(), reason: e.to_string() })?;
    if info.identity.role != expected {
        return Err(Error::BadFile {
            path: files.cert.clone(),
            reason: format!(
                "certificate is for {} \"{}\", but this program needs a {expected} certificate",
                info.identity.role, info.identity.name
            ),
        });
    }
    Ok(info)
}

/// A warning when `info` is not valid now or expires within a week.
pub fn validity_warning(info: &CertInfo) -> Option<String> {
    validity_warning_at(info, crate::clock::now_utc())
}

/// [`validity_warning`] at a given time.
pub fn validity_warning_at(info: &CertInfo, now: OffsetDateTime) -> Option<String> {
    if now < info.not_before {
        Some(format!("certificate is not valid until {}", info.not_before))
    } else if now > info.not_after {
        Some(format!("certificate expired at {}", info.not_after))
    } else if info.not_after - now < time::Duration::days(7) {
        Some(format!("certificate expires soon, at {}", info.not_after))
    } else {
        None
    }
}

/// The coordinator's TLS: the rustls server config and the verifier that
/// judges client certificate chains.
///
/// The handshake asks every client for a certificate and checks that the
/// client holds its key, but the verdict on the chain (signed by the ripcord
/// CA, within its validity, usable for client auth) is given per call by
/// [`ServerTls::authenticate`]. A refused client then gets a gRPC
/// `UNAUTHENTICATED` status that says why, instead of a TLS alert that
/// TLS 1.3 clients often report as a broken pipe.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// TLS 1.2+, HTTP/2, the coordinator's own certificate, the ripcord CA as
    /// the only trust root for clients.
    pub fn load(files: &TlsFiles) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in load_certs(&files.ca)? {
            roots.add(ca).map_err(|e| Error::BadFile {
                path: files.ca.clone(),
                reason: format!("unusable CA certificate: {e}"),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_client_cert_verifier(Arc::new(Deferred(Arc::clone(&verifier))))
            .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
            .map_err(|e| Error::BadFile {
                path: files.key.clone(),
                reason: format!("key does not fit the certificate: {e}"),
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self { config: Arc::new(config), verifier })
    }

    /// Judges the chain a client presented and reads its identity. The
    /// error's message is a sentence for the caller and the log.
    pub fn authenticate(&self, chain: Option<&[CertificateDer<'static>]>) -> Result<Identity, Refusal> {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return Err(Refusal::NoCertificate);
        };
        if let Err(e) = self.verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
            use rustls::CertificateError as C;
            return Err(match e {
                rustls::Error::InvalidCertificate(C::ExpiredContext { not_after, .. }) => {
                    Refusal::Expired { not_after }
                }
                rustls::Error::InvalidCertificate(C::NotValidYetContext { not_before, .. }) => {
                    Refusal::NotYetValid { not_before }
                }
                rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => Refusal::OtherIssuer(e),
                e => Refusal::Invalid(e),
            });
        }
        inspect::identity(leaf).map_err(Refusal::NotRipcord)
    }
}

/// Why [`ServerTls::authenticate`] refused a client.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no client certificate presented")]
    NoCertificate,
    #[error("client certificate refused: certificate expired at {}", rfc3339(.not_after))]
    Expired { not_after: UnixTime },
    #[error("client certificate refused: certificate is not valid until {}", rfc3339(.not_before))]
    NotYetValid { not_before: UnixTime },
    /// Not signed by the coordinator's CA.
    #[error("client certificate refused: certificate was not issued by this coordinator's CA ({0})")]
    OtherIssuer(rustls::Error),
    /// Any other reason the verifier gives.
    #[error("client certificate refused: {0}")]
    Invalid(rustls::Error),
    /// Signed by the CA, but without a ripcord identity and role.
    #[error("client certificate refused: {0}")]
    NotRipcord(Error),
}

fn rfc3339(t: &UnixTime) -> String {
    ripcord_engine::clock::rfc3339(i64::try_from(t.as_secs()).unwrap_or(i64::MAX).saturating_mul(1000))
}

/// Asks for a client certificate and verifies the handshake signature (the
/// client holds the key), but leaves the chain's verdict to
/// [`ServerTls::authenticate`].
#[derive(Debug)]
struct Deferred(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The client config for agents and the CLI: trust only the ripcord CA and
/// present our own certificate. `domain` is the name the coordinator's
/// certificate must carry (by default the host of the coordinator URL).
pub fn client_config(files: &TlsFiles, domain: Option<&str>) -> Result<tonic::transport::ClientTlsConfig, Error> {
    let ca = crate::files::read(&files.ca)?;
    let cert = crate::files::read(&files.cert)?;
    let key = crate::files::read(&files.key)?;
    // Parse now so that a wrong file is named here, not deep in a handshake.
    load_certs(&files.ca)?;
    load_certs(&files.cert)?;
    load_key(&files.key)?;
    let mut config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .identity(tonic::transport::Identity::from_pem(cert, key));
    if let Some(d) = domain {
        config = config.domain_name(d);
    }
    Ok(config)
}

/// Turns a transport error into what a person can act on. TLS refusals arrive
/// as alerts buried in the error's source chain; this finds them.
pub fn explain_transport_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        chain.push(e.to_string());
        cur = e.source();
    }
    let all = chain.join(": ");
    let hint = if all.contains("CertificateRequired") {
        Some("the coordinator requires a client certificate and none was presented")
    } else if all.contains("UnknownCA") {
        Some("the coordinator refused this certificate: it was not issued by the coordinator's CA")
    } else if all.contains("CertificateExpired") {
        Some("the coordinator refused this certificate: it is expired or not yet valid")
    } else if all.contains("BadCertificate") || all.contains("UnsupportedCertificate") {
        Some("the coordinator refused this certificate (wrong role or key usage for a client)")
    } else if all.contains("invalid peer certificate") {
        Some("the coordinator's certificate is not trusted: check --ca and the coordinator's name")
    } else if all.contains("Connection refused") || all.contains("ConnectionRefused") {
        Some("nothing is listening at the coordinator address")
    } else {
        None
    };
    match hint {
        Some(h) => format!("{h} ({all})"),
        None => all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::{Pair, Request, Validity, issue, new_ca};

    fn der(pair: &Pair) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap()]
    }

    #[test]
    fn refusals_say_why() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = new_ca("test CA", Validity::days_from_now(10)).unwrap();
        let request = |name: &str, role, validity| Request { name: name.into(), role, sans: vec![], validity };
        let server = issue(&ca, &request("coordinator", Role::Coordinator, Validity::days_from_now(2))).unwrap();
        let files =
            TlsFiles { ca: dir.path().join("ca.crt"), cert: dir.path().join("c.crt"), key: dir.path().join("c.key") };
        std::fs::write(&files.ca, &ca.cert_pem).unwrap();
        std::fs::write(&files.cert, &server.cert_pem).unwrap();
        std::fs::write(&files.key, &server.key_pem).unwrap();
        let tls = ServerTls::load(&files).unwrap();

        let agent = issue(&ca, &request("cache-1", Role::Agent, Validity::days_from_now(2))).unwrap();
        let identity = tls.authenticate(Some(&der(&agent))).unwrap();
        assert_eq!((identity.name.as_str(), identity.role), ("cache-1", Role::Agent));

        let e = tls.authenticate(None).unwrap_err();
        assert!(matches!(e, Refusal::NoCertificate));
        assert_eq!(e.to_string(), "no client certificate presented");

        let other_ca = new_ca("other CA", Validity::days_from_now(10)).unwrap();
        let mallory = issue(&other_ca, &request("mallory", Role::Operator, Validity::days_from_now(2))).unwrap();
        let e = tls.authenticate(Some(&der(&mallory))).unwrap_err();
        assert!(matches!(e, Refusal::OtherIssuer(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("client certificate refused: certificate was not issued by this coordinator's CA ("),
            "{e}"
        );

        let now = crate::clock::now_utc();
        let past = Validity { not_before: now - time::Duration::days(2), not_after: now - time::Duration::days(1) };
        let stale = issue(&ca, &request("cache-1", Role::Agent, past)).unwrap();
        let e = tls.authenticate(Some(&der(&stale))).unwrap_err();
        assert!(matches!(e, Refusal::Expired { .. }), "{e}");
        assert!(e.to_string().starts_with("client certificate refused: certificate expired at "), "{e}");
    }
}

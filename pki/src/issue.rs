//! Creating a CA and issuing role certificates.

use crate::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ripcord_engine::{Role, auth::check_name};
use time::{Duration, OffsetDateTime};

/// The organisation written into every ripcord certificate.
pub const ORGANIZATION: &str = "ripcord";

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Pair").field("cert_pem", &"…").field("key_pem", &"<redacted>").finish()
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a minute ago (tolerates small clock skew) for `days` days.
    pub fn days_from_now(days: u32) -> Self {
        let now = crate::clock::now_utc();
        Self { not_before: now - Duration::minutes(1), not_after: now + Duration::days(i64::from(days)) }
    }

    fn check(&self) -> Result<(), Error> {
        if self.not_after <= self.not_before {
            return Err(Error::Invalid(format!(
                "not-after ({}) must be later than not-before ({})",
                self.not_after, self.not_before
            )));
        }
        Ok(())
    }
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub role: Role,
    /// Subject alternative names: DNS names or IP addresses. For the
    /// coordinator these are what clients dial; empty means
    /// `localhost`, `127.0.0.1` and `::1`.
    pub sans: Vec<String>,
    pub validity: Validity,
}

/// Creates a self-signed CA.
pub fn new_ca(common_name: &str, validity: Validity) -> Result<Pair, Error> {
    validity.check()?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Issues a key and certificate for `request`, signed by `ca`.
pub fn issue(ca: &Pair, request: &Request) -> Result<Pair, Error> {
    check_name(&request.name).map_err(|e| Error::Invalid(e.to_string()))?;
    request.validity.check()?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| Error::Invalid(format!("CA key: {e}")))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(|e| Error::Invalid(format!("CA certificate: {e}")))?;

    let sans = if request.sans.is_empty() && request.role == Role::Coordinator {
        vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()]
    } else {
        request.sans.clone()
    };
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name.push(DnType::OrganizationalUnitName, request.role.as_str());
    params.distinguished_name.push(DnType::CommonName, request.name.as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match request.role {
        Role::Coordinator => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Role::Agent | Role::Operator | Role::Viewer => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = request.validity.not_before;
    params.not_after = request.validity.not_after;

    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect;

    #[test]
    fn issued_certificate_carries_identity_role_and_validity() {
        let ca = new_ca("test CA", Validity::days_from_now(10)).unwrap();
        for role in [Role::Agent, Role::Operator, Role::Viewer, Role::Coordinator] {
            let req = Request { name: "cache-1".into(), role, sans: vec![], validity: Validity::days_from_now(2) };
            let pair = issue(&ca, &req).unwrap();
            let info = inspect::from_pem(&pair.cert_pem).unwrap();
            assert_eq!(info.identity.name, "cache-1");
            assert_eq!(info.identity.role, role);
            assert_eq!(info.issuer_cn, "test CA");
            assert!(info.not_after > info.not_before);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        let ca = new_ca("test CA", Validity::days_from_now(10)).unwrap();
        let mut req =
            Request { name: "bad name".into(), role: Role::Agent, sans: vec![], validity: Validity::days_from_now(1) };
        let e = issue(&ca, &req).unwrap_err().to_string();
        assert!(e.contains("\"bad name\""), "{e}");
        req.name = "ok".into();
        req.validity.not_after = req.validity.not_before;
        let e = issue(&ca, &req).unwrap_err().to_string();
        assert!(e.contains("not-after"), "{e}");
    }

    #[test]
    fn debug_never_prints_the_key() {
        let ca = new_ca("test CA", Validity::days_from_now(1)).unwrap();
        let shown = format!("{ca:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}

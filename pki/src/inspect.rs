//! Reading identity, role and validity back out of a certificate.

use crate::Error;
use ::time::OffsetDateTime;
use ripcord_engine::{Identity, Role};
use x509_parser::prelude::*;

/// What ripcord cares about in a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub identity: Identity,
    pub issuer_cn: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sans: Vec<String>,
}

/// Reads the identity (`CN`) and role (`OU`) from a DER certificate. The
/// chain has been verified by TLS before this is called; this only reads.
pub fn identity(der: &[u8]) -> Result<Identity, Error> {
    info(der).map(|i| i.identity)
}

/// Everything [`CertInfo`] holds, from DER.
pub fn info(der: &[u8]) -> Result<CertInfo, Error> {
    let (_, cert) = parse_x509_certificate(der).map_err(|e| Error::NotRipcord(format!("cannot parse: {e}")))?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &AttributeTypeAndValue>| -> Option<String> {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let name = first(&mut subject.iter_common_name())
        .ok_or_else(|| Error::NotRipcord("subject has no common name (CN)".into()))?;
    let role_str = first(&mut subject.iter_organizational_unit())
        .ok_or_else(|| Error::NotRipcord(format!("subject \"{subject}\" has no role (OU)")))?;
    let role: Role = role_str.parse().map_err(|e| Error::NotRipcord(format!("{e}")))?;
    let issuer_cn = first(&mut cert.issuer().iter_common_name()).unwrap_or_default();
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.iter().map(|g| g.to_string()).collect())
        .unwrap_or_default();
    Ok(CertInfo {
        identity: Identity { name, role },
        issuer_cn,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sans,
    })
}

/// [`info`] for a PEM certificate (the first one in the text).
pub fn from_pem(pem: &str) -> Result<CertInfo, Error> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| Error::NotRipcord(format!("not a PEM certificate: {e}")))?;
    info(&pem.contents)
}

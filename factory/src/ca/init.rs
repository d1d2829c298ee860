//! `ca init` and `ca import-cert` logic: a self-signed CA certificate or a CSR for an external
//! root, and the checks an imported CA certificate must pass.

use bundle::keys::ContentSigner;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyIdMethod, KeyUsagePurpose};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{CaSigningKey, NOT_BEFORE_SKEW_SECS, random_serial};
use crate::cert::{CertFacts, key_identifier, public_key};
use crate::config::CaConfig;
use crate::csr::build_csr;
use crate::error::{FactoryError, Result};
use crate::types::{UnixTime, to_datetime};

/// Builds the self-signed CA certificate for the CA key `spki_der` (signed by `signer`):
/// basicConstraints cA=TRUE pathLen 0 (critical), keyUsage keyCertSign + cRLSign (critical),
/// subjectKeyIdentifier, validity `[ca] validity-days`.
pub fn self_signed_ca_certificate(
    signer: Box<dyn ContentSigner + Send + '_>,
    spki_der: &[u8],
    ca: &CaConfig,
    now: UnixTime,
) -> Result<Vec<u8>> {
    let key = CaSigningKey::new(signer, spki_der)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca
        .subject
        .to_rcgen()
        .map_err(|m| FactoryError::cert("CA subject", m))?;
    params.not_before = to_datetime(now - NOT_BEFORE_SKEW_SECS);
    params.not_after = to_datetime(now + i64::from(ca.validity_days) * 86_400);
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(spki_der)?);
    let cert = params
        .self_signed(&key)
        .map_err(|e| key.error("self-signed CA certificate", e))?;
    let der = cert.der().to_vec();
    let x509 = openssl::x509::X509::from_der(&der)
        .map_err(|e| FactoryError::openssl("re-reading the CA certificate", e))?;
    if !x509.verify(&*public_key(spki_der)?).unwrap_or(false) {
        return Err(FactoryError::CaKey {
            message: "the CA key's signature does not verify with its public key".into(),
        });
    }
    Ok(der)
}

/// Builds a CSR for the CA key, to be signed by an external root (`ca init --csr`).
pub fn ca_certificate_request(
    signer: &dyn ContentSigner,
    spki_der: &[u8],
    ca: &CaConfig,
) -> Result<Vec<u8>> {
    build_csr(&ca.subject, spki_der, signer)
}

/// Checks a CA certificate before it is stored for the CA key `ca_spki_der`: same public key,
/// a CA (basicConstraints cA=TRUE), keyUsage allowing keyCertSign and cRLSign if present, and
/// currently valid.
pub fn check_ca_certificate(
    cert_der: &[u8],
    ca_spki_der: &[u8],
    now: UnixTime,
) -> Result<CertFacts> {
    let what = "CA certificate";
    let facts = CertFacts::from_der(cert_der, what)?;
    if facts.spki_der != ca_spki_der {
        return Err(FactoryError::cert(
            what,
            format!(
                "'{}' certifies a different key than the station's CA key",
                facts.subject
            ),
        ));
    }
    if !facts.is_ca {
        return Err(FactoryError::cert(
            what,
            format!(
                "'{}' is not a CA certificate (basicConstraints cA is not set)",
                facts.subject
            ),
        ));
    }
    let (_, x509) =
        X509Certificate::from_der(cert_der).map_err(|e| FactoryError::cert(what, e.to_string()))?;
    if let Ok(Some(ku)) = x509.key_usage()
        && !(ku.value.key_cert_sign() && ku.value.crl_sign())
    {
        return Err(FactoryError::cert(
            what,
            "its keyUsage must allow keyCertSign and cRLSign (to issue device certificates and CRLs)",
        ));
    }
    if facts.not_after <= now || facts.not_before > now + NOT_BEFORE_SKEW_SECS {
        return Err(FactoryError::cert(
            what,
            format!(
                "it is not valid now (valid {} to {})",
                crate::types::rfc3339(facts.not_before),
                crate::types::rfc3339(facts.not_after)
            ),
        ));
    }
    Ok(facts)
}

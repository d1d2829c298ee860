//! Certificates per profile: subject from the template, key usage from the key type for device
//! profiles (keyAgreement for EC, keyEncipherment for RSA) or digitalSignature plus the
//! profile's extended key usages for signer profiles; subjectKeyIdentifier and
//! authorityKeyIdentifier always, basicConstraints cA=FALSE.

use bundle::keys::ContentSigner;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose};

use super::{CertificateAuthority, NOT_BEFORE_SKEW_SECS, random_serial};
use crate::cert::{CertFacts, key_identifier, key_type_of_spki};
use crate::config::{ExtendedKeyUsage, Profile, ProfileUsage};
use crate::csr::verify_csr;
use crate::error::{FactoryError, Result};
use crate::types::{DeviceSerial, KeyType, UnixTime, to_datetime};

/// A freshly issued device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// DER certificate.
    pub der: Vec<u8>,
    /// Its facts, as the inventory records them.
    pub facts: CertFacts,
    /// The device key type.
    pub key_type: KeyType,
}

/// The key usage a device certificate gets for its key type.
pub fn device_key_usage(key_type: KeyType) -> KeyUsagePurpose {
    if key_type.is_ec() {
        KeyUsagePurpose::KeyAgreement
    } else {
        KeyUsagePurpose::KeyEncipherment
    }
}

impl CertificateAuthority<'_> {
    /// Issues a device certificate for a public key (DER SubjectPublicKeyInfo) per `profile`.
    pub fn issue_for_key(
        &self,
        serial: &DeviceSerial,
        profile: &Profile,
        spki_der: &[u8],
        now: UnixTime,
    ) -> Result<IssuedCertificate> {
        let key_type = key_type_of_spki(spki_der)?;
        if key_type != profile.key_type {
            return Err(FactoryError::cert(
                format!("device '{serial}'"),
                format!(
                    "its key is {key_type} but profile '{}' issues {} certificates",
                    profile.name, profile.key_type
                ),
            ));
        }
        let params = self.device_params(serial, profile, spki_der, now)?;
        let subject_key = rcgen::SubjectPublicKeyInfo::from_der(spki_der).map_err(|source| {
            FactoryError::Rcgen {
                what: format!("reading the public key of device '{serial}'"),
                source,
            }
        })?;
        let cert = params
            .signed_by(&subject_key, &self.issuer)
            .map_err(|e| self.issuer.key().error("device certificate", e))?;
        let der = cert.der().to_vec();
        self.check_certificate(&der)?;
        let facts = CertFacts::from_der(&der, "issued device certificate")?;
        tracing::info!(%serial, serial_hex = %facts.serial_hex, "issued device certificate");
        Ok(IssuedCertificate {
            der,
            facts,
            key_type,
        })
    }

    /// Verifies a CSR (proof of possession) and issues a certificate for its public key. The
    /// CSR's subject and extensions are ignored; the profile decides them.
    pub fn issue_for_csr(
        &self,
        serial: &DeviceSerial,
        profile: &Profile,
        csr_der: &[u8],
        now: UnixTime,
    ) -> Result<IssuedCertificate> {
        let csr = verify_csr(csr_der)?;
        self.issue_for_key(serial, profile, &csr.spki_der, now)
    }

    /// Issues a release-signing certificate for a key the caller holds (`ca issue`): a CSR
    /// signed by `key` proves possession, then `profile` (usage `signer`) decides the
    /// certificate; `name` fills `{serial}` in the profile's subject.
    pub fn issue_for_signer(
        &self,
        name: &DeviceSerial,
        profile: &Profile,
        key: &dyn ContentSigner,
        spki_der: &[u8],
        now: UnixTime,
    ) -> Result<IssuedCertificate> {
        if profile.usage == ProfileUsage::Device {
            return Err(FactoryError::cert(
                format!("profile '{}'", profile.name),
                "it issues device certificates; `ca issue` needs a profile with usage = \"signer\"",
            ));
        }
        let csr = crate::csr::build_csr(&profile.subject.render(name), spki_der, key)?;
        self.issue_for_csr(name, profile, &csr, now)
    }

    fn device_params(
        &self,
        serial: &DeviceSerial,
        profile: &Profile,
        spki_der: &[u8],
        now: UnixTime,
    ) -> Result<CertificateParams> {
        let subject = profile.subject.render(serial);
        subject
            .check()
            .map_err(|m| FactoryError::cert(format!("subject of device '{serial}'"), m))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject
            .to_rcgen()
            .map_err(|m| FactoryError::cert(format!("subject of device '{serial}'"), m))?;
        params.not_before = to_datetime(now - NOT_BEFORE_SKEW_SECS);
        params.not_after = to_datetime(now + i64::from(profile.validity_days) * 86_400);
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        match &profile.usage {
            ProfileUsage::Device => params.key_usages = vec![device_key_usage(profile.key_type)],
            ProfileUsage::Signer(ekus) => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = ekus
                    .iter()
                    .map(|e| match e {
                        ExtendedKeyUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
                        ExtendedKeyUsage::EmailProtection => {
                            ExtendedKeyUsagePurpose::EmailProtection
                        }
                    })
                    .collect();
            }
        }
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(spki_der)?);
        Ok(params)
    }

    /// Checks that a certificate this CA just signed verifies with the CA certificate's key
    /// (over the TBS bytes with the cached CA key: no per-certificate key decoding).
    pub(super) fn check_certificate(&self, der: &[u8]) -> Result<()> {
        let (_, x509) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| FactoryError::cert("issued certificate", e.to_string()))?;
        let verified = Verifier::new(MessageDigest::sha256(), &self.public_key)
            .and_then(|mut v| {
                v.verify_oneshot(&x509.signature_value.data, x509.tbs_certificate.as_ref())
            })
            .unwrap_or(false);
        if verified {
            Ok(())
        } else {
            Err(self.mismatch("certificate"))
        }
    }
}

//! Keys and certificates chosen once from a string: `pkcs11:…` → token, `tpm2:…` → TPM
//! ([`crate::tpm`]), anything else → a PEM file.

use std::path::{Path, PathBuf};

use openssl::x509::X509;

use crate::error::{Error, Result};
use crate::file_key::FileKey;
use crate::key::{Decryptor, OpenOptions, Signer};
use crate::object;
use crate::token::{Access, TokenSession};
use crate::token_key::TokenKey;
use crate::uri::{ObjectType, Pkcs11Uri};

/// Where a key or certificate lives, parsed from its specification string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // made once per key open
pub enum KeySpec {
    /// `pkcs11:…`: an object in a PKCS#11 token.
    Pkcs11(Pkcs11Uri),
    /// `tpm2:…`: a TPM-native key (the whole specification string).
    Tpm(String),
    /// Anything else: a PEM file.
    File(PathBuf),
}

impl KeySpec {
    /// Classifies a specification string (parsing `pkcs11:` URIs).
    pub fn parse(spec: &str) -> Result<KeySpec> {
        let has_scheme = |scheme: &str| {
            spec.get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        };
        if has_scheme("pkcs11:") {
            Ok(KeySpec::Pkcs11(Pkcs11Uri::parse(spec)?))
        } else if has_scheme("tpm2:") {
            Ok(KeySpec::Tpm(spec.to_string()))
        } else if spec.is_empty() {
            Err(Error::Invalid(
                "empty key specification: give a pkcs11: URI, a tpm2: key or a PEM file".into(),
            ))
        } else {
            Ok(KeySpec::File(PathBuf::from(spec)))
        }
    }
}

/// Opens a signing key from a specification string. Token keys are logged in and looked up
/// now; no private-key operation happens before [`bundle::keys::ContentSigner::sign`].
pub fn open_signer(spec: &str, options: &OpenOptions) -> Result<Box<dyn Signer>> {
    match KeySpec::parse(spec)? {
        KeySpec::Pkcs11(uri) => Ok(Box::new(TokenKey::open(&uri, options)?)),
        KeySpec::File(path) => Ok(Box::new(FileKey::open(&path, options.rsa_padding)?)),
        KeySpec::Tpm(spec) => tpm_signer(&spec),
    }
}

/// Opens a decryption key from a specification string (default options).
pub fn open_decryptor(spec: &str) -> Result<Box<dyn Decryptor>> {
    open_decryptor_with(spec, &OpenOptions::default())
}

/// Opens a decryption key from a specification string.
pub fn open_decryptor_with(spec: &str, options: &OpenOptions) -> Result<Box<dyn Decryptor>> {
    match KeySpec::parse(spec)? {
        KeySpec::Pkcs11(uri) => Ok(Box::new(TokenKey::open(&uri, options)?)),
        KeySpec::File(path) => Ok(Box::new(FileKey::open(&path, options.rsa_padding)?)),
        KeySpec::Tpm(spec) => tpm_decryptor(&spec),
    }
}

/// Opens a decryption key and, if `certificate` (a PEM file or `pkcs11:` URI) is given, uses
/// that certificate for recipient matching (`[encryption] key=` and `cert=`).
pub fn open_decryptor_with_certificate(
    spec: &str,
    certificate: Option<&str>,
    options: &OpenOptions,
) -> Result<Box<dyn Decryptor>> {
    let key = open_decryptor_with(spec, options)?;
    match certificate {
        Some(cert) => Ok(Box::new(crate::key::WithCertificate::new(
            key,
            load_certificate_with(cert, options)?,
        )?)),
        None => Ok(key),
    }
}

/// `tpm2:` keys are ECDH decryption keys; TPM signing keys are reached through tpm2-pkcs11.
fn tpm_signer(spec: &str) -> Result<Box<dyn Signer>> {
    Err(Error::Invalid(format!(
        "`{spec}`: tpm2: keys are ECDH decryption keys and cannot sign; for a TPM-held signing \
         key use a pkcs11: URI of a tpm2-pkcs11 token"
    )))
}

fn tpm_decryptor(spec: &str) -> Result<Box<dyn Decryptor>> {
    Ok(Box::new(crate::tpm::TpmEcdhKey::open(spec)?))
}

/// The certificate named by a `tpm2:` spec's `cert=`.
fn tpm_certificates(spec: &str) -> Result<Vec<Vec<u8>>> {
    let key = crate::tpm::TpmEcdhKey::open(spec)?;
    match bundle::keys::RecipientKey::certificate_der(&key) {
        Some(cert) => Ok(vec![cert]),
        None => Err(Error::Invalid(format!(
            "`{spec}` names no certificate: add ;cert=<file> to the tpm2: key"
        ))),
    }
}

/// The certificate of a specification: the first certificate of a PEM (or DER) file, or for a
/// `pkcs11:` URI the certificate object it names (`type=cert`) or the one with the same id/label
/// as the key it names.
pub fn load_certificate(spec: &str) -> Result<Vec<u8>> {
    load_certificate_with(spec, &OpenOptions::default())
}

/// [`load_certificate`] with options (module).
pub fn load_certificate_with(spec: &str, options: &OpenOptions) -> Result<Vec<u8>> {
    let mut certs = load(spec, options, true)?;
    Ok(certs.remove(0))
}

/// All certificates of a specification (for intermediates): every certificate of a PEM file, or
/// every certificate object matching a `pkcs11:` URI.
pub fn load_certificates(spec: &str) -> Result<Vec<Vec<u8>>> {
    load_certificates_with(spec, &OpenOptions::default())
}

/// [`load_certificates`] with options (module).
pub fn load_certificates_with(spec: &str, options: &OpenOptions) -> Result<Vec<Vec<u8>>> {
    load(spec, options, false)
}

fn load(spec: &str, options: &OpenOptions, first_only: bool) -> Result<Vec<Vec<u8>>> {
    match KeySpec::parse(spec)? {
        KeySpec::File(path) => certificates_from_file(&path),
        KeySpec::Pkcs11(uri) => token_certificates(&uri, options, first_only),
        KeySpec::Tpm(spec) => tpm_certificates(&spec),
    }
}

fn certificates_from_file(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path).map_err(|source| Error::Io {
        action: "read the certificate file",
        path: path.to_path_buf(),
        source,
    })?;
    let certs = match X509::stack_from_pem(&data) {
        Ok(stack) if !stack.is_empty() => stack,
        _ => vec![X509::from_der(&data).map_err(|e| {
            Error::openssl(
                format!("no PEM or DER certificate in {}", path.display()),
                e,
            )
        })?],
    };
    certs
        .iter()
        .map(|c| {
            c.to_der()
                .map_err(|e| Error::openssl("encoding a certificate", e))
        })
        .collect()
}

fn token_certificates(
    uri: &Pkcs11Uri,
    options: &OpenOptions,
    first_only: bool,
) -> Result<Vec<Vec<u8>>> {
    let mut ts = TokenSession::open(uri, options.module.as_deref(), Access::ReadOnly)?;
    let handles = object::find(&ts, &object::template(uri, Some(ObjectType::Cert)))?;
    if handles.is_empty() && uri.object_type != Some(ObjectType::Cert) && uri.names_object() {
        // The URI names a key whose certificate carries another label: pair by the key's id.
        ts.login(uri)?;
        let key = object::find_one(&ts, uri, Some(ObjectType::Private))?;
        let summary = object::summarize(&ts, key)?
            .ok_or_else(|| Error::Invalid("the key object has no class".into()))?;
        if let Some(h) = object::companion(&ts, ObjectType::Cert, &summary.id, &summary.label)? {
            return Ok(vec![object::certificate_value(ts.session(), h)?]);
        }
    }
    if handles.is_empty() {
        // Lists the candidates.
        object::find_one(&ts, uri, Some(ObjectType::Cert))?;
    }
    let take = if first_only { 1 } else { handles.len() };
    handles
        .into_iter()
        .take(take)
        .map(|h| object::certificate_value(ts.session(), h))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_classified_once() {
        assert!(matches!(
            KeySpec::parse("pkcs11:token=a;object=b").unwrap(),
            KeySpec::Pkcs11(u) if u.object.as_deref() == Some("b")
        ));
        assert_eq!(
            KeySpec::parse("tpm2:handle=0x81000001").unwrap(),
            KeySpec::Tpm("tpm2:handle=0x81000001".into())
        );
        assert_eq!(
            KeySpec::parse("/etc/rauc/key.pem").unwrap(),
            KeySpec::File("/etc/rauc/key.pem".into())
        );
        assert!(KeySpec::parse("").is_err());
        assert!(KeySpec::parse("pkcs11:bogus=1").is_err());
    }

    fn self_signed(cn: &str) -> X509 {
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        b.build()
    }

    #[test]
    fn certificates_from_pem_and_der_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (self_signed("a"), self_signed("b"));
        let pem = dir.path().join("chain.pem");
        std::fs::write(&pem, [a.to_pem().unwrap(), b.to_pem().unwrap()].concat()).unwrap();
        let spec = pem.to_str().unwrap();
        assert_eq!(load_certificate(spec).unwrap(), a.to_der().unwrap());
        assert_eq!(
            load_certificates(spec).unwrap(),
            vec![a.to_der().unwrap(), b.to_der().unwrap()]
        );
        let der = dir.path().join("b.der");
        std::fs::write(&der, b.to_der().unwrap()).unwrap();
        assert_eq!(
            load_certificate(der.to_str().unwrap()).unwrap(),
            b.to_der().unwrap()
        );
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"junk").unwrap();
        let err = load_certificate(junk.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM or DER certificate"), "{err}");
    }
}

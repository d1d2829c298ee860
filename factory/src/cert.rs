//! Facts the inventory records about a certificate (issuer, serial, SKI, SPKI hash, validity,
//! key type), public-key helpers, and PEM encoding.

use std::io::Write;

use openssl::pkey::{PKey, Public};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::error::{FactoryError, Result};
use crate::types::{KeyType, UnixTime};

/// What the station reads out of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Subject name (RFC 4514 style, as x509-parser prints it).
    pub subject: String,
    /// Issuer name (same format).
    pub issuer: String,
    /// Serial number, upper-case hex without leading zero bytes (as `openssl x509 -serial`).
    pub serial_hex: String,
    /// subjectKeyIdentifier, if present.
    pub ski: Option<Vec<u8>>,
    /// authorityKeyIdentifier keyIdentifier, if present.
    pub aki: Option<Vec<u8>>,
    /// SHA-256 over the DER SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// The DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// notBefore.
    pub not_before: UnixTime,
    /// notAfter.
    pub not_after: UnixTime,
    /// basicConstraints cA flag.
    pub is_ca: bool,
}

impl CertFacts {
    /// Parses a DER certificate; `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<Self> {
        let (rest, x509) = X509Certificate::from_der(der)
            .map_err(|e| FactoryError::cert(what, format!("not a DER X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(FactoryError::cert(
                what,
                "trailing bytes after the certificate",
            ));
        }
        let mut ski = None;
        let mut aki = None;
        for ext in x509.iter_extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }
        let spki_der = x509.public_key().raw.to_vec();
        Ok(Self {
            subject: x509.subject().to_string(),
            issuer: x509.issuer().to_string(),
            serial_hex: serial_hex(x509.raw_serial()),
            ski,
            aki,
            spki_sha256: openssl::sha::sha256(&spki_der),
            spki_der,
            not_before: x509.validity().not_before.timestamp(),
            not_after: x509.validity().not_after.timestamp(),
            is_ca: x509.is_ca(),
        })
    }

    /// SKI as lower-case hex (empty if absent).
    pub fn ski_hex(&self) -> String {
        self.ski.as_deref().map(hex::encode).unwrap_or_default()
    }

    /// SPKI SHA-256 as lower-case hex.
    pub fn spki_sha256_hex(&self) -> String {
        hex::encode(self.spki_sha256)
    }
}

/// Upper-case hex of a DER INTEGER's content bytes without leading zero bytes.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode_upper(&raw[start.min(raw.len())..])
}

/// Loads a DER SubjectPublicKeyInfo.
pub fn public_key(spki_der: &[u8]) -> Result<PKey<Public>> {
    PKey::public_key_from_der(spki_der)
        .map_err(|e| FactoryError::openssl("parsing a SubjectPublicKeyInfo", e))
}

/// The station key type of a DER SubjectPublicKeyInfo (parsed in Rust: OpenSSL 3's key
/// decoders cost ~0.3 ms per call, too much for inventories of millions).
pub fn key_type_of_spki(spki_der: &[u8]) -> Result<KeyType> {
    let bad = |what: String| FactoryError::cert("public key", what);
    let unsupported = |what: String| {
        bad(format!(
            "{what} is not a supported key type (ec-p256, ec-p384, rsa-3072)"
        ))
    };
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the SubjectPublicKeyInfo".into()));
    }
    let point = &spki.subject_public_key.data;
    match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let (key_type, len) = match curve.map(|c| c.to_id_string()).as_deref() {
                Some(OID_P256) => (KeyType::EcP256, 65),
                Some(OID_P384) => (KeyType::EcP384, 97),
                other => {
                    return Err(unsupported(format!(
                        "EC curve {}",
                        other.unwrap_or("(none)")
                    )));
                }
            };
            if point.len() != len || point[0] != 4 {
                return Err(bad(format!("not an uncompressed {key_type} point")));
            }
            Ok(key_type)
        }
        OID_RSA_ENCRYPTION => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => match rsa_bits(rsa.modulus) {
                3072 => Ok(KeyType::Rsa3072),
                bits => Err(unsupported(format!("RSA-{bits}"))),
            },
            _ => Err(bad("malformed RSA public key".into())),
        },
        other => Err(unsupported(format!("key algorithm {other}"))),
    }
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// Bit length of a big-endian modulus.
fn rsa_bits(modulus: &[u8]) -> usize {
    let m = &modulus[modulus
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(modulus.len())..];
    m.first()
        .map_or(0, |b| m.len() * 8 - b.leading_zeros() as usize)
}

/// The subjectPublicKey BIT STRING content of a DER SPKI.
pub fn spki_key_bits(spki_der: &[u8]) -> Result<Vec<u8>> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| {
        FactoryError::cert("public key", format!("not a DER SubjectPublicKeyInfo: {e}"))
    })?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 over the subjectPublicKey bits (what OpenSSL's
/// `subjectKeyIdentifier=hash` computes).
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>> {
    Ok(openssl::sha::sha1(&spki_key_bits(spki_der)?).to_vec())
}

/// Writes DER as PEM with 64-character lines.
pub fn write_pem(out: &mut impl Write, label: &str, der: &[u8]) -> std::io::Result<()> {
    let b64 = openssl::base64::encode_block(der);
    writeln!(out, "-----BEGIN {label}-----")?;
    for line in b64.as_bytes().chunks(64) {
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    writeln!(out, "-----END {label}-----")
}

/// PEM text of DER.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let mut out = Vec::with_capacity(der.len() * 4 / 3 + 80);
    write_pem(&mut out, label, der).expect("writing to a Vec");
    String::from_utf8(out).expect("PEM is ASCII")
}

/// Reads a certificate from PEM or DER bytes (the first PEM certificate if several).
pub fn certificate_der_from_bytes(bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let x = openssl::x509::X509::from_pem(bytes)
            .map_err(|e| FactoryError::openssl(format!("parsing {what} (PEM)"), e))?;
        return x
            .to_der()
            .map_err(|e| FactoryError::openssl(format!("encoding {what}"), e));
    }
    CertFacts::from_der(bytes, what)?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_hex_strips_sign_byte() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8F01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x12]), "12");
    }

    use openssl::nid::Nid;

    #[test]
    fn key_types() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(Nid::SECP384R1).unwrap(),
        )
        .unwrap();
        let spki = PKey::from_ec_key(ec).unwrap().public_key_to_der().unwrap();
        assert_eq!(key_type_of_spki(&spki).unwrap(), KeyType::EcP384);
        assert_eq!(key_identifier(&spki).unwrap().len(), 20);
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let spki = PKey::from_ec_key(ec).unwrap().public_key_to_der().unwrap();
        assert_eq!(key_type_of_spki(&spki).unwrap(), KeyType::EcP256);
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(Nid::SECP521R1).unwrap(),
        )
        .unwrap();
        let spki = PKey::from_ec_key(ec).unwrap().public_key_to_der().unwrap();
        assert!(
            key_type_of_spki(&spki)
                .unwrap_err()
                .to_string()
                .contains("EC curve 1.3.132.0.35")
        );
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let spki = PKey::from_rsa(rsa).unwrap().public_key_to_der().unwrap();
        assert!(
            key_type_of_spki(&spki)
                .unwrap_err()
                .to_string()
                .contains("RSA-2048")
        );
        assert_eq!(rsa_bits(&[0, 0x80, 0]), 16);
        assert_eq!(rsa_bits(&[0x01, 0]), 9);
    }

    #[test]
    fn pem_lines() {
        let pem = to_pem("CERTIFICATE", &[0u8; 100]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    }
}

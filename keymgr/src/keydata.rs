//! Encodings around keys: curve OIDs, EC points, SubjectPublicKeyInfo, ECDSA signature DER,
//! and the SHA-256 DigestInfo of PKCS#1 v1.5 signatures.

use bundle::keys::{EcCurve, KeyKind};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use crate::error::{Error, Result};

/// DER of the named-curve OID of P-256 (1.2.840.10045.3.1.7), as `CKA_EC_PARAMS` holds it.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the named-curve OID of P-384 (1.3.132.0.34).
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The curve of `CKA_EC_PARAMS`, if supported.
pub fn curve_from_params(params: &[u8]) -> Option<EcCurve> {
    match params {
        P256_PARAMS => Some(EcCurve::P256),
        P384_PARAMS => Some(EcCurve::P384),
        _ => None,
    }
}

/// `CKA_EC_PARAMS` of a curve.
pub fn params_of(curve: EcCurve) -> &'static [u8] {
    match curve {
        EcCurve::P256 => P256_PARAMS,
        EcCurve::P384 => P384_PARAMS,
    }
}

/// OpenSSL's curve id.
pub fn nid_of(curve: EcCurve) -> Nid {
    match curve {
        EcCurve::P256 => Nid::X9_62_PRIME256V1,
        EcCurve::P384 => Nid::SECP384R1,
    }
}

/// The curve of an OpenSSL curve id.
pub fn curve_of_nid(nid: Option<Nid>) -> Option<EcCurve> {
    match nid {
        Some(Nid::X9_62_PRIME256V1) => Some(EcCurve::P256),
        Some(Nid::SECP384R1) => Some(EcCurve::P384),
        _ => None,
    }
}

/// Human-readable key type: `EC P-256`, `RSA 3072`.
pub fn describe_kind(kind: KeyKind) -> String {
    match kind {
        KeyKind::Ec(EcCurve::P256) => "EC P-256".into(),
        KeyKind::Ec(EcCurve::P384) => "EC P-384".into(),
        KeyKind::Rsa { bits } => format!("RSA {bits}"),
    }
}

/// Wraps bytes in a DER OCTET STRING (how `CKA_EC_POINT` and SoftHSM's ECDH parameter want an
/// EC point).
pub fn der_octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let len = bytes.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(bytes);
    out
}

/// The uncompressed point from `CKA_EC_POINT`, which tokens store either DER-wrapped (as the
/// standard says) or raw. The two are told apart by length.
pub fn ec_point_from_attribute(value: &[u8], curve: EcCurve) -> Result<Vec<u8>> {
    let raw_len = 1 + 2 * curve.field_bytes();
    if value.len() == raw_len && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    let header = if raw_len < 0x80 { 2 } else { 3 };
    if value.len() == raw_len + header && value[0] == 0x04 && value[header] == 0x04 {
        return Ok(value[header..].to_vec());
    }
    Err(Error::Invalid(format!(
        "CKA_EC_POINT has {} bytes; expected an uncompressed point of {raw_len} bytes",
        value.len()
    )))
}

/// SubjectPublicKeyInfo DER of an EC public key.
pub fn ec_spki(curve: EcCurve, point: &[u8]) -> Result<Vec<u8>> {
    let ssl = |e| Error::openssl("building an EC public key", e);
    let group = EcGroup::from_curve_name(nid_of(curve)).map_err(ssl)?;
    let mut ctx = BigNumContext::new().map_err(ssl)?;
    let point = EcPoint::from_bytes(&group, point, &mut ctx).map_err(ssl)?;
    let key = EcKey::from_public_key(&group, &point).map_err(ssl)?;
    PKey::from_ec_key(key)
        .and_then(|k| k.public_key_to_der())
        .map_err(ssl)
}

/// SubjectPublicKeyInfo DER of an RSA public key.
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>> {
    let ssl = |e| Error::openssl("building an RSA public key", e);
    let n = BigNum::from_slice(modulus).map_err(ssl)?;
    let e = BigNum::from_slice(exponent).map_err(ssl)?;
    let key = Rsa::from_public_components(n, e).map_err(ssl)?;
    PKey::from_rsa(key)
        .and_then(|k| k.public_key_to_der())
        .map_err(ssl)
}

/// The key type of a SubjectPublicKeyInfo.
pub fn kind_of_spki(spki: &[u8]) -> Result<KeyKind> {
    let key =
        PKey::public_key_from_der(spki).map_err(|e| Error::openssl("parsing a public key", e))?;
    kind_of_pkey(&key)
}

/// The key type of an OpenSSL key.
pub fn kind_of_pkey<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<KeyKind> {
    if let Ok(rsa) = key.rsa() {
        return Ok(KeyKind::Rsa {
            bits: rsa.size() * 8,
        });
    }
    if let Ok(ec) = key.ec_key() {
        let nid = ec.group().curve_name();
        return curve_of_nid(nid).map(KeyKind::Ec).ok_or_else(|| {
            Error::Invalid(format!(
                "unsupported EC curve {:?}: use P-256 (prime256v1) or P-384 (secp384r1)",
                nid.and_then(|n| n.short_name().ok())
            ))
        });
    }
    Err(Error::Invalid(format!(
        "unsupported key type {:?}: use RSA or EC P-256/P-384",
        key.id()
    )))
}

/// Converts a PKCS#11 ECDSA signature (`r ‖ s`, each half the length) to DER `ECDSA-Sig-Value`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(Error::Invalid(format!(
            "the token returned an ECDSA signature of odd length {}",
            raw.len()
        )));
    }
    let ssl = |e| Error::openssl("encoding the ECDSA signature", e);
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = EcdsaSig::from_private_components(
        BigNum::from_slice(r).map_err(ssl)?,
        BigNum::from_slice(s).map_err(ssl)?,
    )
    .map_err(ssl)?;
    sig.to_der().map_err(ssl)
}

/// `DigestInfo(sha256, digest)`: the input of a `CKM_RSA_PKCS` signature.
pub fn sha256_digest_info(digest: &[u8; 32]) -> Vec<u8> {
    let mut out = SHA256_DIGEST_INFO.to_vec();
    out.extend_from_slice(digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_forms() {
        let raw: Vec<u8> = std::iter::once(4).chain(1..=64).collect();
        assert_eq!(ec_point_from_attribute(&raw, EcCurve::P256).unwrap(), raw);
        let wrapped = der_octet_string(&raw);
        assert_eq!(&wrapped[..3], &[0x04, 0x41, 0x04]);
        assert_eq!(
            ec_point_from_attribute(&wrapped, EcCurve::P256).unwrap(),
            raw
        );
        let raw384: Vec<u8> = std::iter::once(4).chain(1..=96).collect();
        let wrapped = der_octet_string(&raw384);
        assert_eq!(&wrapped[..3], &[0x04, 0x61, 0x04]);
        assert_eq!(
            ec_point_from_attribute(&wrapped, EcCurve::P384).unwrap(),
            raw384
        );
        assert!(ec_point_from_attribute(&raw[1..], EcCurve::P256).is_err());
        assert_eq!(&der_octet_string(&[0; 200])[..3], &[0x04, 0x81, 200]);
    }

    #[test]
    fn ecdsa_der_and_digest_info() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1;
        raw[63] = 2;
        assert_eq!(ecdsa_raw_to_der(&raw).unwrap(), [0x30, 6, 2, 1, 1, 2, 1, 2]);
        assert!(ecdsa_raw_to_der(&raw[1..]).is_err());
        let info = sha256_digest_info(&[0xab; 32]);
        assert_eq!(info.len(), 51);
        assert_eq!(info[..2], [0x30, 0x31]);
    }

    #[test]
    fn curve_params() {
        assert_eq!(curve_from_params(P256_PARAMS), Some(EcCurve::P256));
        assert_eq!(
            curve_from_params(params_of(EcCurve::P384)),
            Some(EcCurve::P384)
        );
        assert_eq!(curve_from_params(&[6, 1, 1]), None);
        let group = EcGroup::from_curve_name(nid_of(EcCurve::P384)).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let spki = key.public_key_to_der().unwrap();
        assert_eq!(kind_of_spki(&spki).unwrap(), KeyKind::Ec(EcCurve::P384));
    }
}

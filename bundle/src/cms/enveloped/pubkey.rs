//! Recipient public keys, read from the SubjectPublicKeyInfo without OpenSSL's (slow, in 3.0)
//! generic key decoder: RSA from its modulus and exponent, EC as a validated point.

use const_oid::ObjectIdentifier as Oid;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcPoint;
use openssl::pkey::Public;
use openssl::rsa::Rsa;
use spki::SubjectPublicKeyInfoOwned;

use super::ecdh::group;
use super::oids::{self, openssl_long_name};
use super::tlv::{Reader, tag};
use crate::keys::EcCurve;

/// Smallest RSA modulus accepted for a recipient.
pub const MIN_RSA_BITS: u32 = 2048;

const PRIME256V1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");

/// The public key of a recipient, ready for key transport or key agreement.
#[derive(Clone)]
pub(crate) enum RecipientPublicKey {
    /// RSA key transport.
    Rsa {
        /// The key.
        key: Rsa<Public>,
        /// Modulus length in bits.
        bits: u32,
    },
    /// ECDH key agreement with an uncompressed point that was checked to lie on the curve.
    Ec {
        /// The curve.
        curve: EcCurve,
        /// `04 ‖ X ‖ Y`.
        point: Vec<u8>,
    },
}

/// Classifies a SubjectPublicKeyInfo; the error names the unsupported key.
pub(crate) fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<RecipientPublicKey, String> {
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or("public key BIT STRING with unused bits")?;
    if spki.algorithm.oid == oids::RSA_ENCRYPTION {
        return rsa(bits);
    }
    if spki.algorithm.oid != oids::EC_PUBLIC_KEY {
        return Err(format!(
            "key type {}",
            openssl_long_name(spki.algorithm.oid.as_bytes())
        ));
    }
    let curve_oid = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<Oid>().ok())
        .ok_or("EC with explicit or missing curve parameters")?;
    let curve = match curve_oid {
        PRIME256V1 => EcCurve::P256,
        SECP384R1 => EcCurve::P384,
        other => {
            return Err(format!(
                "EC on curve {}",
                openssl_long_name(other.as_bytes())
            ));
        }
    };
    if bits.len() != 1 + 2 * curve.field_bytes() || bits[0] != 4 {
        return Err("EC point is not uncompressed".to_owned());
    }
    let group = group(curve).map_err(|e| e.to_string())?;
    let mut ctx = BigNumContext::new().map_err(|e| e.to_string())?;
    // Decoding checks that the point is on the curve.
    EcPoint::from_bytes(group, bits, &mut ctx).map_err(|e| format!("invalid EC point: {e}"))?;
    Ok(RecipientPublicKey::Ec {
        curve,
        point: bits.to_vec(),
    })
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa(der: &[u8]) -> Result<RecipientPublicKey, String> {
    let bad = |_| "malformed RSA public key".to_owned();
    let (seq, rest) = super::tlv::read_tlv(der).map_err(bad)?;
    if seq.tag != tag::SEQUENCE || !rest.is_empty() {
        return Err("malformed RSA public key".to_owned());
    }
    let mut r = Reader::new(seq.content);
    let n = r.expect(tag::INTEGER, "modulus").map_err(bad)?;
    let e = r.expect(tag::INTEGER, "exponent").map_err(bad)?;
    r.finish("trailing data").map_err(bad)?;
    let n = BigNum::from_slice(n.content).map_err(|e| e.to_string())?;
    let e = BigNum::from_slice(e.content).map_err(|e| e.to_string())?;
    let bits = u32::try_from(n.num_bits()).unwrap_or(0);
    if bits < MIN_RSA_BITS {
        return Err(format!("RSA with {bits} bits"));
    }
    let key = Rsa::from_public_components(n, e).map_err(|e| e.to_string())?;
    Ok(RecipientPublicKey::Rsa { key, bits })
}

//! Object identifiers and fixed DER fragments of the EnvelopedData that OpenSSL/rauc write.

use const_oid::ObjectIdentifier as Oid;

/// `pkcs7-envelopedData` (RFC 5652).
pub(crate) const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
/// `pkcs7-signedData`, named in the error for an unencrypted CMS.
pub(crate) const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// `id-data`, the content type of the encrypted content.
pub(crate) const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
/// `aes-128-cbc`.
pub(crate) const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
/// `aes-192-cbc`.
pub(crate) const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
/// `aes-256-cbc`, the content cipher we write.
pub(crate) const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
/// `id-aes128-wrap`.
pub(crate) const AES128_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.5");
/// `id-aes192-wrap`.
pub(crate) const AES192_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.25");
/// `id-aes256-wrap`, the key wrap we write.
pub(crate) const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");
/// `rsaEncryption` (PKCS#1 v1.5 key transport).
pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// `id-RSAES-OAEP`.
pub(crate) const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
/// `id-mgf1`.
pub(crate) const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
/// `id-sha256`.
pub(crate) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `id-ecPublicKey`.
pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
/// `dhSinglePass-stdDH-sha1kdf-scheme` (what OpenSSL writes).
pub(crate) const STD_DH_SHA1_KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.2");
/// `dhSinglePass-stdDH-sha224kdf-scheme` (RFC 5753).
pub(crate) const STD_DH_SHA224_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.0");
/// `dhSinglePass-stdDH-sha256kdf-scheme` (RFC 5753).
pub(crate) const STD_DH_SHA256_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.1");
/// `dhSinglePass-stdDH-sha384kdf-scheme` (RFC 5753).
pub(crate) const STD_DH_SHA384_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.2");
/// `dhSinglePass-stdDH-sha512kdf-scheme` (RFC 5753).
pub(crate) const STD_DH_SHA512_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.3");
/// `subjectKeyIdentifier` certificate extension.
pub(crate) const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");

/// `AlgorithmIdentifier { rsaEncryption, NULL }`.
pub(crate) const ALG_RSA_ENCRYPTION: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// `AlgorithmIdentifier { id-RSAES-OAEP, { sha256, mgf1(sha256) } }` with absent hash
/// parameters, as OpenSSL 3 encodes it.
pub(crate) const ALG_RSAES_OAEP_SHA256: &[u8] = &[
    0x30, 0x38, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07, 0x30, 0x2b, 0xa0,
    0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0xa1, 0x1a,
    0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0b, 0x06,
    0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];

/// `AlgorithmIdentifier { dhSinglePass-stdDH-sha1kdf-scheme, { id-aes256-wrap } }`
/// (`rauc-format.md` §5.2).
pub(crate) const ALG_STD_DH_SHA1_AES256_WRAP: &[u8] = &[
    0x30, 0x18, 0x06, 0x09, 0x2b, 0x81, 0x05, 0x10, 0x86, 0x48, 0x3f, 0x00, 0x02, 0x30, 0x0b, 0x06,
    0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d,
];

/// `AlgorithmIdentifier { id-ecPublicKey }` with absent parameters (the originator key).
pub(crate) const ALG_EC_PUBLIC_KEY_NO_PARAMS: &[u8] = &[
    0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
];

/// The name OpenSSL's `OBJ_obj2txt(…, 0)` gives an OID: its long name, else the dotted form.
/// This is what `rauc info --dump-recipients` prints as "Algorithm".
pub(crate) fn openssl_long_name(oid_der_content: &[u8]) -> String {
    let Ok(oid) = Oid::from_bytes(oid_der_content) else {
        return "<invalid OID>".to_owned();
    };
    let dotted = oid.to_string();
    openssl::asn1::Asn1Object::from_str(&dotted)
        .map(|o| o.to_string())
        .unwrap_or(dotted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;
    use der::asn1::{Any, ObjectIdentifier};
    use spki::AlgorithmIdentifierOwned;

    fn alg(oid: ObjectIdentifier, params: Option<Any>) -> Vec<u8> {
        AlgorithmIdentifierOwned {
            oid,
            parameters: params,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn fixed_algorithm_identifiers_match_der_encoder() {
        assert_eq!(alg(RSA_ENCRYPTION, Some(Any::null())), ALG_RSA_ENCRYPTION);
        assert_eq!(alg(EC_PUBLIC_KEY, None), ALG_EC_PUBLIC_KEY_NO_PARAMS);
        let wrap = Any::encode_from(&AlgorithmIdentifierOwned {
            oid: AES256_WRAP,
            parameters: None,
        })
        .unwrap();
        assert_eq!(
            alg(STD_DH_SHA1_KDF, Some(wrap)),
            ALG_STD_DH_SHA1_AES256_WRAP
        );
    }

    #[test]
    fn oaep_parameters_are_sha256_mgf1_sha256() {
        let sha256 = AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        };
        let mgf = AlgorithmIdentifierOwned {
            oid: MGF1,
            parameters: Some(Any::encode_from(&sha256).unwrap()),
        };
        let mut params = Vec::new();
        super::super::tlv::put_tlv(&mut params, 0xa0, &sha256.to_der().unwrap());
        super::super::tlv::put_tlv(&mut params, 0xa1, &mgf.to_der().unwrap());
        let mut seq = Vec::new();
        super::super::tlv::put_tlv(&mut seq, 0x30, &params);
        let params = Any::from_der(&seq).unwrap();
        assert_eq!(alg(RSAES_OAEP, Some(params)), ALG_RSAES_OAEP_SHA256);
    }

    #[test]
    fn long_names_are_openssl_names() {
        assert_eq!(
            openssl_long_name(RSA_ENCRYPTION.as_bytes()),
            "rsaEncryption"
        );
        assert_eq!(
            openssl_long_name(STD_DH_SHA1_KDF.as_bytes()),
            "dhSinglePass-stdDH-sha1kdf-scheme"
        );
        assert_eq!(openssl_long_name(&[0x2a, 0x03, 0x04]), "1.2.3.4");
    }

    use der::Decode;
}

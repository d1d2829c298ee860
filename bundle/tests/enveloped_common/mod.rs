//! Test support for the EnvelopedData tests: an in-process test PKI and a file-key
//! `RecipientKey` that counts its private-key operations.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use bundle::cms::enveloped::Recipient;
use bundle::keys::{EcCurve, KeyError, KeyKind, RecipientKey, RsaPadding};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use zeroize::Zeroizing;

/// A key algorithm for test certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
    /// EC P-521 (unsupported as a recipient).
    P521,
    /// RSA with the given modulus size.
    Rsa(u32),
    /// Ed25519 (unsupported as a recipient).
    Ed25519,
}

/// Generates a private key.
pub fn gen_key(alg: Alg) -> PKey<Private> {
    let ec = |nid| {
        let g = EcGroup::from_curve_name(nid).unwrap();
        PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
    };
    match alg {
        Alg::P256 => ec(Nid::X9_62_PRIME256V1),
        Alg::P384 => ec(Nid::SECP384R1),
        Alg::P521 => ec(Nid::SECP521R1),
        Alg::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap(),
        Alg::Ed25519 => PKey::generate_ed25519().unwrap(),
    }
}

/// Certificate options.
#[derive(Debug, Clone, Copy)]
pub struct CertOpts {
    /// Add a subjectKeyIdentifier.
    pub ski: bool,
    /// Validity start relative to now, in days.
    pub not_before_days: i64,
    /// Validity end relative to now, in days.
    pub not_after_days: i64,
}

impl Default for CertOpts {
    fn default() -> Self {
        CertOpts {
            ski: true,
            not_before_days: -1,
            not_after_days: 365,
        }
    }
}

/// A test CA (EC P-256) that issues recipient certificates.
pub struct Pki {
    pub ca_key: PKey<Private>,
    pub ca_cert: X509,
    serial: AtomicUsize,
}

fn time(days: i64) -> Asn1Time {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Asn1Time::from_unix(now + days * 86400).unwrap()
}

impl Pki {
    /// A fresh self-signed CA.
    pub fn new() -> Self {
        let ca_key = gen_key(Alg::P256);
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("O", "Test").unwrap();
        name.append_entry_by_text("CN", "Test Recipient CA")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(1).unwrap()).unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&ca_key).unwrap();
        b.set_not_before(&time(-2)).unwrap();
        b.set_not_after(&time(3650)).unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        Pki {
            ca_key,
            ca_cert: b.build(),
            serial: AtomicUsize::new(0x1000),
        }
    }

    /// Issues a recipient certificate for `key`.
    pub fn issue(&self, key: &PKey<Private>, cn: &str, opts: CertOpts) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("O", "Test").unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        // 20-byte serials like real CAs: exercises the 0x… serial printing.
        let mut serial = BigNum::new().unwrap();
        serial
            .rand(159, openssl::bn::MsbOption::MAYBE_ZERO, false)
            .unwrap();
        let n = self.serial.fetch_add(1, Ordering::Relaxed) as u32;
        serial.add_word(n).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(self.ca_cert.subject_name()).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&time(opts.not_before_days)).unwrap();
        b.set_not_after(&time(opts.not_after_days)).unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        let ku = if key.id() == Id::RSA {
            KeyUsage::new().critical().key_encipherment().build()
        } else {
            KeyUsage::new().critical().key_agreement().build()
        };
        b.append_extension(ku.unwrap()).unwrap();
        if opts.ski {
            let ski = SubjectKeyIdentifier::new()
                .build(&b.x509v3_context(Some(&self.ca_cert), None))
                .unwrap();
            b.append_extension(ski).unwrap();
        }
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&self.ca_cert), None))
            .unwrap();
        b.append_extension(aki).unwrap();
        b.sign(&self.ca_key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    /// A key, its certificate and the parsed recipient.
    pub fn recipient(&self, alg: Alg, cn: &str) -> (PKey<Private>, X509, Recipient) {
        let key = gen_key(alg);
        let cert = self.issue(&key, cn, CertOpts::default());
        let r = Recipient::from_der(&cert.to_der().unwrap()).unwrap();
        (key, cert, r)
    }
}

/// A PEM-file-like private key behind `RecipientKey`, counting private-key operations.
pub struct FileKey {
    pub key: PKey<Private>,
    pub cert: Option<Vec<u8>>,
    pub ops: AtomicUsize,
}

impl FileKey {
    /// With its certificate (the normal case).
    pub fn with_cert(key: &PKey<Private>, cert: &X509) -> Self {
        FileKey {
            key: key.clone(),
            cert: Some(cert.to_der().unwrap()),
            ops: AtomicUsize::new(0),
        }
    }

    /// Without a certificate (trial decryption).
    pub fn bare(key: &PKey<Private>) -> Self {
        FileKey {
            key: key.clone(),
            cert: None,
            ops: AtomicUsize::new(0),
        }
    }

    /// Number of private-key operations so far.
    pub fn ops(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }
}

/// The `KeyKind` of an OpenSSL key.
pub fn key_kind(key: &PKey<Private>) -> KeyKind {
    match key.id() {
        Id::RSA => KeyKind::Rsa { bits: key.bits() },
        Id::EC => match key.ec_key().unwrap().group().curve_name() {
            Some(Nid::X9_62_PRIME256V1) => KeyKind::Ec(EcCurve::P256),
            Some(Nid::SECP384R1) => KeyKind::Ec(EcCurve::P384),
            other => panic!("unsupported test curve {other:?}"),
        },
        other => panic!("unsupported test key {other:?}"),
    }
}

impl RecipientKey for FileKey {
    fn kind(&self) -> KeyKind {
        key_kind(&self.key)
    }

    fn certificate_der(&self) -> Option<Vec<u8>> {
        self.cert.clone()
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        let ec = self.key.ec_key()?;
        let group = ec.group();
        let mut ctx = BigNumContext::new()?;
        let point = EcPoint::from_bytes(group, peer_point, &mut ctx)?;
        let peer = PKey::from_ec_key(EcKey::from_public_key(group, &point)?)?;
        let mut d = Deriver::new(&self.key)?;
        d.set_peer(&peer)?;
        Ok(Zeroizing::new(d.derive_to_vec()?))
    }

    fn rsa_decrypt(
        &self,
        ciphertext: &[u8],
        padding: RsaPadding,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        let mut d = Decrypter::new(&self.key)?;
        match padding {
            RsaPadding::Pkcs1v15 => d.set_rsa_padding(Padding::PKCS1)?,
            RsaPadding::OaepSha256 => {
                d.set_rsa_padding(Padding::PKCS1_OAEP)?;
                d.set_rsa_oaep_md(MessageDigest::sha256())?;
                d.set_rsa_mgf1_md(MessageDigest::sha256())?;
            }
        }
        let mut out = Zeroizing::new(vec![0u8; d.decrypt_len(ciphertext)?]);
        let n = d.decrypt(ciphertext, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// A key whose operations always fail (a token that went away).
pub struct BrokenKey(pub KeyKind, pub Vec<u8>);

impl RecipientKey for BrokenKey {
    fn kind(&self) -> KeyKind {
        self.0
    }
    fn certificate_der(&self) -> Option<Vec<u8>> {
        Some(self.1.clone())
    }
    fn ecdh(&self, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Err("CKR_DEVICE_REMOVED".into())
    }
    fn rsa_decrypt(&self, _: &[u8], _: RsaPadding) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Err("CKR_DEVICE_REMOVED".into())
    }
}

/// Some content that looks like a SignedData: a DER SEQUENCE of `len` bytes in total.
pub fn fake_signed_data(len: usize) -> Vec<u8> {
    assert!((5 + 0x1_0000..=0xff_ffff).contains(&len) || (4 + 256..=0xffff).contains(&len));
    let mut out = if len > 0xffff {
        let c = len - 5;
        vec![0x30, 0x83, (c >> 16) as u8, (c >> 8) as u8, c as u8]
    } else {
        let c = len - 4;
        vec![0x30, 0x82, (c >> 8) as u8, c as u8]
    };
    let content = len - out.len();
    out.extend((0..content).map(|i| (i * 7 + 3) as u8));
    out
}

/// PEM of several certificates, concatenated.
pub fn pem_of(certs: &[&X509]) -> Vec<u8> {
    certs.iter().flat_map(|c| c.to_pem().unwrap()).collect()
}

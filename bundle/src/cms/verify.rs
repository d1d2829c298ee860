//! CMS SignedData verification with OpenSSL, with the semantics of RAUC targets
//! (`rauc-format.md` §3.3): keyring file (certificates + CRLs) and/or hashed directory,
//! `check-crl`, `allow-partial-chain`, `check-purpose` (OpenSSL's default `smimesign` when unset,
//! RAUC's `codesign` rule, or any OpenSSL purpose name), `--no-check-time`,
//! `use-bundle-signing-time`, and exactly one signer. The result carries the signed content,
//! the verified chain (signer first) and the signing time.

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::error::ErrorStack;
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509PurposeId, X509PurposeRef, X509StoreContext};

use crate::{Error, Result};

/// The trust configuration of a target (`[keyring]` of system.conf plus CLI overrides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    /// `path`: PEM file with CA certificates and optionally CRLs.
    pub path: Option<PathBuf>,
    /// `directory`: OpenSSL hashed directory (`hash.N`, `hash.rN`).
    pub directory: Option<PathBuf>,
    /// `check-crl`.
    pub check_crl: bool,
    /// `allow-partial-chain`: intermediates in the keyring act as trust anchors.
    pub allow_partial_chain: bool,
    /// `check-purpose`: `None` = OpenSSL's `smimesign` (CMS default); `codesign` or
    /// `codesign-rauc` = RAUC's code-signing rule; anything else = an OpenSSL purpose name.
    pub check_purpose: Option<String>,
    /// `--no-check-time`.
    pub no_check_time: bool,
    /// `use-bundle-signing-time`: verify the chain at the CMS `signingTime`.
    pub use_bundle_signing_time: bool,
}

impl Keyring {
    /// A keyring from one PEM file with default settings.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Keyring {
            path: Some(path.into()),
            ..Keyring::default()
        }
    }
}

/// A successfully verified signature. The content (a crypt bundle's manifest holds the crypt
/// key) is zeroized on drop and left out of `Debug`.
#[derive(Clone)]
pub struct VerifiedSignature {
    /// The signed content (the external manifest); empty for a detached signature.
    pub content: zeroize::Zeroizing<Vec<u8>>,
    /// The verified chain, signer first, trust anchor last.
    pub chain: Vec<X509>,
    /// The signer's `signingTime`, if present.
    pub signing_time: Option<SystemTime>,
    /// Warnings RAUC would print (e.g. "Detected CRL but CRL checking is disabled!").
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for VerifiedSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedSignature")
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("chain", &self.chain)
            .field("signing_time", &self.signing_time)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl VerifiedSignature {
    /// SHA-256 of each chain certificate's DER SubjectPublicKeyInfo (RAUC's SPKI hashes).
    pub fn spki_hashes(&self) -> Result<Vec<[u8; 32]>> {
        self.chain.iter().map(spki_sha256).collect()
    }
}

/// SHA-256 over a certificate's DER SubjectPublicKeyInfo.
pub fn spki_sha256(cert: &X509) -> Result<[u8; 32]> {
    let der = cert
        .public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| Error::crypto("failed to encode the public key", e))?;
    Ok(openssl::sha::sha256(&der))
}

/// RAUC's error text for an OpenSSL failure: the first error's data string if it has one (e.g.
/// "Verify error: certificate revoked"), otherwise the error itself.
fn openssl_reason(stack: &ErrorStack) -> String {
    match stack.errors().first() {
        Some(e) => e
            .data()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        None => "unknown error".to_string(),
    }
}

fn file_contains_crl(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| b.windows(24).any(|w| w == b"-----BEGIN X509 CRL-----"))
        .unwrap_or(false)
}

fn contains_crl(keyring: &Keyring) -> bool {
    let in_dir = keyring.directory.as_deref().is_some_and(|d| {
        std::fs::read_dir(d)
            .map(|it| it.flatten().any(|e| file_contains_crl(&e.path())))
            .unwrap_or(false)
    });
    keyring.path.as_deref().is_some_and(file_contains_crl) || in_dir
}

/// Drops errors that other code left on this thread's OpenSSL error queue, so that our messages
/// show the errors of the failed operation only. (SoftHSM's `C_Initialize` leaves one when it
/// probes for the `rdrand` engine; it would otherwise be reported as the verification error.)
fn clear_stale_errors() {
    let stale = ErrorStack::get();
    if !stale.errors().is_empty() {
        tracing::debug!(errors = %stale, "discarding stale OpenSSL errors");
    }
}

/// Builds the X509 store for a keyring (`setup_x509_store`). `signing_time` is applied when the
/// keyring says `use-bundle-signing-time`.
pub fn build_store(
    keyring: &Keyring,
    signing_time: Option<SystemTime>,
    warnings: &mut Vec<String>,
) -> Result<X509Store> {
    clear_stale_errors();
    if keyring.path.is_none() && keyring.directory.is_none() {
        return Err(Error::NoKeyring);
    }
    let load_err = |e: ErrorStack| {
        let dir = keyring
            .directory
            .as_deref()
            .map(|d| d.display().to_string());
        let file = keyring.path.as_deref().map(|d| d.display().to_string());
        Error::Keyring {
            path: keyring
                .path
                .clone()
                .or(keyring.directory.clone())
                .unwrap_or_default(),
            reason: format!(
                "failed to load CA file '{}' and/or directory '{}': {}",
                file.unwrap_or_else(|| "(null)".into()),
                dir.unwrap_or_else(|| "(null)".into()),
                openssl_reason(&e)
            ),
        }
    };
    let mut b = X509StoreBuilder::new().map_err(load_err)?;
    if let Some(path) = &keyring.path {
        let lookup = b.add_lookup(X509Lookup::file()).map_err(load_err)?;
        lookup
            .load_cert_file(path, SslFiletype::PEM)
            .map_err(load_err)?;
        if file_contains_crl(path) {
            lookup
                .load_crl_file(path, SslFiletype::PEM)
                .map_err(load_err)?;
        }
    }
    if let Some(dir) = &keyring.directory {
        let lookup = b.add_lookup(X509Lookup::hash_dir()).map_err(load_err)?;
        let dir = dir.to_str().ok_or_else(|| Error::Keyring {
            path: dir.clone(),
            reason: "directory name is not UTF-8".into(),
        })?;
        lookup.add_dir(dir, SslFiletype::PEM).map_err(load_err)?;
    }
    let mut flags = X509VerifyFlags::empty();
    if keyring.check_crl {
        flags |= X509VerifyFlags::CRL_CHECK
            | X509VerifyFlags::CRL_CHECK_ALL
            | X509VerifyFlags::EXTENDED_CRL_SUPPORT;
    } else if contains_crl(keyring) {
        tracing::warn!("Detected CRL but CRL checking is disabled!");
        warnings.push("Detected CRL but CRL checking is disabled!".into());
    }
    if keyring.allow_partial_chain {
        flags |= X509VerifyFlags::PARTIAL_CHAIN;
    }
    if keyring.no_check_time {
        flags |= X509VerifyFlags::NO_CHECK_TIME;
    }
    b.set_flags(flags).map_err(load_err)?;
    if let Some(name) = &keyring.check_purpose {
        b.set_purpose(purpose_id(name)?).map_err(load_err)?;
    }
    if let (true, Some(time)) = (keyring.use_bundle_signing_time, signing_time) {
        let secs = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut param = X509VerifyParam::new().map_err(load_err)?;
        param.set_time(secs as libc::time_t);
        b.set_param(&param).map_err(load_err)?;
    }
    Ok(b.build())
}

/// Resolves a `check-purpose` value to an OpenSSL purpose id (`codesign` → RAUC's rule).
fn purpose_id(name: &str) -> Result<X509PurposeId> {
    let sname = match name {
        "codesign" | "codesign-rauc" => {
            register_codesign_purpose()?;
            CODESIGN_SNAME
        }
        other => other,
    };
    let unknown = |_| Error::Keyring {
        path: PathBuf::new(),
        reason: format!("failed to configure X509 purpose '{name}'"),
    };
    let idx = X509PurposeRef::get_by_sname(sname).map_err(unknown)?;
    Ok(X509PurposeRef::from_idx(idx).map_err(unknown)?.purpose())
}

const CODESIGN_SNAME: &str = "codesign-rauc";

unsafe extern "C" {
    fn X509_PURPOSE_add(
        id: c_int,
        trust: c_int,
        flags: c_int,
        ck: Option<unsafe extern "C" fn(*const c_void, *const openssl_sys::X509, c_int) -> c_int>,
        name: *const c_char,
        sname: *const c_char,
        arg: *mut c_void,
    ) -> c_int;
    fn X509_PURPOSE_get_by_id(id: c_int) -> c_int;
    fn X509_check_ca(x: *mut openssl_sys::X509) -> c_int;
}

const X509_PURPOSE_MAX: c_int = 9;
const X509_TRUST_OBJECT_SIGN: c_int = 5;
const EXFLAG_KUSAGE: u32 = 0x2;
const EXFLAG_XKUSAGE: u32 = 0x4;
const KU_DIGITAL_SIGNATURE: u32 = 0x0080;
const XKU_CODE_SIGN: u32 = 0x8;

/// RAUC's code-signing rule (`check_purpose_code_sign`): the leaf needs EKU codeSigning and,
/// if it has keyUsage, digitalSignature; a CA with an EKU must include codeSigning.
unsafe extern "C" fn check_code_sign(
    _xp: *const c_void,
    x: *const openssl_sys::X509,
    ca: c_int,
) -> c_int {
    let x = x as *mut openssl_sys::X509;
    // SAFETY: OpenSSL calls this with a valid certificate whose extensions are cached.
    let (flags, ku, xku) = unsafe {
        (
            openssl_sys::X509_get_extension_flags(x),
            openssl_sys::X509_get_key_usage(x),
            openssl_sys::X509_get_extended_key_usage(x),
        )
    };
    if ca != 0 {
        if flags & EXFLAG_XKUSAGE != 0 && xku & XKU_CODE_SIGN == 0 {
            return 0;
        }
        // SAFETY: as above.
        return unsafe { X509_check_ca(x) };
    }
    if flags & EXFLAG_KUSAGE != 0 && ku & KU_DIGITAL_SIGNATURE == 0 {
        return 0;
    }
    c_int::from(flags & EXFLAG_XKUSAGE != 0 && xku & XKU_CODE_SIGN != 0)
}

/// Registers RAUC's `codesign-rauc` purpose with OpenSSL once per process.
fn register_codesign_purpose() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        openssl::init();
        let name = CString::new("Code signing").expect("no NUL");
        let sname = CString::new(CODESIGN_SNAME).expect("no NUL");
        // SAFETY: plain OpenSSL calls; the purpose table copies the strings; this runs once.
        unsafe {
            let mut id = X509_PURPOSE_MAX + 1;
            while X509_PURPOSE_get_by_id(id) != -1 {
                id += 1;
            }
            X509_PURPOSE_add(
                id,
                X509_TRUST_OBJECT_SIGN,
                0,
                Some(check_code_sign),
                name.as_ptr(),
                sname.as_ptr(),
                std::ptr::null_mut(),
            ) == 1
        }
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Keyring {
            path: PathBuf::new(),
            reason: "Failed to configure OpenSSL X509 purpose".into(),
        })
    }
}

/// Verifies a CMS SignedData. `detached` is the signed content of a detached signature (the
/// payload of a plain bundle, at most 2 GiB − 1); `None` for inline signatures.
pub fn verify(
    cms_der: &[u8],
    detached: Option<&[u8]>,
    keyring: &Keyring,
) -> Result<VerifiedSignature> {
    let info = super::inspect(cms_der)?;
    if info.signer_count != 1 {
        return Err(Error::UnsupportedSigners {
            count: info.signer_count,
        });
    }
    match (info.detached, detached) {
        (true, None) => return Err(Error::cms("no content provided for detached signature")),
        (false, Some(_)) => {
            return Err(Error::cms(
                "unexpected content provided for inline signature",
            ));
        }
        (_, Some(d)) if d.len() > i32::MAX as usize => {
            return Err(Error::size(
                "plain bundle payloads above 2 GiB are not supported",
            ));
        }
        _ => {}
    }
    if keyring.use_bundle_signing_time && info.signing_time.is_none() {
        return Err(Error::cms(
            "Bundle signing time attribute not found in signature",
        ));
    }
    let mut warnings = Vec::new();
    let store = build_store(keyring, info.signing_time, &mut warnings)?;
    clear_stale_errors();
    let mut cms = CmsContentInfo::from_der(cms_der)
        .map_err(|e| Error::cms(format!("failed to parse signature: {}", openssl_reason(&e))))?;
    let mut content = zeroize::Zeroizing::new(Vec::new());
    let flags = if detached.is_some() {
        CMSOptions::BINARY | CMSOptions::DETACHED
    } else {
        CMSOptions::BINARY
    };
    cms.verify(None, Some(&store), detached, Some(&mut *content), flags)
        .map_err(|e| Error::SignatureVerification {
            reason: openssl_reason(&e),
        })?;
    let chain = signer_chain(&info.certificates, cms_der, &store)?;
    Ok(VerifiedSignature {
        content: if detached.is_some() {
            zeroize::Zeroizing::new(Vec::new())
        } else {
            content
        },
        chain,
        signing_time: info.signing_time,
        warnings,
    })
}

/// Builds the signer's chain again with the store (`cms_get_cert_chain`).
fn signer_chain(certs: &[Vec<u8>], cms_der: &[u8], store: &X509Store) -> Result<Vec<X509>> {
    let sd = super::signed_data(cms_der)?;
    let si = sd
        .signer_infos
        .0
        .get(0)
        .ok_or(Error::UnsupportedSigners { count: 0 })?;
    let cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(ias) = &si.sid else {
        return Err(Error::cms("signer identified by key id is not supported"));
    };
    let mut signer = None;
    let mut untrusted = Stack::new().map_err(|e| Error::crypto("stack", e))?;
    for der in certs {
        let parsed = <x509_cert::Certificate as der::Decode>::from_der(der)
            .map_err(|e| Error::cms(e.to_string()))?;
        let x = X509::from_der(der).map_err(|e| Error::crypto("failed to parse certificate", e))?;
        if parsed.tbs_certificate.issuer == ias.issuer
            && parsed.tbs_certificate.serial_number == ias.serial_number
        {
            signer = Some(x.clone());
        }
        untrusted.push(x).map_err(|e| Error::crypto("stack", e))?;
    }
    let signer = signer.ok_or_else(|| Error::cms("signer certificate not found in CMS"))?;
    let mut ctx = X509StoreContext::new().map_err(|e| Error::crypto("X509 context", e))?;
    let chain = ctx
        .init(store, &signer, &untrusted, |c| {
            if c.verify_cert()? {
                Ok(Ok(c
                    .chain()
                    .map(|s| s.iter().map(|x| x.to_owned()).collect())))
            } else {
                Ok(Err(c.error().error_string().to_string()))
            }
        })
        .map_err(|e| Error::crypto("failed to build the certificate chain", e))?;
    match chain {
        Ok(Some(chain)) => Ok(chain),
        Ok(None) => Err(Error::SignatureVerification {
            reason: "Failed to verify X509 cert: empty chain".into(),
        }),
        Err(reason) => Err(Error::SignatureVerification {
            reason: format!("Failed to verify X509 cert: {reason}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::X509NameBuilder;

    fn self_signed(cn: &str) -> (X509, PKey<Private>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    /// An error another library left on the queue is not reported as the verification error.
    #[test]
    fn stale_openssl_errors_do_not_hide_the_verify_error() {
        let (cert, key) = self_signed("signer");
        let (other, _) = self_signed("other root");
        let cms = CmsContentInfo::sign(
            Some(&cert),
            Some(&key),
            None,
            Some(b"manifest"),
            CMSOptions::BINARY,
        )
        .unwrap()
        .to_der()
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("keyring.pem");
        std::fs::write(&keyring, other.to_pem().unwrap()).unwrap();
        // leave an unrelated error on this thread's queue, as SoftHSM's C_Initialize does
        let stale = X509::from_der(b"not a certificate").unwrap_err();
        for e in stale.errors() {
            e.put();
        }
        let err = verify(&cms, None, &Keyring::from_file(&keyring)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Verify error: self-signed certificate"),
            "{text}"
        );
    }
}

//! Persistent TPM ECDH keys: provisioning, public key export, and ECDH (`TPM2_ECDH_ZGen`)
//! behind [`bundle::keys::RecipientKey`].

use std::str::FromStr;

use bundle::keys::{EcCurve, KeyError, KeyKind, RecipientKey, RsaPadding};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::structures::{
    CapabilityData, EccParameter, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme,
    Public, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use zeroize::Zeroizing;

use super::{TpmError, TpmKeySpec};

/// Opens a TSS context on `tcti`. Each operation opens its own context and drops it at the
/// end, so no TPM connection (and no transient object) outlives an operation.
pub(crate) fn context(tcti: &str) -> Result<Context, TpmError> {
    let err = |source| TpmError::Tcti {
        tcti: tcti.to_owned(),
        source,
    };
    Context::new(TctiNameConf::from_str(tcti).map_err(err)?).map_err(err)
}

fn tpm_curve(curve: EcCurve) -> EccCurve {
    match curve {
        EcCurve::P256 => EccCurve::NistP256,
        EcCurve::P384 => EccCurve::NistP384,
    }
}

/// The storage parent: the TCG ECC P-256 SRK template (primary keys are re-derived from the
/// owner seed, so the same template always gives the same parent).
fn srk_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// An unrestricted ECC decryption key usable for `TPM2_ECDH_ZGen` (environment.md §7.6).
fn ecdh_template(curve: EcCurve) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .with_restricted(false)
        .build()?;
    let params = PublicEccParametersBuilder::new()
        .with_ecc_scheme(EccScheme::EcDh(HashScheme::new(HashingAlgorithm::Sha256)))
        .with_curve(tpm_curve(curve))
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_decryption_key(true)
        .with_restricted(false)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The persistent handles currently defined.
fn persistent_handles(ctx: &mut Context) -> Result<Vec<u32>, TpmError> {
    let mut out = Vec::new();
    let mut next = 0x8100_0000u32;
    loop {
        let (data, more) = ctx
            .get_capability(CapabilityType::Handles, next, 64)
            .map_err(TpmError::command("TPM2_GetCapability"))?;
        let CapabilityData::Handles(list) = data else {
            break;
        };
        let handles: Vec<u32> = list.into_inner().into_iter().map(u32::from).collect();
        let Some(&last) = handles.last() else { break };
        out.extend(handles.into_iter().filter(|h| h >> 24 == 0x81));
        if !more || last >> 24 != 0x81 {
            break;
        }
        next = last + 1;
    }
    Ok(out)
}

fn persistent(handle: u32) -> Result<PersistentTpmHandle, TpmError> {
    PersistentTpmHandle::new(handle).map_err(|_| TpmError::Spec {
        spec: format!("{handle:#010x}"),
        reason: "not a persistent handle".to_owned(),
    })
}

/// Creates an unrestricted ECDH key on `curve` under the owner hierarchy's SRK and makes it
/// persistent at `handle` (factory provisioning). Returns the key's SubjectPublicKeyInfo DER,
/// ready for a CA to certify. Fails if `handle` is taken. Leaves no transient object loaded.
pub fn create_persistent_ecdh_key(
    tcti: &str,
    curve: EcCurve,
    handle: u32,
) -> Result<Vec<u8>, TpmError> {
    let target = persistent(handle)?;
    let mut ctx = context(tcti)?;
    if persistent_handles(&mut ctx)?.contains(&handle) {
        return Err(TpmError::HandleInUse { handle });
    }
    let public = ctx.execute_with_nullauth_session(|ctx| -> Result<Public, TpmError> {
        let srk = ctx
            .create_primary(
                Hierarchy::Owner,
                srk_template().map_err(TpmError::command("template"))?,
                None,
                None,
                None,
                None,
            )
            .map_err(TpmError::command("TPM2_CreatePrimary"))?
            .key_handle;
        let loaded = create_and_load(ctx, srk, curve);
        flush(ctx, srk.into());
        let key = loaded?;
        let persisted = ctx
            .evict_control(Provision::Owner, key.into(), Persistent::Persistent(target))
            .map_err(TpmError::command("TPM2_EvictControl"));
        let public = ctx
            .read_public(key)
            .map(|(p, _, _)| p)
            .map_err(TpmError::command("TPM2_ReadPublic"));
        flush(ctx, key.into());
        persisted?;
        public
    })?;
    tracing::info!(
        handle = format_args!("{handle:#010x}"),
        ?curve,
        "created persistent TPM ECDH key"
    );
    spki_from_public(handle, &public).map(|(_, spki)| spki)
}

fn create_and_load(
    ctx: &mut Context,
    parent: KeyHandle,
    curve: EcCurve,
) -> Result<KeyHandle, TpmError> {
    let template = ecdh_template(curve).map_err(TpmError::command("template"))?;
    let created = ctx
        .create(parent, template, None, None, None, None)
        .map_err(TpmError::command("TPM2_Create"))?;
    ctx.load(parent, created.out_private, created.out_public)
        .map_err(TpmError::command("TPM2_Load"))
}

fn flush(ctx: &mut Context, handle: ObjectHandle) {
    if let Err(e) = ctx.flush_context(handle) {
        tracing::warn!(error = %e, "failed to flush a transient TPM object");
    }
}

/// Removes the persistent key at `handle` (re-provisioning, tests).
pub fn evict_persistent_key(tcti: &str, handle: u32) -> Result<(), TpmError> {
    let tpm_handle = persistent(handle)?;
    let mut ctx = context(tcti)?;
    if !persistent_handles(&mut ctx)?.contains(&handle) {
        return Err(TpmError::NoKeyAtHandle { handle });
    }
    let object = ctx
        .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
        .map_err(TpmError::command("Esys_TR_FromTPMPublic"))?;
    ctx.execute_with_nullauth_session(|ctx| {
        ctx.evict_control(Provision::Owner, object, Persistent::Persistent(tpm_handle))
    })
    .map_err(TpmError::command("TPM2_EvictControl"))?;
    Ok(())
}

/// Checks that `public` is an unrestricted ECDH decryption key on P-256/P-384 and returns its
/// curve and SubjectPublicKeyInfo DER.
fn spki_from_public(handle: u32, public: &Public) -> Result<(EcCurve, Vec<u8>), TpmError> {
    let not_ecdh = |reason: &str| TpmError::NotAnEcdhKey {
        handle,
        reason: reason.to_owned(),
    };
    let Public::Ecc {
        object_attributes,
        parameters,
        unique,
        ..
    } = public
    else {
        return Err(not_ecdh("not an ECC key"));
    };
    if !object_attributes.decrypt() || object_attributes.restricted() {
        return Err(not_ecdh("not an unrestricted decryption key"));
    }
    let (curve, nid) = match parameters.ecc_curve() {
        EccCurve::NistP256 => (EcCurve::P256, Nid::X9_62_PRIME256V1),
        EccCurve::NistP384 => (EcCurve::P384, Nid::SECP384R1),
        other => return Err(not_ecdh(&format!("unsupported curve {other:?}"))),
    };
    let mut point = vec![4u8];
    point.extend(pad(unique.x(), curve.field_bytes()));
    point.extend(pad(unique.y(), curve.field_bytes()));
    let crypto = |action| move |source| TpmError::Crypto { action, source };
    let group = EcGroup::from_curve_name(nid).map_err(crypto("failed to load the curve"))?;
    let mut bn = BigNumContext::new().map_err(crypto("out of memory"))?;
    let p = EcPoint::from_bytes(&group, &point, &mut bn)
        .map_err(crypto("the TPM returned an invalid public point"))?;
    let key = EcKey::from_public_key(&group, &p)
        .and_then(PKey::from_ec_key)
        .and_then(|k| k.public_key_to_der())
        .map_err(crypto("failed to encode the public key"))?;
    Ok((curve, key))
}

/// Left-pads a TPM2B coordinate to the field size.
fn pad(v: &EccParameter, len: usize) -> Vec<u8> {
    let v = v.value();
    let mut out = vec![0u8; len.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

/// A persistent TPM ECDH key, the TPM-native [`RecipientKey`] for EC recipients (tpm2-pkcs11
/// cannot do ECDH). Every operation connects, runs and disconnects; nothing stays loaded.
#[derive(Debug, Clone)]
pub struct TpmEcdhKey {
    tcti: String,
    handle: u32,
    curve: EcCurve,
    spki: Vec<u8>,
    cert: Option<Vec<u8>>,
}

impl TpmEcdhKey {
    /// Opens the key of a spec string (`tpm2:handle=…[;tcti=…][;cert=…]`).
    pub fn open(spec: &str) -> Result<Self, TpmError> {
        Self::open_spec(&spec.parse()?)
    }

    /// Opens the key of a parsed spec: checks that the handle holds an unrestricted ECDH key
    /// and reads its public key (and the certificate file, if the spec names one).
    pub fn open_spec(spec: &TpmKeySpec) -> Result<Self, TpmError> {
        let tcti = spec.resolved_tcti();
        let handle = spec.handle;
        let mut ctx = context(&tcti)?;
        let public = with_key(&mut ctx, handle, |ctx, key| {
            ctx.read_public(key)
                .map(|(p, _, _)| p)
                .map_err(TpmError::command("TPM2_ReadPublic"))
        })?;
        let (curve, spki) = spki_from_public(handle, &public)?;
        let cert = spec.cert.as_deref().map(read_certificate).transpose()?;
        Ok(TpmEcdhKey {
            tcti,
            handle,
            curve,
            spki,
            cert,
        })
    }

    /// Attaches the key's DER certificate (so decryption finds the recipient directly).
    pub fn with_certificate(mut self, cert_der: Vec<u8>) -> Self {
        self.cert = Some(cert_der);
        self
    }

    /// The key's SubjectPublicKeyInfo DER.
    pub fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    /// The persistent handle.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// The curve.
    pub fn curve(&self) -> EcCurve {
        self.curve
    }

    /// `TPM2_ECDH_ZGen` with an uncompressed peer point; returns Z (the x-coordinate).
    pub fn ecdh_z(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let n = self.curve.field_bytes();
        if peer_point.len() != 1 + 2 * n || peer_point[0] != 4 {
            return Err(TpmError::BadPeerPoint {
                reason: format!("expected an uncompressed point of {} bytes", 1 + 2 * n),
            });
        }
        let param = |b: &[u8]| {
            EccParameter::try_from(b.to_vec()).map_err(|_| TpmError::BadPeerPoint {
                reason: "coordinate too long".to_owned(),
            })
        };
        let point = EccPoint::new(param(&peer_point[1..=n])?, param(&peer_point[n + 1..])?);
        let mut ctx = context(&self.tcti)?;
        let z = with_key(&mut ctx, self.handle, |ctx, key| {
            ctx.execute_with_nullauth_session(|ctx| ctx.ecdh_z_gen(key, point))
                .map_err(TpmError::command("TPM2_ECDH_ZGen"))
        })?;
        Ok(Zeroizing::new(pad(z.x(), n)))
    }
}

/// Runs `f` with an ESYS handle for the persistent key and closes that handle afterwards.
fn with_key<T>(
    ctx: &mut Context,
    handle: u32,
    f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, TpmError>,
) -> Result<T, TpmError> {
    if !persistent_handles(ctx)?.contains(&handle) {
        return Err(TpmError::NoKeyAtHandle { handle });
    }
    let tpm_handle = TpmHandle::Persistent(persistent(handle)?);
    let mut object = ctx
        .execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm_handle))
        .map_err(TpmError::command("Esys_TR_FromTPMPublic"))?;
    let result = f(ctx, object.into());
    if let Err(e) = ctx.tr_close(&mut object) {
        tracing::warn!(error = %e, "failed to close an ESYS handle");
    }
    result
}

fn read_certificate(path: &std::path::Path) -> Result<Vec<u8>, TpmError> {
    let err = |reason: String| TpmError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let cert = if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        openssl::x509::X509::from_pem(&bytes)
    } else {
        openssl::x509::X509::from_der(&bytes)
    };
    cert.and_then(|c| c.to_der())
        .map_err(|e| err(e.to_string()))
}

impl RecipientKey for TpmEcdhKey {
    fn kind(&self) -> KeyKind {
        KeyKind::Ec(self.curve)
    }

    fn certificate_der(&self) -> Option<Vec<u8>> {
        self.cert.clone()
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(self.ecdh_z(peer_point)?)
    }

    fn rsa_decrypt(&self, _: &[u8], _: RsaPadding) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Err(TpmError::Unsupported {
            operation: "RSA decryption",
        }
        .into())
    }
}

impl crate::key::KeyInfo for TpmEcdhKey {
    fn description(&self) -> String {
        format!("tpm2:handle={:#010x}", self.handle)
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::Ec(self.curve)
    }

    fn public_key_der(&self) -> crate::Result<Vec<u8>> {
        Ok(self.spki.clone())
    }
}

impl crate::key::Decryptor for TpmEcdhKey {}

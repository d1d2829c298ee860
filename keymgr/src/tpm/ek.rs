//! The TPM's endorsement-key certificate (the manufacturer's proof that the TPM is genuine).

use openssl::sha::sha256;
use tss_esapi::abstraction::nv;
use tss_esapi::handles::{NvIndexHandle, NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::resource_handles::NvAuth;

use super::TpmError;
use super::key::context;

/// NV index of the ECC NIST P-256 EK certificate (TCG EK Credential Profile).
pub const EK_CERT_NV_ECC_P256: u32 = 0x01c0_000a;
/// NV index of the RSA 2048 EK certificate.
pub const EK_CERT_NV_RSA_2048: u32 = 0x01c0_0002;

/// An EK certificate read from the TPM's NV storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkCertificate {
    /// The NV index it was read from.
    pub nv_index: u32,
    /// The DER certificate (trailing NV padding removed).
    pub der: Vec<u8>,
}

impl EkCertificate {
    /// SHA-256 of the DER certificate.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(&self.der)
    }

    /// The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it
    /// (upper-case hex pairs separated by colons).
    pub fn fingerprint(&self) -> String {
        self.sha256()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// Reads the EK certificate, preferring ECC P-256 (`0x01c0000a`) over RSA 2048
/// (`0x01c00002`). Returns `None` when the TPM has neither (swtpm without `--create-ek-cert`).
pub fn read_ek_certificate(tcti: &str) -> Result<Option<EkCertificate>, TpmError> {
    let mut ctx = context(tcti)?;
    let defined: Vec<u32> = nv::list(&mut ctx)
        .map_err(TpmError::command("TPM2_NV_ReadPublic"))?
        .iter()
        .map(|(public, _)| u32::from(public.nv_index()))
        .collect();
    for index in [EK_CERT_NV_ECC_P256, EK_CERT_NV_RSA_2048] {
        if !defined.contains(&index) {
            continue;
        }
        let nv_handle = NvIndexTpmHandle::new(index).map_err(TpmError::command("NV index"))?;
        let object = ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(nv_handle)))
            .map_err(TpmError::command("Esys_TR_FromTPMPublic"))?;
        // EK certificate indices are readable with their own (empty) authorization; fall back
        // to owner authorization for indices provisioned with ownerread only.
        let data = ctx
            .execute_with_nullauth_session(|ctx| {
                nv::read_full(ctx, NvAuth::NvIndex(NvIndexHandle::from(object)), nv_handle)
            })
            .or_else(|_| {
                ctx.execute_with_nullauth_session(|ctx| {
                    nv::read_full(ctx, NvAuth::Owner, nv_handle)
                })
            })
            .map_err(TpmError::command("TPM2_NV_Read"))?;
        let der = trim_der(&data);
        openssl::x509::X509::from_der(&der).map_err(|source| TpmError::Crypto {
            action: "the EK certificate NV index does not hold a DER certificate",
            source,
        })?;
        return Ok(Some(EkCertificate {
            nv_index: index,
            der,
        }));
    }
    Ok(None)
}

/// Cuts a DER element out of NV data that may carry padding after it.
fn trim_der(data: &[u8]) -> Vec<u8> {
    let len = match data {
        [0x30, n, ..] if *n < 0x80 => Some(2 + *n as usize),
        [0x30, 0x81, n, ..] => Some(3 + *n as usize),
        [0x30, 0x82, a, b, ..] => Some(4 + ((*a as usize) << 8 | *b as usize)),
        _ => None,
    };
    match len {
        Some(l) if l <= data.len() => data[..l].to_vec(),
        _ => data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_padding_after_der() {
        assert_eq!(
            trim_der(&[0x30, 0x02, 1, 2, 0xff, 0xff]),
            vec![0x30, 0x02, 1, 2]
        );
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(vec![7u8; 256]);
        long.extend([0, 0, 0]);
        assert_eq!(trim_der(&long).len(), 260);
        assert_eq!(trim_der(&[1, 2, 3]), vec![1, 2, 3]);
    }

    #[test]
    fn fingerprint_format() {
        let c = EkCertificate {
            nv_index: EK_CERT_NV_ECC_P256,
            der: b"abc".to_vec(),
        };
        assert!(c.fingerprint().starts_with("BA:78:16:BF:"));
        assert_eq!(c.fingerprint().len(), 32 * 3 - 1);
    }
}

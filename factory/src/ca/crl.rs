//! CRLs signed with the CA key: version 2, authorityKeyIdentifier, cRLNumber, one entry per
//! revoked device certificate with its revocation time and reason code.

use openssl::x509::X509Crl;
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use super::CertificateAuthority;
use crate::error::{FactoryError, Result};
use crate::types::{RevocationReason, UnixTime, to_datetime};

/// One revoked certificate as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Certificate serial, upper-case hex.
    pub serial_hex: String,
    /// When it was revoked.
    pub revoked_at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

impl CertificateAuthority<'_> {
    /// Signs a CRL with number `number`, valid from `this_update` to `next_update`.
    pub fn sign_crl(
        &self,
        number: u64,
        this_update: UnixTime,
        next_update: UnixTime,
        entries: &[RevokedEntry],
    ) -> Result<Vec<u8>> {
        if next_update <= this_update {
            return Err(FactoryError::cert(
                "CRL",
                "nextUpdate must lie after thisUpdate",
            ));
        }
        let revoked_certs = entries
            .iter()
            .map(|e| {
                let serial = hex::decode(&e.serial_hex).map_err(|_| {
                    FactoryError::cert(
                        "CRL",
                        format!("certificate serial '{}' is not hex", e.serial_hex),
                    )
                })?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: to_datetime(e.revoked_at),
                    reason_code: Some(e.reason.to_rcgen()),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_datetime(this_update),
            next_update: to_datetime(next_update),
            crl_number: SerialNumber::from_slice(&minimal_be(number)),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_identifier()?),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| self.issuer.key().error("CRL", e))?;
        let der = crl.der().to_vec();
        let parsed =
            X509Crl::from_der(&der).map_err(|e| FactoryError::openssl("re-reading the CRL", e))?;
        if !parsed.verify(&self.public_key).unwrap_or(false) {
            return Err(self.mismatch("CRL"));
        }
        tracing::info!(number, entries = entries.len(), "signed CRL");
        Ok(der)
    }
}

/// Big-endian bytes without leading zeros (at least one byte).
fn minimal_be(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn minimal_be() {
        assert_eq!(super::minimal_be(0), vec![0]);
        assert_eq!(super::minimal_be(1), vec![1]);
        assert_eq!(super::minimal_be(0x1234), vec![0x12, 0x34]);
    }
}

//! CMS EnvelopedData: encryption to many recipients and decryption with one [`crate::keys::RecipientKey`].
//!
//! PLACEHOLDER (bundle-format branch): the real implementation is written on another branch and
//! replaces this file at merge. Only the signature below is relied upon by `crate::state`.

use zeroize::Zeroizing;

use crate::keys::RecipientKey;
use crate::{Error, Result};

/// Decrypts a DER/BER CMS EnvelopedData with one recipient key and returns the encrypted content
/// (for bundles: the complete DER SignedData).
///
/// PLACEHOLDER: always fails; the EnvelopedData branch provides the implementation.
pub fn decrypt(envelope_der: &[u8], key: &dyn RecipientKey) -> Result<Zeroizing<Vec<u8>>> {
    let _ = (envelope_der, key.kind());
    Err(Error::Decrypt {
        reason: "EnvelopedData decryption is not part of this build (placeholder)".into(),
    })
}

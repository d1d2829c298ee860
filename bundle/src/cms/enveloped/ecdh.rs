//! Sender-side ECDH for KeyAgreeRecipientInfo: ephemeral keys and the shared x-coordinate,
//! through OpenSSL's EC point arithmetic (the EVP path of OpenSSL 3.0 re-validates and
//! re-exports keys on every call and costs three times as much per recipient).

use std::sync::OnceLock;

use openssl::bn::{BigNum, BigNumContext, BigNumContextRef};
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::Private;
use zeroize::Zeroizing;

use crate::keys::EcCurve;
use crate::{Error, Result};

/// The (cached) OpenSSL group of a curve.
pub(crate) fn group(curve: EcCurve) -> Result<&'static EcGroup> {
    static GROUPS: [OnceLock<Option<EcGroup>>; 2] = [OnceLock::new(), OnceLock::new()];
    let (i, nid) = match curve {
        EcCurve::P256 => (0, Nid::X9_62_PRIME256V1),
        EcCurve::P384 => (1, Nid::SECP384R1),
    };
    GROUPS[i]
        .get_or_init(|| EcGroup::from_curve_name(nid).ok())
        .as_ref()
        .ok_or_else(|| Error::Crypto {
            context: "failed to load an EC curve",
            source: ErrorStack::get(),
        })
}

/// An ephemeral EC key (OpenSSL clears its scalar when it is freed) and its uncompressed
/// point.
pub(crate) struct Ephemeral {
    curve: EcCurve,
    key: EcKey<Private>,
    /// `04 ‖ X ‖ Y`, the originatorKey.
    pub point: Vec<u8>,
}

impl Ephemeral {
    /// Draws a fresh key on `curve`.
    pub fn generate(curve: EcCurve, ctx: &mut BigNumContextRef) -> Result<Self, ErrorStack> {
        let group = group(curve).map_err(|_| ErrorStack::get())?;
        let key = EcKey::generate(group)?;
        let point = key
            .public_key()
            .to_bytes(group, PointConversionForm::UNCOMPRESSED, ctx)?;
        Ok(Ephemeral { curve, key, point })
    }

    /// The x-coordinate of `scalar · peer` (the ECDH shared secret Z). The peer point was
    /// validated when the certificate was read and is decoded (and checked) again here.
    /// The coordinates and the shared point are overwritten before they are freed.
    pub fn shared_x(
        &self,
        peer: &[u8],
        ctx: &mut BigNumContextRef,
    ) -> Result<Zeroizing<Vec<u8>>, ErrorStack> {
        let group = group(self.curve).map_err(|_| ErrorStack::get())?;
        let peer = EcPoint::from_bytes(group, peer, ctx)?;
        let mut shared = EcPoint::new(group)?;
        shared.mul2(group, &peer, self.key.private_key(), ctx)?;
        let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
        let coords = shared.affine_coordinates(group, &mut x, &mut y, ctx);
        let z = coords.and_then(|()| x.to_vec_padded(self.curve.field_bytes() as i32));
        x.clear();
        y.clear();
        // Overwrite the shared point with a public one (2 · peer) before it is freed.
        shared.add(group, &peer, &peer, ctx)?;
        Ok(Zeroizing::new(z?))
    }
}

/// A `BigNumContext` per worker thread (rayon `map_init`).
pub(crate) fn thread_ctx() -> Result<BigNumContext, ErrorStack> {
    BigNumContext::new()
}

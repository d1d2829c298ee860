//! Importing a PEM private key into a token (with its public key object).
//!
//! EC keys get sign **and derive** usage: ECDH (the only way to decrypt a RAUC EC recipient)
//! needs `CKA_DERIVE`. RSA keys get sign and decrypt. The private key is sensitive and not
//! extractable once in the token; the key material passed to `C_CreateObject` is zeroized.

use bundle::keys::KeyKind;
use cryptoki::object::{Attribute, KeyType as CkKeyType, ObjectClass};
use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use openssl::pkey::{PKey, Private};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::file_key::load_private_pem;
use crate::keydata;
use crate::token::TokenSession;
use crate::uri::{ObjectType, Pkcs11Uri};

impl TokenSession {
    /// Imports a PEM private key (encrypted ones take `RAUC_KEY_PASSPHRASE`) as a private and a
    /// public key object with the given label and id. `source` names the PEM in messages.
    /// Returns the private key's URI.
    pub fn import_private_key(
        &self,
        pem: &[u8],
        source: &str,
        label: &str,
        id: &[u8],
    ) -> Result<Pkcs11Uri> {
        let pkey = load_private_pem(pem, source)?;
        let kind = keydata::kind_of_pkey(&pkey).map_err(|e| Error::key(source, e.to_string()))?;
        self.refuse_existing(ObjectType::Private, label, id)?;
        let (mut private, public) = match kind {
            KeyKind::Ec(curve) => ec_templates(&pkey, curve)?,
            KeyKind::Rsa { .. } => rsa_templates(&pkey)?,
        };
        let common = |private: bool| {
            [
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        private.extend(common(true));
        let result = self.create(&private, "importing the private key");
        zeroize_template(&mut private);
        result?;
        let mut public = public;
        public.extend(common(false));
        self.create(&public, "importing the public key")?;
        let uri = self.object_uri(ObjectType::Private, label, id);
        tracing::info!(key = %uri, source, "private key imported into the token");
        Ok(uri)
    }
}

type Templates = (Vec<Attribute>, Vec<Attribute>);

fn ec_templates(pkey: &PKey<Private>, curve: bundle::keys::EcCurve) -> Result<Templates> {
    let ssl = |e| Error::openssl("reading the EC key", e);
    let ec = pkey.ec_key().map_err(ssl)?;
    let params = keydata::params_of(curve).to_vec();
    let scalar = Zeroizing::new(
        ec.private_key()
            .to_vec_padded(curve.field_bytes() as i32)
            .map_err(ssl)?,
    );
    let mut ctx = BigNumContext::new().map_err(ssl)?;
    let point = ec
        .public_key()
        .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
        .map_err(ssl)?;
    let private = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(CkKeyType::EC),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(true),
        Attribute::EcParams(params.clone()),
        Attribute::Value(scalar.to_vec()),
    ];
    let public = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(CkKeyType::EC),
        Attribute::Verify(true),
        Attribute::Derive(true),
        Attribute::EcParams(params),
        Attribute::EcPoint(keydata::der_octet_string(&point)),
    ];
    Ok((private, public))
}

fn rsa_templates(pkey: &PKey<Private>) -> Result<Templates> {
    let ssl = |e| Error::openssl("reading the RSA key", e);
    let rsa = pkey.rsa().map_err(ssl)?;
    let missing = || Error::Invalid("the RSA key lacks its CRT parameters".into());
    let private = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(CkKeyType::RSA),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
        Attribute::Modulus(rsa.n().to_vec()),
        Attribute::PublicExponent(rsa.e().to_vec()),
        Attribute::PrivateExponent(rsa.d().to_vec()),
        Attribute::Prime1(rsa.p().ok_or_else(missing)?.to_vec()),
        Attribute::Prime2(rsa.q().ok_or_else(missing)?.to_vec()),
        Attribute::Exponent1(rsa.dmp1().ok_or_else(missing)?.to_vec()),
        Attribute::Exponent2(rsa.dmq1().ok_or_else(missing)?.to_vec()),
        Attribute::Coefficient(rsa.iqmp().ok_or_else(missing)?.to_vec()),
    ];
    let public = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(CkKeyType::RSA),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
        Attribute::Modulus(rsa.n().to_vec()),
        Attribute::PublicExponent(rsa.e().to_vec()),
    ];
    Ok((private, public))
}

/// Overwrites the secret values of a template.
fn zeroize_template(template: &mut [Attribute]) {
    for attribute in template {
        match attribute {
            Attribute::Value(v)
            | Attribute::PrivateExponent(v)
            | Attribute::Prime1(v)
            | Attribute::Prime2(v)
            | Attribute::Exponent1(v)
            | Attribute::Exponent2(v)
            | Attribute::Coefficient(v) => v.zeroize(),
            _ => {}
        }
    }
}

//! `keymgr generate URI --key-type T [--id HEX]`: a key pair generated inside the token.

use anyhow::{Context, Result, bail};
use keymgr::{Access, KeyType};
use serde::Serialize;

use super::{Global, HexId, open_logged_in, output, parse_hex_id, parse_uri};

/// Generate a key pair inside the token (private key sensitive and never extractable).
///
/// The URI names the token and the label (object=); the id comes from --id or id= in the URI,
/// else it is random. EC keys may sign and derive (ECDH), RSA keys sign and decrypt.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URI of the new key: token and object= (label), optionally id=.
    #[arg(value_name = "URI")]
    uri: String,

    /// Key type: ec:prime256v1, ec:secp384r1, rsa:2048, rsa:3072 or rsa:4096.
    #[arg(long, value_name = "TYPE")]
    key_type: KeyType,

    /// CKA_ID in hex (e.g. 01); random when neither this nor id= is given.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    id: Option<HexId>,
}

#[derive(Serialize)]
struct Generated {
    uri: String,
    label: String,
    id: String,
    key_type: String,
    public_key_pem: String,
}

impl Args {
    pub fn run(self, global: &Global) -> Result<()> {
        let uri = parse_uri(&self.uri)?;
        let label = uri
            .object
            .clone()
            .context("the URI needs object=<label> for the new key")?;
        let id = match (self.id.as_ref().map(|h| &h.0), &uri.id) {
            (Some(a), Some(b)) if a != b => bail!("--id and id= in the URI differ"),
            (Some(id), _) | (None, Some(id)) => Some(id.clone()),
            (None, None) => None,
        };
        let ts = open_logged_in(&uri, global, Access::ReadWrite)?;
        let key = ts.generate_key_pair(self.key_type, &label, id.as_deref())?;
        let result = Generated {
            uri: key.uri.to_string(),
            label: key.label,
            id: hex::encode(&key.id),
            key_type: self.key_type.to_string(),
            public_key_pem: output::public_key_pem(&key.public_key_der)?,
        };
        output::print(global, &result, || {
            format!(
                "Generated {} key pair in token `{}`\n  private key: {}\n{}",
                result.key_type,
                ts.token().label,
                result.uri,
                result.public_key_pem
            )
        })
    }
}

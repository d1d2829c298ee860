//! `keymgr objects URI`: list a token's objects with their full URIs.

use anyhow::Result;
use keymgr::{Access, Error, TokenSession};

use super::{Global, output, parse_uri};

/// List the objects of a token (or those the URI selects) with their full URIs.
///
/// Logs in when a PIN is available (pin-source, RAUC_PKCS11_PIN, terminal prompt); without
/// one only public objects are listed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Token URI, optionally with object=, id= or type= to filter.
    #[arg(value_name = "URI")]
    uri: String,
}

impl Args {
    pub fn run(self, global: &Global) -> Result<()> {
        let uri = parse_uri(&self.uri)?;
        let mut ts = TokenSession::open(&uri, global.module.as_deref(), Access::ReadOnly)?;
        match ts.login(&uri) {
            Ok(()) => {}
            Err(Error::PinMissing { token }) => tracing::warn!(
                "no PIN for token `{token}`: listing public objects only (give pin-source= or RAUC_PKCS11_PIN)"
            ),
            Err(e) => return Err(e.into()),
        }
        let objects = ts.list_objects(&uri)?;
        output::print(global, &objects, || {
            let mut text = String::new();
            for o in &objects {
                text.push_str(&format!(
                    "{:<8} {:<9} label {:?}, id {}\n  {}\n",
                    o.object_type.as_str(),
                    o.key.as_deref().unwrap_or("-"),
                    o.label,
                    hex::encode(&o.id),
                    o.uri
                ));
            }
            if objects.is_empty() {
                text.push_str("no objects\n");
            }
            text
        })
    }
}

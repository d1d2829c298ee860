//! `keymgr import URI --cert FILE | --key FILE`: write a certificate or a PEM private key.

use std::path::PathBuf;

use anyhow::{Context, Result};
use keymgr::{Access, load_certificate};
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Global, open_logged_in, output, parse_uri};

/// Import a certificate or a PEM private key into the token.
///
/// The URI gives the label (object=) and optionally the id (id=). A certificate without id= gets
/// the id of the key pair with the same label, so it pairs with its key. A private key without
/// id= gets a random id; EC keys are imported with derive usage (needed for ECDH). Encrypted PEM
/// keys take their passphrase from RAUC_KEY_PASSPHRASE.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["cert", "key"])))]
pub struct Args {
    /// URI of the new object: token and object= (label), optionally id=.
    #[arg(value_name = "URI")]
    uri: String,

    /// Certificate file (PEM or DER; the first certificate is imported).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// Private key file (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

#[derive(Serialize)]
struct Imported {
    uri: String,
}

impl Args {
    pub fn run(self, global: &Global) -> Result<()> {
        let uri = parse_uri(&self.uri)?;
        let label = uri
            .object
            .clone()
            .context("the URI needs object=<label> for the imported object")?;
        let ts = open_logged_in(&uri, global, Access::ReadWrite)?;
        let written = if let Some(path) = &self.cert {
            let spec = path.to_str().context("the certificate path is not UTF-8")?;
            let der = load_certificate(spec)?;
            let id = ts.pairing_id(&uri)?.context(
                "no id for the certificate: give id= in the URI or import it under the label of its key",
            )?;
            ts.write_certificate(&der, &label, &id)?
        } else {
            let path = self.key.as_ref().context("give --cert or --key")?;
            let pem = Zeroizing::new(
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            );
            let id = match &uri.id {
                Some(id) => id.clone(),
                None => keymgr::manage::random_id()?,
            };
            ts.import_private_key(&pem, &path.display().to_string(), &label, &id)?
        };
        let result = Imported {
            uri: written.to_string(),
        };
        output::print(global, &result, || format!("Imported {}\n", result.uri))
    }
}

//! `keymgr export URI --cert | --pubkey [-o FILE]`: a certificate or public key as PEM.

use std::path::PathBuf;

use anyhow::Result;
use keymgr::{Access, TokenSession};

use super::{Global, output, parse_uri};

/// Export a certificate or a public key from the token as PEM (to stdout or a file).
///
/// --pubkey takes the key's public key object, else its certificate, else (RSA) the private
/// key's public part (this needs a login).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["cert", "pubkey"])))]
pub struct Args {
    /// URI of the key or certificate.
    #[arg(value_name = "URI")]
    uri: String,

    /// Export the certificate.
    #[arg(long)]
    cert: bool,

    /// Export the public key.
    #[arg(long)]
    pubkey: bool,

    /// Write to FILE (atomically) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl Args {
    pub fn run(self, global: &Global) -> Result<()> {
        let uri = parse_uri(&self.uri)?;
        let mut ts = TokenSession::open(&uri, global.module.as_deref(), Access::ReadOnly)?;
        let pem = if self.cert {
            output::certificate_pem(&ts.export_certificate(&uri)?)?
        } else {
            output::public_key_pem(&ts.export_public_key(&uri)?)?
        };
        match &self.output {
            Some(path) => output::write_atomically(path, pem.as_bytes()),
            None => {
                print!("{pem}");
                Ok(())
            }
        }
    }
}

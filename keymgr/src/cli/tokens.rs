//! `keymgr tokens`: list the tokens of the module with their full URIs.

use anyhow::Result;
use keymgr::{module, token};

use super::{Global, output, parse_uri};

/// List the tokens of the PKCS#11 module, with their full token URIs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A URI whose `module-path`/`module-name` selects the module (optional).
    #[arg(value_name = "URI")]
    uri: Option<String>,
}

impl Args {
    pub fn run(self, global: &Global) -> Result<()> {
        let uri = self.uri.as_deref().map(parse_uri).transpose()?;
        let path = module::resolve_module(uri.as_ref(), global.module.as_deref())?;
        let tokens = token::list_tokens(&path)?;
        output::print(global, &tokens, || {
            let mut text = format!("Module {}\n", path.display());
            if tokens.is_empty() {
                text.push_str("  no tokens\n");
            }
            for t in &tokens {
                let state = if t.initialized {
                    ""
                } else {
                    " (not initialized)"
                };
                text.push_str(&format!(
                    "Token {:?}{state}\n  slot: {}\n  manufacturer: {}\n  model: {}\n  serial: {}\n  uri: {}\n",
                    t.label,
                    t.slot_id,
                    t.manufacturer,
                    t.model.trim_end_matches('\0'),
                    t.serial,
                    t.uri
                ));
            }
            text
        })
    }
}

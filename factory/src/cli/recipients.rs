//! `factory recipients [--group G] --out recipients.pem`.

use std::path::PathBuf;
use std::process::ExitCode;

use factory::recipients::write_recipients;
use factory::types::{check_label, now};
use serde_json::json;

use super::Ctx;

/// Write the certificates of active, unexpired devices (stable order, by serial) as one PEM
/// file for `signer encrypt --to` / `rauc encrypt --to`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only devices of this group.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Output file (PEM certificates).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let inventory = ctx.inventory(&config)?;
        if let Some(g) = &self.group {
            check_label("group", g)?;
        }
        let list = write_recipients(&inventory, self.group.as_deref(), now(), &self.out)?;
        if ctx.json() {
            ctx.print_json(&json!({"count": list.count, "group": self.group, "out": self.out}))?;
        } else {
            println!(
                "{} recipients written to {}",
                list.count,
                self.out.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

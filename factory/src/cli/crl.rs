//! `factory crl --out crl.pem [--next-update DAYS]`.

use std::path::PathBuf;
use std::process::ExitCode;

use factory::fleet::{issue_crl, write_crl_pem};
use factory::types::{now, rfc3339};
use serde_json::json;

use super::{Ctx, backend};

/// Write a CRL of every revoked device certificate, signed inside the station HSM.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output file (PEM).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Days until nextUpdate (default: [ca] crl-next-update-days).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    next_update: Option<u32>,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let hsm = backend::station_hsm(&config)?;
        let ca = backend::open_ca(hsm.as_ref())?;
        let days = self.next_update.unwrap_or(config.ca.crl_next_update_days);
        let crl = issue_crl(&mut inventory, &ca, now(), days)?;
        write_crl_pem(&crl, &self.out)?;
        if ctx.json() {
            ctx.print_json(&json!({
                "number": crl.number, "entries": crl.entries, "this_update": rfc3339(crl.this_update),
                "next_update": rfc3339(crl.next_update), "out": self.out,
            }))?;
        } else {
            println!(
                "CRL number {} with {} revoked certificates written to {} (next update {})",
                crl.number,
                crl.entries,
                self.out.display(),
                rfc3339(crl.next_update)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

//! `factory verify`.

use std::process::ExitCode;

use factory::provision::{VerifyOptions, verify};
use factory::types::DeviceSerial;

use super::{Ctx, backend};

/// Reconcile inventory and device tokens: always the audit hash chain and every interrupted
/// provisioning run, plus the named devices (or all with --all). Reports; repairs with
/// --repair. Exit status 2 if anything needs attention.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also check this recorded device (repeatable).
    #[arg(long = "device", value_name = "SERIAL")]
    devices: Vec<String>,
    /// Check every recorded device.
    #[arg(long, conflicts_with = "devices")]
    all: bool,
    /// Carry out the repairs (roll interrupted runs back or forward, rewrite certificates).
    #[arg(long)]
    repair: bool,
    /// Treat interrupted runs recorded by other hosts as dead.
    #[arg(long = "take-over")]
    take_over: bool,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let devices = self
            .devices
            .iter()
            .map(|s| DeviceSerial::new(s))
            .collect::<Result<Vec<_>, _>>()?;
        let tokens = backend::device_tokens(&config)?;
        let options = VerifyOptions {
            devices,
            all: self.all,
            repair: self.repair,
            takeover: self.take_over,
        };
        let report = verify(&mut inventory, tokens.as_ref(), &options)?;
        if ctx.json() {
            ctx.print_json(&report)?;
        } else {
            println!(
                "audit log: {} entries, hash chain intact",
                report.audit_entries
            );
            for i in &report.items {
                let state = match (&i.finding, &i.error) {
                    (_, Some(e)) => format!("ERROR {e}"),
                    (Some(f), None) => format!(
                        "{f}; action {}{}",
                        i.action.as_deref().unwrap_or("-"),
                        if i.applied { " (done)" } else { "" }
                    ),
                    (None, None) => "-".into(),
                };
                println!("{} {}: {state}", i.kind, i.serial);
                if i.unrecorded_objects > 0 {
                    println!(
                        "  {} token objects not recorded in the inventory (left alone)",
                        i.unrecorded_objects
                    );
                }
            }
        }
        Ok(if report.needs_attention() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        })
    }
}

//! `factory revoke` and `factory retire`.

use std::process::ExitCode;

use factory::transfer::DeviceJson;
use factory::types::{DeviceSerial, RevocationReason, now};

use super::Ctx;

/// Revoke an active device's certificate.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Device serial.
    #[arg(long, value_name = "SERIAL")]
    device: String,
    /// Reason: unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
    /// cessation-of-operation, privilege-withdrawn.
    #[arg(long, value_name = "R")]
    reason: RevocationReason,
}

/// Retire an active or revoked device.
#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    /// Device serial.
    #[arg(long, value_name = "SERIAL")]
    device: String,
}

impl RevokeArgs {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let serial = DeviceSerial::new(&self.device)?;
        let d = inventory.revoke(&serial, self.reason, now())?;
        if ctx.json() {
            ctx.print_json(&DeviceJson::from(&d))?;
        } else {
            println!(
                "device {} revoked ({}); certificate {} goes on the next CRL (`factory crl`)",
                d.serial, self.reason, d.cert_serial
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl RetireArgs {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let serial = DeviceSerial::new(&self.device)?;
        let d = inventory.retire(&serial, now())?;
        if ctx.json() {
            ctx.print_json(&DeviceJson::from(&d))?;
        } else {
            println!("device {} retired; it is no longer a recipient", d.serial);
        }
        Ok(ExitCode::SUCCESS)
    }
}

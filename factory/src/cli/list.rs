//! `factory list`.

use std::io::Write;
use std::process::ExitCode;

use factory::FactoryError;
use factory::inventory::DeviceFilter;
use factory::transfer::DeviceJson;
use factory::types::{DeviceStatus, check_label, rfc3339};

use super::Ctx;

/// List devices, ordered by serial.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only devices of this group.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Only devices with this status (active, revoked, retired).
    #[arg(long, value_name = "STATUS")]
    status: Option<DeviceStatus>,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let inventory = ctx.inventory(&config)?;
        if let Some(g) = &self.group {
            check_label("group", g)?;
        }
        let filter = DeviceFilter {
            group: self.group,
            status: self.status,
        };
        if ctx.json() {
            let devices: Vec<DeviceJson> = inventory
                .devices(&filter)?
                .iter()
                .map(DeviceJson::from)
                .collect();
            ctx.print_json(&devices)?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<24} {:<8} {:<16} {:<9} {:<20} CERTIFICATE",
            "SERIAL", "STATUS", "GROUP", "KEY", "NOT AFTER"
        )?;
        let n = inventory.for_each_device(&filter, |d| {
            writeln!(
                out,
                "{:<24} {:<8} {:<16} {:<9} {:<20} {}",
                d.serial.to_string(),
                d.status.to_string(),
                d.group.as_deref().unwrap_or("-"),
                d.key_type.to_string(),
                rfc3339(d.not_after),
                d.cert_serial
            )
            // A closed pipe stops the listing (the caller exits quietly on it).
            .map_err(|source| FactoryError::Io {
                what: "failed to write",
                path: "standard output".into(),
                source,
            })
        })?;
        writeln!(out, "{n} devices")?;
        Ok(ExitCode::SUCCESS)
    }
}

//! `factory show DEVICE`.

use std::process::ExitCode;

use factory::FactoryError;
use factory::cert::to_pem;
use factory::transfer::DeviceJson;
use factory::types::{DeviceSerial, rfc3339};
use serde_json::json;

use super::Ctx;

/// Show one device, its certificate and its audit history.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Device serial.
    #[arg(value_name = "DEVICE")]
    device: String,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let inventory = ctx.inventory(&config)?;
        let serial = DeviceSerial::new(&self.device)?;
        let device = inventory
            .device(&serial)?
            .ok_or_else(|| FactoryError::UnknownDevice {
                serial: serial.clone(),
            })?;
        let audit = inventory.audit_log(Some(&serial))?;
        if ctx.json() {
            ctx.print_json(&json!({"device": DeviceJson::from(&device), "audit": audit}))?;
            return Ok(ExitCode::SUCCESS);
        }
        let d = &device;
        let rows = [
            ("serial", d.serial.to_string()),
            ("status", d.status.to_string()),
            ("group", d.group.clone().unwrap_or_else(|| "-".into())),
            ("tags", d.tags.join(", ")),
            ("key type", d.key_type.to_string()),
            ("issuer", d.issuer.clone()),
            ("certificate serial", d.cert_serial.clone()),
            (
                "valid",
                format!("{} to {}", rfc3339(d.not_before), rfc3339(d.not_after)),
            ),
            ("subject key id", d.ski.clone()),
            ("SPKI SHA-256", d.spki_sha256.clone()),
            ("token", d.token_uri.clone()),
            ("token description", d.token_description.clone()),
            ("key id / label", format!("{} / {}", d.key_id, d.key_label)),
            (
                "EK certificate SHA-256",
                d.ek_cert_sha256.clone().unwrap_or_else(|| "-".into()),
            ),
            (
                "revoked",
                d.revocation
                    .map_or("-".into(), |r| format!("{} ({})", rfc3339(r.at), r.reason)),
            ),
            ("retired", d.retired_at.map_or("-".into(), rfc3339)),
            (
                "recorded",
                format!(
                    "{} (changed {})",
                    rfc3339(d.created_at),
                    rfc3339(d.updated_at)
                ),
            ),
        ];
        for (k, v) in rows {
            println!("{:<24}{v}", format!("{k}:"));
        }
        println!("audit:");
        for e in &audit {
            println!(
                "  #{} {} {} by {} {}",
                e.seq,
                rfc3339(e.at),
                e.action,
                e.actor,
                e.detail
            );
        }
        print!("{}", to_pem("CERTIFICATE", &d.certificate));
        Ok(ExitCode::SUCCESS)
    }
}

//! `ota status [mark-good|mark-bad|mark-active [booted|other|SLOT]]`.

use std::process::ExitCode;

use target::report::{self, SystemReport};
use target::service::{BusAddress, client};

use super::Global;

/// Output formats of `rauc status`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable.
    Readable,
    /// Shell variables.
    Shell,
    /// Compact JSON.
    Json,
    /// Indented JSON.
    JsonPretty,
}

/// Show the system status, or mark a slot (through the service if it runs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `mark-good`, `mark-bad` or `mark-active`.
    #[arg(value_parser = ["mark-good", "mark-bad", "mark-active"])]
    pub action: Option<String>,
    /// `booted` (default), `other` or a slot name such as `rootfs.1`.
    pub slot: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "readable")]
    pub output_format: Format,
    /// Include the recorded slot status.
    #[arg(long)]
    pub detailed: bool,
}

impl Args {
    /// Prints the status or marks a slot.
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let conn = client::connect_if_running(&BusAddress::Default);
        if let Some(action) = &self.action {
            let state = action.trim_start_matches("mark-");
            let ident = self.slot.as_deref().unwrap_or("booted");
            let res = match &conn {
                Some(c) => client::mark(c, state, ident),
                None => target::mark::mark(&g.context()?, state, ident),
            };
            return Ok(match res {
                Ok((_, msg)) => {
                    println!("rauc status: {msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rauc mark: {e}");
                    ExitCode::from(1)
                }
            });
        }
        let report = match &conn {
            Some(c) => client::status(c)?,
            None => report::collect(&g.context()?)?,
        };
        println!("{}", self.format(&report)?);
        Ok(ExitCode::SUCCESS)
    }

    fn format(&self, r: &SystemReport) -> anyhow::Result<String> {
        Ok(match self.output_format {
            Format::Readable => r.readable(self.detailed),
            Format::Shell => r.shell(self.detailed),
            Format::Json => serde_json::to_string(&r.json(self.detailed))?,
            Format::JsonPretty => serde_json::to_string_pretty(&r.json(self.detailed))?,
        })
    }
}

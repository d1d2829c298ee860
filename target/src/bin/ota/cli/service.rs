//! `ota service`.

use std::process::ExitCode;

use target::service::{BusAddress, Shared, run};

use super::Global;

/// Run the D-Bus service on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
#[derive(Debug, clap::Args)]
pub struct Args {}

impl Args {
    /// Serves until stopped.
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let shared = Shared::new(g.context()?, g.opener());
        run(shared, &BusAddress::Default)?;
        Ok(ExitCode::SUCCESS)
    }
}

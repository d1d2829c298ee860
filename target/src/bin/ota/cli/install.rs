//! `ota install BUNDLE`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use target::install::{InstallArgs, install_bundle};
use target::progress::{Progress, ProgressUpdate};
use target::service::{BusAddress, client};

use super::Global;

/// Install a bundle: through the running service if there is one (as `rauc install`), else
/// directly.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle (a path).
    pub bundle: String,
    /// Do not check the bundle's compatible against [system] compatible.
    #[arg(long)]
    pub ignore_compatible: bool,
    /// Transaction id to record in the slot status.
    #[arg(long)]
    pub transaction_id: Option<String>,
    /// Refuse bundles whose manifest hash differs.
    #[arg(long)]
    pub require_manifest_hash: Option<String>,
    /// Accepted for compatibility with rauc (progress is always printed line by line).
    #[arg(long)]
    pub progress: bool,
}

fn absolute(bundle: &str) -> anyhow::Result<String> {
    let p = std::path::absolute(Path::new(bundle))?;
    if !p.exists() {
        anyhow::bail!("No such file: {}", p.display());
    }
    Ok(p.to_string_lossy().into_owned())
}

impl Args {
    /// Runs the installation; exit code 0 success, 1 failure, 2 D-Bus error (as rauc).
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let source = absolute(&self.bundle)?;
        let args = InstallArgs {
            ignore_compatible: self.ignore_compatible,
            transaction_id: self.transaction_id.clone(),
            require_manifest_hash: self.require_manifest_hash.clone(),
        };
        let code = match client::connect_if_running(&BusAddress::Default) {
            Some(conn) => match client::install(&conn, &source, &args, |l| println!("{l}")) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("Failed {e}");
                    2
                }
            },
            None => self.run_local(g, &source, &args)?,
        };
        match code {
            0 => println!("Installing `{source}` succeeded"),
            1 => eprintln!("Installing `{source}` failed"),
            2 => eprintln!("D-Bus error while installing `{source}`"),
            c => eprintln!("Installing `{source}` failed with unknown exit code: {c}"),
        }
        Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
    }

    fn run_local(&self, g: &Global, source: &str, args: &InstallArgs) -> anyhow::Result<i32> {
        let ctx = g.context()?;
        let opener = g.opener();
        let print = Arc::new(|u: &ProgressUpdate| println!("{}", u.line()));
        let mut progress = Progress::new(Some(print));
        Ok(
            match install_bundle(&ctx, opener.as_ref(), source, args, &mut progress) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("LastError: {e}");
                    1
                }
            },
        )
    }
}

//! `factory export [--out FILE]`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bundle::atomic::{AtomicFile, Existing};
use factory::transfer::export;
use factory::types::now;

use super::Ctx;

/// Export the inventory (devices and the CRL counter) as JSON lines.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output file (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let inventory = ctx.inventory(&config)?;
        let n = match &self.out {
            Some(path) => {
                let file = AtomicFile::create(path, Existing::Replace)?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file.file());
                let n = export(&inventory, &mut out, now(), path)?;
                out.flush()?;
                drop(out);
                file.commit()?;
                n
            }
            None => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                let n = export(&inventory, &mut out, now(), Path::new("-"))?;
                out.flush()?;
                n
            }
        };
        eprintln!("{n} devices exported");
        Ok(ExitCode::SUCCESS)
    }
}

//! `factory import FILE`.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use factory::transfer::import;
use factory::types::now;
use serde_json::json;

use super::Ctx;

/// Import an export file in one transaction; existing devices or certificates are refused
/// and then nothing is imported.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The export file ('-' for standard input).
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let n = if self.input.as_os_str() == "-" {
            import(&mut inventory, std::io::stdin().lock(), &self.input, now())?
        } else {
            let file = std::fs::File::open(&self.input)
                .with_context(|| format!("opening {}", self.input.display()))?;
            import(&mut inventory, BufReader::new(file), &self.input, now())?
        };
        if ctx.json() {
            ctx.print_json(&json!({"imported": n}))?;
        } else {
            println!("{n} devices imported");
        }
        Ok(ExitCode::SUCCESS)
    }
}

//! `factory provision --device SERIAL …` and `factory provision --batch devices.csv`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use factory::inventory::Inventory;
use factory::provision::{
    BatchItem, BatchResult, BatchSummary, ProvisionOutcome, ProvisionRequest, Provisioner,
    read_batch_csv, run_batch,
};
use factory::transfer::DeviceJson;
use factory::types::DeviceSerial;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{Ctx, backend};

/// Generate the device key inside its token, issue its certificate, write it back and record
/// the device. Re-running for a recorded device reports its state and changes nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Device serial (letters, digits, '.', '_', '-').
    #[arg(
        long,
        value_name = "SERIAL",
        required_unless_present = "batch",
        conflicts_with = "batch"
    )]
    device: Option<String>,
    /// Token URI of the device (default: [device-token] uri with the serial).
    #[arg(long, value_name = "URI", requires = "device")]
    token: Option<String>,
    /// Fleet group of the device.
    #[arg(long, value_name = "GROUP", requires = "device")]
    group: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "TAG", requires = "device")]
    tags: Vec<String>,
    /// Certificate profile (default: default-profile).
    #[arg(long, value_name = "NAME", requires = "device")]
    profile: Option<String>,
    /// CSV file with a header: serial[,group,tags,token,profile] (tags separated by ';').
    #[arg(long, value_name = "CSV")]
    batch: Option<PathBuf>,
    /// Parallel workers for --batch (default: available CPUs).
    #[arg(long, value_name = "N", requires = "batch")]
    jobs: Option<usize>,
}

impl Args {
    /// Runs the command.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        if self.batch.is_some()
            && (self.group.is_some()
                || self.token.is_some()
                || self.profile.is_some()
                || !self.tags.is_empty())
        {
            anyhow::bail!(
                "--group, --tag, --token and --profile apply to --device only; with --batch give \
                 them as CSV columns (serial,group,tags,token,profile)"
            );
        }
        let config = ctx.config()?;
        let request = match &self.device {
            Some(serial) => Some(ProvisionRequest {
                serial: DeviceSerial::new(serial)?,
                group: self.group.clone(),
                tags: self.tags.clone(),
                token_uri: self.token.clone(),
                profile: self.profile.clone(),
            }),
            None => None,
        };
        let entries = match &self.batch {
            Some(path) => read_batch_csv(path)?,
            None => Vec::new(),
        };
        let hsm = backend::station_hsm(&config)?;
        let tokens = backend::device_tokens(&config)?;
        let worker = || -> factory::Result<Provisioner<'_>> {
            let inventory = Inventory::open(&config.inventory)?;
            let ca = backend::open_ca(hsm.as_ref()).map_err(|e| factory::FactoryError::CaKey {
                message: format!("{e:#}"),
            })?;
            Ok(Provisioner::new(&config, inventory, ca, tokens.as_ref()))
        };
        if let Some(request) = request {
            let outcome = worker()?.provision(&request)?;
            print_outcome(ctx, &outcome)?;
            return Ok(ExitCode::SUCCESS);
        }
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let bar = progress_bar(entries.len() as u64);
        let summary = run_batch(&entries, jobs, &worker, &|item: &BatchItem| {
            bar.inc(1);
            if let BatchResult::Failed(msg) = &item.result {
                bar.suspend(|| eprintln!("device {} (line {}): {msg}", item.serial, item.line));
            }
        });
        bar.finish_and_clear();
        print_summary(ctx, &summary)?;
        Ok(if summary.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} devices  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn print_outcome(ctx: &Ctx, outcome: &ProvisionOutcome) -> anyhow::Result<()> {
    let d = outcome.device();
    let what = match outcome {
        ProvisionOutcome::Provisioned(_) => "provisioned",
        ProvisionOutcome::Resumed(_) => "resumed",
        ProvisionOutcome::AlreadyProvisioned(_) => "already-provisioned",
    };
    if ctx.json() {
        return ctx.print_json(&json!({"outcome": what, "device": DeviceJson::from(d)}));
    }
    match outcome {
        ProvisionOutcome::AlreadyProvisioned(_) => {
            println!(
                "device {} is already provisioned (status {}); nothing changed",
                d.serial, d.status
            )
        }
        _ => println!(
            "device {} {what}: certificate {} ({}), key id {} in {}",
            d.serial, d.cert_serial, d.key_type, d.key_id, d.token_uri
        ),
    }
    Ok(())
}

fn print_summary(ctx: &Ctx, s: &BatchSummary) -> anyhow::Result<()> {
    for e in &s.worker_errors {
        eprintln!("a worker could not start: {e}");
    }
    if ctx.json() {
        let failed: Vec<_> = s
            .failed
            .iter()
            .map(|i| {
                let msg = match &i.result {
                    BatchResult::Failed(m) => m.as_str(),
                    _ => "",
                };
                json!({"line": i.line, "serial": i.serial.as_str(), "error": msg})
            })
            .collect();
        return ctx.print_json(&json!({
            "provisioned": s.provisioned, "resumed": s.resumed, "already_provisioned": s.already, "failed": failed,
            "worker_errors": s.worker_errors,
        }));
    }
    println!(
        "provisioned: {}, resumed: {}, already provisioned: {}, failed: {}",
        s.provisioned,
        s.resumed,
        s.already,
        s.failed.len()
    );
    Ok(())
}

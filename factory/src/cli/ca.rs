//! `factory ca init` and `factory ca import-cert`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use factory::ca::{ca_certificate_request, check_ca_certificate, self_signed_ca_certificate};
use factory::cert::{CertFacts, certificate_der_from_bytes, to_pem};
use factory::fleet::record_ca_certificate;
use factory::types::now;

use super::Ctx;
use super::backend::{self, hsm_err};

/// CA subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Generate the CA key inside the station HSM and a self-signed CA certificate (or, with
    /// --csr, a certificate signing request for an external root).
    Init(InitArgs),
    /// Store a CA certificate for the station CA key (e.g. signed by an external root).
    ImportCert(ImportArgs),
}

/// `ca init`
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Write a CSR (PEM) for an external root here instead of self-signing.
    #[arg(long, value_name = "FILE")]
    csr: Option<PathBuf>,
    /// Also write the self-signed CA certificate (PEM) here.
    #[arg(long, value_name = "FILE", conflicts_with = "csr")]
    out: Option<PathBuf>,
}

/// `ca import-cert`
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CA certificate (PEM or DER).
    #[arg(value_name = "FILE")]
    cert: PathBuf,
}

impl CaCommand {
    /// Runs the subcommand.
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            CaCommand::Init(a) => a.run(ctx),
            CaCommand::ImportCert(a) => a.run(ctx),
        }
    }
}

impl InitArgs {
    fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let hsm = backend::station_hsm(&config)?;
        if hsm
            .ca_certificate()
            .map_err(hsm_err("reading the CA certificate"))?
            .is_some()
        {
            bail!(
                "the station HSM already holds a CA certificate at '{}'",
                config.ca.cert
            );
        }
        let spki = hsm
            .generate_ca_key(config.ca.key_type)
            .map_err(hsm_err("generating the CA key"))?;
        let signer = hsm
            .open_ca_signer()
            .map_err(hsm_err("opening the CA key"))?;
        if let Some(path) = &self.csr {
            let csr = ca_certificate_request(signer.as_ref(), &spki, &config.ca)?;
            factory::atomic::write_file(path, to_pem("CERTIFICATE REQUEST", &csr).as_bytes())?;
            inventory.record_event("ca-init-csr", None, serde_json::json!({"csr": path}), now())?;
            println!("CA key generated; CSR written to {}", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        let der = self_signed_ca_certificate(signer, &spki, &config.ca, now())?;
        hsm.store_ca_certificate(&der)
            .map_err(hsm_err("storing the CA certificate"))?;
        let facts = CertFacts::from_der(&der, "CA certificate")?;
        record_ca_certificate(&mut inventory, "ca-init", &facts, now())?;
        if let Some(path) = &self.out {
            factory::atomic::write_file(path, to_pem("CERTIFICATE", &der).as_bytes())?;
        }
        println!(
            "CA '{}' created (serial {})",
            facts.subject, facts.serial_hex
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl ImportArgs {
    fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let mut inventory = ctx.inventory(&config)?;
        let bytes = std::fs::read(&self.cert)
            .with_context(|| format!("reading {}", self.cert.display()))?;
        let der = certificate_der_from_bytes(&bytes, "CA certificate")?;
        let hsm = backend::station_hsm(&config)?;
        let spki = hsm
            .ca_public_key()
            .map_err(hsm_err("reading the CA public key"))?;
        let facts = check_ca_certificate(&der, &spki, now())?;
        hsm.store_ca_certificate(&der)
            .map_err(hsm_err("storing the CA certificate"))?;
        record_ca_certificate(&mut inventory, "ca-import-cert", &facts, now())?;
        println!(
            "CA certificate '{}' (issuer '{}') stored",
            facts.subject, facts.issuer
        );
        Ok(ExitCode::SUCCESS)
    }
}

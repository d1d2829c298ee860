//! `factory ca init` and `factory ca import-cert`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use factory::ca::{ca_certificate_request, check_ca_certificate, self_signed_ca_certificate};
use factory::cert::{CertFacts, certificate_der_from_bytes, to_pem};
use factory::fleet::record_ca_certificate;
use factory::tokens::KeymgrStationHsm;
use factory::types::{DeviceSerial, now};

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
    /// Issue a release-signing certificate from the station CA for a key in the station HSM
    /// (proof of possession: the key signs a CSR first).
    Issue(IssueArgs),
}

/// `ca issue`
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The key to certify: a `pkcs11:` URI of a key in the station HSM ([ca] module and
    /// pin-source apply) or a PEM file.
    #[arg(long, value_name = "PKCS11-URI|PEMFILE")]
    key: String,
    /// A profile with usage = "signer" (key usage digitalSignature, its extended key usages).
    #[arg(long, value_name = "NAME")]
    profile: String,
    /// The name for the profile's subject template ({serial}), e.g. release-2026.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Write the certificate (PEM) here.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also store the certificate in the token next to the key (same CKA_ID and label), so
    /// `signer bundle --cert` can name it by URI.
    #[arg(long)]
    store: bool,
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
            CaCommand::Issue(a) => a.run(ctx),
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
            bundle::atomic::write_file(
                path,
                to_pem("CERTIFICATE REQUEST", &csr).as_bytes(),
                bundle::atomic::Existing::Replace,
            )?;
            inventory.record_event("ca-init-csr", None, serde_json::json!({"csr": path}), now())?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "csr": path }))?;
            } else {
                println!("CA key generated; CSR written to {}", path.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        let der = self_signed_ca_certificate(signer, &spki, &config.ca, now())?;
        hsm.store_ca_certificate(&der)
            .map_err(hsm_err("storing the CA certificate"))?;
        let facts = CertFacts::from_der(&der, "CA certificate")?;
        record_ca_certificate(&mut inventory, "ca-init", &facts, now())?;
        if let Some(path) = &self.out {
            bundle::atomic::write_file(
                path,
                to_pem("CERTIFICATE", &der).as_bytes(),
                bundle::atomic::Existing::Replace,
            )?;
        }
        if ctx.json() {
            ctx.print_json(&ca_json(&facts, self.out.as_deref()))?;
        } else {
            println!(
                "CA '{}' created (serial {})",
                facts.subject, facts.serial_hex
            );
        }
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
        if ctx.json() {
            ctx.print_json(&ca_json(&facts, None))?;
        } else {
            println!(
                "CA certificate '{}' (issuer '{}') stored",
                facts.subject, facts.issuer
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The JSON report of `ca init` / `ca import-cert`.
fn ca_json(facts: &CertFacts, out: Option<&std::path::Path>) -> serde_json::Value {
    serde_json::json!({
        "subject": facts.subject, "issuer": facts.issuer, "cert_serial": facts.serial_hex,
        "spki_sha256": facts.spki_sha256_hex(),
        "not_after": factory::types::rfc3339(facts.not_after), "out": out,
    })
}

impl IssueArgs {
    fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let config = ctx.config()?;
        let profile = config.profile(Some(&self.profile))?;
        let name = DeviceSerial::new(&self.name)?;
        let mut inventory = ctx.inventory(&config)?;
        let station = KeymgrStationHsm::new(&config).map_err(hsm_err("reading [ca]"))?;
        let ca = backend::open_ca(&station)?;
        let key = station
            .open_station_key(&self.key)
            .map_err(hsm_err("opening the key to certify"))?;
        let spki = key
            .public_key_der()
            .map_err(|e| hsm_err("reading the public key")(e.into()))?;
        let issued = ca.issue_for_signer(&name, profile, key.as_ref(), &spki, now())?;
        bundle::atomic::write_file(
            &self.out,
            to_pem("CERTIFICATE", &issued.der).as_bytes(),
            bundle::atomic::Existing::Replace,
        )?;
        let stored = if self.store {
            Some(
                station
                    .store_next_to_key(&self.key, &issued.der)
                    .map_err(hsm_err("storing the certificate next to the key"))?,
            )
        } else {
            None
        };
        let f = &issued.facts;
        let detail = serde_json::json!({
            "name": name.as_str(), "profile": profile.name, "subject": f.subject,
            "cert_serial": f.serial_hex, "spki_sha256": f.spki_sha256_hex(),
            "not_after": factory::types::rfc3339(f.not_after), "stored": stored,
        });
        inventory.record_event("ca-issue", None, detail.clone(), now())?;
        if ctx.json() {
            ctx.print_json(&detail)?;
        } else {
            println!(
                "certificate '{}' (serial {}) written to {}{}",
                f.subject,
                f.serial_hex,
                self.out.display(),
                stored
                    .map(|u| format!(", stored as {u}"))
                    .unwrap_or_default()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

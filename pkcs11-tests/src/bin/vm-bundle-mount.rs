//! Runs inside the test VM: exercises `target::mount` on real bundles and reports one line per
//! check (`VMTEST <case> OK|FAIL <detail>`); exit status 1 if any check failed.
//!
//! Every scenario ends with a leftover check: no dm device, no bound loop device, nothing
//! mounted at the mount point.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pkcs11_tests::vm::fixtures::BundleParams;
use target::mount::{BundleMount, BundleMountParams, MountError};

/// Bundle mount checks for the device-mapper VM test.
#[derive(Parser)]
struct Cli {
    /// Label printed in the result lines.
    #[arg(long)]
    case: String,
    #[command(subcommand)]
    command: Scenario,
}

/// Where the bundle is and how to mount it.
#[derive(clap::Args)]
struct Target {
    /// Bundle file (or block device holding it).
    #[arg(long)]
    bundle: PathBuf,
    /// JSON file with the bundle's dm parameters (`BundleParams`).
    #[arg(long)]
    params: PathBuf,
    /// Mount point (created if missing).
    #[arg(long, default_value = "/mnt/bundle")]
    mount_point: PathBuf,
}

#[derive(Subcommand)]
enum Scenario {
    /// Mount, check the SHA-256 of a file inside, tear down (explicitly or by drop).
    Mount {
        #[command(flatten)]
        target: Target,
        /// File inside the bundle to hash.
        #[arg(long)]
        image: String,
        /// Its expected SHA-256 (hex).
        #[arg(long)]
        sha256: String,
        /// Tear down by dropping the mount instead of calling `unmount()`.
        #[arg(long)]
        drop: bool,
    },
    /// The payload is corrupted: the mount works, reading the file must fail with EIO.
    Corrupt {
        #[command(flatten)]
        target: Target,
        /// File inside the bundle to read.
        #[arg(long)]
        image: String,
    },
    /// Setup must fail halfway with wrong parameters and leave nothing behind.
    SetupFails {
        #[command(flatten)]
        target: Target,
        /// `wrong-key` (squashfs mount fails) or `wrong-root-hash` (verity check fails).
        #[arg(long)]
        mutate: String,
    },
    /// `unmount()` while a file is open: lazy detach + deferred removal, then clean once closed.
    Busy {
        #[command(flatten)]
        target: Target,
        /// File inside the bundle to keep open.
        #[arg(long)]
        image: String,
    },
    /// Only the leftover check.
    CheckClean,
    /// Print the dm driver and target versions.
    Versions,
}

fn main() {
    let cli = Cli::parse();
    let case = cli.case.clone();
    let mut failed = false;
    let mut report = |what: &str, result: Result<String>| match result {
        Ok(detail) => println!("VMTEST {case} {what} OK {detail}"),
        Err(err) => {
            failed = true;
            println!("VMTEST {case} {what} FAIL {err:#}");
        }
    };
    let (result, mount_point, settle) = match &cli.command {
        Scenario::Mount {
            target,
            image,
            sha256,
            drop,
        } => (
            mount_and_hash(target, image, sha256, *drop),
            Some(&target.mount_point),
            false,
        ),
        Scenario::Corrupt { target, image } => {
            (corrupt(target, image), Some(&target.mount_point), false)
        }
        Scenario::SetupFails { target, mutate } => (
            setup_fails(target, mutate),
            Some(&target.mount_point),
            false,
        ),
        Scenario::Busy { target, image } => (busy(target, image), Some(&target.mount_point), true),
        Scenario::CheckClean => (Ok("nothing to do".into()), None, false),
        Scenario::Versions => (versions(), None, false),
    };
    report("scenario", result);
    report(
        "clean",
        check_clean(mount_point.map(PathBuf::as_path), settle),
    );
    std::process::exit(i32::from(failed));
}

fn load(target: &Target) -> Result<BundleMountParams> {
    let text = std::fs::read_to_string(&target.params)
        .with_context(|| format!("read {}", target.params.display()))?;
    let params: BundleParams =
        serde_json::from_str(&text).context("parse the bundle parameters")?;
    std::fs::create_dir_all(&target.mount_point)?;
    params
        .mount_params(&target.bundle)
        .map_err(anyhow::Error::msg)
}

fn mount_and_hash(target: &Target, image: &str, expected: &str, by_drop: bool) -> Result<String> {
    let params = load(target)?;
    let mount = BundleMount::mount(&params, &target.mount_point)?;
    let device = mount
        .top_device()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let data =
        std::fs::read(target.mount_point.join(image)).with_context(|| format!("read {image}"))?;
    let actual = hex::encode(openssl::sha::sha256(&data));
    if by_drop {
        drop(mount);
    } else {
        mount.unmount()?;
    }
    if actual != expected {
        bail!("sha256 of {image} is {actual}, expected {expected}");
    }
    Ok(format!(
        "{image} sha256 matches via {device} ({} bytes)",
        data.len()
    ))
}

fn corrupt(target: &Target, image: &str) -> Result<String> {
    let params = load(target)?;
    let mount = BundleMount::mount(&params, &target.mount_point)?;
    let mut data = Vec::new();
    let read =
        File::open(target.mount_point.join(image)).and_then(|mut f| f.read_to_end(&mut data));
    mount.unmount()?;
    match read {
        Err(err) if err.raw_os_error() == Some(libc::EIO) => {
            Ok(format!("reading {image} failed as required: {err}"))
        }
        Err(err) => bail!("reading {image} failed, but not with EIO: {err}"),
        Ok(n) => bail!("read {n} bytes of {image} from a corrupted payload without an error"),
    }
}

fn setup_fails(target: &Target, mutate: &str) -> Result<String> {
    let mut params = load(target)?;
    match mutate {
        "wrong-key" => {
            let params_file = std::fs::read_to_string(&target.params)?;
            let raw: BundleParams = serde_json::from_str(&params_file)?;
            let mut key = *target::dm::CryptKey::from_hex(
                raw.crypt_key.as_deref().context("not a crypt bundle")?,
            )?
            .as_bytes();
            key[0] ^= 1;
            params.dangerous_set_crypt_key(Some(target::dm::CryptKey::from_bytes(key)));
        }
        "wrong-root-hash" => {
            params
                .dangerous_verity_mut()
                .context("not a verity bundle")?
                .root_hash[31] ^= 1
        }
        other => bail!("unknown mutation {other}"),
    }
    match BundleMount::mount(&params, &target.mount_point) {
        Ok(mount) => {
            mount.unmount()?;
            bail!("mount with {mutate} succeeded")
        }
        Err(err @ MountError::Mount { .. }) if mutate == "wrong-key" => {
            Ok(format!("failed as required: {err}"))
        }
        Err(err @ (MountError::VerityRead { .. } | MountError::VerityStatus { .. }))
            if mutate == "wrong-root-hash" =>
        {
            Ok(format!("failed as required: {err}"))
        }
        Err(err) => bail!("failed with an unexpected error: {err}"),
    }
}

fn busy(target: &Target, image: &str) -> Result<String> {
    let params = load(target)?;
    let mount = BundleMount::mount(&params, &target.mount_point)?;
    let open = File::open(target.mount_point.join(image))?;
    let result = mount.unmount();
    drop(open);
    match result {
        Err(err @ MountError::Teardown { .. }) => Ok(format!("unmount reported: {err}")),
        Err(err) => bail!("unexpected unmount error: {err}"),
        Ok(()) => bail!("unmount of a busy mount reported success"),
    }
}

fn versions() -> Result<String> {
    let ((a, b, c), targets) = target::dm::versions()?;
    let targets: Vec<String> = targets
        .iter()
        .map(|(n, (x, y, z))| format!("{n} {x}.{y}.{z}"))
        .collect();
    Ok(format!(
        "dm ioctl {a}.{b}.{c}; targets: {}",
        targets.join(", ")
    ))
}

/// No dm device, no bound loop device, nothing mounted at `mount_point`. With `settle`, waits
/// up to 10 s for deferred removals (done by the kernel after the last close).
fn check_clean(mount_point: Option<&Path>, settle: bool) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(if settle { 10 } else { 0 });
    loop {
        match leftovers(mount_point) {
            Ok(()) => return Ok("no dm device, no loop device, not mounted".into()),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn leftovers(mount_point: Option<&Path>) -> Result<()> {
    let dm = target::dm::list_devices()?;
    if !dm.is_empty() {
        bail!(
            "dm devices left: {:?}",
            dm.iter().map(|d| &d.name).collect::<Vec<_>>()
        );
    }
    let loops = target::loopdev::attached()?;
    if !loops.is_empty() {
        bail!("loop devices left: {loops:?}");
    }
    if let Some(mp) = mount_point {
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let mp = mp.to_string_lossy();
        if mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&*mp))
        {
            bail!("{mp} is still mounted");
        }
    }
    Ok(())
}

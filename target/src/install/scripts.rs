//! Handlers (`[handlers] pre-install`/`post-install`) and bundle hooks (`install-check`,
//! `slot-pre-install`, `slot-install`, `slot-post-install`) with RAUC's environment variables.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::Context;
use crate::config::SlotConfig;
use crate::error::{Error, Result};
use crate::plan::{BundleInput, ImageInput, InstallPlan};
use crate::slots::SlotStates;

/// Exit codes from this value on mean "bundle rejected" for the install-check hook.
pub const INSTALL_HOOK_REJECT_CODE: i32 = 10;

/// Environment variables for a variable list.
pub type Env = Vec<(String, String)>;

fn push(env: &mut Env, k: impl Into<String>, v: impl Into<String>) {
    env.push((k.into(), v.into()));
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The environment of the system handlers (RAUC's `prepare_environment`): numbered slot and
/// image variables, `RAUC_SLOTS`, `RAUC_TARGET_SLOTS`, mount point and config path.
pub fn handler_env(
    ctx: &Context,
    bundle: &BundleInput,
    mount_dir: &Path,
    plan: &InstallPlan,
) -> Env {
    let mut env = Env::new();
    let cfg = &ctx.config;
    push(
        &mut env,
        "RAUC_SYSTEM_CONFIG",
        cfg.path.as_deref().map(path_str).unwrap_or_default(),
    );
    push(
        &mut env,
        "RAUC_CURRENT_BOOTNAME",
        ctx.boot_id.as_ref().map(|b| b.as_str()).unwrap_or(""),
    );
    push(&mut env, "RAUC_MOUNT_PREFIX", path_str(&cfg.mount_prefix));
    push(&mut env, "RAUC_BUNDLE_MOUNT_POINT", path_str(mount_dir));
    push(&mut env, "RAUC_UPDATE_SOURCE", path_str(mount_dir));
    let (mut all, mut targets) = (Vec::new(), Vec::new());
    for (i, slot) in cfg.slots.iter().enumerate() {
        let n = i + 1;
        all.push(n.to_string());
        if plan.target_group.get(&slot.class) == Some(&slot.name) {
            if let Some(img) = bundle.images.iter().find(|i| i.slot_class == slot.class) {
                push(
                    &mut env,
                    format!("RAUC_IMAGE_NAME_{n}"),
                    img.filename.clone().unwrap_or_default(),
                );
                push(
                    &mut env,
                    format!("RAUC_IMAGE_DIGEST_{n}"),
                    img.sha256.clone().unwrap_or_default(),
                );
                push(
                    &mut env,
                    format!("RAUC_IMAGE_CLASS_{n}"),
                    img.slot_class.clone(),
                );
            }
            targets.push(n.to_string());
        }
        push(&mut env, format!("RAUC_SLOT_NAME_{n}"), slot.name.clone());
        push(&mut env, format!("RAUC_SLOT_CLASS_{n}"), slot.class.clone());
        push(
            &mut env,
            format!("RAUC_SLOT_TYPE_{n}"),
            slot.slot_type.as_str(),
        );
        push(
            &mut env,
            format!("RAUC_SLOT_DEVICE_{n}"),
            path_str(&slot.device),
        );
        push(
            &mut env,
            format!("RAUC_SLOT_BOOTNAME_{n}"),
            slot.bootname.clone().unwrap_or_default(),
        );
        push(
            &mut env,
            format!("RAUC_SLOT_PARENT_{n}"),
            slot.parent.clone().unwrap_or_default(),
        );
    }
    push(&mut env, "RAUC_SLOTS", all.join(" "));
    push(&mut env, "RAUC_TARGET_SLOTS", targets.join(" "));
    env
}

/// The environment of a slot hook (RAUC's `run_slot_hook`).
pub fn slot_hook_env(
    ctx: &Context,
    states: &SlotStates,
    slot: &SlotConfig,
    image: &ImageInput,
    mount_dir: &Path,
) -> Env {
    let cfg = &ctx.config;
    let variant = ctx.variant().unwrap_or_default();
    let bootname = match &slot.parent {
        Some(p) => cfg.slot(p).and_then(|p| p.bootname.clone()),
        None => slot.bootname.clone(),
    };
    let image_path = image
        .filename
        .as_deref()
        .map(|f| path_str(&mount_dir.join(f)));
    let mut env = Env::new();
    push(&mut env, "RAUC_SYSTEM_COMPATIBLE", cfg.compatible.clone());
    push(&mut env, "RAUC_SYSTEM_VARIANT", variant);
    push(&mut env, "RAUC_SLOT_NAME", slot.name.clone());
    push(&mut env, "RAUC_SLOT_STATE", states.get(&slot.name).as_str());
    push(&mut env, "RAUC_SLOT_CLASS", slot.class.clone());
    push(&mut env, "RAUC_SLOT_TYPE", slot.slot_type.as_str());
    push(&mut env, "RAUC_SLOT_DEVICE", path_str(&slot.device));
    push(&mut env, "RAUC_SLOT_BOOTNAME", bootname.unwrap_or_default());
    push(
        &mut env,
        "RAUC_SLOT_PARENT",
        slot.parent.clone().unwrap_or_default(),
    );
    push(&mut env, "RAUC_IMAGE_NAME", image_path.unwrap_or_default());
    push(&mut env, "RAUC_IMAGE_SIZE", image.size.to_string());
    push(
        &mut env,
        "RAUC_IMAGE_DIGEST",
        image.sha256.clone().unwrap_or_default(),
    );
    push(&mut env, "RAUC_IMAGE_CLASS", image.slot_class.clone());
    push(&mut env, "RAUC_MOUNT_PREFIX", path_str(&cfg.mount_prefix));
    push(&mut env, "RAUC_BUNDLE_MOUNT_POINT", path_str(mount_dir));
    env
}

/// `RAUC_BUNDLE_SPKI_HASHES` for slot hooks: the signer chain's SPKI hashes, space-separated.
pub fn push_spki_hashes(env: &mut Env, bundle: &BundleInput) {
    if !bundle.spki_hashes.is_empty() {
        push(env, "RAUC_BUNDLE_SPKI_HASHES", bundle.spki_hashes.join(" "));
    }
}

/// The environment of the `install-check` bundle hook.
pub fn install_check_env(ctx: &Context, bundle: &BundleInput) -> Env {
    let mut env = Env::new();
    push(
        &mut env,
        "RAUC_SYSTEM_COMPATIBLE",
        ctx.config.compatible.clone(),
    );
    push(
        &mut env,
        "RAUC_SYSTEM_VARIANT",
        ctx.variant().unwrap_or_default(),
    );
    push(&mut env, "RAUC_MF_COMPATIBLE", bundle.compatible.clone());
    push(
        &mut env,
        "RAUC_MF_VERSION",
        bundle.version.clone().unwrap_or_default(),
    );
    push(
        &mut env,
        "RAUC_MOUNT_PREFIX",
        path_str(&ctx.config.mount_prefix),
    );
    env
}

/// How a script ended.
#[derive(Debug)]
pub struct ScriptOutcome {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// The last line the script wrote to stderr (the install-check hook's rejection reason).
    pub last_stderr_line: Option<String>,
}

/// Runs `program arg` with `env` added; stdout is passed through, stderr is passed through and
/// its last line kept.
pub fn run_script(
    what: &'static str,
    program: &Path,
    args: &[&str],
    env: &Env,
) -> Result<ScriptOutcome> {
    tracing::info!("running {what} {} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Script {
            what,
            path: program.to_path_buf(),
            reason: format!("failed to start: {e}"),
        })?;
    let mut last = None;
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            eprintln!("{line}");
            last = Some(line);
        }
    }
    let status = child.wait().map_err(|e| Error::Script {
        what,
        path: program.to_path_buf(),
        reason: format!("failed to wait: {e}"),
    })?;
    Ok(ScriptOutcome {
        code: status.code(),
        last_stderr_line: last,
    })
}

/// Runs a script that must succeed.
pub fn run_checked(what: &'static str, program: &Path, args: &[&str], env: &Env) -> Result<()> {
    let out = run_script(what, program, args, env)?;
    match out.code {
        Some(0) => Ok(()),
        code => Err(Error::Script {
            what,
            path: program.to_path_buf(),
            reason: match code {
                Some(c) => format!("exited with code {c}"),
                None => "was killed by a signal".into(),
            },
        }),
    }
}

/// Runs the `install-check` hook: non-zero ≥ 10 rejects the bundle with the hook's message.
pub fn run_install_check(ctx: &Context, bundle: &BundleInput, hook: &Path) -> Result<()> {
    let out = run_script(
        "bundle hook",
        hook,
        &["install-check"],
        &install_check_env(ctx, bundle),
    )?;
    match out.code {
        Some(0) => Ok(()),
        Some(c) if c >= INSTALL_HOOK_REJECT_CODE => {
            Err(Error::Install(match out.last_stderr_line {
                Some(m) => format!("Bundle rejected: Hook returned: {m}"),
                None => format!("Bundle rejected: Hook returned with exit code {c}"),
            }))
        }
        code => Err(Error::Install(format!(
            "Install-check hook failed: exit code {}",
            code.map_or("none (signal)".into(), |c| c.to_string())
        ))),
    }
}

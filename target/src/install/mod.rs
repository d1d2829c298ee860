//! The install executor: runs an [`InstallPlan`] over a mounted bundle directory.
//!
//! Order (`rauc-format.md` §1.7): slot states → open/verify/mount (the [`BundleOpener`] seam) →
//! target group and plan → `pre-install` handler → `install-check` hook or compatible check →
//! source/destination checks → mark every bootable target slot **bad** → per slot: hooks and
//! write (size check; a streaming SHA-256 check unless dm-verity covers the images), status file → mark targets primary (when
//! `activate-installed`) → `post-install` handler. On any error the booted slot is untouched and
//! the target slots stay marked bad.

pub mod scripts;
pub mod write;

use std::path::Path;
use std::sync::Arc;

use crate::bootloader::{self, BootState, Bootloader};
use crate::config::SystemConfig;
use crate::error::{Error, Result};
use crate::plan::{InstallPlan, SlotUpdate, UpdateAction, plan_install};
use crate::progress::Progress;
use crate::slots::{BootId, SlotStates, detect_boot_id, determine_states};
use crate::source::{BundleOpener, OpenOptions, OpenedBundle};
use crate::status::{StatusStore, timestamp_now};

/// Everything the device side needs: config, bootloader, boot identity, status store.
pub struct Context {
    /// The resolved `system.conf`.
    pub config: SystemConfig,
    /// The bootloader backend.
    pub bootloader: Arc<dyn Bootloader>,
    /// What the system booted from (`--override-boot-slot` or the kernel command line).
    pub boot_id: Option<BootId>,
    /// Where slot status is kept.
    pub status: StatusStore,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config.path)
            .field("bootloader", &self.bootloader.name())
            .field("boot_id", &self.boot_id)
            .finish()
    }
}

impl Context {
    /// The context for a loaded config: its bootloader backend, the detected boot slot.
    pub fn new(config: SystemConfig, override_boot_slot: Option<&str>) -> Result<Context> {
        let bootloader: Arc<dyn Bootloader> = bootloader::for_config(&config)?.into();
        let boot_id = detect_boot_id(&config, override_boot_slot);
        Ok(Self::with_bootloader(config, bootloader, boot_id))
    }

    /// A context with an explicit backend and boot identity (tests, embedding).
    pub fn with_bootloader(
        config: SystemConfig,
        bootloader: Arc<dyn Bootloader>,
        boot_id: Option<BootId>,
    ) -> Context {
        let status = StatusStore::for_config(&config);
        Context {
            config,
            bootloader,
            boot_id,
            status,
        }
    }

    /// Current slot states.
    pub fn slot_states(&self) -> Result<SlotStates> {
        determine_states(&self.config, self.boot_id.as_ref())
    }

    /// The system variant (`None` if unset or unreadable).
    pub fn variant(&self) -> Option<String> {
        self.config.system_variant().unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        })
    }
}

/// Arguments of one installation (`InstallBundle` options / `ota install` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallArgs {
    /// Skip the compatible check.
    pub ignore_compatible: bool,
    /// Transaction id recorded as `installed.transaction`.
    pub transaction_id: Option<String>,
    /// Reject bundles with another manifest hash.
    pub require_manifest_hash: Option<String>,
}

/// Installs the bundle at `source`: open through `opener`, plan, execute. Progress goes to
/// `progress`; on error every open step is closed as failed.
pub fn install_bundle(
    ctx: &Context,
    opener: &dyn BundleOpener,
    source: &str,
    args: &InstallArgs,
    progress: &mut Progress,
) -> Result<()> {
    progress.begin("do_install_bundle", "Installing", 4);
    let res = install_steps(ctx, opener, source, args, progress);
    match &res {
        Ok(()) => progress.end("do_install_bundle", true),
        Err(e) => {
            tracing::error!("{e}");
            progress.fail_all();
        }
    }
    res
}

fn step<T>(
    p: &mut Progress,
    name: &str,
    desc: &str,
    f: impl FnOnce(&mut Progress) -> Result<T>,
) -> Result<T> {
    p.begin(name, desc, 0);
    let r = f(p)?;
    p.end(name, true);
    Ok(r)
}

fn install_steps(
    ctx: &Context,
    opener: &dyn BundleOpener,
    source: &str,
    args: &InstallArgs,
    progress: &mut Progress,
) -> Result<()> {
    let states = step(
        progress,
        "determine_slot_states",
        "Determining slot states",
        |_| ctx.slot_states(),
    )?;
    let opts = OpenOptions {
        purpose: crate::source::Purpose::Install,
        require_manifest_hash: args.require_manifest_hash.clone(),
    };
    let bundle = step(progress, "check_bundle", "Checking bundle", |_| {
        opener.open(source, &ctx.config, &opts)
    })?;
    let plan = step(
        progress,
        "determine_target_install_group",
        "Determining target install group",
        |_| {
            let status = ctx.status.load()?;
            plan_install(
                &bundle.info,
                &ctx.config,
                ctx.variant().as_deref(),
                &states,
                &status,
            )
        },
    )?;
    execute_plan(ctx, &bundle, &plan, &states, args, progress)
}

/// Runs a plan over an opened bundle (steps after planning; see the module documentation).
pub fn execute_plan(
    ctx: &Context,
    bundle: &OpenedBundle,
    plan: &InstallPlan,
    states: &SlotStates,
    args: &InstallArgs,
    progress: &mut Progress,
) -> Result<()> {
    let env = scripts::handler_env(ctx, &bundle.info, &bundle.mount_dir, plan);
    if let Some(h) = &ctx.config.handlers.pre_install {
        scripts::run_checked("pre-install handler", h, &[], &env)
            .map_err(|e| Error::Install(format!("Handler error: {e}")))?;
    }
    check_compatible(ctx, bundle, args)?;
    pre_install_checks(ctx, bundle, plan)?;
    for name in &plan.boot_targets {
        let slot = slot(ctx, name)?;
        tracing::info!("Marking target slot {name} as non-bootable...");
        ctx.bootloader
            .set_state(slot, BootState::Bad)
            .map_err(|e| Error::Install(format!("Failed marking slot {name} non-bootable: {e}")))?;
    }
    let substeps = u32::try_from(plan.updates.len() * 2).unwrap_or(u32::MAX);
    progress.begin("update_slots", "Updating slots", substeps);
    for update in &plan.updates {
        update_slot(ctx, bundle, update, states, args, progress)?;
    }
    activate(ctx, plan)?;
    progress.end("update_slots", true);
    if let Some(h) = &ctx.config.handlers.post_install {
        scripts::run_checked("post-install handler", h, &[], &env)
            .map_err(|e| Error::Install(format!("Handler error: {e}")))?;
    }
    Ok(())
}

fn slot<'a>(ctx: &'a Context, name: &str) -> Result<&'a crate::config::SlotConfig> {
    ctx.config
        .slot(name)
        .ok_or_else(|| Error::Install(format!("slot {name} vanished from the configuration")))
}

fn check_compatible(ctx: &Context, bundle: &OpenedBundle, args: &InstallArgs) -> Result<()> {
    if bundle.info.install_check_hook {
        let hook = hook_path(bundle)?;
        return scripts::run_install_check(ctx, &bundle.info, &hook);
    }
    if args.ignore_compatible || bundle.info.compatible == ctx.config.compatible {
        return Ok(());
    }
    Err(Error::Install(format!(
        "Compatible mismatch: Expected '{}' but bundle manifest has '{}'",
        ctx.config.compatible, bundle.info.compatible
    )))
}

fn hook_path(bundle: &OpenedBundle) -> Result<std::path::PathBuf> {
    let name = bundle.info.hook_file.as_deref().ok_or_else(|| {
        Error::Install("bundle declares hooks but no hook file ([hooks] filename)".into())
    })?;
    Ok(bundle.mount_dir.join(name))
}

fn pre_install_checks(ctx: &Context, bundle: &OpenedBundle, plan: &InstallPlan) -> Result<()> {
    for u in &plan.updates {
        let dest = slot(ctx, &u.slot)?;
        if let Some(f) = &u.image.filename {
            let src = bundle.mount_dir.join(f);
            if !src.exists() {
                return Err(Error::Install(format!(
                    "Source image '{}' not found",
                    src.display()
                )));
            }
        }
        if !dest.device.exists() {
            return Err(Error::Install(format!(
                "Destination device '{}' not found",
                dest.device.display()
            )));
        }
        if write::mount_point_of(&dest.device).is_some() {
            let hook_ok = dest.allow_mounted && u.action == UpdateAction::InstallHook;
            if !hook_ok {
                return Err(Error::Install(if dest.allow_mounted {
                    format!(
                        "Mounted device '{}' may only be updated by a custom install hook",
                        dest.device.display()
                    )
                } else {
                    format!(
                        "Destination device '{}' already mounted",
                        dest.device.display()
                    )
                }));
            }
        }
    }
    Ok(())
}

fn update_slot(
    ctx: &Context,
    bundle: &OpenedBundle,
    u: &SlotUpdate,
    states: &SlotStates,
    args: &InstallArgs,
    progress: &mut Progress,
) -> Result<()> {
    let dest = slot(ctx, &u.slot)?;
    progress.begin("check_slot", format!("Checking slot {}", u.slot), 0);
    let mut status = ctx.status.load()?.get(&u.slot);
    progress.end("check_slot", true);
    if u.action == UpdateAction::SkipSame {
        let f = u.image.filename.as_deref().unwrap_or_default();
        tracing::info!("Skipping update for correct image {f}");
        progress.begin("skip_image", "Copying image skipped", 0);
        progress.end("skip_image", true);
        return Ok(());
    }
    progress.begin("copy_image", format!("Copying image to {}", u.slot), 0);
    let mut env = scripts::slot_hook_env(ctx, states, dest, &u.image, &bundle.mount_dir);
    scripts::push_spki_hashes(&mut env, &bundle.info);
    let result = write_slot(bundle, u, dest, &env);
    if let Err(e) = result {
        status.status = Some("failed".into());
        let _ = ctx.status.save_slot(&u.slot, &status);
        return Err(match e {
            e @ Error::ChecksumMismatch { .. } => e,
            e => Error::Install(format!("Failed updating slot {}: {e}", u.slot)),
        });
    }
    let info = &bundle.info;
    status.bundle_compatible = Some(info.compatible.clone());
    status.bundle_version = info.version.clone();
    status.bundle_description = info.description.clone();
    status.bundle_build = info.build.clone();
    status.bundle_hash = info.manifest_hash.clone();
    status.status = Some("ok".into());
    status.sha256 = u.image.sha256.clone();
    status.size = Some(u.image.size);
    status.installed_transaction = args.transaction_id.clone();
    status.installed_timestamp = Some(timestamp_now());
    status.installed_count = status.installed_count.saturating_add(1);
    progress.end("copy_image", true);
    ctx.status
        .save_slot(&u.slot, &status)
        .map_err(|e| Error::Install(format!("Error while writing status file: {e}")))
}

fn write_slot(
    bundle: &OpenedBundle,
    u: &SlotUpdate,
    dest: &crate::config::SlotConfig,
    env: &scripts::Env,
) -> Result<()> {
    let hooks = &u.image.hooks;
    let hook = if hooks.pre_install || hooks.install || hooks.post_install {
        Some(hook_path(bundle)?)
    } else {
        None
    };
    if let (true, Some(h)) = (hooks.pre_install, &hook) {
        scripts::run_checked("slot hook", h, &["slot-pre-install"], env)?;
    }
    match (u.action, &hook) {
        (UpdateAction::InstallHook, Some(h)) => {
            tracing::info!(
                "Updating {} with 'install' slot hook",
                dest.device.display()
            );
            scripts::run_checked("slot hook", h, &["slot-install"], env)?;
        }
        _ => {
            let f = u.image.filename.as_deref().unwrap_or_default();
            let src = bundle.mount_dir.join(f);
            tracing::info!("Updating {} with {}", dest.device.display(), src.display());
            let written = write::copy_image(&src, &dest.device, bundle.protection.hashing())?;
            write::check_written(
                &u.slot,
                &src,
                &written,
                u.image.sha256.as_deref(),
                u.image.size,
            )?;
        }
    }
    if let (true, Some(h)) = (hooks.post_install, &hook) {
        scripts::run_checked("slot hook", h, &["slot-post-install"], env)?;
    }
    Ok(())
}

fn activate(ctx: &Context, plan: &InstallPlan) -> Result<()> {
    if !ctx.config.activate_installed {
        tracing::info!(
            "Leaving target slot non-bootable as requested by activate_installed == false."
        );
        return Ok(());
    }
    for name in &plan.boot_targets {
        tracing::info!("Marking target slot {name} as bootable...");
        crate::mark::mark_active(ctx, slot(ctx, name)?)
            .map_err(|e| Error::Install(format!("Failed marking slot {name} bootable: {e}")))?;
    }
    Ok(())
}

/// Checks that `source` names an existing file or directory (as `rauc install` does before
/// contacting the service).
pub fn check_source_exists(source: &str) -> Result<()> {
    if Path::new(source).exists() {
        Ok(())
    } else {
        Err(Error::Install(format!("No such file: {source}")))
    }
}

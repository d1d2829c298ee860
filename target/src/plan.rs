//! The install plan: a pure function of (bundle images, config, slot states, slot status).
//!
//! Mirrors RAUC's decisions (`rauc-format.md` §1.7): the target group is, per root slot class,
//! the first inactive slot plus its children; each manifest slot class gets exactly one image
//! (the system's variant, else the default image); an image needs a writable, non-booted target
//! slot; the image type must suit the slot type; `install-same=false` skips a slot whose
//! recorded sha256 equals the image's. No I/O happens here.

use std::collections::BTreeMap;

use crate::config::{SlotConfig, SlotType, SystemConfig};
use crate::error::{Error, Result};
use crate::slots::{SlotState, SlotStates};
use crate::status::StatusFile;

/// Per-image hooks declared in the manifest (`hooks=pre-install;install;post-install`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageHooks {
    /// `slot-pre-install`.
    pub pre_install: bool,
    /// `slot-install` (replaces the default write).
    pub install: bool,
    /// `slot-post-install`.
    pub post_install: bool,
}

/// One image of a bundle, in the plain form the planner needs (converted from the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInput {
    /// Target slot class (`[image.CLASS]` or `[image.CLASS.VARIANT]`).
    pub slot_class: String,
    /// Variant, if the image is variant-specific.
    pub variant: Option<String>,
    /// File name inside the bundle (optional when an install hook handles the image).
    pub filename: Option<String>,
    /// SHA-256 from the manifest (lower-case hex).
    pub sha256: Option<String>,
    /// Size from the manifest.
    pub size: u64,
    /// Hooks.
    pub hooks: ImageHooks,
}

/// What the planner and executor need to know about a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleInput {
    /// `[update] compatible`.
    pub compatible: String,
    /// `[update] version`.
    pub version: Option<String>,
    /// `[update] description`.
    pub description: Option<String>,
    /// `[update] build`.
    pub build: Option<String>,
    /// Manifest hash (for `bundle.hash` in the status file), if known.
    pub manifest_hash: Option<String>,
    /// `[hooks] filename`.
    pub hook_file: Option<String>,
    /// `[hooks] hooks` contains `install-check`.
    pub install_check_hook: bool,
    /// Images in manifest order.
    pub images: Vec<ImageInput>,
    /// SHA-256 of the SubjectPublicKeyInfo of each certificate of the verified signer chain,
    /// signer first, as upper-case colon-separated hex (`RAUC_BUNDLE_SPKI_HASHES` for slot
    /// hooks); empty when the bundle was not verified (test doubles).
    pub spki_hashes: Vec<String>,
}

/// How a slot gets its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateAction {
    /// Copy the image byte for byte (raw, or a file-system image onto its own type).
    Copy,
    /// Run the bundle's `slot-install` hook instead of writing.
    InstallHook,
    /// Skip: `install-same=false` and the recorded sha256 equals the image's.
    SkipSame,
}

/// One slot update of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotUpdate {
    /// Target slot name.
    pub slot: String,
    /// The image chosen for it.
    pub image: ImageInput,
    /// What to do.
    pub action: UpdateAction,
}

/// The result of planning: what to write where, which slots to switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    /// Target group: slot class → slot name.
    pub target_group: BTreeMap<String, String>,
    /// Updates in manifest class order.
    pub updates: Vec<SlotUpdate>,
    /// Root target slots with a bootname: marked bad before writing, good + primary after.
    pub boot_targets: Vec<String>,
}

/// The target group: per root class, the first inactive slot (file order) and its children.
pub fn target_group(config: &SystemConfig, states: &SlotStates) -> BTreeMap<String, String> {
    let roots: Vec<&SlotConfig> = config
        .root_classes()
        .into_iter()
        .filter_map(|class| {
            config
                .slots
                .iter()
                .find(|s| s.class == class && states.get(&s.name) == SlotState::Inactive)
        })
        .collect();
    let mut group = BTreeMap::new();
    for s in &config.slots {
        let root = config.root_of(s);
        if roots.iter().any(|r| r.name == root.name) {
            group.insert(s.class.clone(), s.name.clone());
        }
    }
    group
}

/// Chooses one image per manifest class: the variant match, else the default image.
pub fn select_images<'a>(
    bundle: &'a BundleInput,
    variant: Option<&str>,
) -> Result<Vec<&'a ImageInput>> {
    let mut classes: Vec<&str> = Vec::new();
    for i in &bundle.images {
        if !classes.contains(&i.slot_class.as_str()) {
            classes.push(&i.slot_class);
        }
    }
    let mut out = Vec::new();
    for class in classes {
        let of_class = bundle.images.iter().filter(|i| i.slot_class == class);
        let mut chosen = None;
        for img in of_class {
            match img.variant.as_deref() {
                None if chosen.is_none() => chosen = Some(img),
                Some(v) if Some(v) == variant => {
                    chosen = Some(img);
                    break;
                }
                _ => {}
            }
        }
        out.push(chosen.ok_or_else(|| {
            Error::Plan(format!(
                "Failed to find matching variant of image for {class}"
            ))
        })?);
    }
    if out.is_empty() {
        return Err(Error::Plan("No install image found".into()));
    }
    Ok(out)
}

/// Whether RAUC's default handlers can write `filename` into a slot of `slot_type` by copying.
/// Returns `false` for combinations RAUC handles with other tools (tar archives, UBI, NAND, …)
/// or does not handle at all.
pub fn image_copies_to(filename: &str, slot_type: SlotType) -> bool {
    let ext = |e: &str| filename.ends_with(e);
    let squash = [
        "squashfs",
        "squashfs-lz4",
        "squashfs-lzo",
        "squashfs-xz",
        "squashfs-zst",
    ]
    .iter()
    .any(|s| ext(&format!(".{s}")));
    match slot_type {
        SlotType::Raw => ext(".ext4") || ext(".vfat") || ext(".img") || squash,
        SlotType::Ext4 => ext(".ext4") || ext(".img"),
        SlotType::Vfat => ext(".vfat") || ext(".img"),
        _ => false,
    }
}

fn no_handler(img: &ImageInput, t: SlotType) -> Error {
    Error::Plan(format!(
        "Unsupported image {} for slot type {t}",
        img.filename.as_deref().unwrap_or("(null)")
    ))
}

/// Makes the install plan. Pure: every input is data.
pub fn plan_install(
    bundle: &BundleInput,
    config: &SystemConfig,
    variant: Option<&str>,
    states: &SlotStates,
    status: &StatusFile,
) -> Result<InstallPlan> {
    let group = target_group(config, states);
    let images = select_images(bundle, variant)?;
    let mut updates = Vec::new();
    let mut boot_targets = Vec::new();
    for img in images {
        let name = img.filename.as_deref().unwrap_or("(null)");
        let slot = group
            .get(&img.slot_class)
            .and_then(|n| config.slot(n))
            .ok_or_else(|| {
                Error::Plan(format!(
                    "No target slot for class {} of image {name} found",
                    img.slot_class
                ))
            })?;
        if slot.readonly {
            return Err(Error::Plan(format!(
                "Target slot for class {} of image {name} is readonly",
                img.slot_class
            )));
        }
        if states.get(&slot.name) != SlotState::Inactive {
            return Err(Error::Plan(format!(
                "Refusing to install image {name} into slot {}: it is {}",
                slot.name,
                states.get(&slot.name).as_str()
            )));
        }
        let action = decide_action(img, slot, status)?;
        if slot.parent.is_none() && slot.bootname.is_some() {
            boot_targets.push(slot.name.clone());
        }
        updates.push(SlotUpdate {
            slot: slot.name.clone(),
            image: img.clone(),
            action,
        });
    }
    Ok(InstallPlan {
        target_group: group,
        updates,
        boot_targets,
    })
}

fn decide_action(img: &ImageInput, slot: &SlotConfig, status: &StatusFile) -> Result<UpdateAction> {
    if img.hooks.install {
        return Ok(UpdateAction::InstallHook);
    }
    let Some(filename) = img.filename.as_deref() else {
        return Err(no_handler(img, slot.slot_type));
    };
    if !image_copies_to(filename, slot.slot_type) {
        return Err(no_handler(img, slot.slot_type));
    }
    let recorded = status
        .slots
        .get(&slot.name)
        .and_then(|s| s.sha256.as_deref());
    if !slot.install_same && img.sha256.is_some() && recorded == img.sha256.as_deref() {
        return Ok(UpdateAction::SkipSame);
    }
    Ok(UpdateAction::Copy)
}

#[cfg(test)]
mod tests;

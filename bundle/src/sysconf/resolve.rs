//! Stage two of `system.conf` parsing: defaults, path resolution and content checks.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::keyfile::KeyFileError;

use super::raw::{RawConfig, RawSlot, RawSystem};
use super::slot::{SlotConfig, SlotType, parse_size};
use super::{
    BootloaderKind, BundleFormats, EncryptionConfig, HandlersConfig, Keyring, StatusLocation,
    SystemConfig, VariantSource, defaults,
};
use crate::{Error, Result};

/// Resolves `value` against the directory of the config file, as RAUC's `resolve_path` does.
pub(crate) fn resolve_path(config: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match config.parent() {
        Some(dir) => dir.join(p),
        None => p.to_path_buf(),
    }
}

/// Key specs that name a token or TPM key are kept verbatim (rauc 1.8 wrongly resolves them).
fn resolve_key_spec(config: &Path, value: &str) -> String {
    if value.starts_with("pkcs11:") || value.starts_with("tpm2:") {
        value.to_string()
    } else {
        resolve_path(config, value).to_string_lossy().into_owned()
    }
}

impl SystemConfig {
    /// Stage two: applies defaults, resolves paths relative to `path`'s directory, checks.
    pub fn resolve(raw: RawConfig, path: &Path) -> Result<SystemConfig> {
        let err = |m: String| Error::config(path, m);
        let rp = |v: &Option<String>| v.as_deref().map(|v| resolve_path(path, v));
        let s = &raw.system;
        let compatible = s.compatible.clone().ok_or_else(|| Error::ConfigFile {
            path: path.to_path_buf(),
            source: KeyFileError::MissingKey {
                group: "system".into(),
                key: "compatible".into(),
            },
        })?;
        let bl = s
            .bootloader
            .as_deref()
            .ok_or_else(|| err("No bootloader selected in system config".into()))?;
        let bootloader = BootloaderKind::parse(bl).ok_or_else(|| {
            err(format!(
                "Unsupported bootloader '{bl}' selected in system config"
            ))
        })?;
        if bootloader == BootloaderKind::Custom && raw.handler_custom_backend.is_none() {
            return Err(err("No custom bootloader backend defined".into()));
        }
        let max_dl = s
            .max_bundle_download_size
            .unwrap_or(defaults::MAX_BUNDLE_DOWNLOAD_SIZE);
        if max_dl == 0 {
            return Err(err(format!(
                "Invalid value ({max_dl}) for key \"max-bundle-download-size\" in system config"
            )));
        }
        let data_directory = rp(&s.data_directory);
        let status = resolve_status(s, path, data_directory.as_deref()).map_err(err)?;
        let bundle_formats = match &s.bundle_formats {
            Some(v) => parse_bundle_formats(v).map_err(err)?,
            None => BundleFormats::default(),
        };
        let variant = resolve_variant(s, path).map_err(err)?;
        let attempts = |v: Option<u64>, key: &str| -> Result<Option<u32>> {
            v.map(|n| {
                u32::try_from(n).map_err(|_| err(format!("Invalid value ({n}) for key \"{key}\"")))
            })
            .transpose()
        };
        let slots = resolve_slots(&raw.slots, path, data_directory.as_deref())?;
        Ok(SystemConfig {
            path: None,
            compatible,
            bootloader,
            mount_prefix: PathBuf::from(s.mountprefix.as_deref().unwrap_or(defaults::MOUNT_PREFIX)),
            bundle_formats,
            max_bundle_download_size: max_dl,
            data_directory,
            status,
            activate_installed: s.activate_installed.unwrap_or(defaults::ACTIVATE_INSTALLED),
            variant,
            grubenv: PathBuf::from(s.grubenv.as_deref().unwrap_or(defaults::GRUBENV)),
            efi_use_bootnext: s.efi_use_bootnext.unwrap_or(defaults::EFI_USE_BOOTNEXT),
            barebox_statename: s.barebox_statename.clone(),
            barebox_dtbpath: s.barebox_dtbpath.as_deref().map(PathBuf::from),
            boot_attempts: attempts(s.boot_attempts, "boot-attempts")?,
            boot_attempts_primary: attempts(s.boot_attempts_primary, "boot-attempts-primary")?,
            keyring: Keyring {
                path: rp(&raw.keyring.path),
                directory: rp(&raw.keyring.directory),
                check_crl: raw.keyring.check_crl.unwrap_or(false),
                allow_partial_chain: raw.keyring.allow_partial_chain.unwrap_or(false),
                use_bundle_signing_time: raw.keyring.use_bundle_signing_time.unwrap_or(false),
                check_purpose: raw.keyring.check_purpose.clone(),
                no_check_time: false,
            },
            encryption: EncryptionConfig {
                key: raw
                    .encryption_key
                    .as_deref()
                    .map(|k| resolve_key_spec(path, k)),
                cert: rp(&raw.encryption_cert),
            },
            handlers: HandlersConfig {
                system_info: rp(&raw.handler_system_info),
                pre_install: rp(&raw.handler_pre_install),
                post_install: rp(&raw.handler_post_install),
                bootloader_custom_backend: rp(&raw.handler_custom_backend),
            },
            casync: raw.casync.clone(),
            streaming: raw.streaming.clone(),
            autoinstall_path: rp(&raw.autoinstall_path),
            slots,
        })
    }
}

fn resolve_status(
    s: &RawSystem,
    path: &Path,
    data_dir: Option<&Path>,
) -> std::result::Result<StatusLocation, String> {
    match (s.statusfile.as_deref(), data_dir) {
        (Some("per-slot"), Some(_)) => {
            Err("Using data-directory= with statusfile=per-slot is not supported.".into())
        }
        (Some("per-slot"), None) => Ok(StatusLocation::PerSlot),
        (Some(file), _) => Ok(StatusLocation::Central(resolve_path(path, file))),
        (None, Some(dir)) => Ok(StatusLocation::Central(
            dir.join(defaults::CENTRAL_STATUS_NAME),
        )),
        (None, None) => {
            tracing::debug!(
                "Config option 'statusfile=<path>/per-slot' unset, falling back to per-slot status"
            );
            Ok(StatusLocation::PerSlot)
        }
    }
}

fn resolve_variant(
    s: &RawSystem,
    path: &Path,
) -> std::result::Result<Option<VariantSource>, String> {
    let mut found = Vec::new();
    if s.variant_dtb == Some(true) {
        found.push(VariantSource::Dtb);
    }
    if let Some(f) = &s.variant_file {
        found.push(VariantSource::File(resolve_path(path, f)));
    }
    if let Some(n) = &s.variant_name {
        found.push(VariantSource::Name(n.clone()));
    }
    if found.len() > 1 {
        return Err(
            "Only one of the keys 'variant-file', variant-dtb','variant-name' is allowed".into(),
        );
    }
    Ok(found.pop())
}

/// Parses `bundle-formats`: a list (`plain verity`) or modifications (`-plain +crypt`), not mixed.
pub fn parse_bundle_formats(value: &str) -> std::result::Result<BundleFormats, String> {
    let mut f = BundleFormats::default();
    let (mut fixed, mut modified) = (false, false);
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        let (sign, name) = match token.as_bytes()[0] {
            b'+' | b'-' => (Some(token.as_bytes()[0]), &token[1..]),
            _ => (None, token),
        };
        if !matches!(name, "plain" | "verity" | "crypt") {
            return Err(format!("Invalid bundle format '{name}'"));
        }
        if sign.is_some() {
            modified = true;
        } else if !fixed {
            fixed = true;
            f = BundleFormats {
                plain: false,
                verity: false,
                crypt: false,
            };
        }
        let on = sign != Some(b'-');
        match name {
            "plain" => f.plain = on,
            "verity" => f.verity = on,
            _ => f.crypt = on,
        }
    }
    if fixed && modified {
        return Err(format!(
            "Invalid bundle format configuration '{value}', cannot combine fixed value with modification (+/-)"
        ));
    }
    if !(f.plain || f.verity || f.crypt) {
        return Err(format!(
            "Invalid bundle format configuration '{value}', no remaining formats"
        ));
    }
    Ok(f)
}

fn resolve_slots(raw: &[RawSlot], path: &Path, data_dir: Option<&Path>) -> Result<Vec<SlotConfig>> {
    let err = |m: String| Error::config(path, m);
    let mut slots = Vec::with_capacity(raw.len());
    let mut bootnames = HashSet::new();
    for r in raw {
        let slot = resolve_slot(r, path, data_dir).map_err(err)?;
        if let Some(b) = &slot.bootname
            && !bootnames.insert(b.clone())
        {
            return Err(err(format!("Bootname '{b}' is set on more than one slot")));
        }
        slots.push(slot);
    }
    link_parents(&mut slots).map_err(err)?;
    Ok(slots)
}

fn resolve_slot(
    r: &RawSlot,
    path: &Path,
    data_dir: Option<&Path>,
) -> std::result::Result<SlotConfig, String> {
    let parts: Vec<&str> = r.group.split('.').collect();
    if parts.len() != 3 || parts[1].is_empty() || parts[2].is_empty() {
        return Err(format!("Invalid slot name format: {}", r.group));
    }
    let name = format!("{}.{}", parts[1], parts[2]);
    let device = r.device.as_deref().ok_or_else(|| {
        KeyFileError::MissingKey {
            group: r.group.clone(),
            key: "device".into(),
        }
        .to_string()
    })?;
    let type_str = r.slot_type.as_deref().unwrap_or("raw");
    let slot_type = SlotType::parse(type_str).ok_or_else(|| {
        format!("Unsupported slot type '{type_str}' for slot {name} selected in system config")
    })?;
    if slot_type == SlotType::Jffs2 && !device.starts_with("/dev/") {
        return Err(format!(
            "{}: device must be located in /dev/ for jffs2",
            r.group
        ));
    }
    let region = |v: &Option<String>, key: &str| -> std::result::Result<Option<u64>, String> {
        if !super::raw::REGION_SLOT_TYPES.contains(&type_str) {
            return Ok(None);
        }
        let v = v.as_deref().ok_or_else(|| {
            format!(
                "mandatory for {type_str}: Missing key '{key}' in group '[{}]'",
                r.group
            )
        })?;
        parse_size(v).map(Some).ok_or_else(|| {
            format!(
                "Invalid value '{v}' for key '{key}' in group '[{}]'",
                r.group
            )
        })
    };
    Ok(SlotConfig {
        class: parts[1].to_string(),
        index: parts[2].to_string(),
        device: resolve_path(path, device),
        slot_type,
        bootname: r.bootname.clone(),
        parent: r.parent.clone(),
        description: r.description.clone(),
        readonly: r.readonly.unwrap_or(false),
        install_same: r.install_same.unwrap_or(defaults::INSTALL_SAME),
        allow_mounted: r.allow_mounted.unwrap_or(false),
        extra_mount_opts: r.extra_mount_opts.clone(),
        resize: r.resize.unwrap_or(false),
        region_start: region(&r.region_start, "region-start")?,
        region_size: region(&r.region_size, "region-size")?,
        data_directory: data_dir.map(|d| d.join(&r.group)),
        name,
    })
}

/// Checks parents exist, children have no bootname, and follows grandparent links to the root.
fn link_parents(slots: &mut [SlotConfig]) -> std::result::Result<(), String> {
    let direct: Vec<(String, Option<String>)> = slots
        .iter()
        .map(|s| (s.name.clone(), s.parent.clone()))
        .collect();
    let parent_of = |n: &str| direct.iter().find(|(s, _)| s == n).map(|(_, p)| p.clone());
    for slot in slots.iter_mut() {
        let Some(first) = slot.parent.clone() else {
            continue;
        };
        if parent_of(&first).is_none() {
            return Err(format!("Parent slot '{first}' not found!"));
        }
        if slot.bootname.is_some() {
            return Err(format!("Child slot '{}' has bootname set", slot.name));
        }
        let mut root = first;
        let mut steps = 0;
        while let Some(Some(next)) = parent_of(&root) {
            if parent_of(&next).is_none() {
                return Err(format!("Parent slot '{next}' not found!"));
            }
            root = next;
            steps += 1;
            if steps > 100 || root == slot.name {
                return Err(format!("Slot '{}' has a parent loop!", slot.name));
            }
        }
        slot.parent = Some(root);
    }
    Ok(())
}

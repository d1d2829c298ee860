//! Booted-slot detection and slot states (booted / active / inactive).
//!
//! The booted slot comes from `--override-boot-slot`, else from the kernel command line:
//! `rauc.external` (booted from elsewhere), `rauc.slot=BOOTNAME`, barebox's
//! `bootstate.active=`/`bootchooser.active=`, or `root=` / `systemd.verity_root_data=` naming a
//! device (`PARTLABEL=`, `PARTUUID=`, `UUID=` resolved through `/dev/disk/by-*`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{BootloaderKind, SlotConfig, SystemConfig};
use crate::error::{Error, Result};

/// The state of a slot relative to the running system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// The slot the system booted from.
    Booted,
    /// A child of the booted slot (in use together with it).
    Active,
    /// Not in use: an install target.
    Inactive,
}

impl SlotState {
    /// RAUC's spelling (`booted`, `active`, `inactive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booted => "booted",
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }
}

/// What the system booted from, as given on the command line or by `--override-boot-slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootId {
    /// `rauc.external` on the command line (or `_external_`): booted from outside any slot.
    External,
    /// A bootname, slot name or device path.
    Id(String),
}

impl BootId {
    /// The text RAUC shows as the booted slot (`BootSlot` property).
    pub fn as_str(&self) -> &str {
        match self {
            Self::External => "_external_",
            Self::Id(s) => s,
        }
    }
}

fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .filter(|v| !v.is_empty())
}

/// Parses a kernel command line into the boot identifier, without touching the file system
/// (device specs are returned as written; see [`resolve_root_device`]).
pub fn boot_id_from_cmdline(cmdline: &str, bootloader: BootloaderKind) -> Option<BootId> {
    if cmdline.contains("rauc.external") {
        return Some(BootId::External);
    }
    if let Some(v) = cmdline_value(cmdline, "rauc.slot=") {
        return Some(BootId::Id(v.to_string()));
    }
    if bootloader == BootloaderKind::Barebox {
        let bb = cmdline_value(cmdline, "bootstate.active=")
            .or_else(|| cmdline_value(cmdline, "bootchooser.active="));
        if let Some(v) = bb {
            return Some(BootId::Id(v.to_string()));
        }
    }
    cmdline_value(cmdline, "root=")
        .or_else(|| cmdline_value(cmdline, "systemd.verity_root_data="))
        .map(|v| BootId::Id(v.to_string()))
}

/// Maps `PARTLABEL=`, `PARTUUID=` and `UUID=` specs to `/dev/disk/by-*` paths (other values are
/// returned unchanged).
pub fn root_spec_to_path(spec: &str) -> PathBuf {
    for (prefix, dir) in [
        ("PARTLABEL=", "/dev/disk/by-partlabel"),
        ("PARTUUID=", "/dev/disk/by-partuuid"),
        ("UUID=", "/dev/disk/by-uuid"),
    ] {
        if let Some(rest) = spec.strip_prefix(prefix) {
            return Path::new(dir).join(rest);
        }
    }
    PathBuf::from(spec)
}

/// Resolves a `root=` spec to the real device path (symlinks followed) when it exists.
pub fn resolve_root_device(spec: &str) -> String {
    let p = root_spec_to_path(spec);
    match std::fs::canonicalize(&p) {
        Ok(real) => real.to_string_lossy().into_owned(),
        Err(_) => p.to_string_lossy().into_owned(),
    }
}

/// Determines the boot identifier: the override if given, else `/proc/cmdline`.
pub fn detect_boot_id(config: &SystemConfig, override_slot: Option<&str>) -> Option<BootId> {
    if let Some(o) = override_slot {
        return Some(if o == "_external_" {
            BootId::External
        } else {
            BootId::Id(o.to_string())
        });
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    match boot_id_from_cmdline(&cmdline, config.bootloader)? {
        BootId::Id(v) if v.contains('=') || v.starts_with('/') => {
            Some(BootId::Id(resolve_root_device(&v)))
        }
        other => Some(other),
    }
}

/// The states of all slots for one boot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotStates {
    /// The booted slot's name, if the system booted from a slot.
    pub booted: Option<String>,
    /// State per slot name.
    pub states: BTreeMap<String, SlotState>,
}

impl SlotStates {
    /// The state of `slot` (inactive if unknown).
    pub fn get(&self, slot: &str) -> SlotState {
        self.states
            .get(slot)
            .copied()
            .unwrap_or(SlotState::Inactive)
    }
}

fn matches_slot(slot: &SlotConfig, id: &str) -> bool {
    if slot.bootname.as_deref() == Some(id) || slot.name == id {
        return true;
    }
    let real = std::fs::canonicalize(&slot.device).unwrap_or_else(|_| slot.device.clone());
    real.as_os_str() == id || slot.device.as_os_str() == id
}

/// Assigns booted/active/inactive to every slot, as RAUC's `determine_slot_states` does.
pub fn determine_states(config: &SystemConfig, boot: Option<&BootId>) -> Result<SlotStates> {
    if config.slots.is_empty() {
        return Err(Error::Slot("No slot configuration found".into()));
    }
    let id = match boot {
        None => {
            return Err(Error::Slot(
                "Bootname or device of booted slot not found".into(),
            ));
        }
        Some(BootId::External) => return Ok(all_inactive(config)),
        Some(BootId::Id(id)) => id,
    };
    let Some(booted) = config.slots.iter().find(|s| matches_slot(s, id)) else {
        if id == "/dev/nfs" {
            tracing::info!("Detected nfs boot, ignoring missing active slot");
            return Ok(all_inactive(config));
        }
        return Err(Error::Slot(format!(
            "Did not find booted slot (matching '{id}')"
        )));
    };
    let mut states = BTreeMap::new();
    for s in &config.slots {
        let st = if s.name == booted.name {
            SlotState::Booted
        } else if s.parent.as_deref() == Some(booted.name.as_str()) {
            SlotState::Active
        } else {
            SlotState::Inactive
        };
        states.insert(s.name.clone(), st);
    }
    Ok(SlotStates {
        booted: Some(booted.name.clone()),
        states,
    })
}

fn all_inactive(config: &SystemConfig) -> SlotStates {
    SlotStates {
        booted: None,
        states: config
            .slots
            .iter()
            .map(|s| (s.name.clone(), SlotState::Inactive))
            .collect(),
    }
}

/// Resolves `booted`, `other` or a slot name to a bootable slot, as `rauc status mark-*` does.
pub fn slot_by_identifier<'a>(
    config: &'a SystemConfig,
    states: &SlotStates,
    identifier: &str,
) -> Result<&'a SlotConfig> {
    let booted = states.booted.as_deref().and_then(|b| config.slot(b));
    match identifier {
        "booted" => booted.ok_or_else(|| Error::Slot("Did not find booted slot".into())),
        "other" => {
            let b = booted.ok_or_else(|| {
                Error::Slot(
                    "Did not find booted slot needed to find another bootable slot of the same class"
                        .into(),
                )
            })?;
            config
                .slots
                .iter()
                .find(|s| {
                    s.class == b.class
                        && s.parent.is_none()
                        && s.bootname.is_some()
                        && s.name != b.name
                })
                .ok_or_else(|| Error::Slot("No other bootable slot of the same class found".into()))
        }
        name => {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() != 2 {
                return Err(Error::Slot(format!("Invalid slot name format: '{name}'")));
            }
            config
                .slots
                .iter()
                .find(|s| s.class == parts[0] && s.parent.is_none() && s.name == name)
                .ok_or_else(|| {
                    Error::Slot(format!(
                        "No slot with class {} and name {name} found",
                        parts[0]
                    ))
                })
        }
    }
}

#[cfg(test)]
mod tests;

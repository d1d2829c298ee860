//! Bootloader backends behind one trait: read/set the primary slot and a slot's good/bad state.
//!
//! Backends: [`noop::Noop`] (RAUC's noop), [`noop::StateFile`] (a persistent file-backed backend
//! for tests and development), [`custom::Custom`] (RAUC's `bootloader-custom-backend` script
//! interface), [`grub::Grub`] (grubenv `ORDER`, `<bootname>_OK`, `<bootname>_TRY`),
//! [`uboot::Uboot`] (`fw_printenv`/`fw_setenv`: `BOOT_ORDER`, `BOOT_<bootname>_LEFT`) and
//! [`efi::Efi`] (`efibootmgr`).

pub mod custom;
pub mod efi;
pub mod grub;
pub mod noop;
pub mod uboot;

use std::path::Path;
use std::process::Command;

use crate::config::{BootloaderKind, SlotConfig, SystemConfig};
use crate::error::{Error, Result};

/// A slot's boot state as the bootloader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootState {
    /// Bootable (e.g. grub `_OK=1`, `_TRY=0`; uboot attempts left).
    Good,
    /// Not bootable.
    Bad,
}

impl BootState {
    /// `good` / `bad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
        }
    }
}

/// The bootable slots a backend knows: (bootname, slot name) in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootSlots(pub Vec<(String, String)>);

impl BootSlots {
    /// Root slots with a bootname, from the config.
    pub fn from_config(config: &SystemConfig) -> Self {
        BootSlots(
            config
                .slots
                .iter()
                .filter_map(|s| Some((s.bootname.clone()?, s.name.clone())))
                .collect(),
        )
    }

    /// The slot name for a bootname.
    pub fn slot_for(&self, bootname: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(b, _)| b == bootname)
            .map(|(_, s)| s.as_str())
    }

    /// Default order with `first` in front, the other bootnames after it.
    pub fn order_with_first(&self, first: &str) -> Vec<String> {
        let mut v = vec![first.to_string()];
        v.extend(self.0.iter().map(|(b, _)| b.clone()).filter(|b| b != first));
        v
    }
}

/// What every backend provides. Methods take the slot (its `bootname` is what the bootloader
/// knows); `get_primary` answers with a slot name.
pub trait Bootloader: Send + Sync {
    /// The `bootloader=` name.
    fn name(&self) -> &'static str;
    /// Whether the slot is marked good or bad.
    fn get_state(&self, slot: &SlotConfig) -> Result<BootState>;
    /// Marks the slot good or bad.
    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()>;
    /// The slot the bootloader will boot next (slot name).
    fn get_primary(&self) -> Result<String>;
    /// Makes the slot the one to boot next.
    fn set_primary(&self, slot: &SlotConfig) -> Result<()>;
    /// The bootname the bootloader reports as currently booted, if it can tell.
    fn get_current(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The backend configured in `system.conf`.
pub fn for_config(config: &SystemConfig) -> Result<Box<dyn Bootloader>> {
    let slots = BootSlots::from_config(config);
    Ok(match config.bootloader {
        BootloaderKind::Noop => Box::new(noop::Noop),
        BootloaderKind::Custom => {
            let script = config
                .handlers
                .bootloader_custom_backend
                .clone()
                .ok_or_else(|| Error::Bootloader("No custom bootloader backend defined".into()))?;
            Box::new(custom::Custom::new(script, slots))
        }
        BootloaderKind::Grub => Box::new(grub::Grub::new(config.grubenv.clone(), slots)),
        BootloaderKind::Uboot => Box::new(uboot::Uboot::new(
            slots,
            config.boot_attempts,
            config.boot_attempts_primary,
        )),
        BootloaderKind::Efi => Box::new(efi::Efi::new(slots, config.efi_use_bootnext)),
        BootloaderKind::Barebox => {
            return Err(Error::Bootloader(
                "Bootloader type 'barebox' not supported yet".into(),
            ));
        }
    })
}

/// Runs a helper program and returns its stdout; a start failure or non-zero exit is an error
/// in RAUC's wording ("Failed to start X: …", "X failed with exit code N").
pub(crate) fn run_capture(program: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Bootloader(format!("Failed to start {}: {e}", program.display())))?;
    if !out.status.success() {
        return Err(Error::Bootloader(match out.status.code() {
            Some(c) => format!("{} failed with exit code {c}", program.display()),
            None => format!("{} did not exit normally", program.display()),
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn bootname(slot: &SlotConfig) -> Result<&str> {
    slot.bootname
        .as_deref()
        .ok_or_else(|| Error::Bootloader(format!("Slot {} has no bootname", slot.name)))
}

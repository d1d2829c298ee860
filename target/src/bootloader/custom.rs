//! RAUC's custom bootloader backend: a script called as
//! `SCRIPT get-primary`, `SCRIPT set-primary BOOTNAME`, `SCRIPT get-state BOOTNAME`,
//! `SCRIPT set-state BOOTNAME good|bad` and (RAUC ≥ 1.9) `SCRIPT get-current`.
//! Answers are read from stdout with surrounding whitespace stripped.

use std::path::PathBuf;

use super::{BootSlots, BootState, Bootloader, bootname, run_capture};
use crate::config::SlotConfig;
use crate::error::{Error, Result};

/// The `bootloader-custom-backend` script.
#[derive(Debug, Clone)]
pub struct Custom {
    script: PathBuf,
    slots: BootSlots,
}

impl Custom {
    /// A backend calling `script`.
    pub fn new(script: PathBuf, slots: BootSlots) -> Self {
        Custom { script, slots }
    }

    fn get(&self, args: &[&str]) -> Result<String> {
        Ok(run_capture(&self.script, args)?.trim().to_string())
    }
}

impl Bootloader for Custom {
    fn name(&self) -> &'static str {
        "custom"
    }

    fn get_state(&self, slot: &SlotConfig) -> Result<BootState> {
        match self.get(&["get-state", bootname(slot)?])?.as_str() {
            "good" => Ok(BootState::Good),
            "bad" => Ok(BootState::Bad),
            other => Err(Error::Bootloader(format!(
                "Obtained string does not match \"good\" or \"bad\": '{other}'"
            ))),
        }
    }

    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()> {
        run_capture(
            &self.script,
            &["set-state", bootname(slot)?, state.as_str()],
        )
        .map(|_| ())
    }

    fn get_primary(&self) -> Result<String> {
        let b = self.get(&["get-primary"])?;
        self.slots.slot_for(&b).map(str::to_string).ok_or_else(|| {
            Error::Bootloader(format!("'{b}' does not match any configured bootname"))
        })
    }

    fn set_primary(&self, slot: &SlotConfig) -> Result<()> {
        run_capture(&self.script, &["set-primary", bootname(slot)?]).map(|_| ())
    }

    fn get_current(&self) -> Result<Option<String>> {
        let b = self.get(&["get-current"])?;
        Ok(Some(b).filter(|b| !b.is_empty()))
    }
}

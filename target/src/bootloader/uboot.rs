//! U-Boot: `BOOT_ORDER` (space-separated bootnames) and `BOOT_<bootname>_LEFT` (remaining
//! attempts, hex) through `fw_printenv -n KEY` / `fw_setenv KEY VALUE`, as RAUC's uboot backend.
//! Default attempts: 3 (`boot-attempts`, `boot-attempts-primary` override).

use std::path::PathBuf;

use super::{BootSlots, BootState, Bootloader, bootname, run_capture};
use crate::config::SlotConfig;
use crate::error::{Error, Result};

const DEFAULT_ATTEMPTS: u32 = 3;

/// The uboot backend.
#[derive(Debug, Clone)]
pub struct Uboot {
    slots: BootSlots,
    attempts: u32,
    attempts_primary: u32,
    /// The `fw_printenv` program (default: found in `PATH`).
    pub printenv: PathBuf,
    /// The `fw_setenv` program.
    pub setenv: PathBuf,
}

impl Uboot {
    /// A backend with `boot-attempts` / `boot-attempts-primary` (0 or unset means 3).
    pub fn new(slots: BootSlots, attempts: Option<u32>, primary: Option<u32>) -> Self {
        let or_default = |v: Option<u32>| v.filter(|n| *n > 0).unwrap_or(DEFAULT_ATTEMPTS);
        Uboot {
            slots,
            attempts: or_default(attempts),
            attempts_primary: or_default(primary),
            printenv: "fw_printenv".into(),
            setenv: "fw_setenv".into(),
        }
    }

    fn get(&self, key: &str) -> Result<String> {
        let out = run_capture(&self.printenv, &["-n", key])?;
        Ok(out.trim_end_matches('\n').to_string())
    }

    fn set(&self, key: &str, value: &str) -> Result<()> {
        run_capture(&self.setenv, &[key, value]).map(|_| ())
    }

    fn left(&self, b: &str) -> Result<u64> {
        let v = self.get(&format!("BOOT_{b}_LEFT"))?;
        Ok(u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).unwrap_or(0))
    }

    fn order(&self) -> Result<Vec<String>> {
        Ok(self
            .get("BOOT_ORDER")?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
}

impl Bootloader for Uboot {
    fn name(&self) -> &'static str {
        "uboot"
    }

    fn get_state(&self, slot: &SlotConfig) -> Result<BootState> {
        let b = bootname(slot)?;
        if !self.order()?.iter().any(|o| o == b) {
            return Ok(BootState::Bad);
        }
        Ok(if self.left(b)? > 0 {
            BootState::Good
        } else {
            BootState::Bad
        })
    }

    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()> {
        let b = bootname(slot)?;
        let attempts = match state {
            BootState::Good => self.attempts,
            BootState::Bad => {
                match self.order() {
                    Ok(order) => {
                        let rest: Vec<_> = order.into_iter().filter(|o| o != b).collect();
                        self.set("BOOT_ORDER", &rest.join(" "))?;
                    }
                    Err(e) => tracing::info!("Unable to obtain BOOT_ORDER: {e}"),
                }
                0
            }
        };
        self.set(&format!("BOOT_{b}_LEFT"), &format!("{attempts:x}"))
    }

    fn get_primary(&self) -> Result<String> {
        for b in self.order()? {
            if let Some(slot) = self.slots.slot_for(&b)
                && self.left(&b)? > 0
            {
                return Ok(slot.to_string());
            }
        }
        Err(Error::Bootloader("Unable to find primary boot slot".into()))
    }

    fn set_primary(&self, slot: &SlotConfig) -> Result<()> {
        let b = bootname(slot)?;
        let current = self.order().unwrap_or_else(|e| {
            tracing::info!("Unable to obtain BOOT_ORDER ({e}), using defaults");
            self.slots.order_with_first(b)
        });
        let mut order = vec![b.to_string()];
        order.extend(current.into_iter().filter(|o| o != b));
        self.set(
            &format!("BOOT_{b}_LEFT"),
            &self.attempts_primary.to_string(),
        )?;
        self.set("BOOT_ORDER", &order.join(" "))
    }
}

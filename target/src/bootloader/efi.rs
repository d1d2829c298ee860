//! UEFI through `efibootmgr`: boot entries are matched to slots by label == bootname.
//! Good = listed in `BootOrder`; marking good prepends the entry, bad removes it; primary is
//! `BootNext` (with `efi-use-bootnext`, the default) or the front of `BootOrder`.

use std::path::PathBuf;

use super::{BootSlots, BootState, Bootloader, bootname, run_capture};
use crate::config::SlotConfig;
use crate::error::{Error, Result};

/// One `BootXXXX` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiEntry {
    /// The four hex digits.
    pub num: String,
    /// The label.
    pub name: String,
}

/// The parts of `efibootmgr` output the backend uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EfiState {
    /// `BootCurrent`.
    pub current: Option<String>,
    /// `BootNext`.
    pub next: Option<String>,
    /// `BootOrder`.
    pub order: Vec<String>,
    /// All entries.
    pub entries: Vec<EfiEntry>,
}

impl EfiState {
    /// Parses `efibootmgr` output.
    pub fn parse(text: &str) -> EfiState {
        let mut st = EfiState::default();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("BootCurrent: ") {
                st.current = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("BootNext: ") {
                st.next = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("BootOrder: ") {
                st.order = v.trim().split(',').map(str::to_string).collect();
            } else if let Some(rest) = line.strip_prefix("Boot")
                && rest.len() > 5
                && rest.as_bytes()[..4].iter().all(u8::is_ascii_hexdigit)
            {
                let label = rest[4..].trim_start_matches('*').trim_start();
                let name = label.split('\t').next().unwrap_or_default().trim_end();
                st.entries.push(EfiEntry {
                    num: rest[..4].to_string(),
                    name: name.to_string(),
                });
            }
        }
        st
    }

    fn name_of(&self, num: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.num == num)
            .map(|e| e.name.as_str())
    }

    fn num_of(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.num.as_str())
    }
}

/// The efi backend.
#[derive(Debug, Clone)]
pub struct Efi {
    slots: BootSlots,
    use_bootnext: bool,
    /// The `efibootmgr` program.
    pub efibootmgr: PathBuf,
}

impl Efi {
    /// A backend; `use_bootnext` is `efi-use-bootnext`.
    pub fn new(slots: BootSlots, use_bootnext: bool) -> Self {
        Efi {
            slots,
            use_bootnext,
            efibootmgr: "efibootmgr".into(),
        }
    }

    fn state(&self) -> Result<EfiState> {
        Ok(EfiState::parse(&run_capture(&self.efibootmgr, &[])?))
    }

    fn modify_order(&self, b: &str, prepend: bool) -> Result<()> {
        let st = self.state()?;
        let num = st.num_of(b).map(str::to_string);
        let mut order: Vec<String> = st
            .order
            .into_iter()
            .filter(|n| Some(n) != num.as_ref())
            .collect();
        if prepend {
            let n =
                num.ok_or_else(|| Error::Bootloader(format!("No entry for bootname '{b}' found")))?;
            order.insert(0, n);
        }
        run_capture(&self.efibootmgr, &["--bootorder", &order.join(",")]).map(|_| ())
    }
}

impl Bootloader for Efi {
    fn name(&self) -> &'static str {
        "efi"
    }

    fn get_state(&self, slot: &SlotConfig) -> Result<BootState> {
        let b = bootname(slot)?;
        let st = self.state()?;
        let listed = st.order.iter().any(|n| st.name_of(n) == Some(b));
        Ok(if listed {
            BootState::Good
        } else {
            BootState::Bad
        })
    }

    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()> {
        self.modify_order(bootname(slot)?, state == BootState::Good)
    }

    fn get_primary(&self) -> Result<String> {
        let st = self.state()?;
        let nums = st.next.iter().chain(st.order.iter());
        nums.filter_map(|n| st.name_of(n))
            .find_map(|name| self.slots.slot_for(name))
            .map(str::to_string)
            .ok_or_else(|| Error::Bootloader("Did not find primary boot entry!".into()))
    }

    fn set_primary(&self, slot: &SlotConfig) -> Result<()> {
        let b = bootname(slot)?;
        if !self.use_bootnext {
            return self.modify_order(b, true);
        }
        let st = self.state()?;
        let num = st.num_of(b).ok_or_else(|| {
            Error::Bootloader(format!("Did not find efi entry for bootname '{b}'!"))
        })?;
        run_capture(&self.efibootmgr, &["--bootnext", num]).map(|_| ())
    }

    fn get_current(&self) -> Result<Option<String>> {
        let st = self.state()?;
        Ok(st
            .current
            .as_deref()
            .and_then(|c| st.name_of(c))
            .map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_efibootmgr_output() {
        let st = EfiState::parse(
            "BootCurrent: 0001\nTimeout: 1 seconds\nBootOrder: 0001,0002,0000\n\
             Boot0000* UiApp\tFvVol(7cb8bdc9)\nBoot0001* A\tHD(1,GPT)\nBoot0002  B\tHD(2,GPT)\n",
        );
        assert_eq!(st.current.as_deref(), Some("0001"));
        assert_eq!(st.order, vec!["0001", "0002", "0000"]);
        assert_eq!(st.name_of("0002"), Some("B"));
        assert_eq!(st.num_of("A"), Some("0001"));
        assert_eq!(st.entries.len(), 3);
    }
}

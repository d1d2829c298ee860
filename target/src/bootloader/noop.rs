//! `bootloader=noop` and a file-backed backend for tests and development.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use bundle::keyfile::{KeyFile, KeyFileWriter};

use super::{BootSlots, BootState, Bootloader, bootname};
use crate::config::SlotConfig;
use crate::error::{Error, Result};
use crate::status::write_atomic;

/// RAUC's noop bootloader: setting succeeds and does nothing; reading is not supported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

impl Bootloader for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn get_state(&self, _slot: &SlotConfig) -> Result<BootState> {
        Err(Error::Bootloader(
            "Obtaining state from bootloader 'noop' not supported yet".into(),
        ))
    }

    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()> {
        tracing::info!(
            "noop bootloader: ignore setting slot {} status to {}",
            slot.name,
            state.as_str()
        );
        Ok(())
    }

    fn get_primary(&self) -> Result<String> {
        Err(Error::Bootloader(
            "Obtaining primary entry from bootloader 'noop' not supported yet".into(),
        ))
    }

    fn set_primary(&self, slot: &SlotConfig) -> Result<()> {
        tracing::info!(
            "noop bootloader: ignore setting slot {} as primary",
            slot.name
        );
        Ok(())
    }
}

/// A real, persistent backend over a small key file (`[boot] primary=…`, `[state] <bootname>=good|bad`).
/// It records every call in [`StateFile::calls`] so tests can check the order of operations. Used
/// by host tests and for development devices without a supported bootloader.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    slots: BootSlots,
    calls: Mutex<Vec<String>>,
}

#[derive(Debug, Default)]
struct State {
    primary: Option<String>,
    states: BTreeMap<String, String>,
}

impl StateFile {
    /// A backend persisting to `path` (created on first write).
    pub fn new(path: PathBuf, slots: BootSlots) -> Self {
        StateFile {
            path,
            slots,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Calls made so far, e.g. `set-state B bad`, `set-primary B`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    fn read(&self) -> Result<State> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(Error::io("failed to read boot state file", &self.path, e)),
        };
        let mut kf = KeyFile::parse(&text).map_err(|e| Error::Bootloader(e.to_string()))?;
        let mut st = State::default();
        if let Some(mut g) = kf.take_group("boot") {
            st.primary = g.take_string("primary").ok().flatten();
        }
        if let Some(mut g) = kf.take_group("state") {
            st.states = g
                .take_all_strings()
                .unwrap_or_default()
                .into_iter()
                .collect();
        }
        Ok(st)
    }

    fn write(&self, st: &State) -> Result<()> {
        let mut w = KeyFileWriter::new();
        w.group("boot").opt_string("primary", st.primary.as_deref());
        w.group("state");
        for (k, v) in &st.states {
            w.string(k, v);
        }
        write_atomic(&self.path, w.finish().as_bytes())
    }
}

impl Bootloader for StateFile {
    fn name(&self) -> &'static str {
        "state-file"
    }

    fn get_state(&self, slot: &SlotConfig) -> Result<BootState> {
        let b = bootname(slot)?;
        Ok(match self.read()?.states.get(b).map(String::as_str) {
            Some("good") => BootState::Good,
            _ => BootState::Bad,
        })
    }

    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()> {
        let b = bootname(slot)?;
        self.record(format!("set-state {b} {}", state.as_str()));
        let mut st = self.read()?;
        st.states.insert(b.to_string(), state.as_str().to_string());
        self.write(&st)
    }

    fn get_primary(&self) -> Result<String> {
        let st = self.read()?;
        let b = st
            .primary
            .ok_or_else(|| Error::Bootloader("No primary slot recorded".into()))?;
        self.slots.slot_for(&b).map(str::to_string).ok_or_else(|| {
            Error::Bootloader(format!("'{b}' does not match any configured bootname"))
        })
    }

    fn set_primary(&self, slot: &SlotConfig) -> Result<()> {
        let b = bootname(slot)?;
        self.record(format!("set-primary {b}"));
        let mut st = self.read()?;
        st.primary = Some(b.to_string());
        st.states.insert(b.to_string(), "good".into());
        self.write(&st)
    }
}

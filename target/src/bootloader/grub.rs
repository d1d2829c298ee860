//! GRUB: the environment block file (`grubenv`) with `ORDER` (space-separated bootnames),
//! `<bootname>_OK` and `<bootname>_TRY`, as RAUC's grub backend and its grub.cfg use them.
//!
//! The block is written here directly, in GRUB's format: the header line
//! `# GRUB Environment Block`, `name=value` lines (backslash and newline escaped with a
//! backslash), padded with `#` to exactly 1024 bytes, replaced atomically.

use std::path::PathBuf;

use super::{BootSlots, BootState, Bootloader, bootname};
use crate::config::SlotConfig;
use crate::error::{Error, Result};
use crate::status::write_atomic;

/// The size of a GRUB environment block.
pub const ENVBLK_SIZE: usize = 1024;
const HEADER: &str = "# GRUB Environment Block\n";

/// A parsed environment block: variables in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubEnv {
    /// `(name, value)` pairs.
    pub vars: Vec<(String, String)>,
}

impl GrubEnv {
    /// Parses a block (the header is required; `#` padding and comments are skipped).
    pub fn parse(data: &[u8]) -> Result<GrubEnv> {
        let text = String::from_utf8_lossy(data);
        let Some(body) = text.strip_prefix(HEADER) else {
            return Err(Error::Bootloader("invalid environment block".into()));
        };
        let mut env = GrubEnv::default();
        let mut line = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => line.push(chars.next().unwrap_or('\\')),
                '\n' => env.push_line(std::mem::take(&mut line)),
                c => line.push(c),
            }
        }
        env.push_line(line);
        Ok(env)
    }

    fn push_line(&mut self, line: String) {
        if line.starts_with('#') || line.is_empty() {
            return;
        }
        if let Some((k, v)) = line.split_once('=') {
            self.set(k, v);
        }
    }

    /// A variable's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or adds) a variable.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_string(),
            None => self.vars.push((key.to_string(), value.to_string())),
        }
    }

    /// Serializes to exactly [`ENVBLK_SIZE`] bytes.
    pub fn to_block(&self) -> Result<Vec<u8>> {
        let mut out = String::from(HEADER);
        for (k, v) in &self.vars {
            out.push_str(k);
            out.push('=');
            for c in v.chars() {
                if c == '\\' || c == '\n' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('\n');
        }
        if out.len() > ENVBLK_SIZE {
            return Err(Error::Bootloader(format!(
                "GRUB environment does not fit into {ENVBLK_SIZE} bytes"
            )));
        }
        let mut bytes = out.into_bytes();
        bytes.resize(ENVBLK_SIZE, b'#');
        Ok(bytes)
    }
}

/// The grub backend over a `grubenv` file.
#[derive(Debug, Clone)]
pub struct Grub {
    path: PathBuf,
    slots: BootSlots,
}

impl Grub {
    /// A backend for the environment file `path`.
    pub fn new(path: PathBuf, slots: BootSlots) -> Self {
        Grub { path, slots }
    }

    /// Reads the environment file.
    pub fn read(&self) -> Result<GrubEnv> {
        let data = std::fs::read(&self.path)
            .map_err(|e| Error::io("failed to read grubenv", &self.path, e))?;
        GrubEnv::parse(&data)
    }

    fn update(&self, pairs: &[(&str, String)]) -> Result<()> {
        let mut env = match self.read() {
            Ok(env) => env,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                GrubEnv::default()
            }
            Err(e) => return Err(e),
        };
        for (k, v) in pairs {
            env.set(k, v);
        }
        write_atomic(&self.path, &env.to_block()?)
    }

    fn var(env: &GrubEnv, key: &str) -> Result<u64> {
        let v = env.get(key).ok_or_else(|| {
            Error::Bootloader(format!("Variable {key} not set in grub environment"))
        })?;
        Ok(v.trim().parse().unwrap_or(0))
    }

    fn is_good(env: &GrubEnv, b: &str) -> Result<bool> {
        Ok(Self::var(env, &format!("{b}_OK"))? == 1 && Self::var(env, &format!("{b}_TRY"))? == 0)
    }
}

impl Bootloader for Grub {
    fn name(&self) -> &'static str {
        "grub"
    }

    fn get_state(&self, slot: &SlotConfig) -> Result<BootState> {
        let b = bootname(slot)?;
        let env = self.read()?;
        let order = env.get("ORDER").unwrap_or_default();
        if !order.split(' ').any(|o| o == b) {
            return Ok(BootState::Bad);
        }
        Ok(if Self::is_good(&env, b)? {
            BootState::Good
        } else {
            BootState::Bad
        })
    }

    fn set_state(&self, slot: &SlotConfig, state: BootState) -> Result<()> {
        let b = bootname(slot)?;
        let ok = if state == BootState::Good { "1" } else { "0" };
        self.update(&[
            (&format!("{b}_OK"), ok.into()),
            (&format!("{b}_TRY"), "0".into()),
        ])
    }

    fn get_primary(&self) -> Result<String> {
        let env = self.read()?;
        let order = env.get("ORDER").unwrap_or_default().to_string();
        if order.is_empty() {
            return Err(Error::Bootloader("Variable ORDER is empty".into()));
        }
        for b in order.split(' ') {
            if let Some(slot) = self.slots.slot_for(b)
                && Self::is_good(&env, b)?
            {
                return Ok(slot.to_string());
            }
        }
        Err(Error::Bootloader(format!(
            "No bootable slot found in ORDER '{order}'"
        )))
    }

    fn set_primary(&self, slot: &SlotConfig) -> Result<()> {
        let b = bootname(slot)?;
        let order = self.slots.order_with_first(b).join(" ");
        self.update(&[
            (&format!("{b}_OK"), "1".into()),
            (&format!("{b}_TRY"), "0".into()),
            ("ORDER", order),
        ])
    }
}

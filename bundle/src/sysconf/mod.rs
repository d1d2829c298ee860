//! `system.conf` in RAUC's format and strictness (`rauc-format.md` §8).
//!
//! Two stages: [`raw::RawConfig`] takes every key as written (unknown keys and groups are
//! errors), then [`SystemConfig::resolve`] applies the defaults (all in [`defaults`]), resolves
//! relative paths against the directory of the file and checks the content.

pub mod raw;
mod resolve;
mod slot;

use std::path::{Path, PathBuf};

pub use raw::RawConfig;
pub use slot::{SlotConfig, SlotType};

use crate::cms::verify::Keyring;
use crate::{Error, Result};

/// Defaults, in one place.
pub mod defaults {
    /// Where `system.conf` is looked for when `--conf` is not given (rauc 1.8: only here).
    pub const CONFIG_PATH: &str = "/etc/rauc/system.conf";
    /// `[system] mountprefix`.
    pub const MOUNT_PREFIX: &str = "/mnt/rauc/";
    /// `[system] max-bundle-download-size`.
    pub const MAX_BUNDLE_DOWNLOAD_SIZE: u64 = 8 * 1024 * 1024;
    /// `[system] grubenv`.
    pub const GRUBENV: &str = "/boot/grub/grubenv";
    /// `[system] activate-installed`.
    pub const ACTIVATE_INSTALLED: bool = true;
    /// `[system] efi-use-bootnext`.
    pub const EFI_USE_BOOTNEXT: bool = true;
    /// `[slot.*] install-same`.
    pub const INSTALL_SAME: bool = true;
    /// Name of the central status file inside `data-directory`.
    pub const CENTRAL_STATUS_NAME: &str = "central.raucs";
}

/// Bootloader backends RAUC 1.8 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootloaderKind {
    /// barebox-state.
    Barebox,
    /// GRUB environment (`grubenv`).
    Grub,
    /// U-Boot environment via `fw_printenv`/`fw_setenv`.
    Uboot,
    /// UEFI boot entries via `efibootmgr`.
    Efi,
    /// `[handlers] bootloader-custom-backend` script.
    Custom,
    /// Does nothing (testing).
    Noop,
}

impl BootloaderKind {
    /// Parses the `bootloader=` value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "barebox" => Self::Barebox,
            "grub" => Self::Grub,
            "uboot" => Self::Uboot,
            "efi" => Self::Efi,
            "custom" => Self::Custom,
            "noop" => Self::Noop,
            _ => return None,
        })
    }

    /// The `bootloader=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Barebox => "barebox",
            Self::Grub => "grub",
            Self::Uboot => "uboot",
            Self::Efi => "efi",
            Self::Custom => "custom",
            Self::Noop => "noop",
        }
    }
}

/// The set of bundle formats the device accepts (`bundle-formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleFormats {
    /// `plain` allowed.
    pub plain: bool,
    /// `verity` allowed.
    pub verity: bool,
    /// `crypt` allowed.
    pub crypt: bool,
}

impl Default for BundleFormats {
    fn default() -> Self {
        BundleFormats {
            plain: true,
            verity: true,
            crypt: true,
        }
    }
}

/// Where slot status is kept (`statusfile` / `data-directory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusLocation {
    /// `statusfile=per-slot` (or nothing configured): a `slot.raucs` inside each mountable slot.
    PerSlot,
    /// One central file.
    Central(PathBuf),
}

/// How the system variant is determined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariantSource {
    /// `variant-name=`.
    Name(String),
    /// `variant-file=`: the file's content (trimmed).
    File(PathBuf),
    /// `variant-dtb=true`: the device tree's first compatible string.
    Dtb,
}

/// `[encryption]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// `key`: a `pkcs11:` URI or `tpm2:` spec kept verbatim, or a resolved PEM path.
    pub key: Option<String>,
    /// `cert` (resolved).
    pub cert: Option<PathBuf>,
}

/// `[handlers]` (all resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlersConfig {
    /// `system-info`.
    pub system_info: Option<PathBuf>,
    /// `pre-install`.
    pub pre_install: Option<PathBuf>,
    /// `post-install`.
    pub post_install: Option<PathBuf>,
    /// `bootloader-custom-backend` (bootloader=custom only).
    pub bootloader_custom_backend: Option<PathBuf>,
}

/// The resolved `system.conf`: every default applied, every path absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// The file this was read from (`None` for a text parsed in memory).
    pub path: Option<PathBuf>,
    /// `compatible`.
    pub compatible: String,
    /// `bootloader`.
    pub bootloader: BootloaderKind,
    /// `mountprefix` (or `--mount`).
    pub mount_prefix: PathBuf,
    /// `bundle-formats`.
    pub bundle_formats: BundleFormats,
    /// `max-bundle-download-size`.
    pub max_bundle_download_size: u64,
    /// `data-directory`.
    pub data_directory: Option<PathBuf>,
    /// Where slot status is kept.
    pub status: StatusLocation,
    /// `activate-installed`.
    pub activate_installed: bool,
    /// `variant-*`.
    pub variant: Option<VariantSource>,
    /// `grubenv` (grub only; default `/boot/grub/grubenv`).
    pub grubenv: PathBuf,
    /// `efi-use-bootnext`.
    pub efi_use_bootnext: bool,
    /// `barebox-statename`.
    pub barebox_statename: Option<String>,
    /// `barebox-dtbpath`.
    pub barebox_dtbpath: Option<PathBuf>,
    /// `boot-attempts` (uboot/barebox).
    pub boot_attempts: Option<u32>,
    /// `boot-attempts-primary` (uboot/barebox).
    pub boot_attempts_primary: Option<u32>,
    /// `[keyring]`.
    pub keyring: Keyring,
    /// `[encryption]`.
    pub encryption: EncryptionConfig,
    /// `[handlers]`.
    pub handlers: HandlersConfig,
    /// `[casync]` keys (accepted, unused).
    pub casync: Vec<(String, String)>,
    /// `[streaming]` keys (accepted, unused: no streaming, as in Debian's rauc 1.8).
    pub streaming: Vec<(String, String)>,
    /// `[autoinstall] path`.
    pub autoinstall_path: Option<PathBuf>,
    /// Slots in file order.
    pub slots: Vec<SlotConfig>,
}

impl SystemConfig {
    /// Reads and resolves `path` (relative paths inside are resolved against its directory).
    pub fn load(path: &Path) -> Result<SystemConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("failed to read system config", path, e))?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut cfg = Self::parse(&text, &abs)?;
        cfg.path = Some(abs);
        Ok(cfg)
    }

    /// Loads `--conf` if given, else [`defaults::CONFIG_PATH`].
    pub fn load_default(conf: Option<&Path>) -> Result<SystemConfig> {
        Self::load(conf.unwrap_or(Path::new(defaults::CONFIG_PATH)))
    }

    /// Parses text as if it were the file `path` (which is used for resolving and messages).
    pub fn parse(text: &str, path: &Path) -> Result<SystemConfig> {
        let raw = RawConfig::parse(text).map_err(|source| Error::ConfigFile {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::resolve(raw, path)?;
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Looks a slot up by name (`rootfs.0`).
    pub fn slot(&self, name: &str) -> Option<&SlotConfig> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// The root of a slot's group (itself when it has no parent).
    pub fn root_of<'a>(&'a self, slot: &'a SlotConfig) -> &'a SlotConfig {
        slot.parent
            .as_deref()
            .and_then(|p| self.slot(p))
            .unwrap_or(slot)
    }

    /// The children of a slot (slots whose root parent is `name`).
    pub fn children_of(&self, name: &str) -> impl Iterator<Item = &SlotConfig> {
        self.slots
            .iter()
            .filter(move |s| s.parent.as_deref() == Some(name))
    }

    /// Distinct classes of slots without a parent, in file order.
    pub fn root_classes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in self.slots.iter().filter(|s| s.parent.is_none()) {
            if !out.contains(&s.class.as_str()) {
                out.push(&s.class);
            }
        }
        out
    }

    /// The system variant, read from its source (`variant-file` / device tree) now.
    pub fn system_variant(&self) -> Result<Option<String>> {
        match &self.variant {
            None => Ok(None),
            Some(VariantSource::Name(n)) => Ok(Some(n.clone())),
            Some(VariantSource::File(p)) => std::fs::read_to_string(p)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| Error::io("failed to read variant-file", p, e)),
            Some(VariantSource::Dtb) => {
                let p = Path::new("/proc/device-tree/compatible");
                let bytes = std::fs::read(p).map_err(|e| Error::io("failed to read", p, e))?;
                let first = bytes.split(|b| *b == 0).next().unwrap_or_default();
                Ok(Some(String::from_utf8_lossy(first).into_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests;

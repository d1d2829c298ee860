//! `[slot.CLASS.INDEX]` groups: the resolved slot description.

use std::path::PathBuf;

/// Slot types rauc 1.8 accepts in `system.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotType {
    /// A block device or file written byte for byte.
    Raw,
    /// An ext4 file system.
    Ext4,
    /// A UBIFS volume.
    Ubifs,
    /// A UBI volume.
    Ubivol,
    /// Raw NAND (flash_erase + nandwrite).
    Nand,
    /// Raw NOR (flashcp).
    Nor,
    /// A FAT file system.
    Vfat,
    /// A JFFS2 file system.
    Jffs2,
    /// eMMC boot partitions.
    BootEmmc,
    /// MBR partition switch.
    BootMbrSwitch,
    /// GPT partition switch.
    BootGptSwitch,
    /// Raw boot fallback.
    BootRawFallback,
}

impl SlotType {
    /// Every type, for messages and tests.
    pub const ALL: [SlotType; 12] = [
        Self::Raw,
        Self::Ext4,
        Self::Ubifs,
        Self::Ubivol,
        Self::Nand,
        Self::Nor,
        Self::Vfat,
        Self::Jffs2,
        Self::BootEmmc,
        Self::BootMbrSwitch,
        Self::BootGptSwitch,
        Self::BootRawFallback,
    ];

    /// Parses a `type=` value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The `type=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Ext4 => "ext4",
            Self::Ubifs => "ubifs",
            Self::Ubivol => "ubivol",
            Self::Nand => "nand",
            Self::Nor => "nor",
            Self::Vfat => "vfat",
            Self::Jffs2 => "jffs2",
            Self::BootEmmc => "boot-emmc",
            Self::BootMbrSwitch => "boot-mbr-switch",
            Self::BootGptSwitch => "boot-gpt-switch",
            Self::BootRawFallback => "boot-raw-fallback",
        }
    }

    /// Whether a file system on this slot can be mounted (per-slot status lives there).
    pub fn is_mountable(self) -> bool {
        matches!(self, Self::Ext4 | Self::Ubifs | Self::Vfat | Self::Jffs2)
    }
}

impl std::fmt::Display for SlotType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One slot from `system.conf`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotConfig {
    /// `CLASS.INDEX`, e.g. `rootfs.0`.
    pub name: String,
    /// `CLASS`, e.g. `rootfs`.
    pub class: String,
    /// `INDEX` as written, e.g. `0`.
    pub index: String,
    /// `device` (relative paths resolved against the config directory).
    pub device: PathBuf,
    /// `type` (default raw).
    pub slot_type: SlotType,
    /// `bootname` (root slots only; unique).
    pub bootname: Option<String>,
    /// Name of the root slot of this slot's group (grandparent links already followed).
    pub parent: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `readonly`.
    pub readonly: bool,
    /// `install-same` (aliases `force-install-same`, `ignore-checksum`; default true).
    pub install_same: bool,
    /// `allow-mounted`.
    pub allow_mounted: bool,
    /// `extra-mount-opts`.
    pub extra_mount_opts: Option<String>,
    /// `resize`.
    pub resize: bool,
    /// `region-start` in bytes (boot-*-switch, boot-raw-fallback).
    pub region_start: Option<u64>,
    /// `region-size` in bytes.
    pub region_size: Option<u64>,
    /// Per-slot data directory `<data-directory>/slot.CLASS.INDEX`, when a data directory is set.
    pub data_directory: Option<PathBuf>,
}

/// Parses a size with an optional `K`/`M`/`G`/`T` suffix (powers of 1024), as RAUC does for
/// `region-start`/`region-size`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

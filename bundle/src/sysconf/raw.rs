//! Stage one of `system.conf` parsing: key file → [`RawConfig`], every key taken exactly as
//! written (no defaults, no path resolution), with RAUC's consume-based strictness.
//!
//! Keys that RAUC consumes only under a condition are taken only under that condition, so they
//! are "Invalid key" errors otherwise: `grubenv` (grub), `efi-use-bootnext` (efi),
//! `barebox-statename`/`barebox-dtbpath` (barebox), `[handlers] bootloader-custom-backend`
//! (custom) and `region-start`/`region-size` (boot-*-switch and boot-raw-fallback slots).

use crate::keyfile::{Group, KeyFile, KeyFileError};

type KfResult<T> = std::result::Result<T, KeyFileError>;

/// `[system]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawSystem {
    /// `compatible`.
    pub compatible: Option<String>,
    /// `bootloader`.
    pub bootloader: Option<String>,
    /// `mountprefix`.
    pub mountprefix: Option<String>,
    /// `bundle-formats`.
    pub bundle_formats: Option<String>,
    /// `max-bundle-download-size`.
    pub max_bundle_download_size: Option<u64>,
    /// `data-directory`.
    pub data_directory: Option<String>,
    /// `statusfile`.
    pub statusfile: Option<String>,
    /// `activate-installed`.
    pub activate_installed: Option<bool>,
    /// `variant-name`.
    pub variant_name: Option<String>,
    /// `variant-file`.
    pub variant_file: Option<String>,
    /// `variant-dtb`.
    pub variant_dtb: Option<bool>,
    /// `grubenv` (only taken with `bootloader=grub`).
    pub grubenv: Option<String>,
    /// `efi-use-bootnext` (only taken with `bootloader=efi`).
    pub efi_use_bootnext: Option<bool>,
    /// `barebox-statename` (only with `bootloader=barebox`).
    pub barebox_statename: Option<String>,
    /// `barebox-dtbpath` (only with `bootloader=barebox`).
    pub barebox_dtbpath: Option<String>,
    /// `boot-attempts`.
    pub boot_attempts: Option<u64>,
    /// `boot-attempts-primary`.
    pub boot_attempts_primary: Option<u64>,
}

/// `[keyring]` as written.
#[derive(Debug, Clone, Default)]
pub struct RawKeyring {
    /// `path`.
    pub path: Option<String>,
    /// `directory`.
    pub directory: Option<String>,
    /// `check-crl`.
    pub check_crl: Option<bool>,
    /// `allow-partial-chain`.
    pub allow_partial_chain: Option<bool>,
    /// `use-bundle-signing-time`.
    pub use_bundle_signing_time: Option<bool>,
    /// `check-purpose`.
    pub check_purpose: Option<String>,
}

/// One `[slot.CLASS.INDEX]` group as written.
#[derive(Debug, Clone, Default)]
pub struct RawSlot {
    /// The group name, e.g. `slot.rootfs.0`.
    pub group: String,
    /// `description`.
    pub description: Option<String>,
    /// `device`.
    pub device: Option<String>,
    /// `type`.
    pub slot_type: Option<String>,
    /// `bootname`.
    pub bootname: Option<String>,
    /// `parent`.
    pub parent: Option<String>,
    /// `allow-mounted`.
    pub allow_mounted: Option<bool>,
    /// `readonly`.
    pub readonly: Option<bool>,
    /// `install-same` or its aliases `force-install-same`, `ignore-checksum` (first present wins).
    pub install_same: Option<bool>,
    /// `extra-mount-opts`.
    pub extra_mount_opts: Option<String>,
    /// `resize`.
    pub resize: Option<bool>,
    /// `region-start` (only for boot-*-switch / boot-raw-fallback).
    pub region_start: Option<String>,
    /// `region-size` (only for boot-*-switch / boot-raw-fallback).
    pub region_size: Option<String>,
}

/// The whole file as written, stage one of two.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// `[system]`.
    pub system: RawSystem,
    /// `[keyring]`.
    pub keyring: RawKeyring,
    /// `[casync]` storepath, tmppath, install-args, use-desync.
    pub casync: Vec<(String, String)>,
    /// `[streaming]` sandbox-user, tls-cert, tls-key, tls-ca.
    pub streaming: Vec<(String, String)>,
    /// `[encryption] key`.
    pub encryption_key: Option<String>,
    /// `[encryption] cert`.
    pub encryption_cert: Option<String>,
    /// `[autoinstall] path`.
    pub autoinstall_path: Option<String>,
    /// `[handlers] system-info`.
    pub handler_system_info: Option<String>,
    /// `[handlers] pre-install`.
    pub handler_pre_install: Option<String>,
    /// `[handlers] post-install`.
    pub handler_post_install: Option<String>,
    /// `[handlers] bootloader-custom-backend` (only with `bootloader=custom`).
    pub handler_custom_backend: Option<String>,
    /// Slot groups in file order.
    pub slots: Vec<RawSlot>,
}

/// Slot types whose groups take `region-start` / `region-size`.
pub const REGION_SLOT_TYPES: [&str; 3] =
    ["boot-mbr-switch", "boot-gpt-switch", "boot-raw-fallback"];

impl RawConfig {
    /// Parses `system.conf` text with RAUC's strictness (unknown keys and groups are errors).
    pub fn parse(text: &str) -> KfResult<RawConfig> {
        let mut kf = KeyFile::parse(text)?;
        let mut raw = RawConfig::default();
        if let Some(g) = kf.take_group("system") {
            raw.system = parse_system(g)?;
        }
        let bootloader = raw.system.bootloader.clone().unwrap_or_default();
        if let Some(g) = kf.take_group("keyring") {
            raw.keyring = parse_keyring(g)?;
        }
        if let Some(g) = kf.take_group("casync") {
            raw.casync = take_known(g, &["storepath", "tmppath", "install-args", "use-desync"])?;
        }
        if let Some(g) = kf.take_group("streaming") {
            let keys = ["sandbox-user", "tls-cert", "tls-key", "tls-ca"];
            raw.streaming = take_known(g, &keys)?;
        }
        if let Some(mut g) = kf.take_group("encryption") {
            raw.encryption_key = g.take_string("key")?;
            raw.encryption_cert = g.take_string("cert")?;
            g.finish()?;
        }
        if let Some(mut g) = kf.take_group("autoinstall") {
            raw.autoinstall_path = g.take_string("path")?;
            g.finish()?;
        }
        if let Some(mut g) = kf.take_group("handlers") {
            raw.handler_system_info = g.take_string("system-info")?;
            raw.handler_pre_install = g.take_string("pre-install")?;
            raw.handler_post_install = g.take_string("post-install")?;
            if bootloader == "custom" {
                raw.handler_custom_backend = g.take_string("bootloader-custom-backend")?;
            }
            g.finish()?;
        }
        for g in kf.take_groups_with_prefix("slot.") {
            raw.slots.push(parse_slot(g)?);
        }
        kf.finish()?;
        Ok(raw)
    }
}

fn parse_system(mut g: Group) -> KfResult<RawSystem> {
    let mut s = RawSystem {
        compatible: g.take_string("compatible")?,
        bootloader: g.take_string("bootloader")?,
        ..RawSystem::default()
    };
    match s.bootloader.as_deref() {
        Some("grub") => s.grubenv = g.take_string("grubenv")?,
        Some("efi") => s.efi_use_bootnext = g.take_bool("efi-use-bootnext")?,
        Some("barebox") => {
            s.barebox_statename = g.take_string("barebox-statename")?;
            s.barebox_dtbpath = g.take_string("barebox-dtbpath")?;
        }
        _ => {}
    }
    s.boot_attempts = g.take_u64("boot-attempts")?;
    s.boot_attempts_primary = g.take_u64("boot-attempts-primary")?;
    s.max_bundle_download_size = g.take_u64("max-bundle-download-size")?;
    s.mountprefix = g.take_string("mountprefix")?;
    s.activate_installed = g.take_bool("activate-installed")?;
    s.variant_dtb = g.take_bool("variant-dtb")?;
    s.variant_file = g.take_string("variant-file")?;
    s.variant_name = g.take_string("variant-name")?;
    s.data_directory = g.take_string("data-directory")?;
    s.statusfile = g.take_string("statusfile")?;
    s.bundle_formats = g.take_string("bundle-formats")?;
    g.finish()?;
    Ok(s)
}

fn parse_keyring(mut g: Group) -> KfResult<RawKeyring> {
    let k = RawKeyring {
        path: g.take_string("path")?,
        directory: g.take_string("directory")?,
        check_crl: g.take_bool("check-crl")?,
        allow_partial_chain: g.take_bool("allow-partial-chain")?,
        use_bundle_signing_time: g.take_bool("use-bundle-signing-time")?,
        check_purpose: g.take_string("check-purpose")?,
    };
    g.finish()?;
    Ok(k)
}

fn parse_slot(mut g: Group) -> KfResult<RawSlot> {
    let mut s = RawSlot {
        group: g.name().to_string(),
        description: g.take_string("description")?,
        device: g.take_string("device")?,
        slot_type: g.take_string("type")?,
        bootname: g.take_string("bootname")?,
        parent: g.take_string("parent")?,
        allow_mounted: g.take_bool("allow-mounted")?,
        readonly: g.take_bool("readonly")?,
        ..RawSlot::default()
    };
    // RAUC reads the first of the three names that is present and drops the others.
    let same = g.take_bool("install-same")?;
    let force = g.take_bool("force-install-same")?;
    let ignore = g.take_bool("ignore-checksum")?;
    s.install_same = same.or(force).or(ignore);
    s.extra_mount_opts = g.take_string("extra-mount-opts")?;
    s.resize = g.take_bool("resize")?;
    if REGION_SLOT_TYPES.contains(&s.slot_type.as_deref().unwrap_or("raw")) {
        s.region_start = g.take_string("region-start")?;
        s.region_size = g.take_string("region-size")?;
    }
    g.finish()?;
    Ok(s)
}

fn take_known(mut g: Group, keys: &[&str]) -> KfResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for key in keys {
        if let Some(v) = g.take_string(key)? {
            out.push(((*key).to_string(), v));
        }
    }
    g.finish()?;
    Ok(out)
}

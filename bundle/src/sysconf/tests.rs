use std::path::{Path, PathBuf};

use super::*;

const CONF: &str = "/etc/rauc/system.conf";

fn parse(text: &str) -> Result<SystemConfig> {
    SystemConfig::parse(text, Path::new(CONF))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// rauc-format.md §8 "Minimal target config that rauc 1.8 accepts".
const MINIMAL_18: &str = "[system]
compatible=Test Device
bootloader=noop
bundle-formats=plain verity crypt
data-directory=/var/lib/rauc

[keyring]
path=/etc/rauc/keyring.pem
check-purpose=codesign

[slot.rootfs.0]
device=/dev/sda2
type=raw
bootname=A

[slot.rootfs.1]
device=/dev/sda3
type=raw
bootname=B
";

#[test]
fn minimal_18_config() {
    let c = parse(MINIMAL_18).unwrap();
    assert_eq!(c.compatible, "Test Device");
    assert_eq!(c.bootloader, BootloaderKind::Noop);
    assert_eq!(c.bundle_formats, BundleFormats::default());
    assert_eq!(
        c.status,
        StatusLocation::Central("/var/lib/rauc/central.raucs".into())
    );
    assert_eq!(
        c.keyring.path.as_deref(),
        Some(Path::new("/etc/rauc/keyring.pem"))
    );
    assert_eq!(c.keyring.check_purpose.as_deref(), Some("codesign"));
    assert_eq!(c.slots.len(), 2);
    let s = &c.slots[1];
    assert_eq!(
        (s.name.as_str(), s.class.as_str(), s.index.as_str()),
        ("rootfs.1", "rootfs", "1")
    );
    assert_eq!(s.device, PathBuf::from("/dev/sda3"));
    assert_eq!(s.bootname.as_deref(), Some("B"));
    assert!(s.install_same && !s.readonly);
    assert_eq!(
        s.data_directory.as_deref(),
        Some(Path::new("/var/lib/rauc/slot.rootfs.1"))
    );
    assert_eq!(c.mount_prefix, PathBuf::from("/mnt/rauc/"));
    assert!(c.activate_installed);
    assert_eq!(c.max_bundle_download_size, 8388608);
}

/// environment.md §6.1, with a relative data directory and slot files.
#[test]
fn environment_61_config_resolves_relative_paths() {
    let text = "[system]\ncompatible=Test Device\nbootloader=noop\nbundle-formats=plain verity crypt\n\
        data-directory=data\n\n[keyring]\npath=pki/root.cert.pem\ncheck-purpose=codesign\n\n\
        [slot.rootfs.0]\ndevice=slot-a.img\ntype=raw\nbootname=A\n\n\
        [slot.rootfs.1]\ndevice=slot-b.img\ntype=raw\nbootname=B\n";
    let c = SystemConfig::parse(text, Path::new("/work/rauc/system.conf")).unwrap();
    assert_eq!(c.slots[0].device, PathBuf::from("/work/rauc/slot-a.img"));
    assert_eq!(
        c.status,
        StatusLocation::Central("/work/rauc/data/central.raucs".into())
    );
    assert_eq!(
        c.keyring.path.unwrap(),
        PathBuf::from("/work/rauc/pki/root.cert.pem")
    );
}

#[test]
fn full_18_vocabulary() {
    let text = "[system]\ncompatible=X\nbootloader=grub\ngrubenv=/boot/efi/grubenv\nmountprefix=/run/m\n\
        bundle-formats=-plain\nmax-bundle-download-size=100\nstatusfile=status.raucs\n\
        activate-installed=false\nvariant-name=v1\nboot-attempts=3\nboot-attempts-primary=5\n\
        [keyring]\ndirectory=certs\ncheck-crl=true\nallow-partial-chain=true\nuse-bundle-signing-time=true\n\
        [encryption]\nkey=pkcs11:token=dev;object=enc\ncert=enc.pem\n\
        [handlers]\nsystem-info=/usr/lib/rauc/info\npre-install=pre\npost-install=post\n\
        [casync]\nstorepath=/s\nuse-desync=true\n[streaming]\nsandbox-user=nobody\n[autoinstall]\npath=/a\n\
        [slot.rootfs.0]\ndevice=/dev/a\ntype=ext4\nbootname=A\nforce-install-same=false\nallow-mounted=true\n\
        readonly=false\ndescription=Root A\nextra-mount-opts=ro\nresize=true\n\
        [slot.appfs.0]\ndevice=/dev/b\ntype=vfat\nparent=rootfs.0\nignore-checksum=false\n\
        [slot.boot.0]\ndevice=/dev/mmcblk0\ntype=boot-mbr-switch\nregion-start=1M\nregion-size=32M\n";
    let c = parse(text).unwrap();
    assert_eq!(c.grubenv, PathBuf::from("/boot/efi/grubenv"));
    assert!(!c.bundle_formats.plain && c.bundle_formats.verity && c.bundle_formats.crypt);
    assert_eq!(
        c.status,
        StatusLocation::Central("/etc/rauc/status.raucs".into())
    );
    assert_eq!(c.variant, Some(VariantSource::Name("v1".into())));
    assert_eq!(
        (c.boot_attempts, c.boot_attempts_primary),
        (Some(3), Some(5))
    );
    assert_eq!(
        c.encryption.key.as_deref(),
        Some("pkcs11:token=dev;object=enc")
    );
    assert_eq!(
        c.encryption.cert.clone().unwrap(),
        PathBuf::from("/etc/rauc/enc.pem")
    );
    assert_eq!(
        c.handlers.pre_install.clone().unwrap(),
        PathBuf::from("/etc/rauc/pre")
    );
    assert!(!c.slots[0].install_same && !c.slots[1].install_same);
    assert_eq!(c.slots[1].parent.as_deref(), Some("rootfs.0"));
    assert_eq!(c.slots[2].region_start, Some(1 << 20));
    assert_eq!(c.root_classes(), vec!["rootfs", "boot"]);
}

#[test]
fn tpm2_and_pem_key_specs() {
    let base = "[system]\ncompatible=X\nbootloader=noop\n[encryption]\nkey=";
    let c = parse(&format!("{base}tpm2:handle=0x81000001\n")).unwrap();
    assert_eq!(c.encryption.key.as_deref(), Some("tpm2:handle=0x81000001"));
    let c = parse(&format!("{base}keys/dev.pem\n")).unwrap();
    assert_eq!(c.encryption.key.as_deref(), Some("/etc/rauc/keys/dev.pem"));
}

#[test]
fn bundle_formats_forms() {
    use super::resolve::parse_bundle_formats as p;
    assert_eq!(
        p("verity").unwrap(),
        BundleFormats {
            plain: false,
            verity: true,
            crypt: false
        }
    );
    assert_eq!(
        p("+plain -crypt").unwrap(),
        BundleFormats {
            plain: true,
            verity: true,
            crypt: false
        }
    );
    assert!(p("verity +crypt").unwrap_err().contains("cannot combine"));
    assert!(
        p("-plain -verity -crypt")
            .unwrap_err()
            .contains("no remaining formats")
    );
    assert_eq!(p("zip").unwrap_err(), "Invalid bundle format 'zip'");
}

#[test]
fn unknown_key_and_group() {
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\nfoo=1\n")
            .ends_with("Invalid key 'foo' in group '[system]'")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\n[log.x]\nfilename=y\n")
            .ends_with("Invalid group '[log.x]'")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\n[slot.a.0]\ndevice=/d\nsize-limit=1\n")
            .ends_with("Invalid key 'size-limit' in group '[slot.a.0]'")
    );
}

#[test]
fn conditionally_consumed_keys() {
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\ngrubenv=/g\n")
            .ends_with("Invalid key 'grubenv' in group '[system]'")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=grub\nefi-use-bootnext=false\n")
            .ends_with("Invalid key 'efi-use-bootnext' in group '[system]'")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\n[handlers]\nbootloader-custom-backend=/b\n")
            .ends_with("Invalid key 'bootloader-custom-backend' in group '[handlers]'")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\n[slot.a.0]\ndevice=/d\nregion-start=1\n")
            .ends_with("Invalid key 'region-start' in group '[slot.a.0]'")
    );
    let c = parse(
        "[system]\ncompatible=X\nbootloader=custom\n[handlers]\nbootloader-custom-backend=bin/bl\n",
    )
    .unwrap();
    assert_eq!(
        c.handlers.bootloader_custom_backend.unwrap(),
        PathBuf::from("/etc/rauc/bin/bl")
    );
}

#[test]
fn system_errors() {
    assert!(
        err("[system]\nbootloader=noop\n")
            .ends_with("Missing key 'compatible' in group '[system]'")
    );
    assert!(err("[system]\ncompatible=X\n").ends_with("No bootloader selected in system config"));
    assert!(
        err("[system]\ncompatible=X\nbootloader=lilo\n")
            .ends_with("Unsupported bootloader 'lilo' selected in system config")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=custom\n")
            .ends_with("No custom bootloader backend defined")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\nstatusfile=per-slot\ndata-directory=/d\n")
            .ends_with("Using data-directory= with statusfile=per-slot is not supported.")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\nvariant-name=a\nvariant-dtb=true\n")
            .contains("Only one of the keys")
    );
    assert!(
        err("[system]\ncompatible=X\nbootloader=noop\nmax-bundle-download-size=0\n")
            .contains("max-bundle-download-size")
    );
}

#[test]
fn slot_errors() {
    let base = "[system]\ncompatible=X\nbootloader=noop\n";
    let e = |s: &str| err(&format!("{base}{s}"));
    assert!(
        e("[slot.rootfs.0]\ndevice=/d\ntype=btrfs\n")
            .ends_with("Unsupported slot type 'btrfs' for slot rootfs.0 selected in system config")
    );
    assert!(
        e("[slot.rootfs.0]\ntype=raw\n")
            .ends_with("Missing key 'device' in group '[slot.rootfs.0]'")
    );
    assert!(e("[slot.rootfs]\ndevice=/d\n").ends_with("Invalid slot name format: slot.rootfs"));
    assert!(
        e("[slot.a.0]\ndevice=/a\nbootname=A\n[slot.a.1]\ndevice=/b\nbootname=A\n")
            .ends_with("Bootname 'A' is set on more than one slot")
    );
    assert!(e("[slot.a.0]\ndevice=/a\nparent=b.0\n").ends_with("Parent slot 'b.0' not found!"));
    assert!(
        e("[slot.a.0]\ndevice=/a\nparent=b.0\n[slot.b.0]\ndevice=/b\nparent=a.0\n")
            .ends_with("has a parent loop!")
    );
    assert!(
        e("[slot.r.0]\ndevice=/a\n[slot.a.0]\ndevice=/a\nparent=r.0\nbootname=X\n")
            .ends_with("Child slot 'a.0' has bootname set")
    );
    assert!(
        e("[slot.b.0]\ndevice=/d\ntype=boot-raw-fallback\nregion-start=0\n")
            .contains("mandatory for boot-raw-fallback")
    );
    assert!(
        e("[slot.j.0]\ndevice=j.img\ntype=jffs2\n").contains("device must be located in /dev/")
    );
}

#[test]
fn grandparent_links_are_followed() {
    let c = parse(
        "[system]\ncompatible=X\nbootloader=noop\n[slot.r.0]\ndevice=/a\nbootname=A\n\
         [slot.c.0]\ndevice=/b\nparent=r.0\n[slot.g.0]\ndevice=/c\nparent=c.0\n",
    )
    .unwrap();
    assert_eq!(c.slot("g.0").unwrap().parent.as_deref(), Some("r.0"));
    assert_eq!(c.children_of("r.0").count(), 2);
    assert_eq!(c.root_of(c.slot("g.0").unwrap()).name, "r.0");
}

#[test]
fn every_18_slot_type_parses() {
    for t in SlotType::ALL {
        let dev = if t == SlotType::Jffs2 {
            "/dev/mtd0"
        } else {
            "/d"
        };
        let region = if raw::REGION_SLOT_TYPES.contains(&t.as_str()) {
            "region-start=0\nregion-size=4K\n"
        } else {
            ""
        };
        let text = format!(
            "[system]\ncompatible=X\nbootloader=noop\n[slot.s.0]\ndevice={dev}\ntype={t}\n{region}"
        );
        assert_eq!(parse(&text).unwrap().slots[0].slot_type, t);
    }
}

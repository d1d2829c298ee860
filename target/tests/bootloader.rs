//! Bootloader backends: custom (a real backend script), grub (the 1024-byte environment block
//! file), uboot (through `fw_printenv`/`fw_setenv` test doubles over a plain file, since no
//! U-Boot environment device exists here) and noop.

mod common;

use std::path::Path;

use common::{Device, write_script};
use target::bootloader::custom::Custom;
use target::bootloader::grub::{ENVBLK_SIZE, Grub, GrubEnv};
use target::bootloader::noop::Noop;
use target::bootloader::uboot::Uboot;
use target::bootloader::{BootSlots, BootState, Bootloader};
use target::config::SystemConfig;

fn config(dev: &Device) -> SystemConfig {
    SystemConfig::load(&dev.conf()).unwrap()
}

const CUSTOM: &str = r#"S="$(dirname "$0")/state"
touch "$S"
echo "$*" >> "$(dirname "$0")/calls"
case "$1" in
  get-primary) grep '^primary=' "$S" | cut -d= -f2 ;;
  set-primary) sed -i '/^primary=/d' "$S"; echo "primary=$2" >> "$S" ;;
  get-state) v=$(grep "^$2=" "$S" | cut -d= -f2); echo "${v:-bad}" ;;
  set-state) sed -i "/^$2=/d" "$S"; echo "$2=$3" >> "$S" ;;
  get-current) echo A ;;
  *) exit 1 ;;
esac
"#;

#[test]
fn custom_backend_script() {
    let dev = Device::new("", "");
    let script = dev.path("backend.sh");
    write_script(&script, CUSTOM);
    let cfg = config(&dev);
    let bl = Custom::new(script.clone(), BootSlots::from_config(&cfg));
    let b = cfg.slot("rootfs.1").unwrap();
    bl.set_state(b, BootState::Bad).unwrap();
    assert_eq!(bl.get_state(b).unwrap(), BootState::Bad);
    bl.set_primary(b).unwrap();
    bl.set_state(b, BootState::Good).unwrap();
    assert_eq!(bl.get_state(b).unwrap(), BootState::Good);
    assert_eq!(bl.get_primary().unwrap(), "rootfs.1");
    assert_eq!(bl.get_current().unwrap().as_deref(), Some("A"));
    let calls = std::fs::read_to_string(dev.path("calls")).unwrap();
    assert_eq!(
        calls,
        "set-state B bad\nget-state B\nset-primary B\nset-state B good\nget-state B\nget-primary\nget-current\n"
    );
    // Answers the interface does not allow are errors in rauc's wording.
    write_script(&script, "echo maybe\n");
    let e = bl.get_state(b).unwrap_err().to_string();
    assert_eq!(
        e,
        "Obtained string does not match \"good\" or \"bad\": 'maybe'"
    );
    write_script(&script, "echo C\n");
    assert_eq!(
        bl.get_primary().unwrap_err().to_string(),
        "'C' does not match any configured bootname"
    );
    write_script(&script, "exit 4\n");
    assert!(
        bl.set_primary(b)
            .unwrap_err()
            .to_string()
            .ends_with("failed with exit code 4")
    );
}

#[test]
fn custom_backend_from_config_drives_install_order() {
    // bootloader=custom parsed from system.conf, backend resolved relative to it.
    let dev = Device::new("", "");
    let conf = std::fs::read_to_string(dev.conf())
        .unwrap()
        .replace("bootloader=noop", "bootloader=custom")
        + "\n[handlers]\nbootloader-custom-backend=backend.sh\n";
    std::fs::write(dev.conf(), conf).unwrap();
    write_script(&dev.path("backend.sh"), CUSTOM);
    let ctx = target::install::Context::new(config(&dev), Some("A")).unwrap();
    assert_eq!(ctx.bootloader.name(), "custom");
    let (slot, msg) = target::mark::mark(&ctx, "active", "other").unwrap();
    assert_eq!(
        (slot.as_str(), msg.as_str()),
        ("rootfs.1", "activated slot rootfs.1")
    );
    let (_, msg) = target::mark::mark(&ctx, "bad", "rootfs.1").unwrap();
    assert_eq!(msg, "marked slot rootfs.1 as bad");
    assert_eq!(
        std::fs::read_to_string(dev.path("calls")).unwrap(),
        "set-primary B\nset-state B bad\n"
    );
}

fn read_block(p: &Path) -> Vec<u8> {
    let data = std::fs::read(p).unwrap();
    assert_eq!(data.len(), ENVBLK_SIZE);
    data
}

#[test]
fn grub_environment_block() {
    let dev = Device::new("", "");
    let cfg = config(&dev);
    let env_path = dev.path("grubenv");
    // A block as grub-editenv writes it, with a foreign variable that must survive.
    let mut initial = GrubEnv::default();
    initial.set("ORDER", "A B");
    initial.set("A_OK", "1");
    initial.set("A_TRY", "0");
    initial.set("B_OK", "1");
    initial.set("B_TRY", "1");
    initial.set("saved_entry", "x\\y");
    std::fs::write(&env_path, initial.to_block().unwrap()).unwrap();

    let grub = Grub::new(env_path.clone(), BootSlots::from_config(&cfg));
    let (a, b) = (cfg.slot("rootfs.0").unwrap(), cfg.slot("rootfs.1").unwrap());
    assert_eq!(grub.get_primary().unwrap(), "rootfs.0");
    assert_eq!(
        grub.get_state(b).unwrap(),
        BootState::Bad,
        "B_TRY=1 is not good"
    );
    grub.set_state(b, BootState::Bad).unwrap();
    grub.set_primary(b).unwrap();
    let block = read_block(&env_path);
    let text = String::from_utf8(block.clone()).unwrap();
    assert!(text.starts_with("# GRUB Environment Block\nORDER=B A\nA_OK=1\nA_TRY=0\nB_OK=1\nB_TRY=0\nsaved_entry=x\\\\y\n#"), "{text}");
    assert!(
        block[text.trim_end_matches('#').len()..]
            .iter()
            .all(|c| *c == b'#')
    );
    assert_eq!(grub.get_primary().unwrap(), "rootfs.1");
    assert_eq!(grub.get_state(a).unwrap(), BootState::Good);
    assert_eq!(
        GrubEnv::parse(&block).unwrap().get("saved_entry"),
        Some("x\\y")
    );
    grub.set_state(a, BootState::Bad).unwrap();
    assert_eq!(grub.get_state(a).unwrap(), BootState::Bad);
    assert!(GrubEnv::parse(b"not a grub block").is_err());
}

#[test]
fn uboot_via_fw_env_doubles() {
    // Test doubles for fw_printenv/fw_setenv over a plain "KEY=VALUE" file.
    let dev = Device::new("", "");
    let env = dev.path("ubootenv");
    std::fs::write(&env, "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n").unwrap();
    write_script(
        &dev.path("fw_printenv"),
        &format!(
            "[ \"$1\" = -n ] || exit 2\nv=$(grep \"^$2=\" {e}) || exit 1\necho \"${{v#*=}}\"\n",
            e = env.display()
        ),
    );
    write_script(
        &dev.path("fw_setenv"),
        &format!(
            "sed -i \"/^$1=/d\" {e}\necho \"$1=$2\" >> {e}\n",
            e = env.display()
        ),
    );
    let cfg = config(&dev);
    let mut u = Uboot::new(BootSlots::from_config(&cfg), Some(5), None);
    u.printenv = dev.path("fw_printenv");
    u.setenv = dev.path("fw_setenv");
    let (a, b) = (cfg.slot("rootfs.0").unwrap(), cfg.slot("rootfs.1").unwrap());
    assert_eq!(u.get_primary().unwrap(), "rootfs.0");
    u.set_state(b, BootState::Bad).unwrap();
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.contains("BOOT_ORDER=A\n") && text.contains("BOOT_B_LEFT=0\n"),
        "{text}"
    );
    assert_eq!(u.get_state(b).unwrap(), BootState::Bad);
    u.set_primary(b).unwrap();
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.contains("BOOT_ORDER=B A\n") && text.contains("BOOT_B_LEFT=3\n"),
        "{text}"
    );
    assert_eq!(u.get_primary().unwrap(), "rootfs.1");
    u.set_state(a, BootState::Good).unwrap();
    assert!(
        std::fs::read_to_string(&env)
            .unwrap()
            .contains("BOOT_A_LEFT=5\n")
    );
}

#[test]
fn noop_matches_rauc() {
    let dev = Device::new("", "");
    let cfg = config(&dev);
    let b = cfg.slot("rootfs.1").unwrap();
    Noop.set_state(b, BootState::Bad).unwrap();
    Noop.set_primary(b).unwrap();
    assert_eq!(
        Noop.get_primary().unwrap_err().to_string(),
        "Obtaining primary entry from bootloader 'noop' not supported yet"
    );
}

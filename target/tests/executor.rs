//! The install executor with file-backed slots on the host. Bundles come from the directory
//! test double (`DirectoryBundleOpener`: an unpacked bundle taken as verified and mounted);
//! the bootloader is the real file-backed `StateFile` backend, so its recorded calls show the
//! order of operations.

mod common;

use std::sync::{Arc, Mutex};

use common::{BundleDir, Device, Img, pattern, write_script};
use openssl::sha::sha256;
use target::bootloader::noop::StateFile;
use target::bootloader::{BootSlots, BootState, Bootloader};
use target::config::SystemConfig;
use target::install::{Context, InstallArgs, install_bundle};
use target::progress::{Progress, ProgressUpdate};
use target::slots::BootId;
use target::source::DirectoryBundleOpener;
use target::status::StatusFile;

struct Run {
    ctx: Context,
    boot: Arc<StateFile>,
    lines: Arc<Mutex<Vec<String>>>,
}

fn context(dev: &Device, booted: &str) -> Run {
    let config = SystemConfig::load(&dev.conf()).unwrap();
    let boot = Arc::new(StateFile::new(
        dev.path("bootstate"),
        BootSlots::from_config(&config),
    ));
    let ctx = Context::with_bootloader(config, boot.clone(), Some(BootId::Id(booted.into())));
    Run {
        ctx,
        boot,
        lines: Arc::new(Mutex::new(Vec::new())),
    }
}

fn install(run: &Run, bundle: &BundleDir, args: &InstallArgs) -> target::Result<()> {
    let lines = run.lines.clone();
    let mut progress = Progress::new(Some(Arc::new(move |u: &ProgressUpdate| {
        lines.lock().unwrap().push(u.line())
    })));
    install_bundle(
        &run.ctx,
        &DirectoryBundleOpener,
        bundle.path().to_str().unwrap(),
        args,
        &mut progress,
    )
}

fn slot_state(run: &Run, name: &str) -> BootState {
    run.boot
        .get_state(run.ctx.config.slot(name).unwrap())
        .unwrap()
}

#[test]
fn success_writes_slots_status_and_activates() {
    let dev = Device::new("", "");
    let run = context(&dev, "A");
    let root = pattern(40000, 1);
    let app = pattern(1234, 2);
    let b = BundleDir::new(
        "Test Device",
        &[
            Img::new("rootfs", "rootfs.img", root.clone()),
            Img::new("appfs", "appfs.img", app.clone()),
        ],
        None,
    );
    install(
        &run,
        &b,
        &InstallArgs {
            transaction_id: Some("t-1".into()),
            ..Default::default()
        },
    )
    .unwrap();

    assert_eq!(
        &std::fs::read(dev.path("slot-b.img")).unwrap()[..root.len()],
        &root[..]
    );
    assert_eq!(
        &std::fs::read(dev.path("app-b.img")).unwrap()[..app.len()],
        &app[..]
    );
    assert!(
        std::fs::read(dev.path("slot-a.img"))
            .unwrap()
            .iter()
            .all(|b| *b == 0),
        "booted slot untouched"
    );
    assert_eq!(run.boot.calls(), vec!["set-state B bad", "set-primary B"]);
    assert_eq!(run.boot.get_primary().unwrap(), "rootfs.1");

    let status = StatusFile::load(&dev.path("data/central.raucs")).unwrap();
    let s = &status.slots["rootfs.1"];
    assert_eq!(s.status.as_deref(), Some("ok"));
    assert_eq!(
        s.sha256.as_deref(),
        Some(hex::encode(sha256(&root)).as_str())
    );
    assert_eq!(s.size, Some(40000));
    assert_eq!(s.bundle_version.as_deref(), Some("2024.01.0"));
    assert_eq!(s.installed_transaction.as_deref(), Some("t-1"));
    assert_eq!((s.installed_count, s.activated_count), (1, 1));
    assert_eq!(status.slots["appfs.1"].installed_count, 1);

    let lines = run.lines.lock().unwrap().clone();
    assert_eq!(lines.first().unwrap(), "  0% Installing");
    assert!(
        lines.contains(&" 99% Updating slots done.".to_string()),
        "{lines:#?}"
    );
    assert_eq!(lines.last().unwrap(), "100% Installing done.");
}

#[test]
fn checksum_mismatch_leaves_target_not_bootable() {
    let dev = Device::new("", "");
    let run = context(&dev, "A");
    let mut img = Img::new("rootfs", "rootfs.img", pattern(5000, 3));
    img.sha_override = Some("0000000000000000000000000000000000000000000000000000000000000000");
    let b = BundleDir::new("Test Device", &[img], None);
    let err = install(&run, &b, &InstallArgs::default()).unwrap_err();
    assert!(
        matches!(err, target::Error::ChecksumMismatch { .. }),
        "{err}"
    );
    assert_eq!(
        run.boot.calls(),
        vec!["set-state B bad"],
        "never marked primary/good"
    );
    assert_eq!(slot_state(&run, "rootfs.1"), BootState::Bad);
    assert!(
        std::fs::read(dev.path("slot-a.img"))
            .unwrap()
            .iter()
            .all(|b| *b == 0)
    );
    let status = StatusFile::load(&dev.path("data/central.raucs")).unwrap();
    assert_eq!(status.slots["rootfs.1"].status.as_deref(), Some("failed"));
    let last = run.lines.lock().unwrap().last().unwrap().clone();
    assert_eq!(last, "100% Installing failed.");
}

#[test]
fn install_same_false_skips_identical_image() {
    let dev = Device::new("", "");
    let conf = std::fs::read_to_string(dev.conf())
        .unwrap()
        .replace("bootname=B\n", "bootname=B\ninstall-same=false\n");
    std::fs::write(dev.conf(), conf).unwrap();
    let run = context(&dev, "A");
    let data = pattern(3000, 4);
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", data.clone())],
        None,
    );
    install(&run, &b, &InstallArgs::default()).unwrap();
    // Scribble on the slot: a skipped install must not rewrite it.
    std::fs::write(dev.path("slot-b.img"), vec![7u8; 65536]).unwrap();
    install(&run, &b, &InstallArgs::default()).unwrap();
    assert!(
        std::fs::read(dev.path("slot-b.img"))
            .unwrap()
            .iter()
            .all(|b| *b == 7)
    );
    let lines = run.lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("Copying image skipped done.")),
        "{lines:#?}"
    );
    let status = StatusFile::load(&dev.path("data/central.raucs")).unwrap();
    assert_eq!(status.slots["rootfs.1"].installed_count, 1);
}

#[test]
fn hooks_and_handlers_get_rauc_environment() {
    let dev = Device::new("", "[handlers]\npre-install=pre.sh\npost-install=post.sh\n");
    let log = dev.path("log");
    for h in ["pre", "post"] {
        write_script(
            &dev.path(&format!("{h}.sh")),
            &format!(
                "echo \"{h} $RAUC_SLOTS|$RAUC_TARGET_SLOTS|$RAUC_SLOT_NAME_2|$RAUC_IMAGE_CLASS_2|$RAUC_CURRENT_BOOTNAME\" >> {}\n",
                log.display()
            ),
        );
    }
    let hook = format!(
        "case \"$1\" in\n slot-install) cat \"$RAUC_IMAGE_NAME\" > \"$RAUC_SLOT_DEVICE\" ;;\nesac\n\
         env | grep -E '^RAUC_(SLOT|IMAGE|SYSTEM|MOUNT|BUNDLE)' | sort | sed \"s/^/$1 /\" >> {}\n",
        log.display()
    );
    let mut root = Img::new("rootfs", "rootfs.img", pattern(2048, 5));
    root.hooks = "pre-install;post-install;";
    let mut app = Img::new("appfs", "appfs.tar", pattern(100, 6));
    app.hooks = "install;";
    let b = BundleDir::new("Test Device", &[root, app], Some(&hook));
    let run = context(&dev, "A");
    install(&run, &b, &InstallArgs::default()).unwrap();

    let log = std::fs::read_to_string(&log).unwrap();
    let bdir = b.path().display().to_string();
    let want = [
        "pre 1 2 3 4|2 4|rootfs.1|rootfs|A".to_string(),
        "slot-pre-install RAUC_SLOT_NAME=rootfs.1".to_string(),
        "slot-pre-install RAUC_SLOT_BOOTNAME=B".to_string(),
        "slot-pre-install RAUC_SLOT_STATE=inactive".to_string(),
        "slot-pre-install RAUC_SLOT_TYPE=raw".to_string(),
        format!("slot-pre-install RAUC_IMAGE_NAME={bdir}/rootfs.img"),
        "slot-pre-install RAUC_IMAGE_SIZE=2048".to_string(),
        "slot-pre-install RAUC_IMAGE_CLASS=rootfs".to_string(),
        "slot-pre-install RAUC_SYSTEM_COMPATIBLE=Test Device".to_string(),
        format!("slot-pre-install RAUC_BUNDLE_MOUNT_POINT={bdir}"),
        "slot-post-install RAUC_SLOT_NAME=rootfs.1".to_string(),
        "slot-install RAUC_SLOT_NAME=appfs.1".to_string(),
        "slot-install RAUC_SLOT_BOOTNAME=B".to_string(),
        "slot-install RAUC_SLOT_PARENT=rootfs.1".to_string(),
        format!(
            "slot-install RAUC_SLOT_DEVICE={}",
            dev.path("app-b.img").display()
        ),
        "post 1 2 3 4|2 4|rootfs.1|rootfs|A".to_string(),
    ];
    for w in &want {
        assert!(log.lines().any(|l| l == w), "missing '{w}' in:\n{log}");
    }
    let pos = |p: &str| log.find(p).unwrap();
    assert!(pos("pre 1") < pos("slot-pre-install") && pos("slot-post-install") < pos("post 1"));
    // The install hook wrote the appfs image itself.
    assert_eq!(
        &std::fs::read(dev.path("app-b.img")).unwrap()[..100],
        &pattern(100, 6)[..]
    );
}

#[test]
fn compatible_mismatch_and_install_check_hook() {
    let dev = Device::new("", "");
    let run = context(&dev, "A");
    let b = BundleDir::new(
        "Other Device",
        &[Img::new("rootfs", "r.img", pattern(10, 1))],
        None,
    );
    let e = install(&run, &b, &InstallArgs::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Compatible mismatch: Expected 'Test Device' but bundle manifest has 'Other Device'"
    );
    assert!(
        run.boot.calls().is_empty(),
        "nothing marked before the compatible check"
    );
    install(
        &run,
        &b,
        &InstallArgs {
            ignore_compatible: true,
            ..Default::default()
        },
    )
    .unwrap();

    let hook = "echo \"not for $RAUC_SYSTEM_COMPATIBLE\" >&2\nexit 10\n";
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "r.img", pattern(10, 1))],
        Some(hook),
    );
    let m = std::fs::read_to_string(b.path().join("manifest.raucm")).unwrap();
    std::fs::write(
        b.path().join("manifest.raucm"),
        m.replace(
            "filename=hook.sh\n",
            "filename=hook.sh\nhooks=install-check;\n",
        ),
    )
    .unwrap();
    let e = install(&run, &b, &InstallArgs::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Bundle rejected: Hook returned: not for Test Device"
    );
}

#[test]
fn missing_target_slot_and_failing_handler() {
    let dev = Device::new("", "[handlers]\npre-install=pre.sh\n");
    write_script(&dev.path("pre.sh"), "exit 3\n");
    let run = context(&dev, "A");
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("kernel", "k.img", pattern(10, 1))],
        None,
    );
    let e = install(&run, &b, &InstallArgs::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "No target slot for class kernel of image k.img found"
    );
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "r.img", pattern(10, 1))],
        None,
    );
    let e = install(&run, &b, &InstallArgs::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Handler error: pre-install handler"),
        "{e}"
    );
    assert!(run.boot.calls().is_empty());
}

#[test]
fn activate_installed_false_leaves_slot_unmarked() {
    let dev = Device::new("activate-installed=false\n", "");
    let run = context(&dev, "B");
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "r.img", pattern(10, 1))],
        None,
    );
    install(&run, &b, &InstallArgs::default()).unwrap();
    assert_eq!(run.boot.calls(), vec!["set-state A bad"]);
    assert_eq!(
        &std::fs::read(dev.path("slot-a.img")).unwrap()[..10],
        &pattern(10, 1)[..]
    );
}

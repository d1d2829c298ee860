//! Bad input leaves the inventory (device rows, intents, audit log) and the tokens unchanged and
//! gets a clear error: an unknown device, a duplicate serial, a wrong PIN (device token and
//! station HSM), a device token without room (its directory on a tiny tmpfs mounted by the
//! test), a broken configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use pkcs11_tests::station::{Station, inventory_snapshot, run, text, token_objects};

/// A station with one provisioned device (`d0`), so the inventory is not empty.
fn station(devices: &[&str]) -> Station {
    let st = Station::new("");
    let mut all = vec!["d0"];
    all.extend_from_slice(devices);
    st.device_tokens(&all);
    st.ca_init();
    st.factory_ok(&["provision", "--device", "d0"]);
    st
}

/// Runs `factory <args>`, expects failure with every `needles` in the output, and no change
/// to the inventory.
fn refused(st: &Station, args: &[&str], needles: &[&str]) -> String {
    let before = inventory_snapshot(&st.config);
    let out = st.factory(args);
    let message = text(&out);
    assert!(!out.status.success(), "factory {args:?} succeeded");
    for n in needles {
        assert!(message.contains(n), "missing {n:?} in:\n{message}");
    }
    assert_eq!(inventory_snapshot(&st.config), before, "inventory changed");
    message
}

#[test]
fn unknown_devices_are_named() {
    let st = station(&[]);
    refused(
        &st,
        &["provision", "--device", "ghost"],
        &[
            "device 'ghost': opening the device token failed",
            "no PKCS#11 token matches pkcs11:token=dev-ghost",
            "label \"dev-d0\"",
        ],
    );
    for args in [
        &["revoke", "--device", "ghost", "--reason", "superseded"][..],
        &["retire", "--device", "ghost"],
        &["show", "ghost"],
        &["verify", "--device", "ghost"],
    ] {
        refused(&st, args, &["device 'ghost' is not in the inventory"]);
    }
    // A batch goes on past the unknown device and reports it.
    let csv = st.path("batch.csv");
    std::fs::write(&csv, "serial\nghost\n").unwrap();
    refused(
        &st,
        &["provision", "--batch", csv.to_str().unwrap()],
        &["device ghost (line 2)", "failed: 1"],
    );
}

#[test]
fn duplicate_serials_are_refused() {
    let st = station(&["d1"]);
    let csv = st.path("batch.csv");
    std::fs::write(&csv, "serial,group\nd1,a\nd2,a\nd1,b\n").unwrap();
    refused(
        &st,
        &["provision", "--batch", csv.to_str().unwrap()],
        &["batch.csv:4: device 'd1' is listed twice (first on line 2)"],
    );
    // Per-device options do not silently miss a batch.
    refused(
        &st,
        &[
            "provision",
            "--batch",
            csv.to_str().unwrap(),
            "--group",
            "x",
        ],
        &["apply to --device only", "CSV columns"],
    );
    assert!(
        token_objects("dev-d1").is_empty(),
        "the batch touched a token"
    );
    // An export of the inventory cannot be imported into it again.
    let export = st.path("export.jsonl");
    st.factory_ok(&["export", "--out", export.to_str().unwrap()]);
    refused(
        &st,
        &["import", export.to_str().unwrap()],
        &["import refused, nothing was imported", "d0"],
    );
    // Re-provisioning a recorded device is no error: it is reported and nothing changes.
    let before = inventory_snapshot(&st.config);
    let out = st.factory_ok(&["provision", "--device", "d0", "--profile", "rsa"]);
    assert!(out.contains("already provisioned"), "{out}");
    assert_eq!(inventory_snapshot(&st.config), before);
}

#[test]
fn wrong_pins_are_refused_without_showing_them() {
    let st = station(&["d1"]);
    let wrong = st.path("wrong.pin");
    std::fs::write(&wrong, "9137-wrong\n").unwrap();
    let token = format!("pkcs11:token=dev-d1?pin-source={}", wrong.display());
    let message = refused(
        &st,
        &["provision", "--device", "d1", "--token", &token],
        &[
            "device 'd1': opening the device token failed",
            "CKR_PIN_INCORRECT: wrong user PIN for token `dev-d1`",
            &format!("pin-source file {}", wrong.display()),
        ],
    );
    assert!(!message.contains("9137"), "the PIN leaked: {message}");
    assert!(token_objects("dev-d1").is_empty());

    // A wrong station HSM PIN stops before any device token is touched.
    let config = std::fs::read_to_string(&st.config).unwrap();
    let good_pin = st.pin_file.display().to_string();
    let broken = config.replacen(
        &format!("pin-source = \"{good_pin}\""),
        &format!("pin-source = \"{}\"", wrong.display()),
        1,
    );
    assert_ne!(broken, config);
    std::fs::write(&st.config, &broken).unwrap();
    let message = refused(
        &st,
        &["provision", "--device", "d1"],
        &["wrong user PIN for token `station`"],
    );
    assert!(!message.contains("9137"), "the PIN leaked: {message}");
    assert!(token_objects("dev-d1").is_empty());
}

/// A tmpfs mounted over a directory (the test runs as root), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `kib` KiB over `dir`, keeping the directory's files (saved in
    /// `scratch` meanwhile: not next to them, where SoftHSM would take a copy for a token).
    fn over(dir: &Path, scratch: &Path, kib: u32) -> Tmpfs {
        let keep = scratch.join("token-files");
        std::fs::create_dir(&keep).unwrap();
        for f in std::fs::read_dir(dir).unwrap().flatten() {
            std::fs::copy(f.path(), keep.join(f.file_name())).unwrap();
        }
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700")])
            .arg("tmpfs")
            .arg(dir));
        assert!(
            out.status.success(),
            "mount tmpfs failed (this test needs root)"
        );
        let mounted = Tmpfs(dir.to_path_buf());
        for f in std::fs::read_dir(&keep).unwrap().flatten() {
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        mounted
    }

    /// Fills the file system completely.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
        let _ = filler.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The token directory of the SoftHSM token with `label`.
fn token_dir(st: &Station, label: &str) -> PathBuf {
    let mut padded = label.as_bytes().to_vec();
    padded.resize(32, b' ');
    std::fs::read_dir(st.path("tokens"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read(p.join("token.object"))
                .is_ok_and(|o| o.windows(32).any(|w| w == padded.as_slice()))
        })
        .expect("token directory")
}

#[test]
fn a_full_token_is_refused_and_nothing_is_left_behind() {
    let st = station(&["full"]);
    let tmpfs = Tmpfs::over(&token_dir(&st, "dev-full"), st.dir(), 64);
    tmpfs.fill();
    refused(
        &st,
        &["provision", "--device", "full"],
        &[
            "provisioning of device 'full' failed",
            "generating the key pair in the token failed: C_GenerateKeyPair failed",
            "nothing reached the token; the inventory is unchanged",
        ],
    );
    assert!(token_objects("dev-full").is_empty());
    // With room again the same device provisions normally.
    std::fs::remove_file(tmpfs.0.join("filler")).unwrap();
    st.factory_ok(&["provision", "--device", "full"]);
    assert_eq!(token_objects("dev-full").len(), 3);
    drop(tmpfs);
}

#[test]
fn broken_configurations_are_refused() {
    let st = station(&["d1"]);
    let good = std::fs::read_to_string(&st.config).unwrap();
    let cases: [(String, &[&str]); 4] = [
        (
            good.replace("[device-token]", "[device-token\n"),
            &["invalid station configuration", "station.toml"],
        ),
        (
            good.replace("[device-token]", "[device-token]\ncolour = \"red\""),
            &["invalid station configuration", "unknown field `colour`"],
        ),
        (
            good.replace(
                "uri = \"pkcs11:token=dev-{serial}\"",
                "uri = \"pkcs11:token=dev\"",
            ),
            &["key 'device-token.uri'", "must contain {serial}"],
        ),
        (
            good.replace("key-type = \"rsa-3072\"", "key-type = \"rsa-1024\""),
            &["key 'profiles.rsa.key-type'", "unknown key type 'rsa-1024'"],
        ),
    ];
    for (text, needles) in cases {
        assert_ne!(text, good);
        let before = inventory_snapshot(&st.config);
        std::fs::write(&st.config, &text).unwrap();
        let out = st.factory(&["provision", "--device", "d1"]);
        std::fs::write(&st.config, &good).unwrap();
        let message = pkcs11_tests::station::text(&out);
        assert!(!out.status.success());
        for n in needles {
            assert!(message.contains(n), "missing {n:?} in:\n{message}");
        }
        assert_eq!(inventory_snapshot(&st.config), before);
    }
    assert!(token_objects("dev-d1").is_empty());
}

//! The real bundle pipeline of `ota` on the host, with bundles made by the real `rauc` 1.8:
//! `ota info` prints what `rauc info` prints; plain bundles install through loop + squashfs
//! (the host has no device-mapper: verity/crypt installs run in the VM tests of
//! `pkcs11-tests`); every refusal happens before a slot is touched, with RAUC's wording, and
//! leaves no loop device or mount behind; config errors are clear.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Device;
use common::rauc::Pki;

/// A device whose config trusts the test PKI and decrypts with recipient A's PEM key.
struct Host {
    dev: Device,
    pki: Pki,
}

fn host(pki_dir: &Path, extra_system: &str, encryption: &str) -> Host {
    let pki = if pki_dir.join("root.cert.pem").exists() {
        Pki {
            dir: pki_dir.to_path_buf(),
        }
    } else {
        Pki::create(pki_dir)
    };
    let extra = format!(
        "\n[keyring]\npath={}\ncheck-purpose=codesign\n{encryption}",
        pki.file("root.cert.pem").display()
    );
    let dev = Device::new(&format!("mountprefix=mnt\n{extra_system}"), &extra);
    Host { dev, pki }
}

fn device_key(pki: &Pki) -> String {
    format!(
        "\n[encryption]\nkey={}\ncert={}\n",
        pki.file("recip-a.key.pem").display(),
        pki.file("recip-a.cert.pem").display()
    )
}

fn ota(h: &Host, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ota"))
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", h.dev.path("no-bus").display()),
        )
        .envs(env.iter().copied())
        .arg(format!("--conf={}", h.dev.conf().display()))
        .arg("--override-boot-slot=A")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Random bytes: bundles need squashfs images larger than 4096 bytes after compression.
fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    openssl::rand::rand_bytes(&mut v).unwrap();
    v
}

fn slots(h: &Host) -> Vec<Vec<u8>> {
    ["slot-a.img", "slot-b.img", "app-a.img", "app-b.img"]
        .iter()
        .map(|f| std::fs::read(h.dev.path(f)).unwrap())
        .collect()
}

/// No loop device is bound to anything below `dir`, and nothing is mounted below it.
fn assert_nothing_left(dir: &Path) {
    let dir = std::fs::canonicalize(dir).unwrap();
    for l in target::loopdev::attached().unwrap() {
        assert!(
            !l.backing_file.starts_with(&dir.display().to_string()),
            "loop device left behind: {l:?}"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&dir.display().to_string()),
        "mount left behind:\n{mounts}"
    );
}

/// `800FD97E877F0000:error:1C800066:Provider routines:…` (OpenSSL's `ERR_print_errors_fp`).
fn is_openssl_error_line(line: &str) -> bool {
    line.split_once(":error:").is_some_and(|(thread, _)| {
        !thread.is_empty() && thread.chars().all(|c| c.is_ascii_hexdigit())
    })
}

#[test]
fn info_prints_what_rauc_info_prints() {
    let work = tempfile::tempdir().unwrap();
    let h = host(&work.path().join("pki"), "", "");
    let img = random(12288);
    let images = [
        ("rootfs", "rootfs.img", &img[..]),
        ("appfs", "appfs.img", &img[..4096]),
    ];
    let w = work.path();
    let verity = h
        .pki
        .bundle(&w.join("v.raucb"), "verity", "Test Device", &images, "");
    let crypt = h
        .pki
        .bundle(&w.join("c.raucb"), "crypt", "Test Device", &images, "");
    let plain = h
        .pki
        .bundle(&w.join("p.raucb"), "plain", "Test Device", &images, "");
    let enc = h
        .pki
        .encrypt(&crypt, &w.join("e.raucb"), &["recip-a", "recip-b"]);
    let key = format!("--key={}", h.pki.file("recip-a.key.pem").display());
    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (&verity, vec![]),
        (&verity, vec!["--output-format=shell"]),
        (&crypt, vec![]),
        (&plain, vec![]),
        (&enc, vec![key.as_str()]),
        (&enc, vec![key.as_str(), "--dump-recipients"]),
        (&enc, vec![key.as_str(), "--no-verify"]),
        (&verity, vec!["--dump-cert"]),
    ];
    for (bundle, extra) in cases {
        let b = bundle.to_str().unwrap();
        let mut args = extra.clone();
        args.push(b);
        // rauc 1.8 dumps OpenSSL's error queue to stdout when it tries another recipient's
        // RecipientInfo first ("…:error:…:aes_wrap_cipher_internal:…"); that noise is not info.
        let want: String = h
            .pki
            .rauc_info(&h.dev.conf(), &args)
            .split_inclusive('\n')
            .filter(|l| !is_openssl_error_line(l))
            .collect();
        let mut ota_args = vec!["info"];
        ota_args.extend(args.iter().copied());
        let (code, got, err) = ota(&h, &ota_args, &[]);
        assert_eq!(code, 0, "ota info {args:?}: {err}");
        assert_eq!(got, want, "ota info {args:?} differs from rauc info");
    }
}

#[test]
fn plain_bundle_installs_through_loop_and_squashfs_and_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let h = host(&work.path().join("pki"), "", "");
    let img = random(40960);
    let out_file = work.path().join("spki.txt");
    let hook = format!(
        "#!/bin/sh\nif [ \"$1\" = slot-post-install ]; then echo \"$RAUC_BUNDLE_SPKI_HASHES\" > {}; fi\n",
        out_file.display()
    );
    // `hooks=` continues the last image group.
    let bundle = h.pki.bundle_with_files(
        &work.path().join("p.raucb"),
        "plain",
        "Test Device",
        &[("rootfs", "rootfs.img", &img)],
        "hooks=post-install;\n\n[hooks]\nfilename=hook.sh\n",
        &[("hook.sh", &hook)],
    );
    let (code, out, err) = ota(&h, &["install", bundle.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        &std::fs::read(h.dev.path("slot-b.img")).unwrap()[..img.len()],
        &img[..]
    );
    let status = std::fs::read_to_string(h.dev.path("data/central.raucs")).unwrap();
    assert!(
        status.contains("[slot.rootfs.1]\nbundle.compatible=Test Device\n"),
        "{status}"
    );
    assert!(status.contains("status=ok\n"), "{status}");
    // slot hooks see the verified chain's SPKI hashes, signer first
    let want: Vec<String> = ["sign.cert.pem", "root.cert.pem"]
        .iter()
        .map(|c| spki_hash(&h.pki.file(c)))
        .collect();
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().trim(),
        want.join(" ")
    );
    assert!(
        !h.dev.path("mnt/bundle").exists(),
        "mount directory left behind"
    );
    assert_nothing_left(work.path());
}

/// `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256`, colon-separated.
fn spki_hash(cert: &Path) -> String {
    let pem = std::fs::read(cert).unwrap();
    let x = openssl::x509::X509::from_pem(&pem).unwrap();
    let der = x.public_key().unwrap().public_key_to_der().unwrap();
    openssl::sha::sha256(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct Refusal<'a> {
    name: &'a str,
    bundle: PathBuf,
    extra_system: &'a str,
    encryption: String,
    args: Vec<String>,
    env: Vec<(&'a str, String)>,
    want: &'a str,
}

#[test]
fn refusals_happen_before_any_slot_is_touched() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let pki_dir = w.join("pki");
    let base = host(&pki_dir, "", "");
    let pki = &base.pki;
    let img = random(8192);
    let images = [("rootfs", "rootfs.img", &img[..])];
    let verity = pki.bundle(&w.join("v.raucb"), "verity", "Test Device", &images, "");
    let crypt = pki.bundle(&w.join("c.raucb"), "crypt", "Test Device", &images, "");
    let plain = pki.bundle(&w.join("p.raucb"), "plain", "Test Device", &images, "");
    let to_a = pki.encrypt(&crypt, &w.join("to-a.raucb"), &["recip-a"]);
    let to_b = pki.encrypt(&crypt, &w.join("to-b.raucb"), &["recip-b"]);
    let key = device_key(pki);
    // an empty SoftHSM installation: the key URI names a token that does not exist
    let hsm = w.join("hsm");
    std::fs::create_dir_all(hsm.join("tokens")).unwrap();
    std::fs::write(
        hsm.join("softhsm2.conf"),
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            hsm.join("tokens").display()
        ),
    )
    .unwrap();
    let bad_uri = "\n[encryption]\nkey=pkcs11:token=device;object=decrypt?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234\n";
    let hsm_env = vec![(
        "SOFTHSM2_CONF",
        hsm.join("softhsm2.conf").display().to_string(),
    )];
    let zero_hash = format!("--require-manifest-hash={}", "0".repeat(64));
    let cases = vec![
        Refusal {
            name: "encrypted without a key",
            bundle: to_a.clone(),
            extra_system: "",
            encryption: String::new(),
            args: vec![],
            env: vec![],
            want: "Encrypted bundle detected, but no decryption key given",
        },
        Refusal {
            name: "key is not a recipient",
            bundle: to_b,
            extra_system: "",
            encryption: key.clone(),
            args: vec![],
            env: vec![],
            want: "the key is not a recipient of this bundle",
        },
        Refusal {
            name: "unencrypted crypt",
            bundle: crypt,
            extra_system: "",
            encryption: key.clone(),
            args: vec![],
            env: vec![],
            want: "Refusing to install unencrypted crypt bundles",
        },
        Refusal {
            name: "verity not allowed",
            bundle: verity.clone(),
            extra_system: "bundle-formats=-verity\n",
            encryption: String::new(),
            args: vec![],
            env: vec![],
            want: "Bundle format 'verity' not allowed",
        },
        Refusal {
            name: "plain not allowed",
            bundle: plain.clone(),
            extra_system: "bundle-formats=verity crypt\n",
            encryption: String::new(),
            args: vec![],
            env: vec![],
            want: "Bundle format 'plain' not allowed",
        },
        Refusal {
            name: "untrusted signer (--keyring)",
            bundle: verity.clone(),
            extra_system: "",
            encryption: String::new(),
            args: vec![format!(
                "--keyring={}",
                pki.file("recip-b.cert.pem").display()
            )],
            env: vec![],
            want: "signature verification failed",
        },
        Refusal {
            name: "manifest hash mismatch",
            bundle: verity.clone(),
            extra_system: "",
            encryption: String::new(),
            args: vec![zero_hash.clone()],
            env: vec![],
            want: "Refusing to install bundle with unexpected hash",
        },
        Refusal {
            name: "plain with a required manifest hash",
            bundle: plain,
            extra_system: "",
            encryption: String::new(),
            args: vec![zero_hash],
            env: vec![],
            want: "Refusing to install plain bundle when using require-manifest-hash",
        },
        Refusal {
            name: "unreadable key URI",
            bundle: to_a,
            extra_system: "",
            encryption: bad_uri.into(),
            args: vec![],
            env: hsm_env,
            want: "cannot use the decryption key pkcs11:token=device;object=decrypt",
        },
    ];
    for case in cases {
        let h = host(&pki_dir, case.extra_system, &case.encryption);
        let before = slots(&h);
        let mut args = vec!["install", case.bundle.to_str().unwrap()];
        args.extend(case.args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, out, err) = ota(&h, &args, &env);
        assert_eq!(code, 1, "{}: {out}\n{err}", case.name);
        assert!(
            err.contains(case.want),
            "{}: want '{}' in:\n{err}",
            case.name,
            case.want
        );
        assert!(
            !err.contains("1234"),
            "{}: the PIN leaked: {err}",
            case.name
        );
        assert_eq!(slots(&h), before, "{}: a slot changed", case.name);
        assert!(
            !h.dev.path("data/central.raucs").exists(),
            "{}: status written",
            case.name
        );
        assert_nothing_left(h.dev.dir.path());
    }
}

#[test]
fn verity_without_device_mapper_fails_cleanly() {
    // The host kernel has no device-mapper: the loop device is set up, dm-verity fails, and
    // everything built so far is torn down.
    if Path::new("/dev/mapper/control").exists() {
        eprintln!("this host has device-mapper; the VM tests cover the successful path");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let h = host(&work.path().join("pki"), "", "");
    let img = random(8192);
    let verity = h.pki.bundle(
        &work.path().join("v.raucb"),
        "verity",
        "Test Device",
        &[("rootfs", "rootfs.img", &img)],
        "",
    );
    let before = slots(&h);
    let (code, _, err) = ota(&h, &["install", verity.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("Failed mounting bundle"), "{err}");
    assert!(err.contains("/dev/mapper/control"), "{err}");
    assert_eq!(slots(&h), before);
    assert!(!h.dev.path("mnt/bundle").exists());
    assert_nothing_left(work.path());
}

#[test]
fn config_errors_are_clear() {
    let work = tempfile::tempdir().unwrap();
    let h = host(&work.path().join("pki"), "", "");
    let img = random(8192);
    let crypt = h.pki.bundle(
        &work.path().join("c.raucb"),
        "crypt",
        "Test Device",
        &[("rootfs", "rootfs.img", &img)],
        "",
    );
    let enc = h
        .pki
        .encrypt(&crypt, &work.path().join("e.raucb"), &["recip-a"]);
    let enc = enc.to_str().unwrap();
    let conf = h.dev.conf();
    let good = std::fs::read_to_string(&conf).unwrap();
    let cases = [
        (
            "unknown key in a slot",
            good.replace("bootname=B\n", "bootname=B\nsize=1\n"),
            "Invalid key 'size' in group '[slot.rootfs.1]'",
        ),
        (
            "unknown group",
            format!("{good}\n[bogus]\nx=1\n"),
            "Invalid group '[bogus]'",
        ),
        (
            "missing compatible",
            good.replace("compatible=Test Device\n", ""),
            "Missing key 'compatible' in group '[system]'",
        ),
        (
            "bad slot type",
            good.replace(
                "device=slot-a.img\ntype=raw",
                "device=slot-a.img\ntype=floppy",
            ),
            "Unsupported slot type 'floppy' for slot rootfs.0 selected in system config",
        ),
    ];
    for (name, text, want) in cases {
        std::fs::write(&conf, &text).unwrap();
        for args in [vec!["status"], vec!["install", enc], vec!["service"]] {
            let (code, _, err) = ota(&h, &args, &[]);
            assert_eq!(code, 1, "{name} {args:?}");
            assert!(
                err.contains(want),
                "{name} {args:?}: want '{want}' in:\n{err}"
            );
            assert!(
                err.contains(&conf.display().to_string()),
                "{name}: no path in:\n{err}"
            );
        }
    }
    // Key URIs are opened when needed: one that does not parse is named (without its PIN).
    std::fs::write(
        &conf,
        format!("{good}\n[encryption]\nkey=pkcs11:object=%zz?pin-value=1234\n"),
    )
    .unwrap();
    let (code, _, err) = ota(&h, &["install", enc], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot use the decryption key (an invalid pkcs11: URI) ([encryption] key in"),
        "{err}"
    );
    assert!(!err.contains("1234"), "{err}");
}

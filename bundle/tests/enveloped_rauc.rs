//! Interop with real rauc 1.8: our EnvelopedData inside a rauc crypt bundle decrypts with
//! `rauc info --key` (default layout) and with `[encryption] key=`/`cert=` (compact layout);
//! `rauc encrypt` output decrypts with our `decrypt`. The PKI is made with the openssl CLI.

mod enveloped_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle::cms::enveloped::{
    EncryptOptions, RecipientIdKind, RecipientLayout, decrypt, encrypt, list_recipients,
    load_recipients,
};
use enveloped_common::FileKey;
use openssl::pkey::PKey;
use openssl::x509::X509;

const EXT: &str = "\
[v3_root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[sign]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[enc]
basicConstraints=critical,CA:FALSE
keyUsage=critical,keyEncipherment,keyAgreement
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
";

/// Recipients: name and `openssl genpkey` arguments.
const RECIPIENTS: &[(&str, &str)] = &[
    ("ec0", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
    ("rsa0", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"),
    ("ec1", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
    ("ec384", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384"),
    ("rsa1", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"),
    ("ec2", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
    ("ec3", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"),
];

fn sh(dir: &Path, script: &str) {
    let o = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Root CA, signer and recipients with the openssl CLI (`environment.md` §3).
fn make_pki(dir: &Path) {
    std::fs::write(dir.join("ext.cnf"), EXT).unwrap();
    let mut s = String::from(
        "CNF=\"$(cat /etc/ssl/openssl.cnf ext.cnf)\"\n\
         openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key.pem\n\
         openssl req -x509 -new -key root.key.pem -subj '/O=Test/CN=Test Root CA' -days 3650 \
           -sha256 -extensions v3_root -config <(echo \"$CNF\") -out root.cert.pem\n",
    );
    let issue = |name: &str, genkey: &str, ext: &str| {
        format!(
            "openssl genpkey {genkey} -out {name}.key.pem\n\
             openssl req -new -key {name}.key.pem -subj '/O=Test/CN=Test {name}' -out {name}.csr\n\
             openssl x509 -req -in {name}.csr -CA root.cert.pem -CAkey root.key.pem \
               -CAcreateserial -days 365 -sha256 -extfile ext.cnf -extensions {ext} \
               -out {name}.cert.pem 2>/dev/null\n"
        )
    };
    s += &issue(
        "sign",
        "-algorithm EC -pkeyopt ec_paramgen_curve:P-256",
        "sign",
    );
    for (name, genkey) in RECIPIENTS {
        s += &issue(name, genkey, "enc");
    }
    s += &format!(
        "cat {} > recipients.pem\n",
        RECIPIENTS
            .iter()
            .map(|(n, _)| format!("{n}.cert.pem"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    sh(dir, &s);
}

/// A crypt bundle with an unencrypted CMS, made by `rauc bundle`.
fn make_crypt_bundle(dir: &Path) -> PathBuf {
    let content = dir.join("content");
    std::fs::create_dir(&content).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        "[update]\ncompatible=Test Device\nversion=2024.01.0\n\n[bundle]\nformat=crypt\n\n\
         [image.rootfs]\nfilename=rootfs.img\n",
    )
    .unwrap();
    let mut blob = vec![0u8; 65536];
    openssl::rand::rand_bytes(&mut blob).unwrap();
    std::fs::write(content.join("rootfs.img"), blob).unwrap();
    let out = dir.join("unencrypted.raucb");
    run_ok(
        Command::new("rauc")
            .arg("bundle")
            .arg(format!("--cert={}", dir.join("sign.cert.pem").display()))
            .arg(format!("--key={}", dir.join("sign.key.pem").display()))
            .arg(format!("--keyring={}", dir.join("root.cert.pem").display()))
            .arg(&content)
            .arg(&out),
    );
    out
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("rauc runs")
}

fn run_ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Splits `payload | CMS | u64 BE len`.
fn split_bundle(bytes: &[u8]) -> (&[u8], &[u8]) {
    let n = bytes.len();
    let s = u64::from_be_bytes(bytes[n - 8..].try_into().unwrap()) as usize;
    (&bytes[..n - 8 - s], &bytes[n - 8 - s..n - 8])
}

fn with_cms(payload: &[u8], cms: &[u8]) -> Vec<u8> {
    let mut out = payload.to_vec();
    out.extend_from_slice(cms);
    out.extend_from_slice(&(cms.len() as u64).to_be_bytes());
    out
}

fn rauc_info(dir: &Path, bundle: &Path, extra: &[String]) -> Output {
    let mut cmd = Command::new("rauc");
    cmd.arg("info")
        .arg(format!("--keyring={}", dir.join("root.cert.pem").display()))
        .args(extra)
        .arg(bundle)
        .env("TMPDIR", dir);
    run(&mut cmd)
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    payload: Vec<u8>,
    signed_data: Vec<u8>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    make_pki(&dir);
    let bundle = std::fs::read(make_crypt_bundle(&dir)).unwrap();
    let (payload, cms) = split_bundle(&bundle);
    Setup {
        payload: payload.to_vec(),
        signed_data: cms.to_vec(),
        dir,
        _tmp: tmp,
    }
}

fn encrypted_bundle(s: &Setup, options: &EncryptOptions, name: &str) -> PathBuf {
    let recipients = load_recipients(
        &[s.dir.join("recipients.pem")],
        std::time::SystemTime::now(),
    )
    .unwrap();
    let env = encrypt(&s.signed_data, &recipients, options).unwrap();
    let path = s.dir.join(name);
    std::fs::write(&path, with_cms(&s.payload, &env)).unwrap();
    path
}

fn assert_decrypted(o: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && stdout.contains("[encrypted CMS]")
            && stdout.contains("'Test Device'"),
        "{what}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn rauc_decrypts_our_default_layout_with_any_recipient_key() {
    let s = setup();
    let bundle = encrypted_bundle(&s, &EncryptOptions::default(), "default.raucb");
    // Every recipient, which includes the first, a middle and the last of the SET.
    for (name, _) in RECIPIENTS {
        let key = format!("--key={}", s.dir.join(format!("{name}.key.pem")).display());
        assert_decrypted(&rauc_info(&s.dir, &bundle, &[key]), name);
    }
    // A key that is not a recipient fails like rauc says it does.
    let stranger = format!("--key={}", s.dir.join("sign.key.pem").display());
    let o = rauc_info(&s.dir, &bundle, &[stranger]);
    assert!(!o.status.success());

    // rauc's recipient listing equals ours.
    let key = format!("--key={}", s.dir.join("ec0.key.pem").display());
    let o = rauc_info(&s.dir, &bundle, &[key, "--dump-recipients".to_owned()]);
    let bytes = std::fs::read(&bundle).unwrap();
    let (_, env) = split_bundle(&bytes);
    let ours = list_recipients(env).unwrap().to_rauc_text();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&ours), "rauc:\n{stdout}\nours:\n{ours}");
}

#[test]
fn rauc_decrypts_our_compact_layout_with_key_and_cert_in_the_config() {
    let s = setup();
    for (id, file) in [
        (RecipientIdKind::SubjectKeyId, "compact-ski.raucb"),
        (RecipientIdKind::IssuerAndSerial, "compact-ias.raucb"),
    ] {
        let options = EncryptOptions {
            layout: RecipientLayout::Compact,
            recipient_id: id,
            ..EncryptOptions::default()
        };
        let bundle = encrypted_bundle(&s, &options, file);
        for (name, _) in RECIPIENTS {
            let conf = s.dir.join(format!("{name}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "[system]\ncompatible=Test Device\nbootloader=noop\n\n[keyring]\npath={}\n\n\
                     [encryption]\nkey={}\ncert={}\n",
                    s.dir.join("root.cert.pem").display(),
                    s.dir.join(format!("{name}.key.pem")).display(),
                    s.dir.join(format!("{name}.cert.pem")).display(),
                ),
            )
            .unwrap();
            let o = rauc_info(&s.dir, &bundle, &[format!("--conf={}", conf.display())]);
            assert_decrypted(&o, &format!("{file} {name}"));
        }
        // Without `cert=`, stock OpenSSL tries only the first key of each KARI: ec3 (the last
        // P-256 key) fails, which is why the compact layout needs `[encryption] cert=`.
        let key = format!("--key={}", s.dir.join("ec3.key.pem").display());
        assert!(!rauc_info(&s.dir, &bundle, &[key]).status.success());
        // rauc's listing (with its `<keyid>` quirk for SKI ids) equals ours.
        let conf = format!("--conf={}", s.dir.join("ec0.conf").display());
        let o = rauc_info(&s.dir, &bundle, &[conf, "--dump-recipients".to_owned()]);
        let bytes = std::fs::read(&bundle).unwrap();
        let listing = list_recipients(split_bundle(&bytes).1).unwrap();
        assert_eq!(listing.layout, RecipientLayout::Compact);
        let ours = listing.to_rauc_text();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains(&ours), "rauc:\n{stdout}\nours:\n{ours}");
    }
}

#[test]
fn our_decrypt_reads_rauc_encrypt_output() {
    let s = setup();
    let out = s.dir.join("rauc-encrypted.raucb");
    let o = run_ok(
        Command::new("rauc")
            .arg("encrypt")
            .arg(format!(
                "--keyring={}",
                s.dir.join("root.cert.pem").display()
            ))
            .arg(format!("--to={}", s.dir.join("recipients.pem").display()))
            .arg(s.dir.join("unencrypted.raucb"))
            .arg(&out),
    );
    let log = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(
        log.contains(&format!("Encrypted for {} recipients", RECIPIENTS.len())),
        "{log}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let (payload, env) = split_bundle(&bytes);
    assert_eq!(
        payload,
        s.payload.as_slice(),
        "payload reused byte for byte"
    );
    for (name, _) in RECIPIENTS {
        let key = PKey::private_key_from_pem(
            &std::fs::read(s.dir.join(format!("{name}.key.pem"))).unwrap(),
        )
        .unwrap();
        let cert = X509::from_pem(&std::fs::read(s.dir.join(format!("{name}.cert.pem"))).unwrap())
            .unwrap();
        let k = FileKey::with_cert(&key, &cert);
        assert_eq!(
            decrypt(env, &k).unwrap().as_slice(),
            s.signed_data.as_slice(),
            "{name}"
        );
        assert_eq!(k.ops(), 1);
        let bare = FileKey::bare(&key);
        assert_eq!(
            decrypt(env, &bare).unwrap().as_slice(),
            s.signed_data.as_slice(),
            "{name}"
        );
    }
    // Our default layout has exactly rauc's size for the same recipients.
    let ours = std::fs::read(encrypted_bundle(
        &s,
        &EncryptOptions::default(),
        "ours.raucb",
    ))
    .unwrap();
    assert_eq!(split_bundle(&ours).1.len(), env.len());
}

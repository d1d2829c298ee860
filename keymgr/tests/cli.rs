//! The `keymgr` binary end to end on SoftHSM: tokens → generate → export → certificate issued by
//! the openssl CLI → import → objects lists it with its URI; key import; delete.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Fixture, USER_PIN, genpkey_p256, openssl};

fn keymgr(fx: &Fixture, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .args(args)
        .envs(fx.hsm.env())
        .env("PKCS11_MODULE_PATH", softhsm::SOFTHSM_MODULE)
        .env("RAUC_PKCS11_PIN", USER_PIN)
        .env_remove("RAUC_PKCS11_MODULE")
        .output()
        .expect("keymgr runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(fx: &Fixture, args: &[&str]) -> String {
    let (success, stdout, stderr) = keymgr(fx, args);
    assert!(success, "keymgr {args:?} failed:\n{stderr}\n{stdout}");
    stdout
}

/// Issues a certificate for `pub.pem` with a throw-away CA, as environment.md §7.3 does.
fn issue_certificate(d: &Path) {
    genpkey_p256(d, "ca.key");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Test CA",
            "-days",
            "2",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        d,
        &[
            "req", "-new", "-key", "ca.key", "-subj", "/CN=any", "-out", "any.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "any.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-force_pubkey",
            "pub.pem",
            "-subj",
            "/CN=device-1",
            "-out",
            "dev.pem",
        ],
    );
}

#[test]
fn generate_export_import_list() {
    let fx = Fixture::new("cli-test");
    let d = fx.dir();
    let tokens = ok(&fx, &["tokens"]);
    assert!(tokens.contains("Token \"cli-test\""), "{tokens}");
    assert!(
        tokens.contains("uri: pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial="),
        "{tokens}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&fx, &["tokens", "--output-format", "json"])).unwrap();
    assert_eq!(json[0]["label"], "cli-test");

    let key = "pkcs11:token=cli-test;object=device-key";
    let out = ok(
        &fx,
        &["generate", key, "--key-type", "ec:prime256v1", "--id", "0a"],
    );
    assert!(
        out.contains(";token=cli-test;id=%0A;object=device-key;type=private"),
        "{out}"
    );
    assert!(out.contains("-----BEGIN PUBLIC KEY-----"), "{out}");

    let pub_path = d.join("pub.pem");
    ok(
        &fx,
        &["export", key, "--pubkey", "-o", pub_path.to_str().unwrap()],
    );
    let from_tool = fx.token.read_public_key_der("0a").unwrap();
    let exported =
        openssl::pkey::PKey::public_key_from_pem(&std::fs::read(&pub_path).unwrap()).unwrap();
    assert_eq!(exported.public_key_to_der().unwrap(), from_tool);

    issue_certificate(d);
    let out = ok(
        &fx,
        &["import", key, "--cert", d.join("dev.pem").to_str().unwrap()],
    );
    assert!(out.contains("id=%0A;object=device-key;type=cert"), "{out}");

    let listing = ok(&fx, &["objects", "pkcs11:token=cli-test"]);
    for want in [
        "cert     EC P-256  label \"device-key\", id 0a",
        ";token=cli-test;id=%0A;object=device-key;type=cert",
        ";token=cli-test;id=%0A;object=device-key;type=private",
        ";token=cli-test;id=%0A;object=device-key;type=public",
    ] {
        assert!(listing.contains(want), "missing {want:?} in:\n{listing}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(
        &fx,
        &[
            "objects",
            "pkcs11:token=cli-test;type=cert",
            "--output-format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["type"], "cert");
    assert_eq!(json[0]["id"], "0a");
    assert!(
        json[0]["uri"]
            .as_str()
            .unwrap()
            .ends_with("id=%0A;object=device-key;type=cert")
    );

    // The exported certificate is the issued one.
    let pem = ok(
        &fx,
        &[
            "export",
            "pkcs11:token=cli-test;object=device-key",
            "--cert",
        ],
    );
    let issued = openssl::x509::X509::from_pem(&std::fs::read(d.join("dev.pem")).unwrap()).unwrap();
    assert_eq!(
        openssl::x509::X509::from_pem(pem.as_bytes()).unwrap(),
        issued
    );
    // And tools agree: pkcs11-tool reads the same certificate under id 0a.
    assert_eq!(
        fx.token.read_certificate_der("0a").unwrap(),
        issued.to_der().unwrap()
    );
}

#[test]
fn import_key_and_delete() {
    let fx = Fixture::new("cli-import");
    let d = fx.dir();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    let uri = "pkcs11:token=cli-import;object=imported;id=%42";
    let out = ok(
        &fx,
        &["import", uri, "--key", d.join("rsa.pem").to_str().unwrap()],
    );
    assert!(out.contains("id=%42;object=imported;type=private"), "{out}");
    let pem = ok(&fx, &["export", uri, "--pubkey"]);
    openssl(
        d,
        &["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa-pub.pem"],
    );
    assert_eq!(pem, std::fs::read_to_string(d.join("rsa-pub.pem")).unwrap());
    // Importing again under the same id is refused.
    let (success, _, err) = keymgr(
        &fx,
        &["import", uri, "--key", d.join("rsa.pem").to_str().unwrap()],
    );
    assert!(
        !success && err.contains("already has a private object"),
        "{err}"
    );

    let out = ok(&fx, &["delete", uri]);
    assert_eq!(out.matches("Deleted ").count(), 2, "{out}");
    let (success, _, err) = keymgr(&fx, &["export", uri, "--pubkey"]);
    assert!(!success && err.contains("no object matches"), "{err}");
    let (success, _, err) = keymgr(&fx, &["delete", "pkcs11:token=cli-import"]);
    assert!(!success && err.contains("refusing to delete"), "{err}");
}

#[test]
fn help_and_usage_errors() {
    let fx = Fixture::new("cli-help");
    let help = ok(&fx, &["--help"]);
    for cmd in [
        "tokens",
        "objects",
        "generate",
        "import",
        "export",
        "delete",
        "--module",
        "--output-format",
    ] {
        assert!(help.contains(cmd), "{cmd} missing in --help:\n{help}");
    }
    assert!(ok(&fx, &["generate", "--help"]).contains("ec:prime256v1"));
    let (success, _, err) = keymgr(
        &fx,
        &[
            "generate",
            "pkcs11:token=cli-help",
            "--key-type",
            "ec:prime256v1",
        ],
    );
    assert!(!success && err.contains("object=<label>"), "{err}");
    let (success, _, err) = keymgr(
        &fx,
        &[
            "generate",
            "pkcs11:token=cli-help;object=x",
            "--key-type",
            "dsa:1024",
        ],
    );
    assert!(!success && err.contains("unknown key type"), "{err}");
    let (success, _, err) = keymgr(&fx, &["objects", "pkcs11:token=cli-help;bogus=1"]);
    assert!(
        !success && err.contains("unknown attribute `bogus`"),
        "{err}"
    );
}

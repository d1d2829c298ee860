//! Interop with the `openssl cms` command line (OpenSSL 3.0, what rauc 1.8 links): it decrypts
//! every layout we write, and we decrypt what it writes.

mod enveloped_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bundle::cms::enveloped::{
    EncryptOptions, RecipientIdKind, RecipientLayout, decrypt, encrypt, list_recipients,
};
use bundle::keys::RsaPadding;
use enveloped_common::{Alg, FileKey, Pki, fake_signed_data};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

struct Person {
    key: PKey<Private>,
    cert: X509,
    key_pem: PathBuf,
    cert_pem: PathBuf,
}

fn people(dir: &Path, pki: &Pki, algs: &[Alg]) -> Vec<Person> {
    algs.iter()
        .enumerate()
        .map(|(i, alg)| {
            let (key, cert, _) = pki.recipient(*alg, &format!("device {i}"));
            let key_pem = dir.join(format!("key{i}.pem"));
            let cert_pem = dir.join(format!("cert{i}.pem"));
            std::fs::write(&key_pem, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
            std::fs::write(&cert_pem, cert.to_pem().unwrap()).unwrap();
            Person {
                key,
                cert,
                key_pem,
                cert_pem,
            }
        })
        .collect()
}

/// `openssl cms -decrypt`; returns the plaintext or the error output.
fn openssl_decrypt(env: &Path, p: &Person, with_cert: bool) -> Result<Vec<u8>, String> {
    let out = env.with_extension("out");
    let mut cmd = Command::new("openssl");
    cmd.args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
        .arg(env)
        .arg("-inkey")
        .arg(&p.key_pem)
        .arg("-out")
        .arg(&out);
    if with_cert {
        cmd.arg("-recip").arg(&p.cert_pem);
    }
    let o = cmd.output().expect("openssl runs");
    if o.status.success() {
        Ok(std::fs::read(&out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn openssl_decrypts_every_layout_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let algs = [Alg::P256, Alg::Rsa(2048), Alg::P384, Alg::P256, Alg::P256];
    let ps = people(dir.path(), &pki, &algs);
    let recipients: Vec<_> = ps
        .iter()
        .map(|p| bundle::cms::enveloped::Recipient::from_der(&p.cert.to_der().unwrap()).unwrap())
        .collect();
    let content = fake_signed_data(2010);
    for layout in [RecipientLayout::Default, RecipientLayout::Compact] {
        for recipient_id in [
            RecipientIdKind::IssuerAndSerial,
            RecipientIdKind::SubjectKeyId,
        ] {
            for rsa_padding in [RsaPadding::Pkcs1v15, RsaPadding::OaepSha256] {
                let options = EncryptOptions {
                    layout,
                    recipient_id,
                    rsa_padding,
                };
                let env = dir.path().join("env.der");
                std::fs::write(&env, encrypt(&content, &recipients, &options).unwrap()).unwrap();
                for p in &ps {
                    let got = openssl_decrypt(&env, p, true)
                        .unwrap_or_else(|e| panic!("{options:?} with -recip: {e}"));
                    assert_eq!(got, content, "{options:?}");
                }
                if layout == RecipientLayout::Default {
                    // Stock OpenSSL without the certificate tries every RecipientInfo.
                    for p in &ps {
                        let got = openssl_decrypt(&env, p, false)
                            .unwrap_or_else(|e| panic!("{options:?} without -recip: {e}"));
                        assert_eq!(got, content);
                    }
                }
            }
        }
    }
}

fn openssl_encrypt(dir: &Path, content: &[u8], args: &[&str], certs: &[&Path]) -> Vec<u8> {
    let input = dir.join("content.bin");
    let env = dir.join("openssl-env.der");
    std::fs::write(&input, content).unwrap();
    let o = Command::new("openssl")
        .args(["cms", "-encrypt", "-binary", "-outform", "DER", "-in"])
        .arg(&input)
        .arg("-out")
        .arg(&env)
        .args(args)
        .args(certs)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(env).unwrap()
}

#[test]
fn we_decrypt_what_openssl_writes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let algs = [Alg::Rsa(2048), Alg::P256, Alg::P384, Alg::P256];
    let ps = people(dir.path(), &pki, &algs);
    let certs: Vec<&Path> = ps.iter().map(|p| p.cert_pem.as_path()).collect();
    let content = fake_signed_data(3000);
    let variants: [&[&str]; 4] = [
        &["-aes256"],
        &["-aes256", "-keyid"],
        &["-aes128"],
        &["-aes256", "-stream"],
    ];
    for args in variants {
        let env = openssl_encrypt(dir.path(), &content, args, &certs);
        assert_eq!(list_recipients(&env).unwrap().recipient_count(), ps.len());
        for p in &ps {
            let k = FileKey::with_cert(&p.key, &p.cert);
            let got = decrypt(&env, &k).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(got.as_slice(), content.as_slice(), "{args:?}");
            assert_eq!(k.ops(), 1);
            let bare = FileKey::bare(&p.key);
            assert_eq!(decrypt(&env, &bare).unwrap().as_slice(), content.as_slice());
        }
    }
}

#[test]
fn we_decrypt_openssl_oaep_and_sha256_kdf() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ps = people(dir.path(), &pki, &[Alg::Rsa(2048), Alg::P256]);
    let content = fake_signed_data(700);
    let rsa = ps[0].cert_pem.to_str().unwrap();
    let ec = ps[1].cert_pem.to_str().unwrap();
    let args = [
        "-aes256",
        "-recip",
        rsa,
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
        "-recip",
        ec,
        "-keyopt",
        "ecdh_kdf_md:sha256",
    ];
    let env = openssl_encrypt(dir.path(), &content, &args, &[]);
    let listing = list_recipients(&env).unwrap().to_rauc_text();
    assert!(listing.contains("Algorithm: rsaesOaep"), "{listing}");
    assert!(
        listing.contains("dhSinglePass-stdDH-sha256kdf-scheme"),
        "{listing}"
    );
    for p in &ps {
        let got = decrypt(&env, &FileKey::with_cert(&p.key, &p.cert)).unwrap();
        assert_eq!(got.as_slice(), content.as_slice());
    }
}

//! Test support: a small PKI made with the openssl CLI, a file-key `ContentSigner`, and a
//! bundle builder over the real tools (mksquashfs). Everything lives in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use bundle::cms::signed::{self, Content, SignerCerts};
use bundle::container;
use bundle::keys::{ContentSigner, KeyError, SignatureScheme};
use bundle::manifest::{CryptKey, Manifest, Vocabulary};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};

/// Runs a command and panics with its stderr if it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// A PEM private key used through the [`ContentSigner`] trait (the stand-in for a token key).
pub struct FileSigner {
    pub key: PKey<Private>,
    pub scheme: SignatureScheme,
}

impl FileSigner {
    pub fn load(path: &Path, scheme: SignatureScheme) -> Self {
        let key = PKey::private_key_from_pem(&std::fs::read(path).unwrap()).unwrap();
        FileSigner { key, scheme }
    }
}

impl ContentSigner for FileSigner {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key)?;
        if self.scheme == SignatureScheme::RsaPssSha256 {
            s.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
            s.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(32))?;
            s.set_rsa_mgf1_md(MessageDigest::sha256())?;
        }
        Ok(s.sign_oneshot_to_vec(data)?)
    }
}

const CA_CONF: &str = r#"
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = DIR
private_key = $dir/key.pem
certificate = CERT
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
policy = policy_any
default_days = 3650
default_crl_days = 3650
unique_subject = no
copy_extensions = none
[ policy_any ]
organizationName = optional
commonName = supplied
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_inter ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ leaf_codesign ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#;

/// A two-level PKI: `root` → `inter` → leaves, plus an unrelated `other` root.
pub struct Pki {
    pub dir: PathBuf,
}

/// Key algorithms for leaves.
#[derive(Clone, Copy)]
pub enum Alg {
    P256,
    P384,
    Rsa,
}

impl Pki {
    /// Creates root, intermediate and the standard leaves (`ec`, `ec384`, `rsa`, `revoked`,
    /// `expired`, `codesign`), the CRLs and the other root. About a second.
    pub fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.make_ca("root", None);
        pki.make_ca("inter", Some("root"));
        pki.make_ca("other", None);
        pki.leaf("ec", Alg::P256, "leaf", None);
        pki.leaf("ec384", Alg::P384, "leaf", None);
        pki.leaf("rsa", Alg::Rsa, "leaf", None);
        pki.leaf("revoked", Alg::P256, "leaf", None);
        pki.leaf("codesign", Alg::P256, "leaf_codesign", None);
        pki.leaf(
            "expired",
            Alg::P256,
            "leaf",
            Some(("20200101000000Z", "20210101000000Z")),
        );
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "inter/ca.cnf",
                "-revoke",
                "revoked.cert.pem",
            ],
        );
        pki.gencrl("root");
        pki.gencrl("inter");
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn keygen(&self, out: &str, alg: Alg) {
        let opt = match alg {
            Alg::P256 => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Alg::P384 => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            Alg::Rsa => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        };
        let mut args = vec!["genpkey"];
        args.extend(opt);
        args.extend(["-out", out]);
        openssl(&self.dir, &args);
    }

    fn make_ca(&self, name: &str, parent: Option<&str>) {
        let d = self.dir.join(name);
        std::fs::create_dir_all(d.join("newcerts")).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), format!("{:02X}\n", 16 + name.len())).unwrap();
        std::fs::write(d.join("crlnumber"), "01\n").unwrap();
        let conf = CA_CONF.replace("DIR", d.to_str().unwrap()).replace(
            "CERT",
            self.dir.join(format!("{name}.cert.pem")).to_str().unwrap(),
        );
        std::fs::write(d.join("ca.cnf"), conf).unwrap();
        let key = format!("{name}/key.pem");
        self.keygen(&key, Alg::P256);
        let subj = format!("/O=Test/CN=Test {name} CA");
        let cnf = format!("{name}/ca.cnf");
        let cert = format!("{name}.cert.pem");
        // CAs are valid from 2019 on, so signatures dated in the past (expired signer with
        // use-bundle-signing-time) have a valid chain
        let csr = format!("{name}/req.csr");
        openssl(
            &self.dir,
            &[
                "req", "-new", "-key", &key, "-subj", &subj, "-config", &cnf, "-out", &csr,
            ],
        );
        let (pcnf, pkey, ext, selfsign) = match parent {
            None => (cnf.clone(), key.clone(), "v3_ca", true),
            Some(p) => (
                format!("{p}/ca.cnf"),
                format!("{p}/key.pem"),
                "v3_inter",
                false,
            ),
        };
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            &pcnf,
            "-keyfile",
            &pkey,
            "-extensions",
            ext,
            "-notext",
            "-startdate",
            "20190101000000Z",
            "-enddate",
            "20391231000000Z",
            "-in",
            &csr,
            "-out",
            &cert,
        ];
        if selfsign {
            args.push("-selfsign");
        }
        openssl(&self.dir, &args);
    }

    /// Issues `<name>.cert.pem` / `<name>.key.pem` from `inter`.
    pub fn leaf(&self, name: &str, alg: Alg, ext: &str, validity: Option<(&str, &str)>) {
        let key = format!("{name}.key.pem");
        self.keygen(&key, alg);
        let csr = format!("{name}.csr");
        let subj = format!("/O=Test/CN=Test signer {name}");
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-key",
                &key,
                "-subj",
                &subj,
                "-config",
                "inter/ca.cnf",
                "-out",
                &csr,
            ],
        );
        let cert = format!("{name}.cert.pem");
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "inter/ca.cnf",
            "-keyfile",
            "inter/key.pem",
            "-cert",
            "inter.cert.pem",
            "-extensions",
            ext,
            "-notext",
            "-in",
            &csr,
            "-out",
            &cert,
        ];
        if let Some((start, end)) = validity {
            args.extend(["-startdate", start, "-enddate", end]);
        }
        openssl(&self.dir, &args);
    }

    fn gencrl(&self, ca: &str) {
        let cnf = format!("{ca}/ca.cnf");
        let key = format!("{ca}/key.pem");
        let cert = format!("{ca}.cert.pem");
        let out = format!("{ca}.crl.pem");
        openssl(
            &self.dir,
            &[
                "ca", "-batch", "-config", &cnf, "-keyfile", &key, "-cert", &cert, "-gencrl",
                "-out", &out,
            ],
        );
    }

    /// Concatenates files of the PKI directory into `name` (a keyring).
    pub fn bundle_files(&self, name: &str, parts: &[&str]) -> PathBuf {
        let mut text = String::new();
        for p in parts {
            text.push_str(&std::fs::read_to_string(self.path(p)).unwrap());
        }
        let out = self.path(name);
        std::fs::write(&out, text).unwrap();
        out
    }

    pub fn cert_der(&self, name: &str) -> Vec<u8> {
        let pem = std::fs::read(self.path(&format!("{name}.cert.pem"))).unwrap();
        openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap()
    }

    pub fn signer(&self, name: &str, scheme: SignatureScheme) -> FileSigner {
        FileSigner::load(&self.path(&format!("{name}.key.pem")), scheme)
    }
}

/// Signs `content` with leaf `name` of the PKI (the intermediate embedded).
pub fn sign_with(pki: &Pki, name: &str, scheme: SignatureScheme, content: Content<'_>) -> Vec<u8> {
    let inter = vec![pki.cert_der("inter")];
    signed::sign(
        content,
        &pki.signer(name, scheme),
        SignerCerts {
            certificate: &pki.cert_der(name),
            intermediates: &inter,
        },
        SystemTime::now(),
    )
    .unwrap()
}

/// Pseudo-random bytes (xorshift), deterministic.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What a test bundle should be.
pub enum Kind {
    Plain,
    Verity,
    Crypt,
}

/// Builds a bundle with the real mksquashfs: content dir with `rootfs.img` (24 KiB of noise) and
/// the internal manifest; returns the bundle path and the external manifest (verity/crypt).
pub fn build_bundle(
    dir: &Path,
    kind: Kind,
    sign: impl FnOnce(Content<'_>) -> Vec<u8>,
) -> (PathBuf, Manifest) {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    let image = noise(24 * 1024, 42);
    std::fs::write(content.join("rootfs.img"), &image).unwrap();
    let format = match kind {
        Kind::Plain => "plain",
        Kind::Verity => "verity",
        Kind::Crypt => "crypt",
    };
    let mut manifest = Manifest::parse(&format!(
        "[update]\ncompatible=Test Device\nversion=2024.01.0\n\n[bundle]\nformat={format}\n\n\
         [image.rootfs]\nfilename=rootfs.img\n"
    ))
    .unwrap();
    manifest.images[0].sha256 = Some(hex::encode(openssl::sha::sha256(&image)));
    manifest.images[0].size = Some(image.len() as u64);
    let internal = manifest.to_text(Vocabulary::Rauc18).unwrap();
    std::fs::write(content.join("manifest.raucm"), internal).unwrap();
    let out = dir.join(format!("{format}.raucb"));
    run(Command::new("mksquashfs").arg(&content).arg(&out).args([
        "-all-root",
        "-noappend",
        "-no-progress",
        "-no-xattrs",
        "-quiet",
    ]));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&out)
        .unwrap();
    let data_size = file.metadata().unwrap().len();
    assert_eq!(data_size % 4096, 0);
    let salt = bundle::verity::random_salt().unwrap();
    let cms = match kind {
        Kind::Plain => {
            let digest = signed::sha256_reader(&file, data_size).unwrap();
            sign(Content::Detached { sha256: digest })
        }
        Kind::Verity | Kind::Crypt => {
            let params = if matches!(kind, Kind::Crypt) {
                let key = CryptKey::generate().unwrap();
                manifest.set_crypt_key(&key);
                bundle::crypt::encrypt_file_and_append_tree(&file, data_size, &key, &salt, &|_| {})
                    .unwrap()
            } else {
                bundle::verity::append_tree(&file, data_size, &salt, &|_| {}).unwrap()
            };
            manifest.set_verity(&params);
            let text = manifest.to_text(Vocabulary::Rauc18).unwrap();
            sign(Content::Inline(text.as_bytes()))
        }
    };
    container::append_cms_to_file(&out, &cms, container::DEFAULT_MAX_SIGNATURE_SIZE).unwrap();
    (out, manifest)
}

/// A rauc 1.8 system.conf with the given `[keyring]` lines.
pub fn rauc_conf(dir: &Path, keyring_lines: &str) -> PathBuf {
    let p = dir.join("system.conf");
    std::fs::write(
        &p,
        format!(
            "[system]\ncompatible=Test Device\nbootloader=noop\n\n[keyring]\n{keyring_lines}\n"
        ),
    )
    .unwrap();
    p
}

//! A test PKI made with the openssl CLI: root → intermediate → leaves, CRLs, an unrelated root.
//!
//! `pkcs11_tests::vm::fixtures::TestPki` (a root and one code-signing leaf, valid from "now")
//! provides the unrelated root here; the release tests need more than it offers: an intermediate
//! CA, CRLs (`openssl ca -revoke/-gencrl`), certificates for keys that live in a token
//! (`openssl x509 -new -force_pubkey`) and CAs valid since 2019, so that a signature dated in the
//! past (expired signer + `use-bundle-signing-time`) still has a valid chain.

use std::path::{Path, PathBuf};
use std::process::Command;

use pkcs11_tests::vm::fixtures::TestPki;

use super::run::ok;

const CA_CONF: &str = r#"
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = DIR
certificate = CERT
private_key = DIR/key.pem
database = DIR/index.txt
new_certs_dir = DIR/newcerts
serial = DIR/serial
crlnumber = DIR/crlnumber
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
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_inter ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ smime ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ codesign ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ recipient ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,keyEncipherment,keyAgreement
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#;

/// Key algorithms for file keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
    /// RSA-2048.
    Rsa2048,
    /// RSA-3072.
    Rsa3072,
}

/// Certificate profiles (extension sections of [`CA_CONF`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// keyUsage digitalSignature, no EKU: passes OpenSSL's default `smimesign` purpose.
    Smime,
    /// EKU codeSigning only: needs `check-purpose=codesign`.
    CodeSign,
    /// keyEncipherment + keyAgreement: a device recipient for `encrypt --to`.
    Recipient,
}

impl Profile {
    fn section(self) -> &'static str {
        match self {
            Profile::Smime => "smime",
            Profile::CodeSign => "codesign",
            Profile::Recipient => "recipient",
        }
    }
}

/// The PKI in one directory: `root.cert.pem`, `inter.cert.pem`, `<leaf>.cert.pem` /
/// `<leaf>.key.pem`, `root.crl.pem`, `inter.crl.pem`, and `other.cert.pem` (an unrelated root).
#[derive(Debug)]
pub struct Pki {
    /// The directory.
    pub dir: PathBuf,
}

impl Pki {
    /// Creates root and intermediate (valid 2019–2039), their CRLs and the unrelated root.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.make_ca("root", None);
        pki.make_ca("inter", Some("root"));
        let other = TestPki::create(&dir.join("other").tap_mkdir()).unwrap();
        std::fs::copy(&other.root_cert, pki.path("other.cert.pem")).unwrap();
        pki.gencrl("root");
        pki.gencrl("inter");
        pki
    }

    /// A file of the PKI directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `<name>.cert.pem`.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.cert.pem"))
    }

    /// `<name>.key.pem`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.key.pem"))
    }

    /// The root certificate alone: the keyring of most tests (intermediates travel in the CMS).
    pub fn root(&self) -> PathBuf {
        self.cert("root")
    }

    /// The intermediate certificate (for `--intermediate`).
    pub fn inter(&self) -> PathBuf {
        self.cert("inter")
    }

    fn openssl(&self, args: &[&str]) -> String {
        ok(Command::new("openssl").current_dir(&self.dir).args(args)).stdout_text()
    }

    /// Generates a PEM private key `<name>.key.pem`.
    pub fn keygen(&self, name: &str, alg: Alg) -> PathBuf {
        let out = self.key(name);
        let opts: &[&str] = match alg {
            Alg::P256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Alg::P384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            Alg::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Alg::Rsa3072 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
        };
        let mut args = vec!["genpkey"];
        args.extend(opts);
        args.extend(["-out", out.to_str().unwrap()]);
        self.openssl(&args);
        out
    }

    fn make_ca(&self, name: &str, parent: Option<&str>) {
        let d = self.dir.join(name);
        std::fs::create_dir_all(d.join("newcerts")).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), format!("{:02X}\n", 16 + name.len())).unwrap();
        std::fs::write(d.join("crlnumber"), "01\n").unwrap();
        let conf = CA_CONF
            .replace("DIR", d.to_str().unwrap())
            .replace("CERT", self.cert(name).to_str().unwrap());
        std::fs::write(d.join("ca.cnf"), conf).unwrap();
        let key = format!("{name}/key.pem");
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ]);
        let cnf = format!("{name}/ca.cnf");
        let csr = format!("{name}/req.csr");
        let subj = format!("/O=Test/CN=Test {name} CA");
        self.openssl(&[
            "req", "-new", "-key", &key, "-subj", &subj, "-config", &cnf, "-out", &csr,
        ]);
        let (pcnf, pkey, ext) = match parent {
            None => (cnf.clone(), key.clone(), "v3_root"),
            Some(p) => (format!("{p}/ca.cnf"), format!("{p}/key.pem"), "v3_inter"),
        };
        let cert = format!("{name}.cert.pem");
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
        if parent.is_none() {
            args.push("-selfsign");
        }
        self.openssl(&args);
    }

    /// A file-key leaf issued by the intermediate: `<name>.key.pem` and `<name>.cert.pem`.
    /// `validity` is `(start, end)` as `YYYYMMDDHHMMSSZ`, default ten years from now.
    pub fn file_leaf(
        &self,
        name: &str,
        alg: Alg,
        profile: Profile,
        validity: Option<(&str, &str)>,
    ) -> (PathBuf, PathBuf) {
        let key = self.keygen(name, alg);
        let csr = format!("{name}.csr");
        let subj = format!("/O=Test/CN=Test {name}");
        self.openssl(&[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &subj,
            "-config",
            "inter/ca.cnf",
            "-out",
            &csr,
        ]);
        let cert = self.cert(name);
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "inter/ca.cnf",
            "-extensions",
            profile.section(),
            "-notext",
            "-in",
            &csr,
            "-out",
            cert.to_str().unwrap(),
        ];
        if let Some((start, end)) = validity {
            args.extend(["-startdate", start, "-enddate", end]);
        }
        self.openssl(&args);
        (cert, key)
    }

    /// A certificate for a public key held elsewhere (a token key), issued by `issuer`
    /// (`inter` or `root`): `<name>.cert.pem`.
    pub fn cert_for_public_key(
        &self,
        name: &str,
        public_pem: &str,
        profile: Profile,
        issuer: &str,
    ) -> PathBuf {
        let pubfile = self.path(&format!("{name}.pub.pem"));
        std::fs::write(&pubfile, public_pem).unwrap();
        let mut serial = [0u8; 8];
        openssl::rand::rand_bytes(&mut serial).unwrap();
        serial[0] &= 0x7f;
        let cert = self.cert(name);
        let subj = format!("/O=Test/CN=Test {name}");
        self.openssl(&[
            "x509",
            "-new",
            "-force_pubkey",
            pubfile.to_str().unwrap(),
            "-subj",
            &subj,
            "-CA",
            self.cert(issuer).to_str().unwrap(),
            "-CAkey",
            &format!("{issuer}/key.pem"),
            "-set_serial",
            &format!("0x{}", hex::encode(serial)),
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            &format!("{issuer}/ca.cnf"),
            "-extensions",
            profile.section(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        cert
    }

    /// Revokes `<name>.cert.pem` (issued by the intermediate) and regenerates its CRL.
    pub fn revoke(&self, name: &str) {
        let cert = self.cert(name);
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "inter/ca.cnf",
            "-revoke",
            cert.to_str().unwrap(),
        ]);
        self.gencrl("inter");
    }

    fn gencrl(&self, ca: &str) {
        let cnf = format!("{ca}/ca.cnf");
        let out = format!("{ca}.crl.pem");
        self.openssl(&["ca", "-batch", "-config", &cnf, "-gencrl", "-out", &out]);
    }

    /// Concatenates PKI files (certificates, CRLs) into `name`: a keyring or a recipient list.
    pub fn concat(&self, name: &str, parts: &[&Path]) -> PathBuf {
        let mut text = String::new();
        for p in parts {
            text.push_str(&std::fs::read_to_string(p).unwrap());
        }
        let out = self.path(name);
        std::fs::write(&out, text).unwrap();
        out
    }

    /// The keyring with root and intermediate certificates and both CRLs (for `check-crl`).
    pub fn crl_keyring(&self) -> PathBuf {
        self.concat(
            "keyring-crl.pem",
            &[
                &self.root(),
                &self.path("root.crl.pem"),
                &self.path("inter.crl.pem"),
            ],
        )
    }

    /// `n` recipient certificates for fresh EC keys of `curve` (issued by the intermediate
    /// in-process with the openssl crate: hundreds of them in well under a second), as one PEM
    /// file `<name>.pem`.
    pub fn many_recipients(&self, name: &str, n: usize, curve: openssl::nid::Nid) -> PathBuf {
        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::x509::extension::{
            AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
        };
        use openssl::x509::{X509, X509NameBuilder};

        let ca = X509::from_pem(&std::fs::read(self.inter()).unwrap()).unwrap();
        let ca_key =
            PKey::private_key_from_pem(&std::fs::read(self.path("inter/key.pem")).unwrap())
                .unwrap();
        let group = EcGroup::from_curve_name(curve).unwrap();
        let mut pem = Vec::new();
        for i in 0..n {
            let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
            let mut subject = X509NameBuilder::new().unwrap();
            subject.append_entry_by_text("O", "Test").unwrap();
            subject
                .append_entry_by_text("CN", &format!("Test {name} {i}"))
                .unwrap();
            let subject = subject.build();
            let mut b = X509::builder().unwrap();
            b.set_version(2).unwrap();
            let mut serial = BigNum::new().unwrap();
            serial
                .rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)
                .unwrap();
            b.set_serial_number(&serial.to_asn1_integer().unwrap())
                .unwrap();
            b.set_subject_name(&subject).unwrap();
            b.set_issuer_name(ca.subject_name()).unwrap();
            b.set_pubkey(&key).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
                .unwrap();
            b.append_extension(BasicConstraints::new().critical().build().unwrap())
                .unwrap();
            b.append_extension(KeyUsage::new().critical().key_agreement().build().unwrap())
                .unwrap();
            let ctx = b.x509v3_context(Some(&ca), None);
            let ski = SubjectKeyIdentifier::new().build(&ctx).unwrap();
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&ctx)
                .unwrap();
            b.append_extension(ski).unwrap();
            b.append_extension(aki).unwrap();
            b.sign(&ca_key, MessageDigest::sha256()).unwrap();
            pem.extend(b.build().to_pem().unwrap());
        }
        let out = self.path(&format!("{name}.pem"));
        std::fs::write(&out, pem).unwrap();
        out
    }

    /// DER of a PEM certificate file.
    pub fn der(path: &Path) -> Vec<u8> {
        openssl::x509::X509::from_pem(&std::fs::read(path).unwrap())
            .unwrap()
            .to_der()
            .unwrap()
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

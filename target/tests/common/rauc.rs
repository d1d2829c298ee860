//! Real bundles for host tests: a test PKI made with the openssl CLI (environment.md §3) and
//! bundles made with the real `rauc` 1.8 (`bundle`, `encrypt`; §6.3).

use std::path::{Path, PathBuf};
use std::process::Command;

const EXTENSIONS: &str = "\
[req]
distinguished_name = dn
[dn]
[v3_root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[sign]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[enc]
basicConstraints=critical,CA:FALSE
keyUsage=critical,keyEncipherment,keyAgreement
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
";

/// Root CA, code-signing certificate, two EC recipients (`a` is the device, `b` another one).
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn create(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ext.cnf"), EXTENSIONS).unwrap();
        let genkey = |name: &str| {
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &format!("{name}.key.pem"),
                ],
            )
        };
        genkey("root");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "root.key.pem",
                "-subj",
                "/O=Test/CN=Test Root CA",
                "-days",
                "3650",
                "-sha256",
                "-config",
                "ext.cnf",
                "-extensions",
                "v3_root",
                "-out",
                "root.cert.pem",
            ],
        );
        for (name, cn, ext) in [
            ("sign", "Test Signer", "sign"),
            ("recip-a", "Device A", "enc"),
            ("recip-b", "Device B", "enc"),
        ] {
            genkey(name);
            let csr = format!("{name}.csr");
            openssl(
                dir,
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{name}.key.pem"),
                    "-subj",
                    &format!("/O=Test/CN={cn}"),
                    "-config",
                    "ext.cnf",
                    "-out",
                    &csr,
                ],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "root.cert.pem",
                    "-CAkey",
                    "root.key.pem",
                    "-CAcreateserial",
                    "-days",
                    "365",
                    "-sha256",
                    "-extfile",
                    "ext.cnf",
                    "-extensions",
                    ext,
                    "-out",
                    &format!("{name}.cert.pem"),
                ],
            );
        }
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A config only for rauc's build commands (it needs compatible and bootloader).
    fn build_conf(&self) -> PathBuf {
        let conf = self.file("build.conf");
        std::fs::write(
            &conf,
            format!(
                "[system]\ncompatible=Test Device\nbootloader=noop\n\n[keyring]\npath={}\ncheck-purpose=codesign\n",
                self.file("root.cert.pem").display()
            ),
        )
        .unwrap();
        conf
    }

    /// `rauc bundle` of `images` (class, file name, content) with `[bundle] format=<format>`;
    /// `extra` is appended to the manifest (e.g. a `[hooks]` group) and `files` (name,
    /// content, executable) are added to the content directory.
    pub fn bundle(
        &self,
        out: &Path,
        format: &str,
        compatible: &str,
        images: &[(&str, &str, &[u8])],
        extra: &str,
    ) -> PathBuf {
        self.bundle_with_files(out, format, compatible, images, extra, &[])
    }

    /// [`Pki::bundle`] with extra files in the content directory.
    pub fn bundle_with_files(
        &self,
        out: &Path,
        format: &str,
        compatible: &str,
        images: &[(&str, &str, &[u8])],
        extra: &str,
        files: &[(&str, &str)],
    ) -> PathBuf {
        let content = out.with_extension("content");
        std::fs::create_dir_all(&content).unwrap();
        let mut manifest = format!(
            "[update]\ncompatible={compatible}\nversion=2024.01.0\ndescription=test bundle {format}\n\n[bundle]\nformat={format}\n"
        );
        for (class, file, data) in images {
            std::fs::write(content.join(file), data).unwrap();
            manifest.push_str(&format!("\n[image.{class}]\nfilename={file}\n"));
        }
        manifest.push_str(extra);
        for (name, text) in files {
            let p = content.join(name);
            std::fs::write(&p, text).unwrap();
            super::chmod_x(&p);
        }
        std::fs::write(content.join("manifest.raucm"), manifest).unwrap();
        self.rauc(&[
            "bundle".into(),
            format!("--cert={}", self.file("sign.cert.pem").display()),
            format!("--key={}", self.file("sign.key.pem").display()),
            content.display().to_string(),
            out.display().to_string(),
        ]);
        out.to_path_buf()
    }

    /// `rauc encrypt --to=<recipient certs>`.
    pub fn encrypt(&self, input: &Path, out: &Path, recipients: &[&str]) -> PathBuf {
        let mut args = vec!["encrypt".to_string()];
        for r in recipients {
            args.push(format!(
                "--to={}",
                self.file(&format!("{r}.cert.pem")).display()
            ));
        }
        args.push(input.display().to_string());
        args.push(out.display().to_string());
        self.rauc(&args);
        out.to_path_buf()
    }

    fn rauc(&self, args: &[String]) {
        let out = Command::new("rauc")
            .arg(format!("--conf={}", self.build_conf().display()))
            .arg(format!(
                "--keyring={}",
                self.file("root.cert.pem").display()
            ))
            .args(args)
            .output()
            .expect("rauc");
        assert!(
            out.status.success(),
            "rauc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `rauc info` stdout with the given extra arguments.
    pub fn rauc_info(&self, conf: &Path, args: &[&str]) -> String {
        let out = Command::new("rauc")
            .arg(format!("--conf={}", conf.display()))
            .arg("info")
            .args(args)
            .output()
            .expect("rauc");
        assert!(
            out.status.success(),
            "rauc info {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

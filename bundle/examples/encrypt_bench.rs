//! Benchmark: `bundle::cms::enveloped::encrypt` against `rauc encrypt` (rauc 1.8).
//!
//! Run with `cargo run --release -p bundle --example encrypt_bench`. Recipient certificates
//! (100,000 P-256, 1,000 RSA-3072) and a rauc crypt bundle are generated in-process on the
//! first run and cached in `$ENCRYPT_BENCH_CACHE` (default `/tmp/enveloped-bench-cache`).
//! Every measurement runs in its own process, so peak memory (`ru_maxrss` from `wait4`) is per
//! run. Set `ENCRYPT_BENCH_SKIP_RAUC_100K=1` to skip `rauc encrypt` on 100,000 recipients and
//! `ENCRYPT_BENCH_SETS=p256-5000,rsa3072-1000` to run only some sets.
//!
//! Not a test: it asserts nothing and prints a table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use bundle::cms::enveloped::{
    EncryptOptions, RecipientIdKind, RecipientLayout, decrypt, encrypt, list_recipients,
    load_recipients,
};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509NameBuilder};
use rayon::prelude::*;

/// (name, number of certificates, file of the recipient set).
const SETS: &[(&str, usize)] = &[
    ("p256-300", 300),
    ("p256-5000", 5_000),
    ("p256-100000", 100_000),
    ("rsa3072-1000", 1_000),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return child(&args[2..]);
    }
    let cache = std::env::var_os("ENCRYPT_BENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/enveloped-bench-cache"));
    std::fs::create_dir_all(&cache).unwrap();
    let t = Instant::now();
    prepare(&cache);
    eprintln!(
        "inputs ready in {:.1} s (cache {})",
        t.elapsed().as_secs_f64(),
        cache.display()
    );
    run_table(&cache);
    decrypt_timings(&cache);
}

// ---------------------------------------------------------------------------------------
// Inputs

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("O", "Bench").unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

fn ec_key() -> PKey<Private> {
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
}

fn cert(
    ca: Option<(&PKey<Private>, &X509)>,
    key: &PKey<Private>,
    cn: &str,
    serial: u64,
    usage: KeyUsage,
) -> X509 {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut s = BigNum::new().unwrap();
    s.rand(120, openssl::bn::MsbOption::ONE, false).unwrap();
    s.add_word(serial as u32).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&s).unwrap())
        .unwrap();
    let subject = name(cn);
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(ca.map_or(&*subject, |(_, c)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    let mut usage = usage;
    b.append_extension(usage.critical().build().unwrap())
        .unwrap();
    if ca.is_none() {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(ca.map(|(_, c)| &**c), None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(ca.map_or(key, |(k, _)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

fn prepare(cache: &Path) {
    let ca_key_path = cache.join("ca.key.pem");
    let ca_cert_path = cache.join("ca.cert.pem");
    if !ca_cert_path.exists() {
        let key = ec_key();
        let c = cert(None, &key, "Bench Root CA", 1, {
            let mut u = KeyUsage::new();
            u.key_cert_sign().crl_sign();
            u
        });
        std::fs::write(&ca_key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(&ca_cert_path, c.to_pem().unwrap()).unwrap();
    }
    let ca_key = PKey::private_key_from_pem(&std::fs::read(&ca_key_path).unwrap()).unwrap();
    let ca_cert = X509::from_pem(&std::fs::read(&ca_cert_path).unwrap()).unwrap();
    let ca = (&ca_key, &ca_cert);

    let all_p256 = cache.join("p256-100000.pem");
    if !all_p256.exists() {
        eprintln!("generating 100,000 P-256 certificates (once)...");
        let pems: Vec<Vec<u8>> = (0..100_000u64)
            .into_par_iter()
            .map(|i| {
                let k = ec_key();
                let mut u = KeyUsage::new();
                u.key_agreement();
                cert(Some(ca), &k, &format!("device {i:06}"), i, u)
                    .to_pem()
                    .unwrap()
            })
            .collect();
        for (set, n) in SETS.iter().filter(|(s, _)| s.starts_with("p256")) {
            std::fs::write(cache.join(format!("{set}.pem")), pems[..*n].concat()).unwrap();
        }
    }
    let rsa = cache.join("rsa3072-1000.pem");
    if !rsa.exists() {
        eprintln!("generating 1,000 RSA-3072 keys and certificates (once; minutes)...");
        let keys: Vec<PKey<Private>> = (0..1000)
            .into_par_iter()
            .map(|_| PKey::from_rsa(Rsa::generate(3072).unwrap()).unwrap())
            .collect();
        let pems: Vec<Vec<u8>> = (0..1000u64)
            .into_par_iter()
            .map(|i| {
                let mut u = KeyUsage::new();
                u.key_encipherment();
                let k = &keys[i as usize];
                cert(Some(ca), k, &format!("rsa device {i:04}"), 200_000 + i, u)
                    .to_pem()
                    .unwrap()
            })
            .collect();
        std::fs::write(&rsa, pems.concat()).unwrap();
    }
    // One P-256 device key kept for the decryption timing (the last of the 5,000 set).
    let dec_key = cache.join("dec.key.pem");
    if !dec_key.exists() {
        let k = ec_key();
        let mut u = KeyUsage::new();
        u.key_agreement();
        let c = cert(Some(ca), &k, "decrypting device", 999_999, u);
        std::fs::write(&dec_key, k.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(cache.join("dec.cert.pem"), c.to_pem().unwrap()).unwrap();
    }
    prepare_bundle(cache, ca);
}

/// A crypt bundle with an unencrypted CMS, from `rauc bundle`.
fn prepare_bundle(cache: &Path, ca: (&PKey<Private>, &X509)) {
    let bundle = cache.join("crypt.raucb");
    if bundle.exists() {
        return;
    }
    let key = ec_key();
    let mut u = KeyUsage::new();
    u.digital_signature();
    let c = cert(Some(ca), &key, "Bench Signer", 7, u);
    std::fs::write(
        cache.join("sign.key.pem"),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(cache.join("sign.cert.pem"), c.to_pem().unwrap()).unwrap();
    let content = cache.join("content");
    let _ = std::fs::remove_dir_all(&content);
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        "[update]\ncompatible=Bench\nversion=1\n\n[bundle]\nformat=crypt\n\n[image.rootfs]\nfilename=rootfs.img\n",
    )
    .unwrap();
    let mut blob = vec![0u8; 256 * 1024];
    openssl::rand::rand_bytes(&mut blob).unwrap();
    std::fs::write(content.join("rootfs.img"), blob).unwrap();
    let st = Command::new("rauc")
        .arg("bundle")
        .arg(format!("--cert={}", cache.join("sign.cert.pem").display()))
        .arg(format!("--key={}", cache.join("sign.key.pem").display()))
        .arg(format!("--keyring={}", cache.join("ca.cert.pem").display()))
        .arg(&content)
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success(), "rauc bundle failed");
}

fn signed_data(cache: &Path) -> Vec<u8> {
    let b = std::fs::read(cache.join("crypt.raucb")).unwrap();
    let n = b.len();
    let s = u64::from_be_bytes(b[n - 8..].try_into().unwrap()) as usize;
    b[n - 8 - s..n - 8].to_vec()
}

// ---------------------------------------------------------------------------------------
// Measurements

fn options(layout: &str) -> EncryptOptions {
    match layout {
        "default" => EncryptOptions::default(),
        "compact-ski" => EncryptOptions::compact_ski(),
        _ => EncryptOptions {
            layout: RecipientLayout::Compact,
            recipient_id: RecipientIdKind::IssuerAndSerial,
            ..EncryptOptions::default()
        },
    }
}

/// CPU seconds of this process (all threads).
fn process_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The measured child: load the recipients, encrypt, print
/// `load_s encrypt_s bytes load_cpu_s encrypt_cpu_s`.
fn child(args: &[String]) {
    let (cache, set, layout) = (Path::new(&args[0]), &args[1], &args[2]);
    let content = signed_data(cache);
    let c0 = process_cpu();
    let t = Instant::now();
    let recipients =
        load_recipients(&[cache.join(format!("{set}.pem"))], SystemTime::now()).unwrap();
    let load = t.elapsed();
    let c1 = process_cpu();
    let t = Instant::now();
    let env = encrypt(&content, &recipients, &options(layout)).unwrap();
    let enc = t.elapsed();
    let c2 = process_cpu();
    std::fs::write(cache.join(format!("out-{set}-{layout}.der")), &env).unwrap();
    println!(
        "{} {} {} {} {}",
        load.as_secs_f64(),
        enc.as_secs_f64(),
        env.len(),
        c1 - c0,
        c2 - c1
    );
}

/// What GNU time reports about one process.
struct Run {
    wall: Duration,
    /// User + system CPU seconds (all threads).
    cpu: f64,
    /// Peak RSS in KiB.
    rss_kib: u64,
    stdout: String,
    ok: bool,
}

/// Runs `program args…` under GNU time. (`ru_maxrss` of a child forked from this process
/// would include this process's own peak, hence GNU time.)
fn measure(program: &Path, args: &[std::ffi::OsString]) -> Run {
    let tmp = std::env::temp_dir();
    let id = std::process::id();
    let (out_file, time_file) = (
        tmp.join(format!("encrypt-bench-{id}.out")),
        tmp.join(format!("encrypt-bench-{id}.time")),
    );
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&time_file)
        .arg(program)
        .args(args)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("GNU time (/usr/bin/time) runs");
    let wall = t.elapsed();
    let times = std::fs::read_to_string(&time_file).unwrap_or_default();
    let f: Vec<f64> = times
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_file(&time_file);
    Run {
        wall,
        cpu: f.first().unwrap_or(&0.0) + f.get(1).unwrap_or(&0.0),
        rss_kib: f.get(2).copied().unwrap_or(0.0) as u64,
        stdout,
        ok: status.success(),
    }
}

struct Rauc {
    run: Run,
    bytes: usize,
}

fn rauc_encrypt(cache: &Path, set: &str) -> Option<Rauc> {
    if set == "p256-100000" && std::env::var_os("ENCRYPT_BENCH_SKIP_RAUC_100K").is_some() {
        return None;
    }
    let out = cache.join(format!("rauc-{set}.raucb"));
    let _ = std::fs::remove_file(&out);
    let args = [
        "encrypt".into(),
        format!("--keyring={}", cache.join("ca.cert.pem").display()).into(),
        format!("--to={}", cache.join(format!("{set}.pem")).display()).into(),
        cache.join("crypt.raucb").into(),
        out.clone().into(),
    ];
    let run = measure(Path::new("/usr/bin/rauc"), &args);
    if !run.ok {
        eprintln!("rauc encrypt failed for {set}");
        return None;
    }
    let b = std::fs::read(&out).unwrap();
    let n = b.len();
    let bytes = u64::from_be_bytes(b[n - 8..].try_into().unwrap()) as usize;
    let _ = std::fs::remove_file(&out);
    Some(Rauc { run, bytes })
}

fn run_table(cache: &Path) {
    let exe = std::env::current_exe().unwrap();
    println!(
        "\n{:<12} {:<11} {:>6} {:>7} {:>7} {:>6} {:>6} {:>8} {:>9} {:>5} | {:>7} {:>7} {:>8} {:>9} {:>5} | {:>6} {:>6}",
        "set",
        "layout",
        "recips",
        "wall s",
        "cpu s",
        "load",
        "enc",
        "peak MiB",
        "CMS B",
        "B/rc",
        "rauc s",
        "cpu s",
        "peak MiB",
        "CMS B",
        "B/rc",
        "x wall",
        "x cpu"
    );
    let only = std::env::var("ENCRYPT_BENCH_SETS").ok();
    let selected = |set: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|s| s == set))
    };
    for (set, n) in SETS.iter().filter(|(s, _)| selected(s)) {
        let rauc = rauc_encrypt(cache, set);
        for layout in ["default", "compact-ski", "compact-ias"] {
            let args = ["child".into(), cache.into(), set.into(), layout.into()];
            let run = measure(&exe, &args);
            assert!(run.ok, "benchmark child failed for {set} {layout}");
            let f: Vec<f64> = run
                .stdout
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            let (load, enc, bytes) = (f[0], f[1], f[2] as usize);
            let _ = std::fs::remove_file(cache.join(format!("out-{set}-{layout}.der")));
            let wall = run.wall.as_secs_f64();
            let rauc_cols = match &rauc {
                Some(r) => format!(
                    "{:>7.2} {:>7.2} {:>8.1} {:>9} {:>5} | {:>5.1}x {:>5.1}x",
                    r.run.wall.as_secs_f64(),
                    r.run.cpu,
                    r.run.rss_kib as f64 / 1024.0,
                    r.bytes,
                    r.bytes / n,
                    r.run.wall.as_secs_f64() / wall,
                    r.run.cpu / run.cpu
                ),
                None => format!(
                    "{:>7} {:>7} {:>8} {:>9} {:>5} | {:>6} {:>6}",
                    "-", "-", "-", "-", "-", "-", "-"
                ),
            };
            println!(
                "{:<12} {:<11} {:>6} {:>7.3} {:>7.3} {:>6.3} {:>6.3} {:>8.1} {:>9} {:>5} | {}",
                set,
                layout,
                n,
                wall,
                run.cpu,
                load,
                enc,
                run.rss_kib as f64 / 1024.0,
                bytes,
                bytes / n,
                rauc_cols
            );
        }
    }
    println!(
        "\nwall/cpu s = our whole process (start, PEM parsing and checks, encryption, writing the \
         CMS); load/enc = wall time of those two phases inside it; rauc = the whole `rauc \
         encrypt` (input verification, certificates, CMS_encrypt, writing); x wall / x cpu = rauc \
         divided by ours."
    );
}

/// Decryption of a 5,000-recipient CMS with a file key (the recipient is the last one).
fn decrypt_timings(cache: &Path) {
    struct Key(PKey<Private>, Vec<u8>);
    impl bundle::keys::RecipientKey for Key {
        fn kind(&self) -> bundle::keys::KeyKind {
            bundle::keys::KeyKind::Ec(bundle::keys::EcCurve::P256)
        }
        fn certificate_der(&self) -> Option<Vec<u8>> {
            Some(self.1.clone())
        }
        fn ecdh(&self, p: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, bundle::keys::KeyError> {
            let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let mut bn = openssl::bn::BigNumContext::new()?;
            let pt = openssl::ec::EcPoint::from_bytes(&g, p, &mut bn)?;
            let peer = PKey::from_ec_key(EcKey::from_public_key(&g, &pt)?)?;
            let mut d = openssl::derive::Deriver::new(&self.0)?;
            d.set_peer(&peer)?;
            Ok(zeroize::Zeroizing::new(d.derive_to_vec()?))
        }
        fn rsa_decrypt(
            &self,
            _: &[u8],
            _: bundle::keys::RsaPadding,
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, bundle::keys::KeyError> {
            Err("EC key".into())
        }
    }
    let key =
        PKey::private_key_from_pem(&std::fs::read(cache.join("dec.key.pem")).unwrap()).unwrap();
    let cert_pem = cache.join("dec.cert.pem");
    let cert = X509::from_pem(&std::fs::read(&cert_pem).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let k = Key(key, cert);
    let mut recipients =
        load_recipients(&[cache.join("p256-5000.pem")], SystemTime::now()).unwrap();
    recipients.extend(load_recipients(&[cert_pem], SystemTime::now()).unwrap());
    let content = signed_data(cache);
    println!(
        "\ndecryption with a file key and its certificate, 5,001 recipients (ours, in-process):"
    );
    for layout in ["default", "compact-ski"] {
        let env = encrypt(&content, &recipients, &options(layout)).unwrap();
        let runs = 20;
        let t = Instant::now();
        for _ in 0..runs {
            decrypt(&env, &k).unwrap();
        }
        let per = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        let t = Instant::now();
        let listed = list_recipients(&env).unwrap().recipient_count();
        println!(
            "  {layout:<12} {:>9} bytes  decrypt {per:.2} ms  (listing {listed} recipients {:.1} ms)",
            env.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}

//! Payload throughput: dm-verity tree and crypt encrypt+hash over a file in the page cache.
//!
//! `cargo bench -p bundle --bench payload [-- SIZE_MIB]` (default 1024 MiB). Not a test: prints
//! the timings. Targets on the 2-core reference machine: verity ≪ 0.6 s, crypt ≪ 1.2 s per GiB.

use std::fs::File;
use std::io::Write;
use std::time::Instant;

use bundle::manifest::CryptKey;
use bundle::{crypt, verity};

/// CPU time (user + system) of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f`, printing wall time and CPU time.
fn timed(label: &str, f: impl FnOnce()) {
    let (t, c) = (Instant::now(), cpu_seconds());
    f();
    println!(
        "{label:<22} wall {:.3} s, cpu {:.3} s",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c
    );
}

fn main() {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    if std::env::args().any(|a| a == "mem") {
        in_memory();
        return;
    }
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))
            .expect("temp dir");
    let path = dir.path().join("payload");
    let mut chunk = vec![0u8; 1 << 20];
    openssl::rand::rand_bytes(&mut chunk).unwrap();
    {
        let mut f = File::create(&path).unwrap();
        for _ in 0..mib {
            f.write_all(&chunk).unwrap();
        }
    }
    let salt = [7u8; 32];
    let file = File::options().read(true).write(true).open(&path).unwrap();
    let mut params = None;
    timed("verity (first run)", || {
        params = Some(verity::append_tree(&file, size, &salt, &|_| {}).unwrap());
    });
    for run in 0..3 {
        timed(&format!("verity build #{run}"), || {
            verity::append_tree(&file, size, &salt, &|_| {}).unwrap();
        });
    }
    let params = params.unwrap();
    timed("verity verify", || {
        verity::verify_file(&file, size + params.tree_size, &params).unwrap();
    });
    let key = CryptKey::from_bytes([9u8; 32]);
    for run in 0..3 {
        timed(&format!("crypt enc+hash #{run}"), || {
            crypt::encrypt_file_and_append_tree(&file, size, &key, &salt, &|_| {}).unwrap();
        });
    }
    in_memory();
    println!(
        "(size {mib} MiB; {} rayon threads)",
        rayon::current_num_threads()
    );
}

fn in_memory() {
    let (salt, key) = ([7u8; 32], CryptKey::from_bytes([9u8; 32]));
    let mut mem = vec![1u8; 256 << 20];
    timed("in-memory 256 MiB tree", || {
        verity::build_tree(&mem, &salt).unwrap();
    });
    timed("in-memory 256 MiB enc", || {
        crypt::encrypt_in_place(&mut mem, &key, 0).unwrap();
    });
    timed("in-memory 256 MiB e+h", || {
        crypt::encrypt_and_hash(&mut mem, &key, &salt).unwrap();
    });
}

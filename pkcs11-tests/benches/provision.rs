//! Provisioning benchmark (not a test): `factory provision --batch` of N devices, each with its
//! own SoftHSM token (EC P-256 key generated inside, CSR signed by it, certificate from the CA
//! key in the station token, written back, recorded in the SQLite inventory), with `--jobs 2`
//! and `--jobs 1`, against the equivalent shell loop of `pkcs11-tool` + `openssl` (libp11
//! engine) + `sqlite3` (`provision_loop.sh`) in the same run. Prints wall time, CPU time
//! (the process and its children), peak RSS, devices per second and the ratio to the shell
//! loop, and the targets for the first `--jobs` value: at least 100 devices/s on 2 cores and
//! 10 times the shell loop.
//!
//! ```sh
//! cargo bench -p pkcs11-tests --bench provision -- [--devices N] [--shell-devices N] [--jobs 2,1]
//! ```
//!
//! `PROVISION_BENCH_DEVICES`, `PROVISION_BENCH_SHELL_DEVICES` and `PROVISION_BENCH_JOBS` also
//! set them (defaults 1,000, 50 and 2,1); `PROVISION_BENCH_WRAP` runs `factory` under a
//! profiler. Every row starts from a fresh station (its own SoftHSM, CA, inventory and device
//! tokens); setting them up is not measured. Each comparison runs twice: SoftHSM's token files
//! in the station directory (under `TMPDIR`, next to the inventory) and on a tmpfs (the
//! inventory stays in the station directory). SoftHSM's file store rewrites an object's file
//! (truncate, write) about 29 times while creating it, 87 times per device for either tool;
//! on ext4 that costs more kernel time and I/O than the whole station does.
//!
//! The shell loop runs over a sample and its devices/s is extrapolated. Each of its devices has
//! a SoftHSM of its own (as one device plugged into the station), so its per-device cost does
//! not grow with the sample (SoftHSM reads every token of its directory in every process);
//! `factory` sees all N tokens through one SoftHSM and scans them once per run.
//!
//! Measured on the shared 2-core development VM (release build, 1,000 devices, other builds
//! running): token files on tmpfs: `--jobs 2` 4.6 s (215-220 devices/s, 12-14x the shell loop),
//! `--jobs 1` 7.6-8.2 s; in the station directory on ext4: `--jobs 2` 15-18 s (55-65
//! devices/s, 3.4-5.4x), `--jobs 8` 13.5 s. The shell loop: 12-13 devices/s (ext4), 15-18
//! (tmpfs), about 75 and 60 ms per device.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use pkcs11_tests::bench::{Measurement, Table, measure, mib, secs};
use pkcs11_tests::station::{Station, USER_PIN};

const SHELL_LOOP: &str = include_str!("provision_loop.sh");
const TARGET_RATE: f64 = 100.0;
const TARGET_RATIO: f64 = 10.0;

/// The value after `flag`, else the environment variable `var`.
fn option(flag: &str, var: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(var).ok())
}

/// A count from [`option`], else `default`.
fn count(flag: &str, var: &str, default: usize) -> usize {
    option(flag, var).map_or(default, |v| v.parse().expect("a device count"))
}

/// A fresh station with device tokens for `n` serials (token files under `store`, else in
/// the station directory) and an initialized CA.
fn station(n: usize, store: Option<&Path>) -> (Station, Vec<String>) {
    let st = Station::with_token_store("", store);
    let serials: Vec<String> = (0..n).map(|i| format!("d{i:06}")).collect();
    st.device_tokens(&serials);
    st.ca_init();
    (st, serials)
}

/// Runs `cmd` with stdout and stderr to files in the station directory; returns the
/// measurement and stdout, or panics with what the command printed.
fn run(st: &Station, name: &str, cmd: &mut Command) -> (Measurement, String) {
    let (out, err) = (
        st.path(&format!("{name}.out")),
        st.path(&format!("{name}.err")),
    );
    cmd.stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let result = measure(cmd);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    match result {
        Ok(m) => (m, read(&out)),
        Err(e) => panic!("{e}\n{}{}", read(&out), read(&err)),
    }
}

/// `factory provision --batch` of `n` fresh devices with `jobs` workers.
fn ours(n: usize, jobs: usize, store: Option<&Path>) -> Measurement {
    let (st, serials) = station(n, store);
    let csv = st.path("batch.csv");
    std::fs::write(&csv, format!("serial\n{}\n", serials.join("\n"))).unwrap();
    let mut cmd = st.factory_command();
    cmd.arg("provision")
        .arg("--batch")
        .arg(&csv)
        .args(["--jobs", &jobs.to_string()]);
    let (m, stdout) = run(&st, "factory", &mut wrapped(cmd));
    let expected = format!("provisioned: {n}, resumed: 0, already provisioned: 0, failed: 0");
    assert!(stdout.contains(&expected), "factory said: {stdout}");
    m
}

/// The shell loop over `n` fresh devices.
fn shell_loop(n: usize, store: Option<&Path>) -> Measurement {
    let (st, serials) = station(n, store);
    let (script, list, work) = (st.path("loop.sh"), st.path("serials.txt"), st.path("work"));
    std::fs::write(&script, SHELL_LOOP).unwrap();
    std::fs::write(&list, serials.join("\n") + "\n").unwrap();
    std::fs::create_dir(&work).unwrap();
    let confs: Vec<PathBuf> = serials
        .iter()
        .map(|s| st.detach_device_token(s).unwrap())
        .collect();
    let devices = confs[0].parent().and_then(Path::parent).unwrap(); // DEVICES/SERIAL/conf
    let db = st.path("shell-inventory.sqlite");
    let ca_key = format!("pkcs11:token=station;object=device-ca;type=private;pin-value={USER_PIN}");
    let (m, _) = run(
        &st,
        "loop",
        Command::new("bash")
            .arg(&script)
            .arg(&list)
            .envs(st.env())
            .env("MODULE", softhsm::SOFTHSM_MODULE)
            .env("PIN", USER_PIN)
            .env("CA_CERT", st.path("ca.pem"))
            .env("CA_KEY", ca_key)
            .env("DB", &db)
            .env("WORK", &work)
            .env("DEVICES", devices),
    );
    let rows = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT count(*) FROM devices")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), n.to_string());
    m
}

/// `cmd` run under the command line in `PROVISION_BENCH_WRAP` (a profiler such as
/// `strace -f -c -o FILE` or `perf record -g -o FILE`), or `cmd` itself.
fn wrapped(cmd: Command) -> Command {
    let Ok(wrapper) = std::env::var("PROVISION_BENCH_WRAP") else {
        return cmd;
    };
    let mut words = wrapper.split_whitespace();
    let mut outer = Command::new(words.next().expect("a wrapper command"));
    outer
        .args(words)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            outer.env(k, v);
        }
    }
    outer
}

fn rate(devices: usize, m: &Measurement) -> f64 {
    devices as f64 / m.wall.as_secs_f64()
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Where the SoftHSM token files live: the station directory (under `TMPDIR`) or a tmpfs.
const STORES: [(&str, Option<&str>); 2] = [("station dir", None), ("tmpfs", Some("/dev/shm"))];

/// Measures every `jobs` value and the shell loop with token files in `store`; adds the rows
/// to `t` and prints nothing. Returns the target lines.
fn compare(
    t: &mut Table,
    store: (&str, Option<&str>),
    n: usize,
    sample: usize,
    jobs: &[usize],
) -> String {
    let (name, dir) = (store.0, store.1.map(Path::new));
    let mut rows: Vec<(String, usize, Measurement)> = jobs
        .iter()
        .map(|&j| (format!("factory --jobs {j}"), n, ours(n, j, dir)))
        .collect();
    rows.push((
        "shell loop (sample)".into(),
        sample,
        shell_loop(sample, dir),
    ));
    let shell_rate = rate(sample, &rows[rows.len() - 1].2);
    for (what, devices, m) in &rows {
        t.row(vec![
            name.to_string(),
            what.clone(),
            devices.to_string(),
            secs(m.wall),
            secs(m.cpu),
            mib(m.max_rss_kib),
            format!("{:.1}", rate(*devices, m)),
            format!("{:.1}x", rate(*devices, m) / shell_rate),
        ]);
    }
    let (what, _, best) = &rows[0];
    let (ours_rate, ratio) = (rate(n, best), rate(n, best) / shell_rate);
    format!(
        "token files in {name}, {what}: target >= {TARGET_RATE} devices/s: {ours_rate:.1}, {}; \
         target >= {TARGET_RATIO}x the shell loop: {ratio:.1}x, {}\n",
        verdict(ours_rate >= TARGET_RATE),
        verdict(ratio >= TARGET_RATIO)
    )
}

fn main() {
    let n = count("--devices", "PROVISION_BENCH_DEVICES", 1000);
    let sample = count("--shell-devices", "PROVISION_BENCH_SHELL_DEVICES", 50);
    let jobs: Vec<usize> = option("--jobs", "PROVISION_BENCH_JOBS")
        .unwrap_or_else(|| "2,1".into())
        .split(',')
        .map(|j| j.trim().parse().expect("--jobs N[,N...]"))
        .collect();
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "provisioning benchmark: {n} devices (shell loop: a sample of {sample}), {cpus} CPUs, \
         station directories in {}, load average before: {}",
        std::env::temp_dir().display(),
        load().trim()
    );
    let mut t = Table::new(&[
        "token files",
        "run",
        "devices",
        "wall s",
        "CPU s",
        "peak RSS MiB",
        "devices/s",
        "vs shell loop",
    ]);
    let targets: String = STORES
        .iter()
        .map(|&store| compare(&mut t, store, n, sample, &jobs))
        .collect();
    println!();
    print!("{}", t.render());
    println!("\n{targets}load average after: {}", load().trim());
}

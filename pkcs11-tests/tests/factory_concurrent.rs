//! Four station processes provision into one inventory at once (each `factory provision
//! --batch` with two workers): 15 devices of their own each, plus 10 devices all four batches
//! list. Nothing is lost: every device is recorded exactly once with one audit entry, the
//! shared devices were provisioned by exactly one process (the others were told so), and the
//! tokens hold exactly the recorded keys.
//!
//! SoftHSM's file store is not safe for processes that start while others log in: every
//! C_Login rewrites the token's `token.object` in place, and a process reading it meanwhile
//! fails (keymgr retries those reads) or, inside C_Initialize, aborts
//! (`SlotManager::insertToken: Assertion 'result.second' failed`) or misses the token. A batch
//! hit by that is simply run again, as an operator would; the reruns are counted.

use std::collections::HashMap;
use std::process::Stdio;

use keymgr::TokenIndex;
use pkcs11_tests::station::{Station, check_agreement, text};

const PROCESSES: usize = 4;
const OWN: usize = 15;
const SHARED: usize = 10;

#[test]
fn four_station_processes_lose_nothing() {
    let st = Station::new("");
    let own = |w: usize| (0..OWN).map(move |i| format!("p{w}-{i:02}"));
    let shared: Vec<String> = (0..SHARED).map(|i| format!("s-{i:02}")).collect();
    let mut serials: Vec<String> = (0..PROCESSES).flat_map(own).collect();
    serials.extend(shared.iter().cloned());
    st.device_tokens(&serials);
    st.ca_init();

    let csvs: Vec<_> = (0..PROCESSES)
        .map(|w| {
            let mut rows: Vec<String> = own(w).collect();
            // Shared devices in the middle, in a different order per process.
            let mut mine = shared.clone();
            mine.rotate_left(w * 3);
            rows.splice(OWN / 2..OWN / 2, mine);
            let path = st.path(&format!("batch-{w}.csv"));
            std::fs::write(&path, format!("serial\n{}\n", rows.join("\n"))).unwrap();
            path
        })
        .collect();
    let mut pending: Vec<usize> = (0..PROCESSES).collect();
    let (mut waves, mut reruns) = (0, 0);
    while !pending.is_empty() {
        waves += 1;
        assert!(waves <= 5, "batches {pending:?} keep failing");
        let children: Vec<_> = pending
            .iter()
            .map(|&w| {
                let child = st
                    .factory_command()
                    .args(["provision", "--batch"])
                    .arg(&csvs[w])
                    .args(["--jobs", "2"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (w, child)
            })
            .collect();
        let mut again = Vec::new();
        for (w, child) in children {
            let out = child.wait_with_output().unwrap();
            let report = text(&out);
            eprintln!("wave {waves}, batch {w}: {}\n{report}", out.status);
            if !batch_ok(&out.status, &report, &shared) {
                again.push(w);
            }
        }
        reruns += again.len();
        pending = again;
    }
    eprintln!("{waves} waves, {reruns} batches run again after SoftHSM failures");

    let config = factory::config::StationConfig::load(&st.config).unwrap();
    let inv = factory::inventory::Inventory::open(&config.inventory).unwrap();
    let devices = inv.devices(&Default::default()).unwrap();
    assert_eq!(devices.len(), serials.len(), "every device is recorded");
    let mut provisions: HashMap<String, usize> = HashMap::new();
    for entry in inv.audit_log(None).unwrap() {
        if entry.action == "provision" {
            *provisions
                .entry(entry.serial.unwrap().to_string())
                .or_default() += 1;
        }
    }
    for s in &serials {
        assert_eq!(provisions.get(s), Some(&1), "{s}: one provision entry");
    }
    assert_eq!(
        inv.check_audit_chain().unwrap() as usize,
        serials.len() + 1, // + ca-init
        "audit chain intact"
    );
    assert!(inv.pending_intents().unwrap().is_empty());
    drop(inv);

    let labels: Vec<String> = serials.iter().map(|s| format!("dev-{s}")).collect();
    let index = TokenIndex::new(softhsm::SOFTHSM_MODULE.as_ref()).unwrap();
    match check_agreement(&st.config, &index, &labels) {
        Ok(n) => assert_eq!(n, serials.len()),
        Err(problems) => panic!("inventory and tokens disagree:\n{}", problems.join("\n")),
    }
    let out = st.factory(&["verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Whether a batch finished; its only failures may be shared devices another process has.
/// Panics on any other failure, except those of SoftHSM's multi-process races (see the module
/// documentation), for which it returns false (run the batch again).
fn batch_ok(status: &std::process::ExitStatus, report: &str, shared: &[String]) -> bool {
    const SOFTHSM_RACES: [&str; 5] = [
        "SlotManager",
        "no PKCS#11 token matches",
        "CKR_GENERAL_ERROR",
        "CKR_USER_PIN_NOT_INITIALIZED",
        "a worker could not start",
    ];
    let softhsm_race = || SOFTHSM_RACES.iter().any(|r| report.contains(r));
    match status.code() {
        Some(0) => return true,
        Some(2) => {}
        _ if softhsm_race() => return false,
        _ => panic!("a station process failed: {status}\n{report}"),
    }
    let mut ok = true;
    for line in report.lines().filter(|l| l.starts_with("device ")) {
        let serial = line.split_whitespace().nth(1).unwrap();
        let told =
            line.contains("is being provisioned by") || line.contains("already in the inventory");
        if told && shared.iter().any(|s| s == serial) {
            continue;
        }
        assert!(
            SOFTHSM_RACES.iter().any(|r| line.contains(r)),
            "unexpected failure: {line}"
        );
        ok = false;
    }
    ok && !report.contains("a worker could not start")
}

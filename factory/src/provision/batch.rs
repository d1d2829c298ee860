//! Batch provisioning from CSV with parallel workers. Each worker owns its inventory
//! connection, CA signer session and device-token sessions; a failure is recorded and the batch
//! goes on.
//!
//! CSV: a header line naming the columns; `serial` is required, `group`, `tags` (separated by
//! `;`), `token` (URI) and `profile` are optional. Lines starting with `#` are comments.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ProvisionOutcome, ProvisionRequest, Provisioner};
use crate::error::{FactoryError, Result};
use crate::types::{DeviceSerial, DeviceStatus, check_label};

const COLUMNS: [&str; 5] = ["serial", "group", "tags", "token", "profile"];

/// One CSV line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// 1-based line number in the file.
    pub line: u64,
    /// The request.
    pub request: ProvisionRequest,
}

/// The result of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Newly provisioned.
    Provisioned,
    /// An interrupted run was completed.
    Resumed,
    /// Already recorded with this status; nothing changed.
    AlreadyProvisioned(DeviceStatus),
    /// Failed, with the message.
    Failed(String),
}

/// One finished entry (passed to the progress callback and collected in the summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// CSV line.
    pub line: u64,
    /// Device.
    pub serial: DeviceSerial,
    /// What happened.
    pub result: BatchResult,
}

/// Totals of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Newly provisioned.
    pub provisioned: u64,
    /// Interrupted runs completed.
    pub resumed: u64,
    /// Already recorded.
    pub already: u64,
    /// Failed entries, in line order.
    pub failed: Vec<BatchItem>,
    /// Why workers could not start (each distinct message once); their entries went to the
    /// other workers, or failed as "not attempted" if none started.
    pub worker_errors: Vec<String>,
}

/// Reads and validates a batch file; duplicate serials and unknown columns are errors.
pub fn read_batch_csv(path: &Path) -> Result<Vec<BatchEntry>> {
    let input_err = |line: u64, message: String| FactoryError::Input {
        path: path.to_path_buf(),
        line,
        message,
    };
    let content = std::fs::read(path).map_err(|e| FactoryError::io("failed to read", path, e))?;
    // Line numbers from byte offsets (csv's own count and positions include skipped comment
    // lines): the first line at or after the record's start that is not a comment.
    let lines: Vec<&[u8]> = content.split(|b| *b == b'\n').collect();
    let line_at = |pos: Option<&csv::Position>| {
        pos.map_or(0, |p| {
            let end = (p.byte() as usize).min(content.len());
            let mut line = content[..end].iter().filter(|b| **b == b'\n').count();
            while lines
                .get(line)
                .is_some_and(|l| l.trim_ascii_start().starts_with(b"#"))
            {
                line += 1;
            }
            line as u64 + 1
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(content.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| input_err(1, e.to_string()))?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h == name);
    if let Some(bad) = headers.iter().find(|h| !COLUMNS.contains(h)) {
        return Err(input_err(
            1,
            format!("unknown column '{bad}' (columns: {})", COLUMNS.join(", ")),
        ));
    }
    let serial_col =
        index("serial").ok_or_else(|| input_err(1, "the header has no 'serial' column".into()))?;
    let mut entries: Vec<BatchEntry> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| input_err(line_at(e.position()), e.to_string()))?;
        let line = line_at(record.position());
        let field = |name: &str| {
            index(name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let serial = DeviceSerial::new(record.get(serial_col).unwrap_or(""))
            .map_err(|e| input_err(line, e.to_string()))?;
        if let Some(first) = seen.insert(serial.clone(), line) {
            return Err(input_err(
                line,
                format!("device '{serial}' is listed twice (first on line {first})"),
            ));
        }
        let tags: Vec<String> = field("tags")
            .map(|t| {
                t.split(';')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let group = field("group");
        group
            .iter()
            .chain(&tags)
            .try_for_each(|l| check_label("group or tag", l))
            .map_err(|e| input_err(line, e.to_string()))?;
        entries.push(BatchEntry {
            line,
            request: ProvisionRequest {
                serial,
                group,
                tags,
                token_uri: field("token"),
                profile: field("profile"),
            },
        });
    }
    Ok(entries)
}

/// Provisions `entries` with `jobs` workers. `worker` creates a worker's provisioner (its own
/// inventory connection and CA session) inside the worker thread; `progress` is called after
/// each entry. Failures are collected, never stop the batch.
pub fn run_batch<'a>(
    entries: &[BatchEntry],
    jobs: usize,
    worker: &(dyn Fn() -> Result<Provisioner<'a>> + Sync),
    progress: &(dyn Fn(&BatchItem) + Sync),
) -> BatchSummary {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<BatchItem>>> = Mutex::new(vec![None; entries.len()]);
    let worker_errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, entries.len().max(1)) {
            s.spawn(|| {
                let mut provisioner = match worker() {
                    Ok(p) => p,
                    Err(e) => return worker_errors.lock().unwrap().push(e.to_string()),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let item = run_one(&mut provisioner, entry);
                    progress(&item);
                    results.lock().unwrap()[i] = Some(item);
                }
            });
        }
    });
    let mut worker_errors = worker_errors.into_inner().unwrap();
    worker_errors.dedup();
    let worker_error = worker_errors.first().cloned();
    let mut summary = BatchSummary {
        worker_errors,
        ..BatchSummary::default()
    };
    for (entry, item) in entries.iter().zip(results.into_inner().unwrap()) {
        let item = item.unwrap_or_else(|| BatchItem {
            line: entry.line,
            serial: entry.request.serial.clone(),
            result: BatchResult::Failed(format!(
                "not attempted: no worker could start: {}",
                worker_error.as_deref().unwrap_or("unknown error")
            )),
        });
        match item.result {
            BatchResult::Provisioned => summary.provisioned += 1,
            BatchResult::Resumed => summary.resumed += 1,
            BatchResult::AlreadyProvisioned(_) => summary.already += 1,
            BatchResult::Failed(_) => summary.failed.push(item),
        }
    }
    summary
}

fn run_one(provisioner: &mut Provisioner<'_>, entry: &BatchEntry) -> BatchItem {
    let result = match provisioner.provision(&entry.request) {
        Ok(ProvisionOutcome::Provisioned(_)) => BatchResult::Provisioned,
        Ok(ProvisionOutcome::Resumed(_)) => BatchResult::Resumed,
        Ok(ProvisionOutcome::AlreadyProvisioned(d)) => BatchResult::AlreadyProvisioned(d.status),
        Err(e) => BatchResult::Failed(e.to_string()),
    };
    BatchItem {
        line: entry.line,
        serial: entry.request.serial.clone(),
        result,
    }
}

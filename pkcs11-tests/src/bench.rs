//! Support for the benchmark binaries in `benches/`: run a command (ours or a peer such as
//! `rauc`), measure wall time, CPU time and peak memory, and print comparison tables.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// Resources used by one child process.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Wall-clock time from spawn to exit.
    pub wall: Duration,
    /// User plus system CPU time of the child (and its waited-for children).
    pub cpu: Duration,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

/// Runs `cmd` to completion and measures it; fails if it cannot start or exits non-zero.
pub fn measure(cmd: &mut Command) -> Result<Measurement, String> {
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped; both out-pointers are valid.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if rc != pid {
        return Err(format!(
            "wait4 failed for {cmd:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let exit = ExitStatus::from_raw(status);
    if !exit.success() {
        return Err(format!("{cmd:?} failed: {exit}"));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Measurement {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
    })
}

/// Runs `f` in this process and returns its wall time and result.
pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// Peak resident set size of this process so far, in KiB (`VmHWM`).
pub fn own_peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A plain-text table with right-aligned numeric columns.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Starts a table with the given column titles.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as the header).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].len())
                    .chain([self.header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if c == 0 {
                        format!("{s:<w$}", w = width[c])
                    } else {
                        format!("{s:>w$}", w = width[c])
                    }
                })
                .collect();
            parts.join("  ")
        };
        let mut out = line(&self.header) + "\n";
        out += &width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ");
        out.push('\n');
        for r in &self.rows {
            out += &line(r);
            out.push('\n');
        }
        out
    }
}

/// Seconds with millisecond precision.
pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_renders() {
        let m = measure(
            Command::new("sh").args(["-c", "head -c 20000000 /dev/zero | sha256sum >/dev/null"]),
        )
        .unwrap();
        assert!(m.max_rss_kib > 0 && m.wall > Duration::ZERO);
        assert!(measure(&mut Command::new("false")).is_err());
        let mut t = Table::new(&["what", "s"]);
        t.row(vec!["x".into(), secs(m.wall)]);
        assert!(t.render().contains("what"));
    }
}

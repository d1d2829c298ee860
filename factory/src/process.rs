//! Who is running: the host, process id and process start time recorded as the owner of a
//! provisioning intent, and the user/host string recorded as the actor of audit entries.

use std::fmt;

/// A process, identified across PID reuse by its start time (`/proc/<pid>/stat` field 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (0 if unknown).
    pub start: u64,
}

/// Whether the owner of an intent is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The owning process is this process or still running on this host.
    Alive,
    /// The owning process ran on this host and is gone: its intent is stale.
    Dead,
    /// The owner ran on another host; this host cannot tell.
    OtherHost,
}

impl ProcessId {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: host_name(),
            pid,
            start: start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether this process is still running, judged from the current host.
    pub fn liveness(&self) -> Liveness {
        if self.host != host_name() {
            return Liveness::OtherHost;
        }
        match start_ticks(self.pid) {
            Some(start) if start == self.start => Liveness::Alive,
            _ => Liveness::Dead,
        }
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.host, self.pid)
    }
}

/// The host name (from `/proc/sys/kernel/hostname`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Start time of `pid` in clock ticks since boot, if the process exists.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3; field 22 is the 20th of them.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The audit actor of this process: `user@host[pid]`.
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("{user}@{}", ProcessId::current())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive() {
        let me = ProcessId::current();
        assert!(me.start > 0);
        assert_eq!(me.liveness(), Liveness::Alive);
        let gone = ProcessId {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(gone.liveness(), Liveness::Dead);
        let elsewhere = ProcessId {
            host: "other-host.invalid".into(),
            ..me
        };
        assert_eq!(elsewhere.liveness(), Liveness::OtherHost);
    }
}

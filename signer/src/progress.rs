//! Progress display for long work: bars on stderr when it is a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Creates progress phases; silent unless enabled and stderr is a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Progress on stderr if it is a terminal.
    pub fn terminal() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// No progress output at all.
    pub fn hidden() -> Self {
        Progress { enabled: false }
    }

    /// Starts a phase: a byte bar when `total` is known, else a spinner.
    pub fn phase(&self, message: &str, total: Option<u64>) -> Phase {
        if !self.enabled {
            return Phase {
                bar: ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden()),
            };
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:<28} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => {
                let s = ProgressBar::new_spinner()
                    .with_style(ProgressStyle::with_template("{msg:<28} {spinner} {elapsed}").expect("valid template"));
                s.enable_steady_tick(Duration::from_millis(120));
                s
            }
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_message(message.to_string());
        Phase { bar }
    }
}

/// One running phase; finished when dropped.
#[derive(Debug)]
pub struct Phase {
    bar: ProgressBar,
}

impl Phase {
    /// Adds `n` processed bytes (callable from any thread).
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

//! Nested progress steps, reported as (percentage, message, depth) like RAUC's.
//!
//! A step owns a share of its parent's percentage (`parent share / parent substeps`); a finished
//! step adds its share to its parent. The reported percentage is the sum of what the open steps
//! have finished, capped at 99 until the root step itself is finished. A finishing step reports
//! its message with " done." or " failed." appended. The depth is the number of open steps.

use std::sync::Arc;

/// One progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// 0–100.
    pub percentage: i32,
    /// The step's description (with " done."/" failed." when it ends).
    pub message: String,
    /// Nesting depth (1 for the root step).
    pub depth: i32,
}

impl ProgressUpdate {
    /// The line `rauc install` prints: `"%3d%% %s"`.
    pub fn line(&self) -> String {
        format!("{:3}% {}", self.percentage, self.message)
    }
}

/// Receives progress reports (the CLI prints them, the D-Bus service publishes them).
pub type ProgressFn = Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;

#[derive(Debug)]
struct Step {
    name: String,
    description: String,
    substeps_total: u32,
    substeps_done: u32,
    percent_total: f64,
    percent_done: f64,
}

/// A stack of open progress steps.
pub struct Progress {
    stack: Vec<Step>,
    callback: Option<ProgressFn>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("stack", &self.stack)
            .finish()
    }
}

impl Progress {
    /// A tracker reporting to `callback` (or nowhere).
    pub fn new(callback: Option<ProgressFn>) -> Self {
        Progress {
            stack: Vec::new(),
            callback,
        }
    }

    /// Opens a step with `substeps` child steps to come.
    pub fn begin(&mut self, name: &str, description: impl Into<String>, substeps: u32) {
        let percent_total = match self.stack.last() {
            Some(parent) if parent.substeps_total > 0 => {
                parent.percent_total / f64::from(parent.substeps_total)
            }
            Some(_) => 0.0,
            None => 100.0,
        };
        self.stack.push(Step {
            name: name.to_string(),
            description: description.into(),
            substeps_total: substeps,
            substeps_done: 0,
            percent_total,
            percent_done: 0.0,
        });
        self.report(None);
    }

    /// Closes the innermost step, which must be `name`.
    pub fn end(&mut self, name: &str, success: bool) {
        let Some(step) = self.stack.last_mut() else {
            tracing::warn!("progress: end of '{name}' without an open step");
            return;
        };
        debug_assert_eq!(step.name, name, "progress step nesting");
        step.percent_done = step.percent_total;
        step.substeps_done = step.substeps_total;
        let share = step.percent_total;
        let n = self.stack.len();
        if n >= 2 {
            let parent = &mut self.stack[n - 2];
            parent.substeps_done += 1;
            parent.percent_done = (parent.percent_done + share).min(parent.percent_total);
        }
        self.report(Some(success));
        self.stack.pop();
    }

    /// Number of open steps.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// Closes every open step as failed (after an error unwinds the executor).
    pub fn fail_all(&mut self) {
        while let Some(name) = self.stack.last().map(|s| s.name.clone()) {
            self.end(&name, false);
        }
    }

    fn report(&self, finished: Option<bool>) {
        let Some(cb) = &self.callback else { return };
        let Some(top) = self.stack.last() else { return };
        let mut pct: f64 = if self.stack.len() == 1 {
            top.percent_done
        } else {
            self.stack[..self.stack.len() - 1]
                .iter()
                .map(|s| s.percent_done)
                .sum()
        };
        if top.percent_done < 100.0 && pct > 99.0 {
            pct = 99.0;
        }
        let message = match finished {
            Some(true) => format!("{} done.", top.description),
            Some(false) => format!("{} failed.", top.description),
            None => top.description.clone(),
        };
        cb(&ProgressUpdate {
            percentage: pct.clamp(0.0, 100.0) as i32,
            message,
            depth: self.stack.len() as i32,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn nested_percentages_like_rauc() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let mut p = Progress::new(Some(Arc::new(move |u: &ProgressUpdate| {
            l.lock().unwrap().push((u.line(), u.depth))
        })));
        p.begin("install", "Installing", 2);
        p.begin("a", "Checking", 0);
        p.end("a", true);
        p.begin("b", "Updating slots", 2);
        p.begin("c", "Copying image to rootfs.1", 0);
        p.end("c", true);
        p.begin("d", "Copying image to appfs.1", 0);
        p.end("d", false);
        p.end("b", true);
        p.end("install", true);
        let got = lines.lock().unwrap().clone();
        let want = [
            ("  0% Installing", 1),
            ("  0% Checking", 2),
            (" 50% Checking done.", 2),
            (" 50% Updating slots", 2),
            (" 50% Copying image to rootfs.1", 3),
            (" 75% Copying image to rootfs.1 done.", 3),
            (" 75% Copying image to appfs.1", 3),
            (" 99% Copying image to appfs.1 failed.", 3),
            (" 99% Updating slots done.", 2),
            ("100% Installing done.", 1),
        ];
        let want: Vec<_> = want.iter().map(|(s, d)| (s.to_string(), *d)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn fail_all_unwinds() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let mut p = Progress::new(Some(Arc::new(move |u: &ProgressUpdate| {
            l.lock().unwrap().push(u.line())
        })));
        p.begin("install", "Installing", 3);
        p.begin("x", "Checking bundle", 0);
        p.fail_all();
        assert_eq!(p.depth(), 0);
        assert_eq!(
            lines.lock().unwrap().last().unwrap(),
            "100% Installing failed."
        );
    }
}

//! Following a rollout: watches → snapshots → progress lines and verdicts.
//!
//! [`Watch`] keeps any kind's caches as raw JSON (a Deployment's rollout
//! has typed caches of its own); [`follow`] is the one loop that judges them until a verdict, and
//! [`wait_until`] the one that waits for a rollback or recovery to be
//! healthy. Caches resume and relist by themselves; the loops judge after
//! every change and on a short tick (for the grace and timeout clocks).

use std::io::Write;

use crate::model::Progress;
use crate::model::{Cause, Signal};

mod follow;
pub(crate) mod keep;
pub(crate) mod reflect;
mod wait;
mod watch;

pub use follow::{Clocks, Reading, RestartCounts};
pub(crate) use follow::{Subject, follow};
pub use wait::Poll;
pub(crate) use wait::{Source, wait_until};
pub use watch::{Watch, WatchSnapshot};

/// How a followed phase ended.
#[derive(Debug, Clone)]
pub enum Ended {
    Succeeded(Progress),
    Failed {
        progress: Progress,
        cause: Cause,
        signals: Vec<Signal>,
    },
    TimedOut {
        progress: Progress,
        signals: Vec<Signal>,
    },
}

impl Ended {
    /// Following could not start (nothing was applied).
    pub fn not_started() -> Ended {
        Ended::TimedOut {
            progress: Progress::default(),
            signals: Vec::new(),
        }
    }

    /// A failure's progress, cause, signals and whether it timed out; a
    /// success is `Err` with its progress.
    pub fn failure(self) -> Result<(Progress, Cause, Vec<Signal>, bool), Progress> {
        match self {
            Ended::Succeeded(p) => Err(p),
            Ended::Failed {
                progress,
                cause,
                signals,
            } => Ok((progress, cause, signals, false)),
            Ended::TimedOut { progress, signals } => Ok((progress, Cause::Timeout, signals, true)),
        }
    }
}

/// Prints a progress line whenever it changes.
pub(crate) struct Lines<'a> {
    pub out: &'a mut (dyn Write + Send),
    last: String,
}

impl<'a> Lines<'a> {
    pub fn new(out: &'a mut (dyn Write + Send)) -> Lines<'a> {
        Lines {
            out,
            last: String::new(),
        }
    }

    pub fn show(&mut self, p: &Progress) {
        if p.name.is_empty() {
            return;
        }
        let mut line = p.line();
        // The verdict's line has nothing to wait for: the counts alone are
        // not news when they did not change.
        if p.waiting_for.is_empty() && self.last.starts_with(&format!("{line}  waiting for ")) {
            return;
        }
        if !p.waiting_for.is_empty() {
            line.push_str(&format!(
                "  waiting for {}",
                crate::text::one_line(&p.waiting_for)
            ));
        }
        if line != self.last {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
            self.last = line;
        }
    }
}

//! The one follow loop: every kind shows it a [`Reading`] of its caches and
//! answers with its own rule ([`Subject::judge`]); the loop applies what is
//! the same for all of them — someone else's template change, a container
//! exit (the stability guard), unschedulable pods (permanent or waiting for
//! the autoscaler), the stability window, the bake with its metric gate, the
//! heartbeat and the deadline — and prints one progress line per change.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use tokio::time::Instant;

use crate::analysis::Gate;
use crate::guards::Guards;
use crate::model::{Cause, Signal};
use crate::model::{Mark, Phase};
use crate::model::{Progress, Timers, Verdict};
use crate::stability::Check;
use crate::track::{Ended, Lines};
use crate::workload::{self, Limits};

/// How long after a restart a pod must stay up before success is declared.
const RESTART_SETTLE: Duration = Duration::from_secs(10);

/// (pod, container) → restarts.
pub type RestartCounts = BTreeMap<(String, String), i32>;

/// What a kind shows the loop of one moment.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// The counts (what is awaited is the judge's to say).
    pub progress: Progress,
    /// The pods of our change, and the others of the workload.
    pub new_pods: Vec<Arc<Pod>>,
    pub old_pods: Vec<Arc<Pod>>,
    /// What the new pods (and their controller) show.
    pub signals: Vec<Signal>,
    pub events: Vec<Arc<Event>>,
    /// Another writer changed the template after our patch.
    pub superseded: Option<Signal>,
}

/// A workload's rollout as the follow loop sees it.
pub(crate) trait Subject {
    /// The kind's snapshot, handed back to [`Subject::judge`].
    type Snap;
    async fn next_change(&mut self);
    /// Every cache has listed.
    fn is_ready(&self) -> bool;
    fn read(&self) -> (Self::Snap, Reading);
    /// The kind's rule on one snapshot, with our clocks: fail fast, waiting
    /// (for what, in words) or done by the controller's own rule.
    fn judge(
        &self,
        snap: &Self::Snap,
        reading: &Reading,
        limits: &Limits,
        timers: &Timers,
    ) -> Verdict;
    /// A step the kind takes itself between judgements (a
    /// ReplicationController's scaling); true when it acted.
    async fn act(&mut self, _snap: &Self::Snap, _out: &mut (dyn Write + Send)) -> bool {
        false
    }
    /// Following a canary: its bake is the hold, and says so.
    fn is_canary(&self) -> bool {
        false
    }
    /// A moment of the run, for a kind that keeps a timeline.
    fn mark(&mut self, _mark: Option<Mark>, _phase: Phase) {}
}

/// Follow a rollout until success (the kind's rule, every new pod Ready and
/// stable for the window, then the bake), a fail-fast cause, someone else's
/// change, or the deadline.
pub(crate) async fn follow<S: Subject>(
    s: &mut S,
    limits: &Limits,
    deadline: Instant,
    bake: Duration,
    guards: &mut Guards,
    mut gate: Option<&mut Gate>,
    out: &mut (dyn Write + Send),
) -> Ended {
    let mut lines = Lines::new(out);
    let mut clocks = Clocks::default();
    // When the bake started, and the restart counts then.
    let mut baked_from: Option<(Instant, RestartCounts)> = None;
    loop {
        s.next_change().await;
        let now = Instant::now();
        let (snap, r) = s.read();
        if let Some(sig) = r.superseded.clone() {
            return Ended::Failed {
                progress: r.progress,
                cause: Cause::Superseded,
                signals: vec![sig],
            };
        }
        let restarts = workload::restart_counts(&r.new_pods);
        let mut timers = clocks.update(&r.signals, restarts.clone());
        if !s.is_ready() {
            if now >= deadline {
                return Ended::TimedOut {
                    progress: r.progress,
                    signals: r.signals,
                };
            }
            continue;
        }
        if let Some((since, baseline)) = &baked_from {
            let verdict = workload::judge_bake(
                r.progress.clone(),
                &r.new_pods,
                &r.signals,
                &restarts,
                baseline,
            );
            if let Verdict::Failed {
                progress,
                cause,
                signals,
            } = verdict
            {
                s.mark(Some(Mark::Verdict), Phase::Bake);
                return Ended::Failed {
                    progress,
                    cause,
                    signals,
                };
            }
            let ended = now - *since >= bake;
            if let Some(g) = gate.as_deref_mut() {
                let failed = if ended {
                    g.finish(lines.out).await.is_some()
                } else {
                    g.tick(now, lines.out).await.is_some()
                };
                if failed {
                    s.mark(Some(Mark::Verdict), Phase::Bake);
                    return Ended::Failed {
                        progress: r.progress,
                        cause: Cause::MetricGate,
                        signals: vec![g.signal()],
                    };
                }
            }
            if ended {
                let _ = writeln!(
                    lines.out,
                    "baked for {}: no restarts, every new pod ready{}",
                    humantime::format_duration(bake),
                    if gate.is_some() {
                        ", metric gate passed"
                    } else {
                        ""
                    }
                );
                s.mark(Some(Mark::Verdict), Phase::Bake);
                return Ended::Succeeded(r.progress);
            }
            continue;
        }
        let new_pods: Vec<&Pod> = r.new_pods.iter().map(|p| &**p).collect();
        if let Some(b) = guards.crashed(new_pods.iter().copied(), now) {
            lines.show(&r.progress);
            return Ended::Failed {
                progress: r.progress,
                cause: b.cause,
                signals: b.signals,
            };
        }
        let old_pods: Vec<&Pod> = r.old_pods.iter().map(|p| &**p).collect();
        if let Some((cause, signals)) = guards
            .unschedulable(
                &new_pods,
                &old_pods,
                &r.signals,
                &r.events,
                &mut timers,
                now,
            )
            .await
        {
            lines.show(&r.progress);
            return Ended::Failed {
                progress: r.progress,
                cause,
                signals,
            };
        }
        let (done, mut progress) = match s.judge(&snap, &r, limits, &timers) {
            Verdict::Failed {
                progress,
                cause,
                signals,
            } => {
                lines.show(&progress);
                s.mark(Some(Mark::Verdict), Phase::Rollout);
                return Ended::Failed {
                    progress,
                    cause,
                    signals,
                };
            }
            Verdict::Waiting(p) => (false, p),
            Verdict::Succeeded(p) => (true, p),
        };
        if s.act(&snap, lines.out).await {
            if now >= deadline {
                return Ended::TimedOut {
                    progress,
                    signals: r.signals,
                };
            }
            continue;
        }
        let waiting = if done {
            match guards.stability.check(new_pods.iter().copied(), now) {
                Check::Stable { shortest } => {
                    lines.show(&progress);
                    let note = guards.stability.stable_note(shortest);
                    let _ = writeln!(lines.out, "{note}");
                    guards.stable_note = Some(note);
                    s.mark(Some(Mark::Complete), Phase::Bake);
                    if bake.is_zero() {
                        return Ended::Succeeded(progress);
                    }
                    let opens = if s.is_canary() {
                        crate::canary::hold_line(bake)
                    } else {
                        format!(
                            "rollout complete; baking for {}",
                            humantime::format_duration(bake)
                        )
                    };
                    let _ = writeln!(lines.out, "{opens}");
                    baked_from = Some((now, restarts));
                    if let Some(g) = gate.as_deref_mut() {
                        g.begin(now, lines.out);
                    }
                    continue;
                }
                Check::Waiting { pending, next } => {
                    progress.waiting_for = guards.stability.waiting_for(pending, next);
                    "the stability window".to_string()
                }
            }
        } else {
            if let Some(note) = &guards.scale_up_note {
                progress.waiting_for = note.clone();
            }
            progress.waiting_for.clone()
        };
        lines.show(&progress);
        guards.heartbeat(
            &waiting,
            &r.signals,
            deadline,
            limits.unschedulable_grace,
            now,
            lines.out,
        );
        if now >= deadline {
            if progress.name.is_empty() {
                progress = r.progress;
            }
            s.mark(Some(Mark::Verdict), Phase::Rollout);
            return Ended::TimedOut {
                progress,
                signals: r.signals,
            };
        }
    }
}

/// The grace and restart-settle clocks, kept on our own clock from when a
/// state was first seen. Keyed by pod (by the ReplicaSet for FailedCreate).
#[derive(Default)]
pub struct Clocks {
    first_unschedulable: BTreeMap<String, Instant>,
    restarts_seen: BTreeMap<(String, String), (i32, Instant)>,
}

impl Clocks {
    /// Update from the new pods' signals and restart counts; the timers now.
    pub fn update(
        &mut self,
        signals: &[Signal],
        restarts: BTreeMap<(String, String), i32>,
    ) -> Timers {
        let now = Instant::now();
        let unschedulable: Vec<&str> = signals
            .iter()
            .filter(|s| matches!(s.cause, Cause::Unschedulable | Cause::ReplicaFailure))
            .map(|s| s.pod.as_str())
            .collect();
        self.first_unschedulable
            .retain(|p, _| unschedulable.contains(&p.as_str()));
        for p in &unschedulable {
            self.first_unschedulable.entry(p.to_string()).or_insert(now);
        }
        for (k, n) in restarts {
            let e = self.restarts_seen.entry(k).or_insert((0, now));
            if e.0 != n {
                *e = (n, now);
            }
        }
        Timers {
            unschedulable_for: self
                .first_unschedulable
                .iter()
                .map(|(p, t)| (p.clone(), now - *t))
                .collect(),
            recently_restarted: self
                .restarts_seen
                .iter()
                .filter(|(_, (n, t))| *n > 0 && now - *t < RESTART_SETTLE)
                .map(|((p, _), _)| p.clone())
                .collect(),
        }
    }
}

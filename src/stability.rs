//! The stability rule of the success verdict: every new pod must stay Ready,
//! without a container exit or restart, for a window counted from its own
//! Ready transition (on our clock, from when we first saw it Ready).
//!
//! kubectl's rule ("every new replica updated and available") lets through
//! the commonest failure: a container without a readiness probe is Ready the
//! moment it starts, so a build that exits a second later satisfies every
//! count. Within the window, one exit or restart fails the rollout at once;
//! a readiness flap without an exit only restarts that pod's window.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::time::Instant;

use crate::diagnose;

use crate::model::{Cause, Signal};

/// One new pod as the rule follows it.
#[derive(Debug, Clone)]
struct Watched {
    name: String,
    /// When we first saw it Ready in its current Ready stretch.
    ready_since: Option<Instant>,
    /// Restart counts of its containers when that stretch began.
    restarts: BTreeMap<String, i32>,
    /// The window passed once: later exits are judged by the other rules.
    proven: bool,
}

/// What the rule says of the new pods now.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Every new pod stayed Ready for the window; the shortest stretch seen.
    Stable { shortest: Duration },
    /// `pending` pods are still inside their window; the next one ends in `next`.
    Waiting { pending: usize, next: Duration },
}

/// A container exit or restart inside a pod's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub cause: Cause,
    pub signals: Vec<Signal>,
    /// How long the pod had been Ready when it broke.
    pub after: Duration,
}

/// Follows the new pods' Ready stretches.
#[derive(Debug, Clone)]
pub struct Stability {
    window: Duration,
    pods: BTreeMap<String, Watched>,
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn containers(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
}

fn key(pod: &Pod) -> String {
    pod.metadata
        .uid
        .clone()
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default()
}

impl Stability {
    /// `window` is the larger of the `stable-for` input and the workload's
    /// `minReadySeconds`; zero turns the rule off (kubectl's rule).
    pub fn new(window: Duration) -> Stability {
        Stability {
            window,
            pods: BTreeMap::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// The larger of `stable_for` and `minReadySeconds` of the workload.
    pub fn window_for(stable_for: Duration, min_ready_seconds: Option<i64>) -> Duration {
        stable_for.max(Duration::from_secs(
            min_ready_seconds.unwrap_or(0).max(0) as u64
        ))
    }

    /// Update from the new pods (not terminating) at `now`; an exit or restart
    /// inside a window is returned at once.
    pub fn observe<'a>(
        &mut self,
        pods: impl IntoIterator<Item = &'a Pod>,
        now: Instant,
    ) -> Option<Broken> {
        if self.window.is_zero() {
            return None;
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut broken = None;
        for pod in pods {
            let k = key(pod);
            seen.insert(k.clone());
            let w = self.pods.entry(k).or_insert_with(|| Watched {
                name: pod.metadata.name.clone().unwrap_or_default(),
                ready_since: None,
                restarts: BTreeMap::new(),
                proven: false,
            });
            if w.proven {
                continue;
            }
            let counts: BTreeMap<String, i32> = containers(pod)
                .map(|c| (c.name.clone(), c.restart_count))
                .collect();
            if let Some(since) = w.ready_since {
                let restarted = counts
                    .iter()
                    .any(|(c, n)| w.restarts.get(c).is_some_and(|b| n > b));
                let exited = containers(pod).any(|c| {
                    c.state.as_ref().is_some_and(|s| {
                        s.terminated.is_some()
                            || s.waiting
                                .as_ref()
                                .is_some_and(|wt| wt.reason.as_deref() == Some("CrashLoopBackOff"))
                    })
                });
                let ready_for = now.saturating_duration_since(since);
                if (restarted || exited) && ready_for < self.window {
                    broken = broken.or_else(|| Some(break_of(pod, &w.name, ready_for)));
                    continue;
                }
                if ready_for >= self.window && is_ready(pod) {
                    w.proven = true;
                    continue;
                }
                if !is_ready(pod) {
                    // Unready without an exit (a readiness probe): the window
                    // starts again when it is Ready again.
                    w.ready_since = None;
                }
            }
            if w.ready_since.is_none() && is_ready(pod) {
                w.ready_since = Some(now);
                w.restarts = counts;
            }
        }
        self.pods.retain(|k, _| seen.contains(k));
        broken
    }

    /// Whether every pod of `pods` has been Ready for the window.
    pub fn check<'a>(&self, pods: impl IntoIterator<Item = &'a Pod>, now: Instant) -> Check {
        let mut shortest: Option<Duration> = None;
        let mut pending = 0;
        let mut next: Option<Duration> = None;
        for pod in pods {
            let stretch = self
                .pods
                .get(&key(pod))
                .and_then(|w| w.ready_since)
                .map(|s| now.saturating_duration_since(s));
            if self.window.is_zero() {
                continue;
            }
            match stretch {
                Some(d) if d >= self.window => {
                    shortest = Some(shortest.map_or(d, |s| s.min(d)));
                }
                Some(d) => {
                    pending += 1;
                    let left = self.window - d;
                    next = Some(next.map_or(left, |n| n.min(left)));
                }
                None => {
                    pending += 1;
                    next = Some(next.map_or(self.window, |n| n.min(self.window)));
                }
            }
        }
        if pending == 0 {
            Check::Stable {
                shortest: shortest.unwrap_or_default(),
            }
        } else {
            Check::Waiting {
                pending,
                next: next.unwrap_or_default(),
            }
        }
    }

    /// "every new pod stayed Ready without a container exit or restart for
    /// at least 20s (shortest stretch observed 20.3s)".
    pub fn stable_note(&self, shortest: Duration) -> String {
        if self.window.is_zero() {
            return "stability window off (stable-for=0s): kubectl's rule only".into();
        }
        format!(
            "every new pod stayed Ready without a container exit or restart for at least {} (shortest stretch observed {:.1}s)",
            humantime::format_duration(self.window),
            shortest.as_secs_f64()
        )
    }

    /// The waiting-for sentence for a [`Check::Waiting`].
    pub fn waiting_for(&self, pending: usize, next: Duration) -> String {
        // No countdown: the line is printed on change, the heartbeat says
        // when the wait ends.
        let _ = next;
        format!(
            "{pending} new pod{} to stay Ready for {}",
            if pending == 1 { "" } else { "s" },
            humantime::format_duration(self.window),
        )
    }
}

/// The crash signals of a pod that exited inside its window.
fn break_of(pod: &Pod, name: &str, after: Duration) -> Broken {
    let signals: Vec<Signal> = diagnose::pod_signals::<k8s_openapi::api::core::v1::Event>(pod, &[])
        .into_iter()
        .filter(|s| matches!(s.cause, Cause::CrashLoop | Cause::OomKilled))
        .collect();
    let cause = signals
        .iter()
        .map(|s| s.cause)
        .min()
        .unwrap_or(Cause::CrashLoop);
    let signals = if signals.is_empty() {
        let c = containers(pod).find(|c| {
            c.restart_count > 0 || c.state.as_ref().is_some_and(|s| s.terminated.is_some())
        });
        vec![Signal {
            cause: Cause::CrashLoop,
            pod: name.to_string(),
            container: c.map(|c| c.name.clone()),
            message: "container exited while the pod was Ready".into(),
            restarts: c.map_or(0, |c| c.restart_count),
            exit_code: None,
        }]
    } else {
        signals
    };
    Broken {
        cause,
        signals,
        after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ready: bool, restarts: i32, terminated: bool) -> Pod {
        let state = if terminated {
            json!({"terminated": {"exitCode": 1, "reason": "Error"}})
        } else {
            json!({"running": {}})
        };
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "uid": "u1"},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                "containerStatuses": [{
                    "name": "web", "image": "i", "imageID": "", "ready": ready,
                    "restartCount": restarts, "state": state,
                    "lastState": if restarts > 0 { json!({"terminated": {"exitCode": 1, "reason": "Error"}}) } else { json!({}) }
                }]
            }
        }))
        .unwrap()
    }

    #[test]
    fn an_exit_inside_the_window_breaks_at_once() {
        let mut s = Stability::new(Duration::from_secs(20));
        let t0 = Instant::now();
        assert_eq!(s.observe([&pod(true, 0, false)], t0), None);
        let b = s
            .observe([&pod(false, 0, true)], t0 + Duration::from_secs(1))
            .expect("broken");
        assert_eq!(b.cause, Cause::CrashLoop);
        assert_eq!(b.signals[0].exit_code, Some(1));
    }

    #[test]
    fn a_restart_seen_only_as_a_count_breaks_too() {
        let mut s = Stability::new(Duration::from_secs(20));
        let t0 = Instant::now();
        s.observe([&pod(true, 0, false)], t0);
        assert!(
            s.observe([&pod(true, 1, false)], t0 + Duration::from_secs(2))
                .is_some()
        );
    }

    #[test]
    fn stable_after_the_window_and_not_before() {
        let mut s = Stability::new(Duration::from_secs(20));
        let t0 = Instant::now();
        let p = pod(true, 0, false);
        s.observe([&p], t0);
        assert!(matches!(
            s.check([&p], t0 + Duration::from_secs(5)),
            Check::Waiting { pending: 1, .. }
        ));
        let t1 = t0 + Duration::from_secs(21);
        assert_eq!(s.observe([&p], t1), None);
        assert!(matches!(s.check([&p], t1), Check::Stable { .. }));
        // After the window the other rules judge restarts.
        assert_eq!(
            s.observe([&pod(true, 1, false)], t1 + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn unready_without_an_exit_restarts_the_window() {
        let mut s = Stability::new(Duration::from_secs(20));
        let t0 = Instant::now();
        s.observe([&pod(true, 0, false)], t0);
        assert_eq!(
            s.observe([&pod(false, 0, false)], t0 + Duration::from_secs(5)),
            None
        );
        s.observe([&pod(true, 0, false)], t0 + Duration::from_secs(6));
        assert!(matches!(
            s.check([&pod(true, 0, false)], t0 + Duration::from_secs(21)),
            Check::Waiting { .. }
        ));
    }

    #[test]
    fn zero_window_is_kubectls_rule() {
        let mut s = Stability::new(Duration::ZERO);
        let now = Instant::now();
        assert_eq!(s.observe([&pod(false, 3, true)], now), None);
        assert!(matches!(
            s.check([&pod(true, 0, false)], now),
            Check::Stable { .. }
        ));
    }

    #[test]
    fn min_ready_seconds_wins_when_larger() {
        assert_eq!(
            Stability::window_for(Duration::from_secs(20), Some(45)),
            Duration::from_secs(45)
        );
        assert_eq!(
            Stability::window_for(Duration::from_secs(20), None),
            Duration::from_secs(20)
        );
    }
}

//! Diagnosis: pod and container statuses plus events → signals (what one
//! pod shows) → findings (cause, container, how many pods, evidence, fix).
//! Pure functions; the shell fetches logs and hands them in.
//!
//! (Just over 500 lines with its unit tests: the signal rules, tested on
//! objects captured from a real cluster.)

pub mod collect;
pub mod config;
pub mod crash;
pub mod deadline;
pub mod image;
pub mod probe;
pub mod redact;
pub mod replicaset;
pub mod scheduling;

use std::borrow::Borrow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Event, Node, Pod, PodTemplateSpec};

pub use crate::model::finding::{Cause, Finding, Signal};
pub use redact::redact;
pub use replicaset::replica_set_signals;

const PERMANENT_NOT_FOUND: &[&str] = &[
    "not found",
    "manifest unknown",
    "name unknown",
    "does not exist",
];
const PERMANENT_DENIED: &[&str] = &[
    "unauthorized",
    "denied",
    "insufficient_scope",
    "forbidden",
    "authentication required",
];

/// Classify an image pull error message.
pub fn classify_pull_error(message: &str) -> Cause {
    let m = message.to_ascii_lowercase();
    if PERMANENT_DENIED.iter().any(|w| m.contains(w)) {
        Cause::ImageUnauthorized
    } else if PERMANENT_NOT_FOUND.iter().any(|w| m.contains(w)) {
        Cause::ImageNotFound
    } else {
        Cause::ImagePullTransient
    }
}

fn events_for<'a, E: Borrow<Event>>(
    events: &'a [E],
    pod: &str,
) -> impl Iterator<Item = &'a Event> + 'a {
    let pod = pod.to_string();
    events.iter().map(Borrow::borrow).filter(move |e| {
        e.involved_object.kind.as_deref() == Some("Pod")
            && e.involved_object.name.as_deref() == Some(pod.as_str())
    })
}

/// The latest event of the pod with this reason (by series/count order as listed).
fn last_event<'a, E: Borrow<Event>>(
    events: &'a [E],
    pod: &str,
    pred: impl Fn(&Event) -> bool,
) -> Option<&'a Event> {
    events_for(events, pod)
        .filter(|e| pred(e))
        .max_by_key(|e| event_time(e))
}

/// The events of each pod (by name), in the order given: what
/// [`pod_signals`] reads of a pod, looked up once for many pods instead of
/// searched in every event for each.
pub fn events_by_pod<E: Borrow<Event>>(events: &[E]) -> BTreeMap<&str, Vec<&Event>> {
    let mut by_pod: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events.iter().map(Borrow::borrow) {
        if e.involved_object.kind.as_deref() == Some("Pod")
            && let Some(name) = e.involved_object.name.as_deref()
        {
            by_pod.entry(name).or_default().push(e);
        }
    }
    by_pod
}

/// [`pod_signals`] of each pod, with events looked up by pod.
pub fn pods_signals<'a, E: Borrow<Event>>(
    pods: impl IntoIterator<Item = &'a Pod>,
    events: &[E],
) -> Vec<Signal> {
    let by_pod = events_by_pod(events);
    pods.into_iter()
        .flat_map(|p| {
            let mine = p
                .metadata
                .name
                .as_deref()
                .and_then(|n| by_pod.get(n))
                .map_or(&[][..], Vec::as_slice);
            pod_signals(p, mine)
        })
        .collect()
}

fn event_time(e: &Event) -> i64 {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.as_second()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .unwrap_or(0)
}

/// Every signal one pod shows.
pub fn pod_signals<E: Borrow<Event>>(pod: &Pod, events: &[E]) -> Vec<Signal> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    let Some(status) = &pod.status else {
        return out;
    };
    let signal = |cause, container: Option<&str>, message: String, restarts, exit_code| Signal {
        cause,
        pod: name.clone(),
        container: container.map(str::to_string),
        message,
        restarts,
        exit_code,
    };
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
        {
            let message = c
                .message
                .clone()
                .or_else(|| {
                    last_event(events, &name, |e| {
                        e.reason.as_deref() == Some("FailedScheduling")
                    })
                    .and_then(|e| e.message.clone())
                })
                .unwrap_or_else(|| "Unschedulable".into());
            out.push(signal(Cause::Unschedulable, None, message, 0, None));
        }
    }
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| (c, true))
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .map(|c| (c, false)),
        );
    for (cs, init) in statuses {
        let restarts = cs.restart_count;
        let done = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        if init && done {
            // An init container that ran to completion did its job.
            continue;
        }
        let c = Some(cs.name.as_str());
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or("");
        let wmsg = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        let last_terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let terminated_now = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        match reason {
            "ErrImagePull" | "ImagePullBackOff" => {
                // The status message of a back-off may only say "Back-off pulling image";
                // the kubelet's Failed event carries the registry's answer.
                let event = last_event(events, &name, |e| {
                    e.reason.as_deref() == Some("Failed")
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.starts_with("Failed to pull image"))
                })
                .and_then(|e| e.message.clone());
                // In the form of the kubelet's Failed event, which `kubectl
                // describe pod` shows: `Failed to pull image "…": <error>`,
                // from the status (ErrImagePull's message, or the error a
                // back-off message quotes), else the event itself.
                let error = wmsg
                    .split_once("ErrImagePull: ")
                    .map_or(wmsg.as_str(), |(_, e)| e)
                    .trim();
                let error = if error.starts_with("Back-off pulling image") {
                    ""
                } else {
                    error
                };
                let spec_image = pod.spec.as_ref().and_then(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .find(|c| c.name == cs.name)
                        .and_then(|c| c.image.clone())
                });
                let message = match (spec_image, error.is_empty(), &event) {
                    (Some(image), false, _) => format!("Failed to pull image \"{image}\": {error}"),
                    (_, _, Some(ev)) => ev.clone(),
                    (None, false, None) => error.to_string(),
                    (_, true, None) => reason.to_string(),
                };
                out.push(signal(
                    classify_pull_error(&message),
                    c,
                    message,
                    restarts,
                    None,
                ));
            }
            "InvalidImageName" => {
                let message = if wmsg.is_empty() {
                    reason.to_string()
                } else {
                    wmsg
                };
                out.push(signal(Cause::InvalidImage, c, message, restarts, None));
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                let message = if wmsg.is_empty() {
                    reason.to_string()
                } else {
                    wmsg
                };
                out.push(signal(Cause::ContainerConfig, c, message, restarts, None));
            }
            _ => {
                let term = terminated_now.or(last_terminated);
                if let Some(t) = term.filter(|_| {
                    restarts > 0 || terminated_now.is_some() || reason == "CrashLoopBackOff"
                }) {
                    let oom = t.reason.as_deref() == Some("OOMKilled");
                    let message = format!(
                        "{}exit code {}, reason {}{}",
                        if init { "init container: " } else { "" },
                        t.exit_code,
                        t.reason.as_deref().unwrap_or("Error"),
                        t.message
                            .as_deref()
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(|m| format!(", termination message: {m}"))
                            .unwrap_or_default()
                    );
                    let cause = if oom {
                        Cause::OomKilled
                    } else {
                        Cause::CrashLoop
                    };
                    out.push(signal(cause, c, message, restarts, Some(t.exit_code)));
                } else if cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some()
                    && !cs.ready
                    && let Some(e) =
                        last_event(events, &name, |e| e.reason.as_deref() == Some("Unhealthy"))
                {
                    out.push(signal(
                        Cause::ReadinessFailing,
                        c,
                        e.message.clone().unwrap_or_default(),
                        restarts,
                        None,
                    ));
                }
            }
        }
    }
    out
}

pub(crate) fn container_spec<'a>(
    template: Option<&'a PodTemplateSpec>,
    name: Option<&str>,
) -> Option<&'a Container> {
    let spec = template?.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| Some(c.name.as_str()) == name)
}

pub(crate) fn resource(c: Option<&Container>, kind: &str, name: &str) -> Option<String> {
    let r = c?.resources.as_ref()?;
    let map = if kind == "limits" {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    map.get(name).map(|q| q.0.clone())
}

/// What the cluster showed besides the new pods, for the scheduling
/// findings: nodes and the pods bound to them, or why they could not be read.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// The namespace of the workload.
    pub namespace: String,
    /// All nodes, or None when they could not be listed.
    pub nodes: Option<Vec<Node>>,
    /// Pods that may be bound to those nodes (all namespaces when allowed).
    pub pods: Option<Vec<Pod>>,
    /// The pods above are only this namespace's (listing all was forbidden).
    pub pods_namespace_only: bool,
    /// Why nodes or pods could not be listed, said in the finding.
    pub unavailable: Option<String>,
}

/// Everything the findings are made from.
pub struct Inputs<'a> {
    pub signals: &'a [Signal],
    /// The number of pods of the new ReplicaSet.
    pub total_new_pods: usize,
    /// The new pod template.
    pub template: Option<&'a PodTemplateSpec>,
    pub image: &'a str,
    /// (pod, container) → the previous instance's log tail.
    pub logs: &'a BTreeMap<(String, String), Vec<String>>,
    pub cluster: &'a Cluster,
}

/// A finding's words: one-line summary and the fix.
pub(crate) struct Words {
    pub summary: String,
    pub fix: String,
}

/// `spec.template.spec.containers[NAME]`, the path a fix names.
pub(crate) fn container_path(name: &str) -> String {
    format!("spec.template.spec.containers[{name}]")
}

/// Group signals into findings. `total_new_pods` is the number of pods of
/// the new ReplicaSet; `logs` maps pod/container to the previous log tail.
pub fn findings(
    signals: &[Signal],
    total_new_pods: usize,
    template: Option<&PodTemplateSpec>,
    image: &str,
    logs: &BTreeMap<(String, String), Vec<String>>,
) -> Vec<Finding> {
    diagnose(&Inputs {
        signals,
        total_new_pods,
        template,
        image,
        logs,
        cluster: &Cluster::default(),
    })
}

/// Group signals into findings, one per cause and container, deduplicated
/// across pods ("3/3 new pods"), the most decisive first.
pub fn diagnose(input: &Inputs<'_>) -> Vec<Finding> {
    let mut groups: BTreeMap<(Cause, Option<String>), Vec<&Signal>> = BTreeMap::new();
    for s in input.signals {
        groups
            .entry((s.cause, s.container.clone()))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for ((cause, container), sigs) in groups {
        let mut pods: Vec<&str> = sigs.iter().map(|s| s.pod.as_str()).collect();
        pods.sort();
        pods.dedup();
        let mut evidence: Vec<String> = Vec::new();
        for s in &sigs {
            if !evidence.contains(&s.message) {
                evidence.push(s.message.clone());
            }
        }
        evidence.truncate(5);
        let per_pod = sigs
            .iter()
            .filter(|_| cause != Cause::ReplicaFailure)
            .map(|s| format!("{}: {} (restarts {})", s.pod, s.message, s.restarts))
            .collect();
        let spec = container_spec(input.template, container.as_deref());
        let cname = container.clone().unwrap_or_default();
        let first = evidence.first().cloned().unwrap_or_default();
        let words = match cause {
            Cause::ImageNotFound
            | Cause::ImageUnauthorized
            | Cause::InvalidImage
            | Cause::ImagePullTransient => image::words(cause, input.image, &cname, &first),
            Cause::ContainerConfig => config::words(&cname, &first, spec, &input.cluster.namespace),
            Cause::CrashLoop => crash::crash_words(&cname, &sigs),
            Cause::OomKilled => crash::oom_words(&cname, spec),
            Cause::Unschedulable => scheduling::words(&first, input.template, input.cluster),
            Cause::ReadinessFailing => probe::words(&cname, &first, spec),
            Cause::ReplicaFailure => replicaset::words(&first, &input.cluster.namespace),
            Cause::Superseded => Words {
                summary: first.clone(),
                fix: "Another writer changed the workload while rollguard was rolling it out; rollguard stopped and left their change in place (not rolled back). Make one pipeline the only writer of this workload, or use the deploy lock in every writer (lock=true).".into(),
            },
            Cause::ProgressDeadline | Cause::Timeout | Cause::MetricGate => Words {
                summary: if first.is_empty() {
                    cause.title().to_string()
                } else {
                    first.clone()
                },
                fix: deadline::FIX.to_string(),
            },
        };
        let mut log_tail = Vec::new();
        for p in &pods {
            if let Some(lines) = input.logs.get(&(p.to_string(), cname.clone()))
                && !lines.is_empty()
            {
                log_tail = lines.iter().map(|l| redact(l)).collect();
                break;
            }
        }
        let pods_text = if cause == Cause::ReplicaFailure {
            match input.total_new_pods {
                0 => "no new pod could be created".to_string(),
                1 => "1 new pod created, more refused".to_string(),
                n => format!("{n} new pods created, more refused"),
            }
        } else {
            format!(
                "{}/{} new pods",
                pods.len(),
                input.total_new_pods.max(pods.len())
            )
        };
        out.push(Finding {
            cause,
            summary: words.summary,
            container,
            pods: pods_text,
            evidence,
            per_pod,
            logs: log_tail,
            fix: words.fix,
        });
    }
    // The most decisive cause first.
    out.sort_by_key(|f| f.cause);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture<T: serde::de::DeserializeOwned>(dir: &str, file: &str) -> Vec<T> {
        let v = crate::k8s::objects::real_fixture(dir, file);
        serde_json::from_value(v["items"].clone()).unwrap()
    }

    fn signals_of(dir: &str, pod_prefix: &str) -> Vec<Signal> {
        let pods: Vec<Pod> = fixture(dir, "pods.json");
        let events: Vec<Event> = fixture(dir, "events.json");
        pods.iter()
            .filter(|p| p.metadata.name.as_deref().unwrap().starts_with(pod_prefix))
            .flat_map(|p| pod_signals(p, &events))
            .collect()
    }

    #[test]
    fn image_missing_is_permanent() {
        let s = signals_of("03-image-missing", "web-5978c69877");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cause, Cause::ImageNotFound);
        assert!(s[0].message.contains("not found"));
    }

    #[test]
    fn crash_loop_has_exit_code() {
        let s = signals_of("04-crash-loop", "web-6b48f548dc");
        assert_eq!(s[0].cause, Cause::CrashLoop);
        assert_eq!(s[0].exit_code, Some(1));
        assert_eq!(s[0].restarts, 2);
    }

    #[test]
    fn oom_is_recognised() {
        let s = signals_of("05-oom", "web-59864d78b8");
        assert_eq!(s[0].cause, Cause::OomKilled);
        assert_eq!(s[0].exit_code, Some(137));
    }

    #[test]
    fn unschedulable_and_config_errors() {
        let s = signals_of("06-unschedulable-surge", "hog-6f5b579d8");
        assert_eq!(s[0].cause, Cause::Unschedulable);
        assert!(s[0].message.contains("Insufficient cpu"));
        let s = signals_of("08-missing-configmap", "cfg-7959998995-c42jz");
        assert_eq!(s[0].cause, Cause::ContainerConfig);
        assert!(s[0].message.contains("app-config"));
        let f = findings(&s, 2, None, "example/cfg:2", &BTreeMap::new());
        assert_eq!(f[0].pods, "1/2 new pods");
    }

    #[test]
    fn pull_errors_are_classified() {
        assert_eq!(
            classify_pull_error("rpc error: code = NotFound desc = ... not found"),
            Cause::ImageNotFound
        );
        assert_eq!(
            classify_pull_error(
                "pull access denied, repository does not exist or may require authorization: server message: insufficient_scope"
            ),
            Cause::ImageUnauthorized
        );
        assert_eq!(
            classify_pull_error("dial tcp: i/o timeout"),
            Cause::ImagePullTransient
        );
        assert_eq!(redact("DB_PASSWORD=hunter2"), "DB_PASSWORD=[REDACTED]");
    }
}

//! The watches of one Deployment's rollout: four reflectors (the
//! Deployment, its ReplicaSets, its pods, the namespace's events) whose
//! caches make the snapshots the Deployment's rules judge, and the old-vs-new
//! timeline sampled from them.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::model::{Mark, Phase, Sample};
use crate::track::keep;
use crate::track::reflect::{self, Seen, Streams, reflect, reflect_kept};
use crate::track::{Poll, Source, wait_until};
use crate::workload::deployment::hub::{self, Hub, Selector};
use crate::workload::deployment::{self as dep, Snapshot};

/// Where a tracker's caches come from.
enum Feed {
    /// Watches of its own.
    Own {
        stream: Streams,
        ready: BTreeSet<&'static str>,
    },
    /// The group's watches: its own ReplicaSets and pods are those of its
    /// selector.
    Shared {
        /// Keeps the group's watches running while the tracker lives.
        _hub: Arc<Hub>,
        seen: tokio::sync::watch::Receiver<Seen>,
        selector: Selector,
    },
}

/// Live caches of everything one Deployment's rollout touches.
pub struct Tracker {
    deployment: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    events: Store<Event>,
    feed: Feed,
    name: String,
    /// Old vs new ready pods over the run, for the report's chart.
    pub timeline: Vec<Sample>,
    started: Instant,
    /// (container, image) that marks a pod as the new version.
    new_version: Option<(String, String)>,
    /// What the run is doing, for the timeline's samples.
    phase: Phase,
}

impl Tracker {
    /// Start the watches. `selector` is the Deployment's label selector.
    pub fn start(client: &Client, namespace: &str, name: &str, selector: &str) -> Tracker {
        let (deployment, s1) = reflect(
            Api::<Deployment>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
            "deployment",
        );
        let (replica_sets, s2) = reflect_kept(
            Api::<ReplicaSet>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(selector),
            "replicasets",
            keep::replica_sets(),
        );
        let (pods, s3) = reflect_kept(
            Api::<Pod>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(selector),
            "pods",
            keep::pods(),
        );
        let (events, s4) = reflect_kept(
            Api::<Event>::namespaced(client.clone(), namespace),
            keep::events_watch(),
            "events",
            keep::events(),
        );
        let stream = futures::stream::select_all([s1, s2, s3, s4]);
        Tracker::with(
            (deployment, replica_sets, pods, events),
            Feed::Own {
                stream,
                ready: Default::default(),
            },
            name,
        )
    }

    /// Follow one member of a group on the group's watches. `selector` is
    /// the Deployment's label selector.
    pub fn shared(hub: Arc<Hub>, name: &str, selector: Selector) -> Tracker {
        let caches = (
            hub.deployments.clone(),
            hub.replica_sets.clone(),
            hub.pods.clone(),
            hub.events.clone(),
        );
        let seen = hub.seen();
        Tracker::with(
            caches,
            Feed::Shared {
                _hub: hub,
                seen,
                selector,
            },
            name,
        )
    }

    fn with(
        (deployment, replica_sets, pods, events): (
            Store<Deployment>,
            Store<ReplicaSet>,
            Store<Pod>,
            Store<Event>,
        ),
        feed: Feed,
        name: &str,
    ) -> Tracker {
        Tracker {
            deployment,
            replica_sets,
            pods,
            events,
            feed,
            name: name.to_string(),
            timeline: Vec::new(),
            started: Instant::now(),
            new_version: None,
            phase: Phase::Rollout,
        }
    }

    /// From now on, pods whose `container` runs `image` count as the new
    /// version in the timeline.
    pub fn set_new_version(&mut self, container: &str, image: &str) {
        self.new_version = Some((container.to_string(), image.to_string()));
    }

    /// Append a timeline sample when the ready counts changed (or always,
    /// with a mark). Nothing is sampled before every cache has listed, so
    /// the first sample has the real counts (not an empty cache's zeros).
    fn sample(&mut self, mark: Option<Mark>) {
        let Some((container, image)) = &self.new_version else {
            return;
        };
        if !self.is_ready() {
            return;
        }
        let (mut old_ready, mut new_ready) = (0, 0);
        for pod in self.pods() {
            if pod.metadata.deletion_timestamp.is_some() || !dep::pod_is_ready(&pod) {
                continue;
            }
            let is_new = pod.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| &c.name == container && c.image.as_deref() == Some(image.as_str()))
            });
            if is_new {
                new_ready += 1;
            } else {
                old_ready += 1;
            }
        }
        let available = self
            .deployment
            .state()
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(self.name.as_str()))
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            .unwrap_or(old_ready + new_ready);
        if mark.is_none()
            && self.timeline.last().is_some_and(|l| {
                l.old_ready == old_ready
                    && l.new_ready == new_ready
                    && l.available == available
                    && l.phase == self.phase
            })
        {
            return;
        }
        self.timeline.push(Sample {
            phase: self.phase,
            mark,
            ..Sample::new(
                self.started.elapsed().as_millis() as u64,
                old_ready,
                new_ready,
                available,
            )
        });
    }

    /// Mark a moment of the run in the timeline (a sample of its own), and
    /// from then on sample as `phase`.
    pub fn mark(&mut self, mark: Option<Mark>, phase: Phase) {
        if mark.is_some() {
            self.sample(mark);
        }
        self.phase = phase;
        self.sample(None);
    }

    /// Every cache has finished its first list.
    pub fn is_ready(&self) -> bool {
        match &self.feed {
            Feed::Own { ready, .. } => ready.len() == 4,
            Feed::Shared { seen, .. } => seen.borrow().listed == hub::CACHES,
        }
    }

    /// The pods of this Deployment's selector.
    fn pods(&self) -> Vec<Arc<Pod>> {
        let mut pods = self.pods.state();
        if let Feed::Shared { selector, .. } = &self.feed {
            pods.retain(|p| selector.matches(p.metadata.labels.as_ref()));
        }
        pods
    }

    /// The ReplicaSets of this Deployment's selector.
    fn replica_sets(&self) -> Vec<Arc<ReplicaSet>> {
        let mut sets = self.replica_sets.state();
        if let Feed::Shared { selector, .. } = &self.feed {
            sets.retain(|r| selector.matches(r.metadata.labels.as_ref()));
        }
        sets
    }

    /// Wait for a change or the tick, whichever comes first.
    pub async fn next_change(&mut self) {
        match &mut self.feed {
            Feed::Own { stream, ready } => reflect::next_change(stream, ready).await,
            Feed::Shared { seen, .. } => reflect::next_seen(seen).await,
        }
        self.sample(None);
    }

    /// The current state of the caches, events narrowed to our objects.
    pub fn snapshot(&self) -> Snapshot {
        let deployment = self
            .deployment
            .state()
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some(self.name.as_str()));
        let replica_sets = self.replica_sets();
        let pods = self.pods();
        let mut names: BTreeSet<&str> = [self.name.as_str()].into();
        names.extend(
            replica_sets
                .iter()
                .filter_map(|r| r.metadata.name.as_deref()),
        );
        names.extend(pods.iter().filter_map(|p| p.metadata.name.as_deref()));
        let events = self
            .events
            .state()
            .into_iter()
            .filter(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| names.contains(n))
            })
            .collect();
        drop(names);
        Snapshot {
            deployment,
            replica_sets,
            pods,
            events,
        }
    }
}

impl Source for Tracker {
    async fn next_change(&mut self) {
        Tracker::next_change(self).await;
    }
}

/// Follow the rollback until kubectl's rule holds for the rollback's
/// generation, or the deadline passes: whether it was confirmed, and the
/// last state in words.
pub async fn follow_rollback(
    tracker: &mut Tracker,
    generation: i64,
    deadline: Instant,
    out: &mut (dyn Write + Send),
) -> (bool, String) {
    tracker.mark(None, Phase::Rollback);
    let ended = wait_until(tracker, deadline, out, |t: &Tracker| {
        let Some(d) = t.snapshot().deployment else {
            return Poll::Pending {
                line: String::new(),
                waiting_for: "the Deployment to be seen".into(),
            };
        };
        let status = d.status.clone().unwrap_or_default();
        let line = format!(
            "{}: rolling back: {} of {} replicas restored, {} available",
            d.metadata.name.as_deref().unwrap_or(""),
            status.updated_replicas.unwrap_or(0),
            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            status.available_replicas.unwrap_or(0)
        );
        match dep::still_waiting_for(&d, generation) {
            None => Poll::Done {
                line,
                found: "every replica updated and available".to_string(),
            },
            Some(waiting_for) => Poll::Pending { line, waiting_for },
        }
    })
    .await;
    tracker.mark(Some(Mark::RollbackEnd), Phase::Rollback);
    match ended {
        Ok(detail) => (true, detail),
        Err(waiting_for) => (false, format!("still waiting for {waiting_for}")),
    }
}

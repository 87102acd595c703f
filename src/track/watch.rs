//! Watches of a workload of any kind as raw JSON: its object(s), the pods
//! of a label selector and the namespace's events. Used for StatefulSets,
//! DaemonSets, ReplicationControllers and the recovery of an interrupted run.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::k8s::kind::Kind;
use crate::track::keep;
use crate::track::reflect::{self, Streams, reflect, reflect_kept};
use crate::track::wait::Source;

/// Live caches for a workload of any kind: its object(s) (as JSON), the
/// pods of a label selector, and the namespace's events. Used for
/// StatefulSets, DaemonSets and ReplicationControllers.
pub struct Watch {
    objects: Box<dyn Fn() -> Vec<serde_json::Value> + Send + Sync>,
    pods: Store<Pod>,
    events: Store<Event>,
    stream: Streams,
    ready: BTreeSet<&'static str>,
}

/// One moment of a [`Watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchSnapshot {
    pub objects: Vec<serde_json::Value>,
    pub pods: Vec<std::sync::Arc<Pod>>,
    pub events: Vec<std::sync::Arc<Event>>,
}

impl WatchSnapshot {
    /// The object named `name`.
    pub fn object(&self, name: &str) -> Option<&serde_json::Value> {
        self.objects.iter().find(|o| {
            o.pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                == Some(name)
        })
    }
}

impl Watch {
    /// Watch objects of kind `K` (the one named `name`, or all of the
    /// namespace when None), the pods of `pod_selector`, and events.
    pub fn start<K>(
        client: &Client,
        namespace: &str,
        name: Option<&str>,
        pod_selector: &str,
    ) -> Watch
    where
        K: reflect::Namespaced,
    {
        let config = match name {
            Some(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
            None => watcher::Config::default(),
        };
        let (objects, s1) = reflect(
            Api::<K>::namespaced(client.clone(), namespace),
            config,
            "objects",
        );
        let (pods, s2) = reflect_kept(
            Api::<Pod>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(pod_selector),
            "pods",
            keep::pods(),
        );
        let (events, s3) = reflect_kept(
            Api::<Event>::namespaced(client.clone(), namespace),
            keep::events_watch(),
            "events",
            keep::events(),
        );
        Watch {
            objects: Box::new(move || {
                objects
                    .state()
                    .iter()
                    .filter_map(|o| serde_json::to_value(&**o).ok())
                    .collect()
            }),
            pods,
            events,
            stream: futures::stream::select_all([s1, s2, s3]),
            ready: Default::default(),
        }
    }

    /// Every cache has finished its first list.
    pub fn is_ready(&self) -> bool {
        self.ready.len() == 3
    }

    /// Wait for a change or the tick, whichever comes first.
    pub async fn next_change(&mut self) {
        reflect::next_change(&mut self.stream, &mut self.ready).await;
    }

    /// Wait until every cache has listed (or the deadline passed).
    pub async fn wait_ready(&mut self, deadline: Instant) -> bool {
        while !self.is_ready() {
            if Instant::now() >= deadline {
                return false;
            }
            self.next_change().await;
        }
        true
    }

    pub fn snapshot(&self) -> WatchSnapshot {
        WatchSnapshot {
            objects: (self.objects)(),
            pods: self.pods.state(),
            events: self.events.state(),
        }
    }
}

impl Watch {
    /// [`Watch::start`] for the workload kind `kind`, named `name`.
    pub fn start_kind(
        client: &Client,
        namespace: &str,
        kind: Kind,
        name: &str,
        pod_selector: &str,
    ) -> Watch {
        let name = Some(name);
        match kind {
            Kind::Deployment => Watch::start::<Deployment>(client, namespace, name, pod_selector),
            Kind::StatefulSet => Watch::start::<StatefulSet>(client, namespace, name, pod_selector),
            Kind::DaemonSet => Watch::start::<DaemonSet>(client, namespace, name, pod_selector),
            Kind::ReplicationController => {
                Watch::start::<ReplicationController>(client, namespace, name, pod_selector)
            }
        }
    }
}

impl Source for Watch {
    async fn next_change(&mut self) {
        Watch::next_change(self).await;
    }
}

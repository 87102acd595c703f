//! A template kind's rollout as the follow loop sees it: the pods of our
//! change (by the kind's rule), the others, their signals, someone else's
//! template, and the controller's rollout rule.

use std::marker::PhantomData;

use serde_json::Value;

use super::TemplateKind;
use crate::model::{Signal, Timers, Verdict};
use crate::track::{Reading, Subject, Watch, WatchSnapshot};
use crate::workload::deployment as dep;
use crate::workload::{self, Limits};

/// A template kind's rollout as the follow loop sees it.
pub(crate) struct TemplateSubject<'a, K> {
    watch: &'a mut Watch,
    name: &'a str,
    generation: i64,
    /// The template our patch wrote.
    ours: &'a Value,
    container: &'a str,
    /// Following a canary: its bake is the hold.
    canary: bool,
    kind: PhantomData<K>,
}

impl<'a, K> TemplateSubject<'a, K> {
    pub fn new(
        watch: &'a mut Watch,
        name: &'a str,
        generation: i64,
        ours: &'a Value,
        container: &'a str,
    ) -> Self {
        TemplateSubject {
            watch,
            name,
            generation,
            ours,
            container,
            canary: false,
            kind: PhantomData,
        }
    }

    /// Following a canary's pods: its bake is the hold.
    pub fn for_canary(mut self) -> Self {
        self.canary = true;
        self
    }
}

impl<K: TemplateKind> Subject for TemplateSubject<'_, K> {
    type Snap = Option<String>;

    async fn next_change(&mut self) {
        self.watch.next_change().await;
    }

    fn is_ready(&self) -> bool {
        self.watch.is_ready()
    }

    /// The snapshot handed to the judge is the controller's rule's answer.
    fn read(&self) -> (Option<String>, Reading) {
        let snap: WatchSnapshot = self.watch.snapshot();
        let Some(obj) = snap.object(self.name) else {
            return (
                Some("the workload to be seen".into()),
                Reading {
                    events: snap.events,
                    ..Default::default()
                },
            );
        };
        let new_pods = K::new_pods(obj, &snap.pods, self.generation);
        let new_ready = new_pods.iter().filter(|p| dep::pod_is_ready(p)).count() as i32;
        let new_names: std::collections::BTreeSet<&str> = new_pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let old_pods = snap
            .pods
            .iter()
            .filter(|p| !new_names.contains(&p.metadata.name.as_deref().unwrap_or_default()))
            .cloned()
            .collect();
        let superseded: Option<Signal> =
            crate::superseded::superseded(obj, self.generation, self.ours, self.container);
        let waiting_for = K::still_waiting_for(obj, self.generation);
        let signals = workload::signals_of(&new_pods, &snap.events);
        let reading = Reading {
            progress: K::progress(obj, new_ready),
            new_pods,
            old_pods,
            signals,
            events: snap.events.clone(),
            superseded,
        };
        (waiting_for, reading)
    }

    fn is_canary(&self) -> bool {
        self.canary
    }

    fn judge(
        &self,
        waiting_for: &Option<String>,
        r: &Reading,
        limits: &Limits,
        timers: &Timers,
    ) -> Verdict {
        workload::judge_pods(
            r.progress.clone(),
            waiting_for.clone(),
            r.signals.clone(),
            limits,
            timers,
        )
    }
}

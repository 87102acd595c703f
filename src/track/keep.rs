//! What the caches store of each kind: no rule reads the field managers
//! of pods, ReplicaSets or events, nor most of an event, and no rule reads
//! the routine events of a healthy rollout at all (the same events the
//! reports' excerpt leaves out), which at a thousand replicas are most of
//! a namespace's events.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};

use kube::runtime::watcher;

use crate::report::events::{COMMON_SUCCESS, is_routine};
use crate::track::reflect::Keep;

/// Pods whole but for their field managers.
pub fn pods() -> Keep<Pod> {
    without_field_managers()
}

/// ReplicaSets whole (their template tells the new one) but for their
/// field managers.
pub fn replica_sets() -> Keep<ReplicaSet> {
    without_field_managers()
}

/// Every object, whole but for its field managers (no rule reads them).
fn without_field_managers<K: kube::Resource + 'static>() -> Keep<K> {
    Keep {
        object: Box::new(|_| true),
        slim: |o| o.meta_mut().managed_fields = None,
    }
}

/// Events other than the routine ones, with what the rules and the
/// excerpt read: the object (kind and name), type, reason, message, count
/// and times.
pub fn events() -> Keep<Event> {
    Keep {
        object: Box::new(|e| !is_routine(e)),
        slim: slim_event,
    }
}

/// The events watch, narrowed on the server to leave out the routine
/// reasons (a field selector cannot say "Normal and routine"; Kubernetes
/// reports these reasons as Normal events, which [`events`] leaves out
/// anyway). At a thousand replicas they are most of a namespace's events,
/// and the first list of them holds up every verdict.
pub fn events_watch() -> watcher::Config {
    let fields: Vec<String> = COMMON_SUCCESS
        .iter()
        .map(|r| format!("reason!={r}"))
        .collect();
    watcher::Config::default().fields(&fields.join(","))
}

fn slim_event(e: &mut Event) {
    let m = &mut e.metadata;
    m.managed_fields = None;
    m.annotations = None;
    m.labels = None;
    m.owner_references = None;
    m.finalizers = None;
    let o = &mut e.involved_object;
    o.api_version = None;
    o.field_path = None;
    o.resource_version = None;
    o.uid = None;
    e.action = None;
    e.related = None;
    e.reporting_component = None;
    e.reporting_instance = None;
    e.series = None;
    e.source = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn ev(type_: &str, reason: &str) -> Event {
        Event {
            type_: Some(type_.into()),
            reason: Some(reason.into()),
            message: Some("m".into()),
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn routine_events_are_not_stored() {
        let keep = events();
        assert!(!(keep.object)(&ev("Normal", "Pulled")));
        assert!((keep.object)(&ev("Warning", "Pulled")));
        assert!((keep.object)(&ev("Warning", "Failed")));
        assert!((keep.object)(&ev("Normal", "TriggeredScaleUp")));
    }

    #[test]
    fn a_slim_event_keeps_what_the_excerpt_shows() {
        let e = ev("Warning", "Failed");
        let mut slim = e.clone();
        (events().slim)(&mut slim);
        assert_eq!(slim.involved_object.name, e.involved_object.name);
        assert_eq!(slim.involved_object.uid, None);
        assert_eq!(
            crate::report::events::excerpt(&[slim], "web"),
            crate::report::events::excerpt(&[e], "web")
        );
    }
}

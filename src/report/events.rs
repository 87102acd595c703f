//! A short excerpt of a failing workload's events for the reports, with the
//! common success events left out (as krane does): what remains is what
//! went wrong, most recent last.

use k8s_openapi::api::core::v1::Event;

/// Normal events that every healthy rollout produces.
pub(crate) const COMMON_SUCCESS: &[&str] = &[
    "Scheduled",
    "Pulling",
    "Pulled",
    "Created",
    "Started",
    "SuccessfulCreate",
    "SuccessfulDelete",
    "ScalingReplicaSet",
    "Killing",
    "SuccessfulAttachVolume",
    "NoPods",
];

/// Most lines in an excerpt.
pub const MAX_EVENTS: usize = 12;

/// A common success event (`Normal`, of [`COMMON_SUCCESS`]): left out of
/// every excerpt, and read by no rule.
pub fn is_routine(e: &Event) -> bool {
    e.type_.as_deref() == Some("Normal")
        && COMMON_SUCCESS.contains(&e.reason.as_deref().unwrap_or(""))
}

/// `Warning BackOff pod/app-7d9-x2x (×4): Back-off restarting failed container`
/// for each event of an object named `name` or `name-…`, success events
/// left out, oldest first, at most [`MAX_EVENTS`] (the most recent).
pub fn excerpt<E: std::borrow::Borrow<Event>>(events: &[E], name: &str) -> Vec<String> {
    let prefix = format!("{name}-");
    let mut picked: Vec<(String, String)> = events
        .iter()
        .map(std::borrow::Borrow::borrow)
        .filter(|e| {
            let n = e.involved_object.name.as_deref().unwrap_or("");
            n == name || n.starts_with(&prefix)
        })
        .filter(|e| !is_routine(e))
        .map(|e| {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default();
            let kind = e
                .involved_object
                .kind
                .as_deref()
                .unwrap_or("object")
                .to_ascii_lowercase();
            let count = e
                .count
                .filter(|c| *c > 1)
                .map(|c| format!(" (×{c})"))
                .unwrap_or_default();
            let line = format!(
                "{} {} {kind}/{}{count}: {}",
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or(""),
                e.involved_object.name.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            );
            (when, line)
        })
        .collect();
    picked.sort();
    picked.dedup_by(|a, b| a.1 == b.1);
    let skip = picked.len().saturating_sub(MAX_EVENTS);
    picked.into_iter().skip(skip).map(|(_, l)| l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn ev(kind: &str, name: &str, type_: &str, reason: &str, message: &str) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: Some(kind.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            type_: Some(type_.into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            count: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn success_events_are_left_out() {
        let events = vec![
            ev("Pod", "web-1-a", "Normal", "Pulled", "pulled"),
            ev(
                "Pod",
                "web-1-a",
                "Warning",
                "BackOff",
                "Back-off restarting",
            ),
            ev("Pod", "other-1", "Warning", "BackOff", "not ours"),
            ev("Deployment", "web", "Normal", "ScalingReplicaSet", "scaled"),
        ];
        assert_eq!(
            excerpt(&events, "web"),
            vec!["Warning BackOff pod/web-1-a (×2): Back-off restarting".to_string()]
        );
    }
}

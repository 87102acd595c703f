//! A Deployment's status and conditions as the controller computes them
//! (after upstream `deployment_util.go`): the condition list operations, the
//! status counters, complete and progressing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::util::{Spec, int};

/// A Deployment condition (ReplicaSet conditions have no `lastUpdateTime`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// Upstream `NewDeploymentCondition`: both times now.
    pub fn new(type_: &str, status: &str, reason: &str, message: String, now: &str) -> Self {
        Self {
            type_: type_.into(),
            status: status.into(),
            last_update_time: Some(now.into()),
            last_transition_time: Some(now.into()),
            reason: Some(reason.into()),
            message: Some(message),
        }
    }
}

pub fn get_condition<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Upstream `SetDeploymentCondition`: no-op when status and reason are
/// unchanged; keeps lastTransitionTime when only the reason changes; the
/// condition moves to the end of the list.
pub fn set_condition(conds: &mut Vec<Condition>, mut c: Condition) {
    if let Some(cur) = get_condition(conds, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(conds, &c.type_.clone());
    conds.push(c);
}

pub fn remove_condition(conds: &mut Vec<Condition>, type_: &str) {
    conds.retain(|c| c.type_ != type_);
}

pub fn parse_conditions(v: &Value) -> Vec<Condition> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A Deployment's status (Go's `omitempty` on the counters is applied when
/// writing).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    pub observed_generation: i64,
    pub replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub unavailable_replicas: i32,
    pub terminating_replicas: Option<i32>,
    pub collision_count: Option<i32>,
    pub conditions: Vec<Condition>,
}

impl Status {
    pub fn of(d: &Value) -> Self {
        let s = &d["status"];
        Self {
            observed_generation: s["observedGeneration"].as_i64().unwrap_or(0),
            replicas: int(&s["replicas"]),
            updated_replicas: int(&s["updatedReplicas"]),
            ready_replicas: int(&s["readyReplicas"]),
            available_replicas: int(&s["availableReplicas"]),
            unavailable_replicas: int(&s["unavailableReplicas"]),
            terminating_replicas: s["terminatingReplicas"].as_i64().map(|v| v as i32),
            collision_count: s["collisionCount"].as_i64().map(|v| v as i32),
            conditions: parse_conditions(&s["conditions"]),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: i64| {
            if v != 0 {
                m.insert(k.into(), json!(v));
            }
        };
        put("observedGeneration", self.observed_generation);
        put("replicas", self.replicas.into());
        put("updatedReplicas", self.updated_replicas.into());
        put("readyReplicas", self.ready_replicas.into());
        put("availableReplicas", self.available_replicas.into());
        put("unavailableReplicas", self.unavailable_replicas.into());
        if let Some(t) = self.terminating_replicas {
            m.insert("terminatingReplicas".into(), json!(t));
        }
        if let Some(c) = self.collision_count {
            m.insert("collisionCount".into(), json!(c));
        }
        if !self.conditions.is_empty() {
            m.insert("conditions".into(), json!(self.conditions));
        }
        Value::Object(m)
    }
}

/// Upstream `DeploymentComplete`.
pub fn deployment_complete(spec: &Spec, generation: i64, st: &Status) -> bool {
    st.updated_replicas == spec.replicas
        && st.replicas == spec.replicas
        && st.available_replicas == spec.replicas
        && st.observed_generation >= generation
}

/// Upstream `DeploymentProgressing`: more updated, ready or available
/// replicas, or fewer old ones, than last recorded.
pub fn deployment_progressing(old: &Status, new: &Status) -> bool {
    let old_old = old.replicas - old.updated_replicas;
    let new_old = new.replicas - new.updated_replicas;
    new.updated_replicas > old.updated_replicas
        || new_old < old_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_move_to_the_end_and_keep_transition_time() {
        let mut conds = vec![
            Condition::new(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                "m".into(),
                "t0",
            ),
            Condition::new(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "m".into(),
                "t0",
            ),
        ];
        set_condition(
            &mut conds,
            Condition::new(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                "other".into(),
                "t1",
            ),
        );
        assert_eq!(
            conds[0].message.as_deref(),
            Some("m"),
            "same status and reason: no-op"
        );
        set_condition(
            &mut conds,
            Condition::new(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                "m2".into(),
                "t2",
            ),
        );
        assert_eq!(conds[1].type_, "Progressing");
        assert_eq!(conds[1].last_transition_time.as_deref(), Some("t0"));
        assert_eq!(conds[1].last_update_time.as_deref(), Some("t2"));
    }

    #[test]
    fn status_omits_zero_counters() {
        let st = Status {
            observed_generation: 2,
            terminating_replicas: Some(0),
            ..Default::default()
        };
        assert_eq!(
            st.to_value(),
            json!({"observedGeneration": 2, "terminatingReplicas": 0})
        );
        assert_eq!(Status::of(&json!({"status": st.to_value()})), st);
    }
}

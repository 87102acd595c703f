//! The workload kinds rollguard knows, and the `workload` input's names
//! for them (`deployment/api`, `sts/db`, `rc/api-rc`).

/// The kinds rollguard knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicationController,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
            Kind::ReplicationController => "replicationcontroller",
        }
    }

    /// The kind of an [`as_str`](Kind::as_str) name.
    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::Deployment,
            Kind::StatefulSet,
            Kind::DaemonSet,
            Kind::ReplicationController,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// The permissions a rollout of this kind needs, as (verb, group,
    /// resource); the workload's own resource is checked by name.
    pub fn needed_permissions(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Kind::Deployment => &[
                ("get", "apps", "deployments"),
                ("patch", "apps", "deployments"),
                ("list", "apps", "deployments"),
                ("watch", "apps", "deployments"),
                ("list", "apps", "replicasets"),
                ("watch", "apps", "replicasets"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
            Kind::StatefulSet => &[
                ("get", "apps", "statefulsets"),
                ("patch", "apps", "statefulsets"),
                ("list", "apps", "statefulsets"),
                ("watch", "apps", "statefulsets"),
                ("list", "apps", "controllerrevisions"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("delete", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
            Kind::DaemonSet => &[
                ("get", "apps", "daemonsets"),
                ("patch", "apps", "daemonsets"),
                ("list", "apps", "daemonsets"),
                ("watch", "apps", "daemonsets"),
                ("list", "apps", "controllerrevisions"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
            Kind::ReplicationController => &[
                ("get", "", "replicationcontrollers"),
                ("patch", "", "replicationcontrollers"),
                ("create", "", "replicationcontrollers"),
                ("delete", "", "replicationcontrollers"),
                ("list", "", "replicationcontrollers"),
                ("watch", "", "replicationcontrollers"),
                ("list", "", "pods"),
                ("watch", "", "pods"),
                ("patch", "", "pods"),
                ("list", "", "events"),
                ("watch", "", "events"),
            ],
        }
    }

    /// The resource (plural) of the workload itself.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::ReplicationController => "replicationcontrollers",
        }
    }
}

/// `deployment/api`, `deploy/api` or `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    pub kind: Kind,
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

impl WorkloadRef {
    /// Parse the `workload` input; the error says what was wrong.
    pub fn parse(s: &str) -> Result<WorkloadRef, String> {
        let (kind, name) = match s.split_once('/') {
            Some((k, n)) => (k.to_ascii_lowercase(), n),
            None => ("deployment".to_string(), s),
        };
        let kind = match kind.as_str() {
            "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps" => {
                Kind::Deployment
            }
            "statefulset" | "statefulsets" | "sts" | "statefulset.apps" | "statefulsets.apps" => {
                Kind::StatefulSet
            }
            "daemonset" | "daemonsets" | "ds" | "daemonset.apps" | "daemonsets.apps" => {
                Kind::DaemonSet
            }
            "replicationcontroller" | "replicationcontrollers" | "rc" => {
                Kind::ReplicationController
            }
            other => {
                return Err(format!(
                    "\"{other}\" is not a workload kind (use deployment/NAME, statefulset/NAME, daemonset/NAME or replicationcontroller/NAME)"
                ));
            }
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(crate::k8s::names::is_dns_label);
        if !valid {
            return Err(format!(
                "\"{name}\" is not a valid workload name (lower-case letters, digits, '-' and '.')"
            ));
        }
        Ok(WorkloadRef {
            kind,
            name: name.to_string(),
        })
    }
}

/// Parse a `workload` input that may list several workloads, separated
/// by commas or newlines (`deployment/web, deployment/worker`).
pub fn parse_list(s: &str) -> Result<Vec<WorkloadRef>, String> {
    let mut out: Vec<WorkloadRef> = Vec::new();
    for item in s
        .split([',', '\n'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        let w = WorkloadRef::parse(item)?;
        if out.contains(&w) {
            return Err(format!("{w} is listed twice"));
        }
        out.push(w);
    }
    if out.is_empty() {
        return Err("is required (e.g. deployment/api)".into());
    }
    Ok(out)
}

/// A kind's rollout rule on a raw object (kubectl's rollout status, with
/// observedGeneration ≥ the generation given): what is still awaited, or
/// None when rolled out. Each kind owns its rule; the layers below the kinds
/// (the recovery) are handed the dispatch over all of them.
pub type StatusRule = fn(Kind, &serde_json::Value, i64) -> Option<String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workloads() {
        assert_eq!(WorkloadRef::parse("deploy/api").unwrap().name, "api");
        assert_eq!(WorkloadRef::parse("api").unwrap().kind, Kind::Deployment);
        assert_eq!(
            WorkloadRef::parse("sts/db").unwrap().kind,
            Kind::StatefulSet
        );
        assert_eq!(
            WorkloadRef::parse("rc/api-rc").unwrap().kind,
            Kind::ReplicationController
        );
        assert_eq!(
            WorkloadRef::parse("ds/agent").unwrap().kind,
            Kind::DaemonSet
        );
        assert!(WorkloadRef::parse("pod/x").is_err());
        assert!(WorkloadRef::parse("deployment/API").is_err());
    }

    #[test]
    fn parses_lists() {
        let l = parse_list("deployment/web, deployment/worker\nrc/api-rc\n").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[2].kind, Kind::ReplicationController);
        assert!(parse_list("web, deploy/web").unwrap_err().contains("twice"));
        assert!(parse_list(" , ").is_err());
    }
}

//! Workloads rollguard can roll. One file per kind; each answers the same
//! questions: plan the patch, judge a snapshot, plan the rollback.

pub mod deployment;

/// The kinds rollguard knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Deployment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
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
            "statefulset"
            | "statefulsets"
            | "sts"
            | "daemonset"
            | "daemonsets"
            | "ds"
            | "replicationcontroller"
            | "replicationcontrollers"
            | "rc" => {
                return Err(format!(
                    "kind \"{kind}\" is not supported yet (only deployment/NAME for now)"
                ));
            }
            other => {
                return Err(format!(
                    "\"{other}\" is not a workload kind (use deployment/NAME)"
                ));
            }
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(crate::config::is_dns_label);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_workloads() {
        assert_eq!(WorkloadRef::parse("deploy/api").unwrap().name, "api");
        assert_eq!(WorkloadRef::parse("api").unwrap().kind, Kind::Deployment);
        assert!(
            WorkloadRef::parse("sts/db")
                .unwrap_err()
                .contains("not supported yet")
        );
        assert!(WorkloadRef::parse("pod/x").is_err());
        assert!(WorkloadRef::parse("deployment/API").is_err());
    }
}

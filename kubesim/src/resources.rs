//! The resource types kubesim serves: one table drives routing, discovery,
//! RBAC resource names and `kubectl` short names.

/// One REST resource (a plural name in an API group/version).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Subresources as (name, kind of the subresource object).
    pub subresources: &'static [(&'static str, &'static str)],
    pub categories: &'static [&'static str],
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub has_generation: bool,
}

impl ResourceType {
    /// "v1" or "apps/v1".
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The RBAC/group-qualified name: "pods", "deployments.apps".
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// URL prefix of the group version: "/api/v1" or "/apis/apps/v1".
    pub fn gv_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Whether the subresource exists.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|(s, _)| *s == sub)
    }
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A namespaced resource with the read/write verbs and nothing else; the
/// methods below set what differs.
const fn rw(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
) -> ResourceType {
    ResourceType {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced: true,
        short_names: &[],
        verbs: RW,
        subresources: &[],
        categories: &[],
        has_generation: false,
    }
}

impl ResourceType {
    const fn cluster_scoped(self) -> Self {
        Self {
            namespaced: false,
            ..self
        }
    }
    const fn short(self, short_names: &'static [&'static str]) -> Self {
        Self {
            short_names,
            ..self
        }
    }
    const fn verbs(self, verbs: &'static [&'static str]) -> Self {
        Self { verbs, ..self }
    }
    const fn sub(self, subresources: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            subresources,
            ..self
        }
    }
    /// In the `all` category (`kubectl get all`).
    const fn in_all(self) -> Self {
        Self {
            categories: &["all"],
            ..self
        }
    }
    /// Keeps `metadata.generation`.
    const fn generation(self) -> Self {
        Self {
            has_generation: true,
            ..self
        }
    }
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    rw("", "v1", "namespaces", "namespace", "Namespace")
        .cluster_scoped()
        .short(&["ns"])
        .sub(&[("status", "Namespace")]),
    rw("", "v1", "nodes", "node", "Node")
        .cluster_scoped()
        .short(&["no"])
        .sub(&[("status", "Node")]),
    rw("", "v1", "pods", "pod", "Pod")
        .short(&["po"])
        .sub(&[("status", "Pod"), ("log", "Pod"), ("eviction", "Eviction")])
        .in_all()
        .generation(),
    rw("", "v1", "events", "event", "Event").short(&["ev"]),
    rw("", "v1", "secrets", "secret", "Secret"),
    rw("", "v1", "configmaps", "configmap", "ConfigMap").short(&["cm"]),
    rw(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
    )
    .short(&["sa"]),
    rw("", "v1", "services", "service", "Service")
        .short(&["svc"])
        .sub(&[("status", "Service")])
        .in_all(),
    rw("", "v1", "endpoints", "endpoints", "Endpoints").short(&["ep"]),
    rw(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
    )
    .short(&["rc"])
    .sub(&[("status", "ReplicationController"), ("scale", "Scale")])
    .in_all()
    .generation(),
    rw("", "v1", "resourcequotas", "resourcequota", "ResourceQuota")
        .short(&["quota"])
        .sub(&[("status", "ResourceQuota")]),
    rw("apps", "v1", "deployments", "deployment", "Deployment")
        .short(&["deploy"])
        .sub(&[("status", "Deployment"), ("scale", "Scale")])
        .in_all()
        .generation(),
    rw("apps", "v1", "replicasets", "replicaset", "ReplicaSet")
        .short(&["rs"])
        .sub(&[("status", "ReplicaSet"), ("scale", "Scale")])
        .in_all()
        .generation(),
    rw("apps", "v1", "statefulsets", "statefulset", "StatefulSet")
        .short(&["sts"])
        .sub(&[("status", "StatefulSet"), ("scale", "Scale")])
        .in_all()
        .generation(),
    rw("apps", "v1", "daemonsets", "daemonset", "DaemonSet")
        .short(&["ds"])
        .sub(&[("status", "DaemonSet")])
        .in_all()
        .generation(),
    rw(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
    ),
    rw("events.k8s.io", "v1", "events", "event", "Event").short(&["ev"]),
    rw(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
    ),
    rw("coordination.k8s.io", "v1", "leases", "lease", "Lease"),
    rw(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
    )
    .cluster_scoped()
    .verbs(&["create"]),
    rw(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
    )
    .cluster_scoped()
    .verbs(&["create"]),
];

/// Look a resource up by its URL coordinates.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Look a resource up by kind within a group ("apps", "Deployment").
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// Look a resource up by the group-qualified key ("deployments.apps").
pub fn by_key(key: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.key() == key)
}

/// Group versions served, in discovery order: ("", "v1") first.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Resources in one group version.
pub fn in_group(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceType> {
    let g = group.to_string();
    let v = version.to_string();
    RESOURCES
        .iter()
        .filter(move |r| r.group == g && r.version == v)
}

/// Shorthand used by controllers.
pub fn res(key: &str) -> &'static ResourceType {
    by_key(key).unwrap_or_else(|| panic!("kubesim: unknown resource {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(d.key(), "deployments.apps");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(res("pods").gv_prefix(), "/api/v1");
        assert!(d.has_subresource("scale"));
        assert_eq!(groups()[0], ("", "v1"));
        assert_eq!(by_kind("apps", "ReplicaSet").unwrap().plural, "replicasets");
    }
}

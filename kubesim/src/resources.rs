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

macro_rules! res {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $verbs:expr, $sub:expr, $cat:expr, $gen:expr) => {
        ResourceType {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            verbs: $verbs,
            subresources: $sub,
            categories: $cat,
            has_generation: $gen,
        }
    };
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    res!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        RW,
        &[("status", "Namespace")],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        RW,
        &[("status", "Node")],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        RW,
        &[("status", "Pod"), ("log", "Pod"), ("eviction", "Eviction")],
        &["all"],
        true
    ),
    res!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        RW,
        &[("status", "Service")],
        &["all"],
        false
    ),
    res!(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "",
        "v1",
        "replicationcontrollers",
        "replicationcontroller",
        "ReplicationController",
        true,
        &["rc"],
        RW,
        &[("status", "ReplicationController"), ("scale", "Scale")],
        &["all"],
        true
    ),
    res!(
        "",
        "v1",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        &["quota"],
        RW,
        &[("status", "ResourceQuota")],
        &[],
        false
    ),
    res!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        RW,
        &[("status", "Deployment"), ("scale", "Scale")],
        &["all"],
        true
    ),
    res!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        RW,
        &[("status", "ReplicaSet"), ("scale", "Scale")],
        &["all"],
        true
    ),
    res!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        RW,
        &[("status", "StatefulSet"), ("scale", "Scale")],
        &["all"],
        true
    ),
    res!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        RW,
        &[("status", "DaemonSet")],
        &["all"],
        true
    ),
    res!(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        &[],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        RW,
        &[],
        &[],
        false
    ),
    res!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &["create"],
        &[],
        &[],
        false
    ),
    res!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        false,
        &[],
        &["create"],
        &[],
        &[],
        false
    ),
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

//! Bearer-token authentication and per-identity RBAC rules.

use std::collections::BTreeMap;

/// One allow rule: verbs × resources × namespaces. `"*"` matches anything.
/// Resources are written as RBAC does: `pods`, `pods/log`, `deployments`
/// (the group is given separately in `groups`, `"*"` for any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    /// Namespaces the rule applies in; `"*"` for all (and cluster-scoped).
    pub namespaces: Vec<String>,
}

impl Rule {
    /// A rule from short lists, e.g. `Rule::new(&["get","list"], &["apps"], &["deployments"], &["*"])`.
    pub fn new(verbs: &[&str], groups: &[&str], resources: &[&str], namespaces: &[&str]) -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Self {
            verbs: v(verbs),
            groups: v(groups),
            resources: v(resources),
            namespaces: v(namespaces),
        }
    }

    /// Everything, everywhere (cluster-admin).
    pub fn admin() -> Self {
        Self::new(&["*"], &["*"], &["*"], &["*"])
    }

    pub fn allows(&self, a: &Attributes) -> bool {
        let any = |xs: &[String], x: &str| xs.iter().any(|s| s == "*" || s == x);
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        any(&self.verbs, &a.verb)
            && any(&self.groups, &a.group)
            && (any(&self.resources, &resource)
                || self
                    .resources
                    .iter()
                    .any(|r| r == &format!("{}/*", a.resource)))
            && (a.namespace.is_empty() && self.namespaces.iter().any(|n| n == "*")
                || !a.namespace.is_empty() && any(&self.namespaces, &a.namespace))
    }
}

/// What a request wants to do, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// The upstream RBAC denial message.
    pub fn forbidden_message(&self, user: &str) -> String {
        let what = if self.subresource.is_empty() {
            format!("resource \"{}\"", self.resource)
        } else {
            format!("resource \"{}/{}\"", self.resource, self.subresource)
        };
        // `deployments.apps`, or `pods` in the core group; then the name if any.
        let mut object = self.resource.clone();
        if !self.group.is_empty() {
            object = format!("{object}.{}", self.group);
        }
        if !self.name.is_empty() {
            object = format!("{object} \"{}\"", self.name);
        }
        let object = format!("{object} is forbidden");
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", self.namespace)
        };
        format!(
            "{object}: User \"{user}\" cannot {} {what} in API group \"{}\" {scope}",
            self.verb, self.group
        )
    }
}

/// A user known by its token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub rules: Vec<Rule>,
}

/// token → identity.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    pub by_token: BTreeMap<String, Identity>,
}

impl Identities {
    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        self.by_token.get(token)
    }
}

impl Identity {
    pub fn allowed(&self, a: &Attributes) -> bool {
        self.rules.iter().any(|r| r.allows(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, res: &str, sub: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: "web".into(),
        }
    }

    #[test]
    fn rules_match_verbs_resources_namespaces() {
        let r = Rule::new(&["get", "patch"], &["apps"], &["deployments"], &["prod"]);
        assert!(r.allows(&attrs("patch", "apps", "deployments", "", "prod")));
        assert!(!r.allows(&attrs("patch", "apps", "deployments", "", "dev")));
        assert!(!r.allows(&attrs("delete", "apps", "deployments", "", "prod")));
        assert!(!r.allows(&attrs("get", "apps", "deployments", "scale", "prod")));
        assert!(Rule::admin().allows(&attrs("list", "", "nodes", "", "")));
    }

    #[test]
    fn forbidden_message_matches_upstream() {
        let a = attrs("patch", "apps", "deployments", "", "default");
        assert_eq!(
            a.forbidden_message("ci"),
            "deployments.apps \"web\" is forbidden: User \"ci\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"default\""
        );
    }
}

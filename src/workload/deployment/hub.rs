//! One set of watches for every Deployment of a group: the Deployments,
//! their ReplicaSets, their pods and the namespace's events, each listed and
//! watched once for the whole group (narrowed to the members where a label
//! selector can say so) instead of once per Deployment. Each member's
//! [`Tracker`](super::tracker::Tracker) reads its own objects out of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::track::keep;
use crate::track::reflect::{self, Keep, Seen, reflect_kept};

/// The Deployments of a run, and their shared watches once started.
#[derive(Default)]
pub struct Group {
    members: Mutex<Vec<(String, Selector)>>,
    /// A member whose selector we cannot match ourselves: no sharing.
    unmatched: Mutex<bool>,
    hub: Mutex<Option<Arc<Hub>>>,
}

impl Group {
    /// A Deployment of the run and its label selector; every member joins
    /// before the first is applied.
    pub fn join(&self, name: &str, selector: &str) {
        match Selector::parse(selector) {
            Some(s) => lock(&self.members).push((name.to_string(), s)),
            None => *lock(&self.unmatched) = true,
        }
    }

    /// The group's watches (started at the first call), or None for a run
    /// of one Deployment, or one with a selector we cannot match ourselves
    /// (each member then watches on its own).
    pub fn hub(&self, client: &Client, namespace: &str) -> Option<Arc<Hub>> {
        let members = lock(&self.members).clone();
        if members.len() < 2 || *lock(&self.unmatched) {
            return None;
        }
        let mut hub = lock(&self.hub);
        Some(
            hub.get_or_insert_with(|| Arc::new(Hub::start(client, namespace, members)))
                .clone(),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared caches of a group, driven on a task of their own.
pub struct Hub {
    pub deployments: Store<Deployment>,
    pub replica_sets: Store<ReplicaSet>,
    pub pods: Store<Pod>,
    pub events: Store<Event>,
    seen: tokio::sync::watch::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

/// A cache of the members' objects of one kind (those a member's selector
/// matches), listed and watched under `config`.
fn of_members<K: crate::track::reflect::Namespaced>(
    (client, namespace, selectors): (&Client, &str, &Arc<Vec<Selector>>),
    config: watcher::Config,
    what: &'static str,
    keep: Keep<K>,
) -> (
    Store<K>,
    futures::stream::BoxStream<'static, Option<&'static str>>,
) {
    let selectors = selectors.clone();
    let member = move |o: &K| {
        let labels = o.meta().labels.as_ref();
        selectors.iter().any(|m| m.matches(labels))
    };
    reflect_kept(
        Api::namespaced(client.clone(), namespace),
        config,
        what,
        keep.only(member),
    )
}

/// Caches a [`Hub`] holds.
pub const CACHES: usize = 4;

impl Hub {
    fn start(client: &Client, namespace: &str, members: Vec<(String, Selector)>) -> Hub {
        let names: BTreeSet<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let selectors: Arc<Vec<Selector>> = Arc::new(members.into_iter().map(|(_, s)| s).collect());
        let narrowed = Selector::union(&selectors);
        let config = || match &narrowed {
            Some(s) => watcher::Config::default().labels(s),
            None => watcher::Config::default(),
        };
        let (deployments, s1) = reflect_kept(
            Api::<Deployment>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            "deployment",
            Keep::all().only(move |d: &Deployment| {
                d.metadata.name.as_ref().is_some_and(|n| names.contains(n))
            }),
        );
        let ours = (client, namespace, &selectors);
        let (replica_sets, s2) = of_members(ours, config(), "replicasets", keep::replica_sets());
        let (pods, s3) = of_members(ours, config(), "pods", keep::pods());
        let (events, s4) = reflect_kept(
            Api::<Event>::namespaced(client.clone(), namespace),
            keep::events_watch(),
            "events",
            keep::events(),
        );
        let (seen, task) = reflect::drive(futures::stream::select_all([s1, s2, s3, s4]));
        Hub {
            deployments,
            replica_sets,
            pods,
            events,
            seen,
            task,
        }
    }

    /// A follower's view of what the caches have seen.
    pub fn seen(&self) -> tokio::sync::watch::Receiver<Seen> {
        self.seen.clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A label selector as [`selector_of`](crate::k8s::objects::selector_of)
/// writes it, matched on our side.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn values(v: &str) -> Option<Vec<String>> {
    let v = v.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        v.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    )
}

impl Selector {
    /// None when the selector has a form we do not know.
    pub fn parse(selector: &str) -> Option<Selector> {
        let mut terms = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in selector.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.checked_sub(1)?,
                ',' if depth == 0 => {
                    terms.push(&selector[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        terms.push(&selector[start..]);
        let mut reqs = Vec::new();
        for t in terms.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
            let req = if let Some(k) = t.strip_prefix('!') {
                Requirement::Absent(k.trim().to_string())
            } else if let Some((k, v)) = t.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_string(), values(v)?)
            } else if let Some((k, v)) = t.split_once(" in ") {
                Requirement::In(k.trim().to_string(), values(v)?)
            } else if let Some((k, v)) = t.split_once("!=") {
                Requirement::NotEquals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Requirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else {
                Requirement::Exists(t.to_string())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k) => k,
            };
            if !is_key(key) {
                return None;
            }
            reqs.push(req);
        }
        Some(Selector(reqs))
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::Absent(k) => get(k).is_none(),
        })
    }

    /// One selector the server can narrow a watch of every member's objects
    /// with: when each member selects on one and the same label
    /// (`app=a`, `app=b` → `app in (a,b)`); else None (the whole namespace,
    /// sorted out on our side).
    fn union(members: &[Selector]) -> Option<String> {
        let mut key = None;
        let mut vals = BTreeSet::new();
        for m in members {
            let [Requirement::Equals(k, v)] = m.0.as_slice() else {
                return None;
            };
            if key.is_some_and(|key: &String| key != k) {
                return None;
            }
            key = Some(k);
            vals.insert(v.as_str());
        }
        let key = key?;
        Some(format!(
            "{key} in ({})",
            vals.into_iter().collect::<Vec<_>>().join(",")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_the_server_does() {
        let s = Selector::parse("app=web,tier in (a, b),track notin (canary),!skip,env").unwrap();
        let mut l = labels(&[("app", "web"), ("tier", "a"), ("env", "x")]);
        assert!(s.matches(Some(&l)));
        l.insert("track".into(), "canary".into());
        assert!(!s.matches(Some(&l)));
        l.insert("track".into(), "stable".into());
        assert!(s.matches(Some(&l)));
        l.insert("skip".into(), "1".into());
        assert!(!s.matches(Some(&l)));
        assert!(!s.matches(None));
        assert!(Selector::parse("").unwrap().matches(None));
        assert!(
            Selector::parse("a!=b")
                .unwrap()
                .matches(Some(&labels(&[("a", "c")])))
        );
        assert_eq!(Selector::parse("a in b"), None);
    }

    #[test]
    fn the_group_is_narrowed_by_one_shared_label() {
        let sel = |s: &str| Selector::parse(s).unwrap();
        assert_eq!(
            Selector::union(&[sel("app=web-2"), sel("app=web-1")]).as_deref(),
            Some("app in (web-1,web-2)")
        );
        assert_eq!(Selector::union(&[sel("app=web"), sel("name=db")]), None);
        assert_eq!(
            Selector::union(&[sel("app=web,tier=x"), sel("app=db")]),
            None
        );
    }
}

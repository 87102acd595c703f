//! The object store: etcd's role. Objects are kept as JSON (`serde_json::Value`)
//! exactly as served, under one global, monotonically increasing
//! resourceVersion. Every change is appended to a bounded history so watches
//! can start from an exact resourceVersion, and broadcast to live watchers and
//! to the controllers.
//!
//! The store does the machinery every write shares (uid, creationTimestamp,
//! resourceVersion, generation on spec changes, optimistic concurrency).
//! API semantics on top (status only through `/status`, graceful deletion,
//! defaulting, validation) live in the API layer and the controllers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::clock::{Clock, fmt_time};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;

/// How many changes are kept for watches that resume from a resourceVersion.
const HISTORY: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: EventType,
    pub res: &'static ResourceType,
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    /// The object after the change (for DELETED: as it was, with the deletion's resourceVersion).
    pub object: Arc<Value>,
}

type Key = (&'static str, String, String);

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Change>,
    /// Changes at or below this resourceVersion are no longer in `history`.
    compacted: u64,
}

/// The shared object store.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Change>,
    /// Woken on every change; controllers wait on it.
    pub changed: Notify,
    pub clock: Arc<Clock>,
}

fn key(rt: &'static ResourceType, ns: &str, name: &str) -> Key {
    let ns = if rt.namespaced {
        ns.to_string()
    } else {
        String::new()
    };
    (rt.plural_key(), ns, name.to_string())
}

impl ResourceType {
    /// The store map's key for the type. events.k8s.io/v1 Events are a
    /// second view of the core/v1 Events, so both share one storage key.
    fn plural_key(&'static self) -> &'static str {
        self.plural
    }
}

impl Store {
    pub fn new(clock: Arc<Clock>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(65_536);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 0,
            }),
            tx,
            changed: Notify::new(),
            clock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("store lock")
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    fn commit(&self, inner: &mut Inner, change: Change) {
        inner.history.push_back(change.clone());
        while inner.history.len() > HISTORY {
            if let Some(c) = inner.history.pop_front() {
                inner.compacted = c.rv;
            }
        }
        let _ = self.tx.send(change);
        self.changed.notify_waiters();
    }

    /// Stamp `obj` with its kind, keep it under its key and tell the
    /// watchers: the last step of every create and update.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &self,
        inner: &mut Inner,
        kind: EventType,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        rv: u64,
        mut obj: Value,
    ) -> Arc<Value> {
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let obj = Arc::new(obj);
        inner.objects.insert(key(rt, ns, name), obj.clone());
        self.commit(
            inner,
            Change {
                kind,
                res: rt,
                namespace: ns.to_string(),
                name: name.to_string(),
                rv,
                object: obj.clone(),
            },
        );
        obj
    }

    /// Create an object. Fills uid, creationTimestamp, resourceVersion,
    /// generation (for kinds that keep one), namespace, name from generateName.
    pub fn create(
        &self,
        rt: &'static ResourceType,
        ns: &str,
        mut obj: Value,
    ) -> ApiResult<Arc<Value>> {
        let mut inner = self.lock();
        let meta = obj
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("object is not a JSON object"))?
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(ApiError::bad_request("metadata is not an object"));
        }
        let mut name = meta["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            let prefix = meta["generateName"].as_str().unwrap_or("").to_string();
            if prefix.is_empty() {
                return Err(ApiError::name_required(rt));
            }
            loop {
                let candidate = format!("{prefix}{}", random_suffix(5));
                if !inner.objects.contains_key(&key(rt, ns, &candidate)) {
                    name = candidate;
                    break;
                }
            }
            meta["name"] = json!(name);
        }
        let k = key(rt, ns, &name);
        if inner.objects.contains_key(&k) {
            return Err(ApiError::already_exists(rt, &name));
        }
        inner.rv += 1;
        let rv = inner.rv;
        if rt.namespaced {
            meta["namespace"] = json!(ns);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = json!(fmt_time(self.clock.now()));
        if rt.has_generation {
            meta["generation"] = json!(1);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("generation");
        }
        Ok(self.store(&mut inner, EventType::Added, rt, ns, &name, rv, obj))
    }

    pub fn get(&self, rt: &'static ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        self.lock()
            .objects
            .get(&key(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// All objects of a type (in one namespace, or all when `ns` is None),
    /// sorted by namespace then name, with the list's resourceVersion.
    pub fn list(&self, rt: &'static ResourceType, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let pk = rt.plural_key();
        let items = inner
            .objects
            .range((pk, String::new(), String::new())..)
            .take_while(|((p, _, _), _)| *p == pk)
            .filter(|((_, n, _), _)| match ns {
                Some(ns) if rt.namespaced => n == ns,
                _ => true,
            })
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// Replace an object. When `expect_rv` is given it must match the stored
    /// resourceVersion (optimistic concurrency, 409 otherwise). uid and
    /// creationTimestamp are preserved; generation is bumped when `spec` changed.
    pub fn update(
        &self,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        expect_rv: Option<&str>,
    ) -> ApiResult<Arc<Value>> {
        let mut inner = self.lock();
        let k = key(rt, ns, name);
        let old = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(want) = expect_rv
            && !want.is_empty()
            && old["metadata"]["resourceVersion"].as_str() != Some(want)
        {
            return Err(ApiError::conflict(rt, name));
        }
        if !obj.is_object() {
            return Err(ApiError::bad_request("object is not a JSON object"));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj["metadata"]["name"].as_str().unwrap_or("")
            )));
        }
        if *old == obj {
            // No-op writes do not change the resourceVersion (as upstream).
            return Ok(old);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = &mut obj["metadata"];
        meta["name"] = json!(name);
        if rt.namespaced {
            meta["namespace"] = json!(ns);
        }
        meta["uid"] = old["metadata"]["uid"].clone();
        meta["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
        meta["resourceVersion"] = json!(rv.to_string());
        if rt.has_generation {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let bumped = if spec_changed(rt, &old, &obj) {
                g + 1
            } else {
                g
            };
            obj["metadata"]["generation"] = json!(bumped);
        }
        Ok(self.store(&mut inner, EventType::Modified, rt, ns, name, rv, obj))
    }

    /// Read-modify-write under the store lock: no conflicts for controllers.
    /// The closure returns Ok(false) to skip the write.
    pub fn modify<F>(
        &self,
        rt: &'static ResourceType,
        ns: &str,
        name: &str,
        f: F,
    ) -> ApiResult<Arc<Value>>
    where
        F: FnOnce(&mut Value) -> ApiResult<bool>,
    {
        // The store lock is not re-entrant, so read, change and write back
        // guarded by the resourceVersion: a concurrent writer makes this 409
        // and the controller requeues.
        let cur = self.get(rt, ns, name)?;
        let mut next = (*cur).clone();
        if !f(&mut next)? {
            return Ok(cur);
        }
        let rv = cur["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        self.update(rt, ns, name, next, Some(&rv))
    }

    /// Remove an object now (no grace handling here).
    pub fn delete(&self, rt: &'static ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        let mut inner = self.lock();
        let k = key(rt, ns, name);
        let old = inner
            .objects
            .remove(&k)
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = (*old).clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        let gone = Arc::new(gone);
        self.commit(
            &mut inner,
            Change {
                kind: EventType::Deleted,
                res: rt,
                namespace: ns.to_string(),
                name: name.to_string(),
                rv,
                object: gone.clone(),
            },
        );
        Ok(gone)
    }

    /// Atomically: the changes after `rv` still in history, and a receiver
    /// for every later change. 410-style error when `rv` was compacted.
    pub fn watch_from(&self, rv: u64) -> ApiResult<(Vec<Change>, broadcast::Receiver<Change>)> {
        let inner = self.lock();
        if rv < inner.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                inner.compacted + 1
            )));
        }
        let rx = self.tx.subscribe();
        let past = inner
            .history
            .iter()
            .filter(|c| c.rv > rv)
            .cloned()
            .collect();
        Ok((past, rx))
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Forget history: watches from any older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }
}

/// Whether an update changes the spec, for `metadata.generation`. Binding a
/// pod (setting `spec.nodeName`, which only the binding subresource may do)
/// does not count, as upstream's binding does not bump the generation.
fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    if old.get("spec") == new.get("spec") {
        return false;
    }
    if rt.group.is_empty() && rt.plural == "pods" {
        let strip = |v: &Value| {
            let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(m) = spec.as_object_mut() {
                m.remove("nodeName");
            }
            spec
        };
        return strip(old) != strip(new);
    }
    true
}

/// Kubernetes-style random suffix (consonants and digits, no vowels).
pub fn random_suffix(n: usize) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::res;

    fn store() -> Arc<Store> {
        Store::new(Arc::new(Clock::new(1.0)))
    }

    #[test]
    fn create_get_update_conflict_generation() {
        let s = store();
        let d = res("deployments.apps");
        let o = s
            .create(
                d,
                "default",
                json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}}),
            )
            .unwrap();
        assert_eq!(o["metadata"]["generation"], 1);
        let rv = o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let mut next = (*o).clone();
        next["status"] = json!({"replicas": 1});
        let o2 = s.update(d, "default", "web", next, Some(&rv)).unwrap();
        assert_eq!(
            o2["metadata"]["generation"], 1,
            "status change keeps generation"
        );
        let mut next = (*o2).clone();
        next["spec"]["replicas"] = json!(3);
        let err = s
            .update(d, "default", "web", next.clone(), Some(&rv))
            .unwrap_err();
        assert_eq!(err.code, 409);
        let o3 = s.update(d, "default", "web", next, None).unwrap();
        assert_eq!(o3["metadata"]["generation"], 2);
        assert_eq!(o3["metadata"]["uid"], o["metadata"]["uid"]);
    }

    #[test]
    fn generate_name_and_list_by_namespace() {
        let s = store();
        let p = res("pods");
        let a = s
            .create(p, "a", json!({"metadata": {"generateName": "web-"}}))
            .unwrap();
        assert!(a["metadata"]["name"].as_str().unwrap().starts_with("web-"));
        s.create(p, "b", json!({"metadata": {"name": "x"}}))
            .unwrap();
        assert_eq!(s.list(p, Some("a")).0.len(), 1);
        assert_eq!(s.list(p, None).0.len(), 2);
        assert_eq!(s.list(res("deployments.apps"), None).0.len(), 0);
    }

    #[test]
    fn watch_from_rv_and_compaction() {
        let s = store();
        let p = res("pods");
        let a = s
            .create(p, "a", json!({"metadata": {"name": "x"}}))
            .unwrap();
        let rv: u64 = a["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        s.delete(p, "a", "x").unwrap();
        let (past, _rx) = s.watch_from(rv).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].kind, EventType::Deleted);
        s.compact();
        assert_eq!(s.watch_from(rv).unwrap_err().code, 410);
    }
}

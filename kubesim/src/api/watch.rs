//! Watch: a JSON-lines stream of `{"type", "object"}` events, from the
//! store's history and live broadcast, with bookmarks, initial events and
//! selector-aware ADDED/DELETED transitions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch as wch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::http::{Req, Resp};
use super::routes::ResourceReq;
use super::selectors::{FieldSelector, LabelSelector};
use super::views::render;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;
use crate::sim::Sim;
use crate::store::{Change, EventType};

/// Which objects one watcher sees.
struct Filter {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn same_type(&self, c: &Change) -> bool {
        c.res.plural == self.rt.plural
            && (c.res.group == self.rt.group || self.rt.plural == "events")
    }

    fn in_scope(&self, c: &Change) -> bool {
        self.same_type(c)
            && match &self.namespace {
                Some(ns) if self.rt.namespaced => &c.namespace == ns,
                _ => true,
            }
            && self.name.as_ref().is_none_or(|n| n == &c.name)
    }

    fn selective(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }
}

struct State {
    filter: Filter,
    /// Render objects as one-row Tables (`kubectl get -w`): include the full object?
    table: Option<bool>,
    sim: Arc<Sim>,
    visible: HashSet<(String, String)>,
    last: u64,
}

impl State {
    /// Turn one store change into at most one event line for this watcher.
    fn process(&mut self, c: Change, out: &mut Vec<Bytes>) {
        if c.rv <= self.last {
            return;
        }
        self.last = c.rv;
        let filter = &self.filter;
        if !filter.in_scope(&c) {
            return;
        }
        let now = filter.matches(&c.object);
        let ty = if !filter.selective() {
            Some(c.kind.as_str())
        } else {
            let k = (c.namespace.clone(), c.name.clone());
            let was = self.visible.contains(&k);
            match (c.kind, was, now) {
                (EventType::Deleted, false, false) => None,
                (EventType::Deleted, _, _) => {
                    self.visible.remove(&k);
                    Some("DELETED")
                }
                (_, true, true) => Some("MODIFIED"),
                (_, false, true) => {
                    self.visible.insert(k);
                    Some("ADDED")
                }
                (_, true, false) => {
                    self.visible.remove(&k);
                    Some("DELETED")
                }
                (_, false, false) => None,
            }
        };
        if let Some(ty) = ty {
            match self.table {
                None => out.push(shared_line(self.filter.rt, ty, &c.object)),
                Some(_) => out.push(line(ty, self.view(&c.object))),
            }
        }
    }

    fn view(&self, obj: &Value) -> Value {
        let rt = self.filter.rt;
        match self.table {
            None => render(rt, obj),
            Some(include) => {
                let list = json!({"metadata": {}, "items": [render(rt, obj)]});
                super::table::list_table(&self.sim, rt, &list, include)
            }
        }
    }
}

/// Serialize-once cache for the watch fan-out (upstream's apiserver does
/// the same with its caching objects): every watcher of one change gets the
/// same bytes. Keyed by the change's object (kept alive by the entry, so its
/// address is not reused), the resource view and the event type.
type LineKey = (usize, usize, &'static str);

struct LineCache {
    map: HashMap<LineKey, (Arc<Value>, Bytes)>,
    order: VecDeque<LineKey>,
}

const LINE_CACHE: usize = 4096;

static LINES: LazyLock<Mutex<LineCache>> = LazyLock::new(|| {
    Mutex::new(LineCache {
        map: HashMap::new(),
        order: VecDeque::new(),
    })
});

fn shared_line(rt: &'static ResourceType, ty: &'static str, obj: &Arc<Value>) -> Bytes {
    let key = (
        Arc::as_ptr(obj) as usize,
        rt as *const ResourceType as usize,
        ty,
    );
    if let Some((_, b)) = LINES.lock().expect("line cache").map.get(&key) {
        return b.clone();
    }
    let b = line(ty, render(rt, obj));
    let mut c = LINES.lock().expect("line cache");
    if c.map.insert(key, (obj.clone(), b.clone())).is_none() {
        c.order.push_back(key);
        while c.order.len() > LINE_CACHE {
            if let Some(k) = c.order.pop_front() {
                c.map.remove(&k);
            }
        }
    }
    b
}

fn key_of(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn line(ty: &str, obj: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}),
    )
}

/// The watch options kube-apiserver rejects (apimachinery's
/// `validateWatchOptions`): `sendInitialEvents` needs
/// `resourceVersionMatch=NotOlderThan` and the WatchList feature gate;
/// `resourceVersionMatch` needs `sendInitialEvents`.
fn validate_watch_options(req: &Req, watch_list: bool) -> ApiResult<()> {
    let matching = req.q("resourceVersionMatch").unwrap_or("");
    let mut causes = Vec::new();
    if req.q("sendInitialEvents").is_some() {
        if matching != "NotOlderThan" {
            causes.push((
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                    .to_string(),
            ));
        }
        if !watch_list {
            causes.push((
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
                    .to_string(),
            ));
        }
    } else if !matching.is_empty() {
        causes.push((
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
                .to_string(),
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_list_options(&causes))
    }
}

pub async fn watch(
    sim: &Arc<Sim>,
    req: &Req,
    r: &ResourceReq,
    mut shutdown: wch::Receiver<bool>,
) -> ApiResult<Resp> {
    let rt = r.rt;
    let filter = Filter {
        rt,
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        labels: LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(rt, req.q("fieldSelector").unwrap_or(""))?,
    };
    validate_watch_options(req, sim.config.watch_list)?;
    let rv_param = req.q("resourceVersion").unwrap_or("").to_string();
    let send_initial = match req.q("sendInitialEvents") {
        Some("true") => true,
        Some("false") => false,
        _ => rv_param.is_empty() || rv_param == "0",
    };
    let initial_end = req.q("sendInitialEvents") == Some("true");
    let bookmarks = req.q_bool("allowWatchBookmarks");
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);

    let mut initial: Vec<Arc<Value>> = Vec::new();
    let mut past: Vec<Change> = Vec::new();
    let mut expired: Option<ApiError> = None;
    let start_rv;
    let mut rx: Option<broadcast::Receiver<Change>> = None;
    if send_initial {
        rx = Some(sim.store.subscribe());
        let (items, rv) = sim.store.list(rt, filter.namespace.as_deref());
        initial = items
            .into_iter()
            .filter(|o| {
                filter
                    .name
                    .as_ref()
                    .is_none_or(|n| o["metadata"]["name"].as_str() == Some(n))
            })
            .filter(|o| filter.matches(o))
            .collect();
        start_rv = rv;
    } else {
        let n: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {rv_param:?}: must be a valid integer"
            ))
        })?;
        start_rv = n;
        match sim.store.watch_from(n) {
            Ok((p, r)) => {
                past = p;
                rx = Some(r);
            }
            Err(e) => expired = Some(e),
        }
    }
    // The objects this watcher currently sees (for selector transitions).
    let mut visible: HashSet<(String, String)> = HashSet::new();
    if filter.selective() {
        if send_initial {
            visible.extend(initial.iter().map(|o| key_of(o)));
        } else {
            let (items, _) = sim.store.list(rt, filter.namespace.as_deref());
            visible.extend(
                items
                    .iter()
                    .filter(|o| filter.matches(o))
                    .map(|o| key_of(o)),
            );
        }
    }

    let table = super::table::wants_table(req).then(|| req.q("includeObject") == Some("Object"));
    let (tx, out) = mpsc::channel::<Bytes>(512);
    let sim = sim.clone();
    let agent = req.user_agent.clone();
    let mut drops = sim.faults.drops();
    tokio::spawn(async move {
        let send = |b: Bytes| {
            sim.metrics.record_stream(&agent, b.len() as u64);
            tx.send(b)
        };
        if let Some(e) = expired {
            let _ = send(line("ERROR", e.to_status())).await;
            return;
        }
        let Some(mut rx) = rx else { return };
        let table_view = |o: &Value| match table {
            None => render(rt, o),
            Some(include) => {
                let list = json!({"metadata": {}, "items": [render(rt, o)]});
                super::table::list_table(&sim, rt, &list, include)
            }
        };
        for o in &initial {
            if send(line("ADDED", table_view(o))).await.is_err() {
                return;
            }
        }
        if initial_end && send(bookmark(rt, start_rv, true)).await.is_err() {
            return;
        }
        let mut st = State {
            filter,
            table,
            sim: sim.clone(),
            visible,
            last: start_rv,
        };
        let mut buf = Vec::new();
        for c in past {
            st.process(c, &mut buf);
        }
        for b in buf.drain(..) {
            if send(b).await.is_err() {
                return;
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) => st.process(c, &mut buf),
                    // A watcher that fell behind is closed; the client re-watches.
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let cur = sim.store.current_rv();
                    loop {
                        match rx.try_recv() {
                            Ok(c) => st.process(c, &mut buf),
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    let rv = cur.max(st.last);
                    st.last = rv;
                    buf.push(bookmark(rt, rv, false));
                }
                _ = sleep => return,
                _ = super::http::stopped(&mut shutdown) => return,
                _ = tx.closed() => return,
                // Fault injection: end the stream cleanly, the client re-watches.
                _ = drops.changed() => return,
            }
            for b in buf.drain(..) {
                if send(b).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream =
        ReceiverStream::new(out).map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)));
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

//! The watch plumbing shared by every tracker: a reflector per resource
//! (caches that resume and relist by themselves) merged into one stream, and
//! the tick that re-judges on our clock.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// Re-judge at least this often (grace periods and deadlines run on our clock).
pub const TICK: Duration = Duration::from_millis(200);

/// The merged streams of a tracker's reflectors; each yields its name once
/// its first list is done.
pub type Streams = SelectAll<BoxStream<'static, Option<&'static str>>>;

/// What a reflector can watch and cache: a typed, namespaced-or-cluster
/// Kubernetes object.
pub trait Cached:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Cached for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A namespaced object of a workload kind (a StatefulSet, DaemonSet, …) as
/// the template kinds watch and patch it.
pub trait Namespaced:
    Cached + serde::Serialize + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
}

impl<K> Namespaced for K where
    K: Cached + serde::Serialize + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
}

/// A reflector of `api` under `config`: its cache, and its stream (named `what`).
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
) -> (Store<K>, BoxStream<'static, Option<&'static str>>)
where
    K: Cached,
{
    reflect_kept(api, config, what, Keep::all())
}

/// What a cache stores of the objects it sees: which objects at all, and
/// what of each (the rest is stripped before the object is stored).
pub struct Keep<K> {
    /// Objects this says no to are never stored (one that turns into such
    /// an object is dropped from the cache).
    pub object: Box<dyn Fn(&K) -> bool + Send + Sync>,
    /// Strips what no rule reads, before the object is stored.
    pub slim: fn(&mut K),
}

impl<K: 'static> Keep<K> {
    /// Every object, whole.
    pub fn all() -> Keep<K> {
        Keep {
            object: Box::new(|_| true),
            slim: |_| {},
        }
    }

    /// Of what this keeps, only the objects `also` keeps too.
    pub fn only(self, also: impl Fn(&K) -> bool + Send + Sync + 'static) -> Keep<K> {
        let first = self.object;
        Keep {
            object: Box::new(move |o| first(o) && also(o)),
            slim: self.slim,
        }
    }
}

/// [`reflect`], storing only what `keep` keeps.
pub fn reflect_kept<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    keep: Keep<K>,
) -> (Store<K>, BoxStream<'static, Option<&'static str>>)
where
    K: Cached,
{
    let (reader, writer) = reflector::store();
    let Keep { object, slim } = keep;
    let stream = initial_state_streamed(api, config)
        .default_backoff()
        .filter_map(move |item| {
            futures::future::ready(match item {
                Ok(watcher::Event::Apply(mut o)) => Some(Ok(if object(&o) {
                    slim(&mut o);
                    watcher::Event::Apply(o)
                } else {
                    // Stored before, perhaps: no longer.
                    watcher::Event::Delete(o)
                })),
                Ok(watcher::Event::InitApply(mut o)) => object(&o).then(|| {
                    slim(&mut o);
                    Ok(watcher::Event::InitApply(o))
                }),
                other => Some(other),
            })
        })
        .reflect(writer)
        .map(move |item| match item {
            Ok(watcher::Event::InitDone) => Some(what),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("watch of {what} interrupted (resuming): {e}");
                None
            }
        })
        .boxed();
    (reader, stream)
}

/// A watcher that takes its initial state from one streaming watch
/// (`sendInitialEvents`: one request instead of a LIST and a WATCH); an API
/// server that refuses it (the WatchList feature gate off: 1.33, servers
/// before 1.32, aggregated API servers) answers 422 or 400 to that first
/// watch, and gets list-then-watch from then on.
fn initial_state_streamed<K>(
    api: Api<K>,
    config: watcher::Config,
) -> BoxStream<'static, watcher::Result<watcher::Event<K>>>
where
    K: Cached,
{
    struct State<K: Cached> {
        events: BoxStream<'static, watcher::Result<watcher::Event<K>>>,
        /// Until the first initial state is complete: what a fallback needs.
        fallback: Option<(Api<K>, watcher::Config)>,
    }
    let streamed = watcher(api.clone(), config.clone().streaming_lists()).boxed();
    let start = State {
        events: streamed,
        fallback: Some((api, config)),
    };
    futures::stream::unfold(start, |mut s| async move {
        loop {
            let item = s.events.next().await?;
            match &item {
                Ok(watcher::Event::InitDone) => s.fallback = None,
                Err(e) if s.fallback.is_some() && refuses_streaming(e) => {
                    if let Some((api, config)) = s.fallback.take() {
                        tracing::debug!("streaming list refused ({e}): list, then watch");
                        s.events = watcher(api, config).boxed();
                    }
                    continue;
                }
                _ => {}
            }
            return Some((item, s));
        }
    })
    .boxed()
}

/// The API server's answer to a `sendInitialEvents` watch it does not serve.
fn refuses_streaming(e: &watcher::Error) -> bool {
    let code = match e {
        watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code,
        watcher::Error::WatchError(s) => s.code,
        _ => return false,
    };
    code == 422 || code == 400
}

/// Wait for a change or the tick, whichever comes first; then take in every
/// event already waiting, so a burst (hundreds of pod updates) is judged
/// once, not once per event.
pub async fn next_change(stream: &mut Streams, ready: &mut BTreeSet<&'static str>) {
    let tick = tokio::time::sleep(TICK);
    tokio::select! {
        item = stream.next() => {
            if let Some(Some(what)) = item {
                ready.insert(what);
            }
            drain_ready(stream, ready);
        }
        _ = tick => {}
    }
}

/// Poll the merged watch streams without waiting, up to a bound.
fn drain_ready(stream: &mut Streams, ready: &mut BTreeSet<&'static str>) {
    use futures::FutureExt;
    for _ in 0..10_000 {
        match stream.next().now_or_never() {
            Some(Some(Some(what))) => {
                ready.insert(what);
            }
            Some(Some(None)) => {}
            Some(None) | None => break,
        }
    }
}

/// What caches driven on a task of their own ([`drive`]) have seen: how
/// many bursts of changes so far, and how many caches have listed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    pub changes: u64,
    pub listed: usize,
}

/// Drive merged reflector streams on a task of their own, for caches that
/// many followers read: each burst of events (taken in at once, as
/// [`next_change`] does) is one change. The task ends when the handle is
/// aborted.
pub fn drive(
    mut stream: Streams,
) -> (
    tokio::sync::watch::Receiver<Seen>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(Seen::default());
    let task = tokio::spawn(async move {
        let mut ready = BTreeSet::new();
        while let Some(item) = stream.next().await {
            if let Some(what) = item {
                ready.insert(what);
            }
            drain_ready(&mut stream, &mut ready);
            let listed = ready.len();
            tx.send_modify(|s| {
                s.changes += 1;
                s.listed = listed;
            });
        }
    });
    (rx, task)
}

/// Wait for a change of caches driven by [`drive`], or the tick, whichever
/// comes first.
pub async fn next_seen(seen: &mut tokio::sync::watch::Receiver<Seen>) {
    let tick = tokio::time::sleep(TICK);
    tokio::pin!(tick);
    tokio::select! {
        changed = seen.changed() => {
            if changed.is_err() {
                // Nothing drives them any more: the tick alone.
                tick.await;
            }
        }
        _ = &mut tick => {}
    }
}

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

/// A reflector of `api` under `config`: its cache, and its stream (named `what`).
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
) -> (Store<K>, BoxStream<'static, Option<&'static str>>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
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

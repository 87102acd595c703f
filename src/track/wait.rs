//! Wait until a condition holds on a tracker's caches, or a deadline: the
//! one loop behind every rollback confirmation and recovery wait. The
//! condition is a pure look at the caches: what it sees (a progress line,
//! printed when it changes) and either what it is still waiting for or that
//! it is done (with what it found).

use std::io::Write;

use tokio::time::Instant;

/// Something whose state moves on watch events.
pub(crate) trait Source {
    /// Wait for a change (or the tick).
    async fn next_change(&mut self);
}

/// One look at the state.
pub enum Poll<T> {
    Done { line: String, found: T },
    Pending { line: String, waiting_for: String },
}

/// Look after every change until `check` is done (what it found) or the
/// deadline passed (what it was still waiting for).
pub(crate) async fn wait_until<S: Source, T>(
    src: &mut S,
    deadline: Instant,
    out: &mut (dyn Write + Send),
    mut check: impl FnMut(&S) -> Poll<T>,
) -> Result<T, String> {
    let mut last = String::new();
    loop {
        src.next_change().await;
        let (line, result) = match check(src) {
            Poll::Done { line, found } => (line, Some(Ok(found))),
            Poll::Pending { line, waiting_for } => (
                line,
                (Instant::now() >= deadline).then_some(Err(waiting_for)),
            ),
        };
        if !line.is_empty() && line != last {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            last = line;
        }
        if let Some(result) = result {
            return result;
        }
    }
}

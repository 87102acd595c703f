//! Running one tool process and measuring it: spawn instant, exit instant,
//! every output line with the instant it was read, and the child's own
//! resource usage from `wait4(2)` (peak RSS, user + system CPU time).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// One finished process.
#[derive(Debug, Clone)]
pub struct ProcOut {
    /// Just before `fork`/`exec`.
    pub spawned: Instant,
    /// When `wait4` returned.
    pub exited: Instant,
    /// Exit code; None when killed by a signal (or by our watchdog).
    pub code: Option<i32>,
    /// Peak resident set size of the child (VmHWM, KiB, sampled every 2 ms).
    pub maxrss_kib: u64,
    /// User + system CPU time of the child.
    pub cpu: Duration,
    /// stdout lines with the instant they were read.
    pub stdout: Vec<(Instant, String)>,
    /// stderr lines with the instant they were read.
    pub stderr: Vec<(Instant, String)>,
    /// The watchdog killed it.
    pub killed: bool,
}

impl ProcOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr, for error messages.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (_, l) in self.stdout.iter().chain(self.stderr.iter()) {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

fn reader<R: std::io::Read + Send + 'static>(r: R) -> thread::JoinHandle<Vec<(Instant, String)>> {
    thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => lines.push((Instant::now(), l)),
                Err(_) => break,
            }
        }
        lines
    })
}

/// Run `cmd` to completion (killed after `limit`), measuring it. Blocking:
/// call it from `spawn_blocking`.
pub fn run(mut cmd: Command, limit: Duration) -> anyhow::Result<ProcOut> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("spawning {:?}: {e}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);

    // Watchdog: SIGKILL the child if it outlives `limit`. It also samples
    // the child's VmHWM (peak RSS of its own address space) every 2 ms:
    // wait4's ru_maxrss is no use here, as Linux carries the high-water mark
    // of the address space the child was forked from (this process, with
    // the whole simulated cluster in it) across exec.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let status = format!("/proc/{pid}/status");
        let deadline = Instant::now() + limit;
        let mut hwm = 0u64;
        loop {
            if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            }) {
                hwm = hwm.max(kib);
            }
            match done_rx.recv_timeout(Duration::from_millis(2)) {
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    // SAFETY: plain kill(2) of our own, not yet reaped, child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return (true, hwm);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return (false, hwm),
            }
        }
    });

    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child, with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(anyhow::anyhow!("wait4: {e}"));
        }
    }
    let exited = Instant::now();
    let _ = done_tx.send(());
    let (killed, hwm_kib) = watchdog.join().unwrap_or((false, 0));
    // The child is reaped; std's Child must not wait for it again.
    drop(child);
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Ok(ProcOut {
        spawned,
        exited,
        code,
        maxrss_kib: hwm_kib,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        stdout,
        stderr,
        killed,
    })
}

/// [`run`] on the blocking pool.
pub async fn run_async(cmd: Command, limit: Duration) -> anyhow::Result<ProcOut> {
    tokio::task::spawn_blocking(move || run(cmd, limit)).await?
}

//! One simulated clock for the whole control plane.
//!
//! Simulated time runs `speed` times faster than wall time and may be jumped
//! forward. Every timestamp kubesim writes (creationTimestamp, condition times,
//! event times, container start/finish times) and every delay it waits
//! (image pulls, readiness, back-offs, minReadySeconds, progress deadlines)
//! is measured on this clock, so the whole cluster stays consistent at any speed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;

#[derive(Debug)]
struct State {
    base_real: Instant,
    base_sim: Timestamp,
    speed: f64,
}

/// The simulated clock. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Clock {
    state: Mutex<State>,
    /// Bumped whenever the clock is jumped or its speed changes, so sleepers
    /// recompute their wall-clock wait.
    epoch: watch::Sender<u64>,
}

impl Clock {
    pub fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            state: Mutex::new(State {
                base_real: Instant::now(),
                base_sim: Timestamp::now(),
                speed,
            }),
            epoch: watch::channel(0).0,
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> Timestamp {
        let s = self.state.lock().expect("clock lock");
        Self::now_locked(&s)
    }

    fn now_locked(s: &State) -> Timestamp {
        let real = s.base_real.elapsed().as_secs_f64() * s.speed;
        s.base_sim + Duration::from_secs_f64(real)
    }

    pub fn speed(&self) -> f64 {
        self.state.lock().expect("clock lock").speed
    }

    /// Change the speed factor from now on (simulated time stays continuous).
    pub fn set_speed(&self, speed: f64) {
        {
            let mut s = self.state.lock().expect("clock lock");
            let now = Self::now_locked(&s);
            s.base_sim = now;
            s.base_real = Instant::now();
            if speed.is_finite() && speed > 0.0 {
                s.speed = speed;
            }
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Jump simulated time forward by `d` at once.
    pub fn advance(&self, d: Duration) {
        {
            let mut s = self.state.lock().expect("clock lock");
            s.base_sim += d;
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Wall-clock duration until simulated time `t` (zero if already past).
    pub fn real_until(&self, t: Timestamp) -> Duration {
        let s = self.state.lock().expect("clock lock");
        let now = Self::now_locked(&s);
        if t <= now {
            return Duration::ZERO;
        }
        let sim = t.duration_since(now).as_secs_f64();
        Duration::from_secs_f64(sim / s.speed)
    }

    /// Wall-clock duration for a simulated duration.
    pub fn real_for(&self, d: Duration) -> Duration {
        Duration::from_secs_f64(d.as_secs_f64() / self.speed())
    }

    /// Sleep until simulated time `t`, waking early and recomputing when the
    /// clock is jumped or its speed changes.
    pub async fn sleep_until(&self, t: Timestamp) {
        let mut epoch = self.epoch.subscribe();
        loop {
            let wait = self.real_until(t);
            if wait.is_zero() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = epoch.changed() => {}
            }
        }
    }

    /// Sleep for a simulated duration.
    pub async fn sleep(&self, d: Duration) {
        let t = self.now() + d;
        self.sleep_until(t).await
    }

    /// A receiver that changes whenever the clock is jumped or re-speeded.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }
}

/// RFC 3339 with second precision, as Kubernetes writes `metav1.Time`.
pub fn fmt_time(t: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t).unwrap_or_else(|_| t.to_string())
}

/// RFC 3339 with microseconds, as Kubernetes writes `metav1.MicroTime`.
pub fn fmt_micro_time(t: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S.%6fZ", t).unwrap_or_else(|_| t.to_string())
}

/// Parse a `metav1.Time` or `MicroTime`.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_and_speed_keep_time_monotonic() {
        let c = Clock::new(100.0);
        let a = c.now();
        c.advance(Duration::from_secs(60));
        let b = c.now();
        assert!(b.duration_since(a).as_secs_f64() >= 60.0);
        c.set_speed(1.0);
        let d = c.now();
        assert!(d >= b);
        assert_eq!(c.real_for(Duration::from_secs(2)), Duration::from_secs(2));
    }

    #[test]
    fn time_formats_match_kubernetes() {
        let t: Timestamp = "2026-11-25T10:00:01.5Z".parse().unwrap();
        assert_eq!(fmt_time(t), "2026-11-25T10:00:01Z");
        assert_eq!(fmt_micro_time(t), "2026-11-25T10:00:01.500000Z");
    }
}

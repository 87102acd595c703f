//! The deploy lock and cancellation inputs: `lock`, `lock-timeout`,
//! `on-cancel`, and the identity the lock and the in-progress marker carry.

use std::time::Duration;

use super::{InputError, MAX_DURATION};

/// What the first SIGTERM/SIGINT does (`on-cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCancel {
    /// Restore the previous template, exit 1 (3 when not confirmed).
    #[default]
    Rollback,
    /// Leave the change in place.
    Leave,
}

impl OnCancel {
    pub fn parse(v: &str) -> Result<OnCancel, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "rollback" => Ok(OnCancel::Rollback),
            "leave" => Ok(OnCancel::Leave),
            other => Err(format!("\"{other}\" must be rollback or leave")),
        }
    }
}

/// The deploy lock and what a cancel does.
#[derive(Debug, Clone)]
pub struct Reliability {
    /// Take the per-workload deploy lock.
    pub lock: bool,
    /// How long to wait for another run's lock.
    pub lock_timeout: Duration,
    pub on_cancel: OnCancel,
    /// Who holds the lock and marks the rollout in progress (the CI run, else host + pid).
    pub identity: String,
}

/// The default `lock-timeout`.
const LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// `lock`, `lock-timeout` and `on-cancel` as given (trimmed, empty = unset).
pub(super) fn reliability(
    lock: Option<&str>,
    lock_timeout: Option<&str>,
    on_cancel: Option<&str>,
    identity: String,
) -> Result<Reliability, InputError> {
    // Problems here are already one short line: not quoted again.
    let bad = |input: &'static str, problem: String| InputError { input, problem };
    let lock = match lock.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true" | "yes" | "1" | "on") => true,
        Some("false" | "no" | "0" | "off") => false,
        Some(v) => {
            return Err(bad(
                "lock",
                format!("\"{v}\" is not a boolean (true or false)"),
            ));
        }
    };
    let lock_timeout = match lock_timeout {
        None => LOCK_TIMEOUT,
        Some(v) => {
            let d = humantime::parse_duration(v).map_err(|_| {
                bad(
                    "lock-timeout",
                    format!(
                        "\"{}\" is not a duration (e.g. 90s, 5m, 1h30m)",
                        crate::text::quote(v, 80)
                    ),
                )
            })?;
            if d > MAX_DURATION {
                return Err(bad(
                    "lock-timeout",
                    format!("\"{v}\" is longer than the maximum of 24h"),
                ));
            }
            d
        }
    };
    let on_cancel = match on_cancel {
        None => OnCancel::Rollback,
        Some(v) => OnCancel::parse(v).map_err(|p| bad("on-cancel", p))?,
    };
    Ok(Reliability {
        lock,
        lock_timeout,
        on_cancel,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let r = reliability(None, None, None, "me".into()).unwrap();
        assert!(r.lock);
        assert_eq!(r.lock_timeout, LOCK_TIMEOUT);
        assert_eq!(r.on_cancel, OnCancel::Rollback);
        let r = reliability(Some("off"), Some("2m"), Some("Leave"), "me".into()).unwrap();
        assert!(!r.lock);
        assert_eq!(r.lock_timeout, Duration::from_secs(120));
        assert_eq!(r.on_cancel, OnCancel::Leave);
        assert_eq!(
            reliability(None, Some("25h"), None, String::new())
                .unwrap_err()
                .to_string(),
            "invalid input \"lock-timeout\": \"25h\" is longer than the maximum of 24h"
        );
        assert_eq!(
            reliability(None, None, Some("x"), String::new())
                .unwrap_err()
                .input,
            "on-cancel"
        );
        assert!(OnCancel::parse("x").is_err());
    }
}

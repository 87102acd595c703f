//! The gate's inputs → validated [`Settings`] (or none when no gate is set).

use std::time::Duration;

use super::condition::Condition;

/// A bad gate input: the input's name and the one-line problem (config
/// turns it into its input error, exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub input: &'static str,
    pub problem: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid input \"{}\": {}", self.input, self.problem)
    }
}

/// The gate's inputs as given (empty values already dropped).
#[derive(Debug, Default, Clone, Copy)]
pub struct Inputs<'a> {
    pub url: Option<&'a str>,
    pub token: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub query: Option<&'a str>,
    pub condition: Option<&'a str>,
    pub interval: Option<&'a str>,
    pub failure_limit: Option<&'a str>,
    /// The gate has somewhere to run: a bake (or a canary hold).
    pub has_hold: bool,
}

/// How to authenticate to the Prometheus API.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Bearer(String),
    Basic {
        username: String,
        password: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(<set>)",
            Auth::Basic { .. } => "Basic(<set>)",
        })
    }
}

/// A validated gate.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The API's base URL (`…/api/v1/query` is added).
    pub url: String,
    pub auth: Auth,
    /// The query with its `{{ … }}` placeholders.
    pub query: String,
    pub condition: Condition,
    pub interval: Duration,
    pub failure_limit: u32,
}

fn bad(input: &'static str, problem: impl Into<String>) -> InputError {
    InputError {
        input,
        problem: problem.into(),
    }
}

/// One token, no whitespace or control characters (never quoted).
fn check_secret(input: &'static str, value: Option<&str>) -> Result<(), InputError> {
    match value {
        Some(v) if v.chars().any(|c| c.is_control() || c.is_whitespace()) => Err(bad(
            input,
            "contains whitespace or a control character (a line break?): give the secret as one line",
        )),
        _ => Ok(()),
    }
}

/// The gate's settings: None when neither `prometheus-url` nor
/// `analysis-query` is given (and no other gate input is either).
pub fn from_inputs(i: &Inputs<'_>) -> Result<Option<Settings>, InputError> {
    check_secret("prometheus-token", i.token)?;
    check_secret("prometheus-password", i.password)?;
    let (url, query) = match (i.url, i.query) {
        (Some(u), Some(q)) => (u, q),
        (Some(_), None) => {
            return Err(bad(
                "analysis-query",
                "is required with prometheus-url (the PromQL query the gate judges)",
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "prometheus-url",
                "is required with analysis-query (the Prometheus API to ask, e.g. http://prometheus:9090)",
            ));
        }
        (None, None) => {
            let given = [
                ("prometheus-token", i.token),
                ("prometheus-username", i.username),
                ("prometheus-password", i.password),
                ("analysis-condition", i.condition),
                ("analysis-interval", i.interval),
                ("analysis-failure-limit", i.failure_limit),
            ];
            if let Some((name, _)) = given.iter().find(|(_, v)| v.is_some()) {
                return Err(bad(
                    name,
                    "is part of the metric gate: it needs prometheus-url and analysis-query",
                ));
            }
            return Ok(None);
        }
    };
    match reqwest::Url::parse(url) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            if !u.username().is_empty() || u.password().is_some() || u.query().is_some() {
                return Err(bad(
                    "prometheus-url",
                    "must not carry credentials or a query string: use prometheus-token, or prometheus-username and prometheus-password",
                ));
            }
        }
        _ => {
            return Err(bad(
                "prometheus-url",
                format!(
                    "\"{}\" is not an http:// or https:// URL",
                    crate::text::quote(url, 200)
                ),
            ));
        }
    }
    if query.trim().is_empty() || query.len() > 10_000 {
        return Err(bad(
            "analysis-query",
            "must be a PromQL query of at most 10000 characters",
        ));
    }
    super::template::check(query).map_err(|p| bad("analysis-query", p))?;
    let condition = match i.condition {
        None => {
            return Err(bad(
                "analysis-condition",
                "is required with analysis-query (what a passing value satisfies, e.g. \"< 0.01\")",
            ));
        }
        Some(c) => Condition::parse(c).map_err(|p| bad("analysis-condition", p))?,
    };
    let interval_text = i.interval.unwrap_or("30s");
    let interval = humantime::parse_duration(interval_text)
        .ok()
        .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(3600))
        .ok_or_else(|| {
            bad(
                "analysis-interval",
                format!(
                    "\"{}\" is not a duration between 1s and 1h (e.g. 30s)",
                    crate::text::quote(interval_text, 40)
                ),
            )
        })?;
    let failure_limit = match i.failure_limit {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                bad(
                    "analysis-failure-limit",
                    format!(
                        "\"{}\" is not a whole number from 1 to 1000",
                        crate::text::quote(v, 40)
                    ),
                )
            })?,
    };
    let auth = match (i.token, i.username, i.password) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad(
                "prometheus-token",
                "give prometheus-token (bearer) or prometheus-username and prometheus-password (basic), not both",
            ));
        }
        (Some(t), None, None) => Auth::Bearer(t.to_string()),
        (None, Some(u), p) => {
            if u.chars().any(|c| c.is_control() || c == ':') {
                return Err(bad(
                    "prometheus-username",
                    "must be one line without ':' (basic auth)",
                ));
            }
            Auth::Basic {
                username: u.to_string(),
                password: p.map(str::to_string),
            }
        }
        (None, None, Some(_)) => {
            return Err(bad("prometheus-password", "needs prometheus-username"));
        }
        (None, None, None) => Auth::None,
    };
    if !i.has_hold {
        return Err(bad(
            "analysis-query",
            "the metric gate needs somewhere to run: set bake (e.g. bake: 2m), during which it is evaluated every analysis-interval",
        ));
    }
    Ok(Some(Settings {
        url: url.trim_end_matches('/').to_string(),
        auth,
        query: query.to_string(),
        condition,
        interval,
        failure_limit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Inputs<'static> {
        Inputs {
            url: Some("http://127.0.0.1:9090"),
            query: Some("sum(up)"),
            condition: Some("> 0"),
            has_hold: true,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_auth() {
        let s = from_inputs(&gate()).unwrap().unwrap();
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.failure_limit, 1);
        assert!(matches!(s.auth, Auth::None));
        let s = from_inputs(&Inputs {
            token: Some("t0ken"),
            ..gate()
        })
        .unwrap()
        .unwrap();
        assert!(matches!(s.auth, Auth::Bearer(_)));
        assert!(!format!("{s:?}").contains("t0ken"));
        assert!(from_inputs(&Inputs::default()).unwrap().is_none());
    }

    #[test]
    fn each_mistake_names_its_input() {
        let cases: Vec<(Inputs<'static>, &str)> = vec![
            (
                Inputs {
                    query: None,
                    ..gate()
                },
                "analysis-query",
            ),
            (
                Inputs {
                    url: None,
                    ..gate()
                },
                "prometheus-url",
            ),
            (
                Inputs {
                    condition: None,
                    ..gate()
                },
                "analysis-condition",
            ),
            (
                Inputs {
                    condition: Some("about 1"),
                    ..gate()
                },
                "analysis-condition",
            ),
            (
                Inputs {
                    interval: Some("0s"),
                    ..gate()
                },
                "analysis-interval",
            ),
            (
                Inputs {
                    failure_limit: Some("0"),
                    ..gate()
                },
                "analysis-failure-limit",
            ),
            (
                Inputs {
                    url: Some("ftp://x"),
                    ..gate()
                },
                "prometheus-url",
            ),
            (
                Inputs {
                    url: Some("http://u:p@x"),
                    ..gate()
                },
                "prometheus-url",
            ),
            (
                Inputs {
                    token: Some("a"),
                    username: Some("b"),
                    ..gate()
                },
                "prometheus-token",
            ),
            (
                Inputs {
                    password: Some("p"),
                    ..gate()
                },
                "prometheus-password",
            ),
            (
                Inputs {
                    query: Some("up{a=\"{{ nope }}\"}"),
                    ..gate()
                },
                "analysis-query",
            ),
            (
                Inputs {
                    has_hold: false,
                    ..gate()
                },
                "analysis-query",
            ),
            (
                Inputs {
                    url: None,
                    query: None,
                    token: Some("x"),
                    ..gate()
                },
                "prometheus-token",
            ),
        ];
        for (i, input) in cases {
            let e = from_inputs(&i).unwrap_err();
            assert_eq!(e.input, input, "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}

//! `analysis-condition`: a comparison the query's value must satisfy
//! (`< 0.01`, `<= 5`, `> 0.99`, `>= 1`, `== 0`, `!= 0`).

use std::fmt;

use serde::Serialize;

/// The comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// What a passing value satisfies: `value OP threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Condition {
    pub op: Op,
    pub threshold: f64,
}

impl Condition {
    /// `< 0.01` and the like; anything else is a one-line problem.
    pub fn parse(s: &str) -> Result<Condition, String> {
        let t = s.trim();
        // Two-character operators first, so `<=` is not read as `<` `=5`.
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let problem = || {
            format!(
                "\"{}\" is not a condition: an operator (<, <=, >, >=, ==, !=) and a number, e.g. \"< 0.01\"",
                crate::text::quote(s, 80)
            )
        };
        let (op, rest) = ops
            .iter()
            .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r.trim())))
            .ok_or_else(problem)?;
        let threshold: f64 = rest.parse().map_err(|_| problem())?;
        if !threshold.is_finite() || rest.is_empty() {
            return Err(problem());
        }
        Ok(Condition { op, threshold })
    }

    /// Does `value` pass? (NaN never reaches here: it is "no data".)
    pub fn passes(&self, value: f64) -> bool {
        let t = self.threshold;
        match self.op {
            Op::Lt => value < t,
            Op::Le => value <= t,
            Op::Gt => value > t,
            Op::Ge => value >= t,
            Op::Eq => value == t,
            Op::Ne => value != t,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges() {
        let c = Condition::parse("< 0.01").unwrap();
        assert!(c.passes(0.001) && !c.passes(0.01) && !c.passes(0.2));
        assert_eq!(c.to_string(), "< 0.01");
        let c = Condition::parse("<=5").unwrap();
        assert!(c.passes(5.0) && !c.passes(5.1));
        let c = Condition::parse(" > 0.99 ").unwrap();
        assert!(c.passes(1.0) && !c.passes(0.99));
        assert!(Condition::parse(">= 1").unwrap().passes(1.0));
        assert!(Condition::parse("== 0").unwrap().passes(0.0));
        assert!(Condition::parse("!= 0").unwrap().passes(2.0));
        assert!(Condition::parse("< -1e3").unwrap().passes(-1001.0));
    }

    #[test]
    fn rejects_anything_else_in_one_line() {
        for bad in [
            "", "0.01", "< ", "<< 1", "=< 1", "< abc", "< NaN", "> inf", "< 1 2", "~ 1",
        ] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(
                !e.contains('\n') && e.contains("not a condition"),
                "{bad}: {e}"
            );
        }
        let e = Condition::parse("<\u{1b}[31m 1\n").unwrap_err();
        assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e}");
    }
}

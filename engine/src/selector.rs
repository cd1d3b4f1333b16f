//! Label selectors: `role=redis,env=prod` picks the agents whose labels hold
//! every pair. `key!=value` excludes, a bare `key` requires the label to exist.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector \"{input}\": {reason}")]
pub struct SelectorError {
    pub input: String,
    pub reason: String,
}

impl Selector {
    /// The selector that matches everything.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches<'a>(&self, labels: impl IntoIterator<Item = (&'a String, &'a String)> + Clone) -> bool {
        let get = |k: &str| labels.clone().into_iter().find(|(lk, _)| lk.as_str() == k).map(|(_, v)| v);
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => get(k).is_some_and(|x| x == v),
            Term::NotEq(k, v) => get(k).is_none_or(|x| x != v),
            Term::Exists(k) => get(k).is_some(),
        })
    }

    /// Convenience for a `BTreeMap` of labels.
    pub fn matches_map(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches(labels.iter())
    }
}

fn valid_label_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| SelectorError { input: input.to_string(), reason };
        let mut terms = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { terms });
        }
        for raw in input.split(',') {
            let part = raw.trim();
            let term = if let Some((k, v)) = part.split_once("!=") {
                Term::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Term::Eq(k.trim().to_string(), v.trim().to_string())
            } else {
                Term::Exists(part.to_string())
            };
            let (k, v) = match &term {
                Term::Eq(k, v) | Term::NotEq(k, v) => (k, Some(v)),
                Term::Exists(k) => (k, None),
            };
            if !valid_label_part(k) {
                return Err(err(format!(
                    "\"{part}\": label key must be 1-63 characters of letters, digits, '.', '-', '_', '/'"
                )));
            }
            if let Some(v) = v
                && !valid_label_part(v)
            {
                return Err(err(format!(
                    "\"{part}\": label value must be 1-63 characters of letters, digits, '.', '-', '_', '/'"
                )));
            }
            terms.push(term);
        }
        Ok(Self { terms })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match t {
                Term::Eq(k, v) => write!(f, "{k}={v}")?,
                Term::NotEq(k, v) => write!(f, "{k}!={v}")?,
                Term::Exists(k) => write!(f, "{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn matching_table() {
        let l = labels(&[("role", "redis"), ("env", "prod"), ("host", "cache-1")]);
        let table = [
            ("", true),
            ("role=redis", true),
            ("role=redis,env=prod", true),
            ("role=redis, env=staging", false),
            ("env!=staging", true),
            ("env!=prod", false),
            ("zone!=a", true),
            ("host", true),
            ("zone", false),
        ];
        for (sel, expect) in table {
            let s: Selector = sel.parse().unwrap();
            assert_eq!(s.matches_map(&l), expect, "{sel}");
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = "role=redis,=x".parse::<Selector>().unwrap_err();
        assert!(e.to_string().contains("\"=x\""), "{e}");
        let e = "role=re dis".parse::<Selector>().unwrap_err();
        assert!(e.to_string().contains("label value"), "{e}");
    }

    #[test]
    fn display_round_trips() {
        let s: Selector = "role=redis,env!=dev,host".parse().unwrap();
        assert_eq!(s.to_string().parse::<Selector>().unwrap(), s);
    }
}

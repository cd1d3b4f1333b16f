//! Plain data values: step outputs, parameter values, resolved arguments.
//! Serialises as the obvious JSON.

use crate::yaml::{Kind, Node};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Truthiness for `when:` conditions: null, false, 0, "" and "false"
    /// are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !(s.is_empty() || s == "false" || s == "0"),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// A field of a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The value of a YAML node, positions dropped.
    pub fn from_node(n: &Node) -> Value {
        match &n.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Int(*i),
            Kind::Float(f) => Value::Float(*f),
            Kind::Str(s) => Value::Str(s.clone()),
            Kind::Seq(items) => Value::List(items.iter().map(Value::from_node).collect()),
            Kind::Map(pairs) => Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = match &k.kind {
                            Kind::Str(s) => s.clone(),
                            Kind::Int(i) => i.to_string(),
                            Kind::Bool(b) => b.to_string(),
                            _ => String::new(),
                        };
                        (key, Value::from_node(v))
                    })
                    .collect(),
            ),
        }
    }

    /// A node at `pos` holding this value (for typed re-reading after
    /// templates are resolved).
    pub fn to_node(&self, pos: crate::yaml::Pos) -> Node {
        let kind = match self {
            Value::Null => Kind::Null,
            Value::Bool(b) => Kind::Bool(*b),
            Value::Int(i) => Kind::Int(*i),
            Value::Float(f) => Kind::Float(*f),
            Value::Str(s) => Kind::Str(s.clone()),
            Value::List(l) => Kind::Seq(l.iter().map(|v| v.to_node(pos)).collect()),
            Value::Map(m) => {
                Kind::Map(m.iter().map(|(k, v)| (Node { pos, kind: Kind::Str(k.clone()) }, v.to_node(pos))).collect())
            }
        };
        Node { pos, kind }
    }
}

impl fmt::Display for Value {
    /// Scalars as their text (what a template substitutes); lists and maps
    /// in a JSON-like form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

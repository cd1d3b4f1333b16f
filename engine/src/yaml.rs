//! YAML with positions. Runbooks are parsed into a [`Node`] tree that keeps
//! the line and column of every value, and typed structs are read from it
//! with serde ([`from_node`]) so that every error — unknown field, wrong
//! type, missing field — points at `line:col` in the file.
//!
//! Anchors and aliases are refused: a runbook should read top to bottom.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(pairs) => pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The mapping entry `key`, with the key's node (for its position).
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            Kind::Map(pairs) => pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// A short name of the kind, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// An error with the position it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub pos: Option<Pos>,
    pub message: String,
}

impl Error {
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        Self { pos: Some(pos), message: message.into() }
    }

    fn or_at(mut self, pos: Pos) -> Self {
        if self.pos.is_none() {
            self.pos = Some(pos);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self { pos: None, message: msg.to_string() }
    }
}

/// Parses one YAML document. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, Error> {
    let mut stack: Vec<(Node, Option<Node>)> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            Error::at(Pos { line: m.line(), col: m.col() + 1 }, e.info().to_string())
        })?;
        let pos = Pos { line: span.start.line(), col: span.start.col() + 1 };
        let complete = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Error::at(pos, "only one YAML document is allowed per file"));
                }
                continue;
            }
            Event::Alias(_) => return Err(Error::at(pos, "YAML aliases are not supported in runbooks")),
            Event::Scalar(value, style, anchor, _tag) => {
                if anchor != 0 {
                    return Err(Error::at(pos, "YAML anchors are not supported in runbooks"));
                }
                Node { pos, kind: scalar(&value, style) }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                return Err(Error::at(pos, "YAML anchors are not supported in runbooks"));
            }
            Event::SequenceStart(..) => {
                stack.push((Node { pos, kind: Kind::Seq(Vec::new()) }, None));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push((Node { pos, kind: Kind::Map(Vec::new()) }, None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some((node, _)) => node,
                None => continue,
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(complete),
            Some((Node { kind: Kind::Seq(items), .. }, _)) => items.push(complete),
            Some((Node { kind: Kind::Map(pairs), .. }, pending)) => match pending.take() {
                None => *pending = Some(complete),
                Some(key) => {
                    if !matches!(key.kind, Kind::Str(_) | Kind::Int(_) | Kind::Bool(_)) {
                        return Err(Error::at(key.pos, "mapping keys must be plain strings"));
                    }
                    if let Some((prev, _)) = pairs.iter().find(|(k, _)| k.kind == key.kind) {
                        return Err(Error::at(
                            key.pos,
                            format!("duplicate key {} (first at {})", key_text(&key), prev.pos),
                        ));
                    }
                    pairs.push((key, complete));
                }
            },
            Some(_) => {}
        }
    }
    Ok(root.unwrap_or(Node { pos: Pos { line: 1, col: 1 }, kind: Kind::Null }))
}

fn key_text(k: &Node) -> String {
    match &k.kind {
        Kind::Str(s) => format!("\"{s}\""),
        Kind::Int(i) => i.to_string(),
        Kind::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

/// YAML 1.2 core schema for plain scalars; quoted scalars are strings.
fn scalar(v: &str, style: ScalarStyle) -> Kind {
    if style != ScalarStyle::Plain {
        return Kind::Str(v.to_string());
    }
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return Kind::Int(i);
    }
    let looks_numeric = v.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if looks_numeric && let Ok(f) = v.parse::<f64>() {
        return Kind::Float(f);
    }
    Kind::Str(v.to_string())
}

/// Reads a `T` from `node`; errors carry the position of the value at fault.
///
/// With `templates_as_wildcards`, a string holding `{{ … }}` where a number
/// or boolean is expected is accepted (as 0 / false): its real value is only
/// known at run time, and is checked again then.
pub fn from_node<'de, T: serde::Deserialize<'de>>(node: &'de Node, templates_as_wildcards: bool) -> Result<T, Error> {
    T::deserialize(NodeDe { node, wild: templates_as_wildcards }).map_err(enrich)
}

/// Adds "did you mean" to serde's unknown-field and unknown-variant errors.
fn enrich(mut e: Error) -> Error {
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = e.message.strip_prefix(prefix)
            && let Some((name, expected)) = rest.split_once("`, expected ")
        {
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            if let Some(best) = crate::hint::closest(name, candidates.iter().copied()) {
                e.message = format!(
                    "{prefix}{name}` (did you mean `{best}`?); expected {}",
                    expected.trim_start_matches("one of ")
                );
            }
        }
    }
    e
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    wild: bool,
}

impl NodeDe<'_> {
    fn is_template(&self) -> bool {
        self.wild && matches!(&self.node.kind, Kind::Str(s) if s.contains("{{"))
    }
}

macro_rules! wildcard_number {
    ($($method:ident => $visit:ident($zero:expr)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if self.is_template() {
                return visitor.$visit($zero).map_err(|e: Error| e.or_at(self.node.pos));
            }
            self.deserialize_any(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let pos = self.node.pos;
        let r = match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => visitor.visit_i64(*i),
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_borrowed_str(s),
            Kind::Seq(items) => visitor.visit_seq(Seq { iter: items.iter(), wild: self.wild }),
            Kind::Map(pairs) => visitor.visit_map(Map { iter: pairs.iter(), value: None, wild: self.wild }),
        };
        r.map_err(|e: Error| e.or_at(pos))
    }

    wildcard_number! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0), deserialize_i16 => visit_i64(0), deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0), deserialize_u8 => visit_u64(0), deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0), deserialize_u64 => visit_u64(0), deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Numbers and booleans are fine where a string is wanted (`port: 6379`
        // into a string field), as YAML users expect.
        let pos = self.node.pos;
        let r = match &self.node.kind {
            Kind::Int(i) => visitor.visit_string(i.to_string()),
            Kind::Float(f) => visitor.visit_string(f.to_string()),
            Kind::Bool(b) => visitor.visit_string(b.to_string()),
            _ => return self.deserialize_any(visitor),
        };
        r.map_err(|e: Error| e.or_at(pos))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e: Error| e.or_at(self.node.pos))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self).map_err(|e| e.or_at(self.node.pos))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let pos = self.node.pos;
        let r = match &self.node.kind {
            Kind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Kind::Map(pairs) if pairs.len() == 1 => {
                let (k, v) = &pairs[0];
                visitor.visit_enum(Enum { key: k, value: v, wild: self.wild })
            }
            _ => {
                Err(de::Error::custom(format!("expected a name or a one-key mapping, found {}", self.node.kind_name())))
            }
        };
        r.map_err(|e: Error| e.or_at(pos))
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'a> {
    iter: std::slice::Iter<'a, Node>,
    wild: bool,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some(node) => seed.deserialize(NodeDe { node, wild: self.wild }).map(Some).map_err(|e| e.or_at(node.pos)),
            None => Ok(None),
        }
    }
}

struct Map<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
    wild: bool,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(NodeDe { node: k, wild: false }).map(Some).map_err(|e| e.or_at(k.pos))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let node = self.value.take().ok_or_else(|| <Error as de::Error>::custom("value without key"))?;
        seed.deserialize(NodeDe { node, wild: self.wild }).map_err(|e| e.or_at(node.pos))
    }
}

struct Enum<'a> {
    key: &'a Node,
    value: &'a Node,
    wild: bool,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = NodeDe<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), Error> {
        let v = seed.deserialize(NodeDe { node: self.key, wild: false }).map_err(|e| e.or_at(self.key.pos))?;
        Ok((v, NodeDe { node: self.value, wild: self.wild }))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        url: String,
        #[serde(default)]
        expect_status: Option<u16>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[test]
    fn positions_of_values() {
        let n = parse("a: 1\nb:\n  - x\n  - 'y'\nc: {d: true}\n").unwrap();
        assert_eq!(n.get("a").unwrap().pos, Pos { line: 1, col: 4 });
        let Kind::Seq(items) = &n.get("b").unwrap().kind else { panic!() };
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert_eq!(items[1].kind, Kind::Str("y".into()));
        assert_eq!(n.get("c").unwrap().get("d").unwrap().kind, Kind::Bool(true));
    }

    #[test]
    fn typed_errors_point_at_the_value() {
        let table = [
            ("url: x\nexpect_status: two hundred\n", "2:16: invalid type: string \"two hundred\", expected u16"),
            ("url: x\nexpect_stauts: 200\n", "2:1: unknown field `expect_stauts` (did you mean `expect_status`?)"),
            ("expect_status: 200\n", "1:1: missing field `url`"),
            ("url: x\ntags: [a, [b]]\n", "2:11: invalid type: sequence, expected a string"),
        ];
        for (text, expect) in table {
            let n = parse(text).unwrap();
            let e = from_node::<Probe>(&n, false).unwrap_err().to_string();
            assert!(e.starts_with(expect), "expected {expect:?}, got {e:?}");
        }
    }

    #[test]
    fn templates_stand_in_for_numbers_only_when_asked() {
        let n = parse("url: x\nexpect_status: \"{{ params.code }}\"\n").unwrap();
        assert_eq!(from_node::<Probe>(&n, true).unwrap().expect_status, Some(0));
        assert!(from_node::<Probe>(&n, false).is_err());
    }

    #[test]
    fn syntax_errors_duplicates_and_anchors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.is_some(), "{e}");
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err().to_string();
        assert_eq!(e, "3:1: duplicate key \"a\" (first at 1:1)");
        let e = parse("a: &x 1\nb: *x\n").unwrap_err().to_string();
        assert!(e.contains("anchors"), "{e}");
    }
}

//! The Redis 7 AOF manifest (`appendonlydir/appendonly.aof.manifest`), read
//! with the rules Redis 7.0 applies when it loads it at start
//! (`aofLoadManifestFromFile`), so that what this parser refuses is what
//! would keep Redis from starting:
//!
//! ```text
//! file appendonly.aof.2.base.rdb seq 2 type b
//! file appendonly.aof.2.incr.aof seq 2 type i
//! ```
//!
//! One file a line, as `key value` pairs (`file`, `seq`, `type`; keys in any
//! case, others ignored; values may be quoted as `redis-cli` quotes them).
//! A line starting with `#` is a comment; every other line ends with a
//! newline, is not blank and names a file (not a path), a non-zero `seq`
//! and a type: `b` the base, `h` history (no longer loaded), `i` an incr
//! file, whose `seq` rise. An empty manifest is refused.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Redis reads a manifest line into a buffer this long.
const LINE_MAX: usize = 1024;

/// What a manifest line says a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The base (an RDB, or an AOF without preamble).
    Base,
    /// A file the last rewrite replaced: Redis no longer loads it.
    History,
    /// Commands since the base, loaded in `seq` order.
    Incr,
}

/// One file the manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// A name in the manifest's directory.
    pub name: OsString,
    pub seq: i64,
    pub kind: Kind,
}

impl Entry {
    /// Whether Redis loads it at start (the base and the incr files).
    pub fn loaded(&self) -> bool {
        self.kind != Kind::History
    }
}

/// Why Redis would not load a manifest. `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Problem {
    #[error("the manifest is empty")]
    Empty,
    #[error("line {line} is longer than {LINE_MAX} bytes")]
    TooLong { line: usize },
    #[error("line {line} has no newline at its end: the manifest was cut short")]
    Unterminated { line: usize },
    #[error("line {line} is blank")]
    Blank { line: usize },
    #[error("line {line} is not `file NAME seq N type b|h|i`: {text}")]
    Format { line: usize, text: String },
    #[error("line {line} names a path ({name}), not a file name")]
    Path { line: usize, name: String },
    #[error("line {line}: unknown file type \"{kind}\" (b, h or i)")]
    UnknownType { line: usize, kind: char },
    #[error("line {line}: a second base file ({name})")]
    SecondBase { line: usize, name: String },
    #[error("line {line}: incr file {name} has seq {seq}, not above the previous one's {previous}")]
    Sequence { line: usize, name: String, seq: i64, previous: i64 },
    #[error("it names no base or incr file: Redis would start EMPTY from it")]
    NoFiles,
}

/// Reads a manifest's bytes: the files it names, in order.
pub(super) fn parse(text: &[u8]) -> Result<Vec<Entry>, Problem> {
    if text.is_empty() {
        return Err(Problem::Empty);
    }
    let mut entries = Vec::new();
    let (mut has_base, mut previous_incr) = (false, 0i64);
    let mut rest = text;
    let mut line = 0;
    while !rest.is_empty() {
        line += 1;
        let (raw, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let raw = &rest[..i];
                rest = &rest[i + 1..];
                (raw, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        if raw.first() == Some(&b'#') {
            continue;
        }
        if raw.len() >= LINE_MAX {
            return Err(Problem::TooLong { line });
        }
        if !terminated {
            return Err(Problem::Unterminated { line });
        }
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(Problem::Blank { line });
        }
        let entry = entry(trimmed).map_err(|e| e.at(line, trimmed))?;
        match entry.kind {
            Kind::Base if has_base => {
                return Err(Problem::SecondBase { line, name: entry.name.to_string_lossy().into_owned() });
            }
            Kind::Base => has_base = true,
            Kind::Incr if entry.seq <= previous_incr => {
                let name = entry.name.to_string_lossy().into_owned();
                return Err(Problem::Sequence { line, name, seq: entry.seq, previous: previous_incr });
            }
            Kind::Incr => previous_incr = entry.seq,
            Kind::History => {}
        }
        entries.push(entry);
    }
    if !entries.iter().any(Entry::loaded) {
        return Err(Problem::NoFiles);
    }
    Ok(entries)
}

/// What is wrong with a line, before its number is known.
enum Bad {
    Format,
    Path(String),
    UnknownType(char),
}

impl Bad {
    fn at(self, line: usize, text: &[u8]) -> Problem {
        match self {
            Bad::Format => Problem::Format { line, text: String::from_utf8_lossy(text).into_owned() },
            Bad::Path(name) => Problem::Path { line, name },
            Bad::UnknownType(kind) => Problem::UnknownType { line, kind },
        }
    }
}

/// One trimmed, non-comment line: `key value` pairs, at least three.
fn entry(line: &[u8]) -> Result<Entry, Bad> {
    // Redis reads a line as a C string: a NUL cuts it short of its newline.
    if line.contains(&0) {
        return Err(Bad::Format);
    }
    let words = split_args(line).ok_or(Bad::Format)?;
    if words.len() < 6 || words.len() % 2 == 1 {
        return Err(Bad::Format);
    }
    let (mut name, mut seq, mut kind) = (None, 0i64, None);
    for pair in words.chunks(2) {
        let (key, value) = (&pair[0], &pair[1]);
        if key.eq_ignore_ascii_case(b"file") {
            if value.contains(&b'/') || value.contains(&b'\\') {
                return Err(Bad::Path(String::from_utf8_lossy(value).into_owned()));
            }
            name = Some(OsString::from_vec(value.clone()));
        } else if key.eq_ignore_ascii_case(b"seq") {
            seq = atoll(value);
        } else if key.eq_ignore_ascii_case(b"type") {
            kind = value.first().copied().filter(|&b| b != 0);
        }
    }
    let (Some(name), Some(kind)) = (name.filter(|n| !n.is_empty()), kind) else { return Err(Bad::Format) };
    if seq == 0 {
        return Err(Bad::Format);
    }
    let kind = match kind {
        b'b' => Kind::Base,
        b'h' => Kind::History,
        b'i' => Kind::Incr,
        other => return Err(Bad::UnknownType(char::from(other))),
    };
    Ok(Entry { name, seq, kind })
}

/// C's `atoll`: leading blanks, a sign and the digits that follow; 0 if none.
fn atoll(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for d in digits.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if negative { -n } else { n }
}

/// Redis's `sdssplitargs`: words split on blanks; `"…"` (with backslash
/// escapes: `\n`, `\xHH`…) and `'…'` (only `\'`) quote, from anywhere in a
/// word, and a closing quote must end it. `None` for unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Plain,
        Double,
        Single,
    }
    let ends_word = |b: Option<&u8>| b.is_none_or(|&b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'));
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if i == line.len() {
            return Some(words);
        }
        let (mut word, mut state) = (Vec::new(), In::Plain);
        loop {
            let b = line.get(i).copied();
            match (state, b) {
                (In::Plain, None) => break,
                (In::Plain, Some(_)) if ends_word(b.as_ref()) => break,
                (In::Double | In::Single, None) => return None,
                (In::Plain, Some(b'"')) => state = In::Double,
                (In::Plain, Some(b'\'')) => state = In::Single,
                (In::Double, Some(b'\\'))
                    if line.get(i + 1) == Some(&b'x')
                        && line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                        && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                {
                    let hex = |b: u8| char::from(b).to_digit(16).map_or(0, |d| d as u8);
                    word.push((hex(line[i + 2]) << 4) | hex(line[i + 3]));
                    i += 3;
                }
                (In::Double, Some(b'\\')) if i + 1 < line.len() => {
                    i += 1;
                    word.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                }
                (In::Single, Some(b'\\')) if line.get(i + 1) == Some(&b'\'') => {
                    word.push(b'\'');
                    i += 1;
                }
                (In::Double, Some(b'"')) | (In::Single, Some(b'\'')) => {
                    // A closing quote ends the word: a blank or the end must follow.
                    if !ends_word(line.get(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                }
                (_, Some(other)) => word.push(other),
            }
            i += 1;
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file the manifest names: name, seq, kind.
    type Named = (String, i64, Kind);

    fn names(text: &str) -> Result<Vec<Named>, String> {
        parse(text.as_bytes())
            .map(|v| v.into_iter().map(|e| (e.name.to_string_lossy().into_owned(), e.seq, e.kind)).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn manifests_redis_loads() {
        use Kind::{Base, History, Incr};
        // A manifest and the files read from it.
        type Row = (&'static str, &'static [(&'static str, i64, Kind)]);
        let table: [Row; 5] = [
            (
                "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n",
                &[("appendonly.aof.2.base.rdb", 2, Base), ("appendonly.aof.2.incr.aof", 2, Incr)],
            ),
            // Comments, any key case, other keys, quoting, blanks around, history files.
            (
                "# written by hand\nFILE \"a b.rdb\" SEQ 1 TYPE b future x\n  file 'c\\'d' seq 3 type h \r\n\
                 file \"i\\x41.aof\" seq 4 type i\nfile i2.aof seq 5 type incr\n",
                &[("a b.rdb", 1, Base), ("c'd", 3, History), ("iA.aof", 4, Incr), ("i2.aof", 5, Incr)],
            ),
            // Only incr files (no base yet), seq read as atoll does.
            ("file a.incr.aof seq 7x type i\n", &[("a.incr.aof", 7, Incr)]),
            // A comment line needs no newline.
            ("file b seq 1 type b\n# end", &[("b", 1, Base)]),
            ("file b seq -1 type b\n", &[("b", -1, Base)]),
        ];
        for (text, want) in table {
            let want: Vec<Named> = want.iter().map(|&(n, s, k)| (n.to_string(), s, k)).collect();
            assert_eq!(names(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn manifests_redis_refuses_name_the_line() {
        let long = format!("file {} seq 1 type b\n", "x".repeat(LINE_MAX));
        let table: [(&str, &str); 17] = [
            ("", "the manifest is empty"),
            ("# only a comment\n", "it names no base or incr file: Redis would start EMPTY from it"),
            ("file h seq 1 type h\n", "it names no base or incr file"),
            ("file b seq 1 type b", "line 1 has no newline at its end: the manifest was cut short"),
            ("file b seq 1 type b\n\nfile i seq 1 type i\n", "line 2 is blank"),
            (
                "file b seq 1 type b\nthis is not a manifest\n",
                "line 2 is not `file NAME seq N type b|h|i`: this is not a manifest",
            ),
            ("file b seq 1\n", "line 1 is not `file NAME seq N type b|h|i`"),
            ("file b seq 1 type b x\n", "line 1 is not"),
            ("file b seq 0 type b\n", "line 1 is not"),
            ("file b seq one type b\n", "line 1 is not"),
            ("name b seq 1 type b\n", "line 1 is not"),
            ("file \"b seq 1 type b\n", "line 1 is not"),
            ("file \"b\"c seq 1 type b\n", "line 1 is not"),
            ("file ../b seq 1 type b\n", "line 1 names a path (../b), not a file name"),
            ("file b seq 1 type x\n", "line 1: unknown file type \"x\" (b, h or i)"),
            ("file b seq 1 type b\nfile c seq 2 type b\n", "line 2: a second base file (c)"),
            (
                "file b seq 1 type b\nfile i3 seq 3 type i\nfile i2 seq 2 type i\n",
                "line 3: incr file i2 has seq 2, not above the previous one's 3",
            ),
        ];
        for (text, want) in table {
            let got = names(text).unwrap_err();
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
        assert_eq!(names(&long).unwrap_err(), "line 1 is longer than 1024 bytes");
        let binary = parse(b"\x00\xff\x13garbage\xc3\n").unwrap_err().to_string();
        assert!(binary.starts_with("line 1 is not"), "{binary}");
    }
}

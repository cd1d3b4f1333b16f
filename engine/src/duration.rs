//! Durations as people write them in runbooks and config: `250ms`, `30s`,
//! `5m`, `24h`, `1d`, and sums like `1h30m`.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad duration \"{input}\": {reason} (examples: 500ms, 30s, 5m, 1h30m, 1d)")]
pub struct DurationError {
    pub input: String,
    pub reason: String,
}

/// Parses `1h30m`, `250ms`, `24h`, `2d`. A bare number is refused: the unit
/// is never guessed.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason: &str| DurationError { input: input.to_string(), reason: reason.to_string() };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let n: u128 = rest[..digits].parse().map_err(|_| err("number too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        let ms: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err(&format!("unknown unit \"{unit}\""))),
        };
        total =
            total.checked_add(n.checked_mul(ms).ok_or_else(|| err("too large"))?).ok_or_else(|| err("too large"))?;
        rest = &rest[unit_len..];
    }
    let ms = u64::try_from(total).map_err(|_| err("too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Formats a duration the way [`parse`] reads it, dropping zero parts:
/// `1h30m`, `250ms`, `0s`.
pub fn format(d: Duration) -> String {
    Human(d).to_string()
}

/// Display wrapper for [`format`].
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// Serde support: `#[serde(with = "ripcord_engine::duration::serde_str")]`.
pub mod serde_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let table = [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("24h", 86_400_000),
            ("1d", 86_400_000),
            (" 2m ", 120_000),
            ("5 m", 300_000),
        ];
        for (input, ms) in table {
            assert_eq!(parse(input), Ok(Duration::from_millis(ms)), "{input}");
        }
    }

    #[test]
    fn errors_say_why() {
        let table = [
            ("", "empty"),
            ("10", "missing unit"),
            ("5min", "unknown unit \"min\""),
            ("m5", "expected a number"),
            ("99999999999999999999999d", "too large"),
        ];
        for (input, why) in table {
            let e = parse(input).unwrap_err();
            assert!(e.to_string().contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 1, 999, 1_000, 61_000, 5_400_000, 90_061_001] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }
}

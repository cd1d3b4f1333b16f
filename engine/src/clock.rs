//! Time as data: unix milliseconds in, RFC 3339 text out, and back. No clock
//! is read here; callers pass `now` (the processes that read one get it from
//! `ripcord_pki::clock::now_ms`).
//!
//! The calendar is the `time` crate's, built without its `std` feature when
//! the engine is built on its own, so `OffsetDateTime::now_utc` does not
//! exist here.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The earliest and latest times RFC 3339 can write (four-digit years).
const EARLIEST: Millis = -62_167_219_200_000; // 0000-01-01T00:00:00Z
const LATEST: Millis = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// `2026-11-27T09:00:00Z`, in UTC (milliseconds shown only when not zero).
/// Times outside the years 0000–9999 are shown as the nearest of those.
pub fn rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms.clamp(EARLIEST, LATEST)) * 1_000_000;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s, milli) = (t.hour(), t.minute(), t.second(), t.millisecond());
    if milli == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

/// Parses an RFC 3339 time, `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`, into unix
/// milliseconds (digits past the millisecond are dropped). Surrounding
/// whitespace is ignored.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_table() {
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (1_795_741_749_552, "2026-11-27T01:09:09.552Z"),
            (1_795_741_749_500, "2026-11-27T01:09:09.500Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (-86_400_000, "1969-12-31T00:00:00Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in table {
            assert_eq!(rfc3339(ms), text);
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(EARLIEST));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(LATEST));
    }

    #[test]
    fn parse_table() {
        let good = [
            ("2026-11-27T10:09:09.552+09:00", 1_795_741_749_552),
            ("2026-11-27t01:09:09.552z", 1_795_741_749_552),
            ("2026-11-27 01:09:09.5529Z", 1_795_741_749_552),
            (" 2026-11-27T01:09:09.552Z\n", 1_795_741_749_552),
            ("2026-11-26T23:09:09.552-02:00", 1_795_741_749_552),
        ];
        for (text, ms) in good {
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "yesterday",
            "",
            "2026-11-27T01:09:09",
            "2026-11-27T01:09:09+0900",
            "2026-11-27T01:09:09.Z",
            "2026-11-27T01:09:09Z trailing",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}

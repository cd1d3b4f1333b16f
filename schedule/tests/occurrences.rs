//! Occurrences against dates computed by hand (a calendar, not the code
//! under test), the grace window, and occurrence ids.

use ripcord_engine::clock::{parse_rfc3339, rfc3339};
use ripcord_schedule::{Drill, Drills, load, occurrence_id};

const SHIPPED: &str = include_str!("../../deploy/drills.yaml");

fn shipped() -> Drills {
    load(SHIPPED).unwrap_or_else(|d| panic!("deploy/drills.yaml: {d:?}"))
}

fn ms(t: &str) -> i64 {
    parse_rfc3339(t).unwrap_or_else(|| panic!("bad time {t}"))
}

/// One drill with `rrule` in `tz`.
fn drill(rrule: &str, tz: &str) -> Drill {
    let text = format!(
        "drills:\n  - name: d\n    runbook: redis-aof\n    environment: staging\n    owners: [ops]\n    schedule: {{rrule: \"{rrule}\", timezone: {tz}}}\n"
    );
    load(&text).unwrap_or_else(|d| panic!("{d:?}")).drills.remove(0)
}

/// (local, UTC) of the next `n` occurrences after `after`.
fn next(d: &Drill, after: &str, n: usize) -> Vec<(String, String)> {
    d.occurrences_after(ms(after), n).into_iter().map(|o| (o.local, rfc3339(o.at))).collect()
}

fn pairs(expect: &[(&str, &str)]) -> Vec<(String, String)> {
    expect.iter().map(|(l, u)| (l.to_string(), u.to_string())).collect()
}

#[test]
fn the_shipped_quarterly_plan_falls_on_first_wednesdays_at_nine_in_seoul() {
    // First Wednesdays, by hand: 2026-03-04, 2026-06-03, 2026-12-02,
    // 2027-03-03, 2027-06-02, 2027-12-01, 2028-03-01, 2029-03-07.
    // Seoul keeps +09:00 all year: 09:00 there is 00:00 UTC the same day.
    let plan = shipped();
    let names: Vec<&str> = plan.drills.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["q1-mongo-pitr", "q2-redis-aof", "q3-full-outage", "q4-dr-region"]);
    // (drill, after, how many, expected (local, UTC) pairs)
    type Case<'a> = (&'a str, &'a str, usize, &'a [(&'a str, &'a str)]);
    let table: &[Case] = &[
        ("q1-mongo-pitr", "2026-01-01T00:00:00Z", 1, &[("2026-03-04T09:00:00+09:00", "2026-03-04T00:00:00Z")]),
        ("q2-redis-aof", "2026-01-01T00:00:00Z", 1, &[("2026-06-03T09:00:00+09:00", "2026-06-03T00:00:00Z")]),
        ("q4-dr-region", "2026-01-01T00:00:00Z", 1, &[("2026-12-02T09:00:00+09:00", "2026-12-02T00:00:00Z")]),
        // A second before 09:00 KST on 2026-12-02: today's is still to come.
        ("q4-dr-region", "2026-12-01T23:59:59Z", 1, &[("2026-12-02T09:00:00+09:00", "2026-12-02T00:00:00Z")]),
        // At 09:00 KST exactly it is no longer "after": next year's.
        ("q4-dr-region", "2026-12-02T00:00:00Z", 1, &[("2027-12-01T09:00:00+09:00", "2027-12-01T00:00:00Z")]),
        ("q2-redis-aof", "2026-12-02T00:00:00Z", 1, &[("2027-06-02T09:00:00+09:00", "2027-06-02T00:00:00Z")]),
        (
            "q1-mongo-pitr",
            "2026-12-02T00:00:00Z",
            3,
            &[
                ("2027-03-03T09:00:00+09:00", "2027-03-03T00:00:00Z"),
                ("2028-03-01T09:00:00+09:00", "2028-03-01T00:00:00Z"),
                ("2029-03-07T09:00:00+09:00", "2029-03-07T00:00:00Z"),
            ],
        ),
    ];
    for (name, after, n, expect) in table {
        let d = plan.get(name).unwrap();
        assert_eq!(next(d, after, *n), pairs(expect), "{name} after {after}");
    }
    // Q3, the full outage.
    let q3 = plan.get("q3-full-outage").unwrap();
    assert_eq!(
        next(q3, "2026-01-01T00:00:00Z", 2),
        pairs(&[
            ("2026-09-02T09:00:00+09:00", "2026-09-02T00:00:00Z"),
            ("2027-09-01T09:00:00+09:00", "2027-09-01T00:00:00Z"),
        ])
    );
}

#[test]
fn daylight_saving_moves_the_utc_time_not_the_local_time() {
    // New York: EST (-05:00) until 2026-03-08, EDT (-04:00) until 2026-11-01.
    let d = drill("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "America/New_York");
    let table: &[(&str, &[(&str, &str)])] = &[
        (
            "2026-03-01T00:00:00Z",
            &[
                ("2026-03-02T09:00:00-05:00", "2026-03-02T14:00:00Z"),
                ("2026-03-09T09:00:00-04:00", "2026-03-09T13:00:00Z"),
            ],
        ),
        (
            "2026-10-20T00:00:00Z",
            &[
                ("2026-10-26T09:00:00-04:00", "2026-10-26T13:00:00Z"),
                ("2026-11-02T09:00:00-05:00", "2026-11-02T14:00:00Z"),
            ],
        ),
    ];
    for (after, expect) in table {
        assert_eq!(next(&d, after, expect.len()), pairs(expect), "after {after}");
    }
}

#[test]
fn the_last_day_of_the_month_follows_the_calendar() {
    let d = drill("FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18;BYMINUTE=0;BYSECOND=0", "UTC");
    assert_eq!(
        next(&d, "2027-12-15T00:00:00Z", 5),
        pairs(&[
            ("2027-12-31T18:00:00+00:00", "2027-12-31T18:00:00Z"),
            ("2028-01-31T18:00:00+00:00", "2028-01-31T18:00:00Z"),
            ("2028-02-29T18:00:00+00:00", "2028-02-29T18:00:00Z"), // a leap year
            ("2028-03-31T18:00:00+00:00", "2028-03-31T18:00:00Z"),
            ("2028-04-30T18:00:00+00:00", "2028-04-30T18:00:00Z"),
        ])
    );
}

#[test]
fn an_occurrence_is_due_until_its_grace_runs_out() {
    let plan = shipped();
    let q4 = plan.get("q4-dr-region").unwrap();
    assert_eq!(q4.grace, std::time::Duration::from_secs(2 * 3600));
    let table = [
        ("2026-11-25T00:00:00Z", "2026-12-02T00:00:00Z"), // a week before: the next to wait for
        ("2026-12-02T00:00:00Z", "2026-12-02T00:00:00Z"), // on time
        ("2026-12-02T01:59:59Z", "2026-12-02T00:00:00Z"), // late, within grace
        ("2026-12-02T02:00:00Z", "2026-12-02T00:00:00Z"), // the last moment of grace
        ("2026-12-02T02:00:00.001Z", "2027-12-01T00:00:00Z"), // missed: the next one
    ];
    for (now, due) in table {
        let got = q4.next_due(ms(now)).map(|o| rfc3339(o.at));
        assert_eq!(got.as_deref(), Some(due), "now {now}");
    }
    // A rule that has ended has nothing due.
    let once = drill("FREQ=DAILY;COUNT=1;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "UTC");
    assert_eq!(
        once.next_due(ms("2026-01-01T08:00:00Z")).map(|o| rfc3339(o.at)).as_deref(),
        Some("2026-01-01T09:00:00Z")
    );
    assert_eq!(once.next_due(ms("2026-01-02T00:00:00Z")), None);
}

#[test]
fn occurrence_ids_are_deterministic() {
    let plan = shipped();
    let (q1, q4) = (plan.get("q1-mongo-pitr").unwrap(), plan.get("q4-dr-region").unwrap());
    let after = ms("2026-01-01T00:00:00Z");
    let q4_2026 = &q4.occurrences_after(after, 1)[0];
    let id = occurrence_id(q4, q4_2026);
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{id}");
    // Same drill, same occurrence, computed again from a reloaded file: same id.
    let again = shipped();
    let q4_again = again.get("q4-dr-region").unwrap();
    assert_eq!(occurrence_id(q4_again, &q4_again.next_due(ms("2026-12-02T01:00:00Z")).unwrap()), id);
    // Another occurrence, or another drill at the same instant: another id.
    let q4_2027 = &q4.occurrences_after(q4_2026.at, 1)[0];
    assert_ne!(occurrence_id(q4, q4_2027), id);
    assert_ne!(occurrence_id(q1, q4_2026), id);
    // Pinned: a changed id would start an occurrence a second time after an
    // upgrade, so the derivation must never change.
    assert_eq!(id, PINNED_Q4_2026);
}

/// SHA-256 of "ripcord drill occurrence\0q4-dr-region\0" and 1796169600000 as 8 big-endian bytes, by Python's hashlib.
const PINNED_Q4_2026: &str = "dd8df8cc5d8445b2";

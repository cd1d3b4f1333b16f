//! The loader: every problem of a drills file at once, each with its
//! line:col and, for typos, a "did you mean".

use ripcord_schedule::{RunbookRef, load};

/// A valid drill; `{}` replaced by each case's edits.
const GOOD: &str = "\
drills:
  - name: a
    runbook: redis-aof
    environment: staging
    params: {instance: cache}
    owners: [Backend]
    schedule:
      rrule: FREQ=YEARLY;BYMONTH=6;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0
      timezone: Asia/Seoul
";

fn diags(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_good_file_loads_with_defaults() {
    let drills = load(GOOD).unwrap();
    let d = &drills.drills[0];
    assert_eq!(d.runbook, RunbookRef::Builtin("redis-aof".into()));
    assert_eq!(d.remind_before, std::time::Duration::from_secs(7 * 86_400));
    assert_eq!(d.grace, std::time::Duration::from_secs(2 * 3600));
    assert_eq!(d.schedule.timezone.name(), "Asia/Seoul");
    let file = load(&GOOD.replace("runbook: redis-aof", "runbook: ./my-drill.yaml")).unwrap();
    assert!(
        matches!(&file.drills[0].runbook, RunbookRef::File { path, pos } if path == "./my-drill.yaml" && pos.line == 3)
    );
}

#[test]
fn every_problem_has_its_position() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "rrule: FREQ=YEARLY;BYMONTH=6;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
            "rrule: FREQ=YEARLI;BYMONTH=6",
            &["8:14: bad rrule \"FREQ=YEARLI;BYMONTH=6\": "],
        ),
        (
            "rrule: FREQ=YEARLY;BYMONTH=6;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
            "rrule: FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            &["8:14: rrule \"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\" never occurs after its start"],
        ),
        (
            "timezone: Asia/Seoul",
            "timezone: Asia/Seol",
            &["9:17: unknown time zone \"Asia/Seol\" (did you mean \"Asia/Seoul\"?); use an IANA name"],
        ),
        (
            "runbook: redis-aof",
            "runbook: redis-aff",
            &["3:14: unknown runbook \"redis-aff\" (did you mean \"redis-aof\"?); built-in: "],
        ),
        (
            "params: {instance: cache}",
            "params: {instanse: cache}",
            &["5:14: runbook redis-aof has no param \"instanse\" (did you mean \"instance\"?)"],
        ),
        ("owners: [Backend]", "owner: [Backend]", &["6:5: unknown field `owner` (did you mean `owners`?)"]),
        ("owners: [Backend]", "owners: []", &["6:13: a drill needs at least one owner"]),
        ("    owners: [Backend]\n", "    owners: [Backend]\n    grace: soon\n", &["7:12: bad duration \"soon\""]),
        ("timezone: Asia/Seoul", "timezone: Asia/Seoul\n      start: 2026-01-01", &["10:14: bad start \"2026-01-01\""]),
        ("drills:", "drill:", &["1:1: a drills file is a mapping with a list under drills:"]),
    ];
    for (from, to, expect) in table {
        assert!(GOOD.contains(from), "{from}");
        let got = diags(&GOOD.replacen(from, to, 1));
        assert_eq!(got.len(), expect.len(), "{to}: {got:?}");
        for (g, e) in got.iter().zip(expect.iter()) {
            assert!(g.starts_with(e), "{to}:\n got {g}\nwant {e}");
        }
    }
}

#[test]
fn problems_in_several_drills_come_together_in_file_order() {
    let second = GOOD.replacen("drills:\n", "", 1).replace("timezone: Asia/Seoul", "timezone: Mars/Olympus");
    let third = GOOD.replacen("drills:\n", "", 1).replace("name: a", "name: b").replace("redis-aof", "redis-aox");
    let text = format!("{GOOD}{second}{third}");
    let got = diags(&text);
    let expect = [
        "10:11: drill \"a\" is declared twice (first at 2:11); names must be unique",
        "17:17: unknown time zone \"Mars/Olympus\"",
        "19:14: unknown runbook \"redis-aox\" (did you mean \"redis-aof\"?)",
    ];
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for (g, e) in got.iter().zip(expect) {
        assert!(g.starts_with(e), "got {g}\nwant {e}");
    }
}

//! `ripcord drills check` and `next` on the shipped plan and on a broken file.

use ripcord_tests::text;
use std::fs;
use std::path::Path;

fn shipped() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/drills.yaml").display().to_string()
}

#[test]
fn drills_check_passes_the_shipped_plan_and_points_at_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = ripcord_tests::bare_cli(dir.path()).args(["drills", "check", &shipped()]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ok (4 drills: q1-mongo-pitr, q2-redis-aof, q3-full-outage, q4-dr-region)"), "{stdout}");

    let bad = dir.path().join("drills.yaml");
    fs::write(
        &bad,
        "drills:\n  - name: q1\n    runbook: mongo-pitrr\n    environment: staging\n    owners: [DevOps]\n    schedule:\n      rrule: FREQ=YEARLY;BYMONTH=3;BYDAY=1WE;BYHOUR=9\n      timezone: Asia/Seol\n  - name: q2\n    runbook: ./missing.yaml\n    environment: staging\n    owners: [Backend]\n    schedule: {rrule: \"FREQ=YEARLY;BYMONTH=6;BYDAY=1WE;BYHOUR=9\", timezone: Asia/Seoul}\n",
    )
    .unwrap();
    let out = ripcord_tests::bare_cli(dir.path()).args(["drills", "check", bad.to_str().unwrap()]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let b = bad.display();
    let lines: Vec<&str> = stderr.lines().collect();
    let expect = [
        format!("{b}:3:14: unknown runbook \"mongo-pitrr\" (did you mean \"mongo-pitr\"?)"),
        format!("{b}:8:17: unknown time zone \"Asia/Seol\" (did you mean \"Asia/Seoul\"?)"),
    ];
    assert_eq!(lines.len(), expect.len(), "{stderr}");
    for (l, e) in lines.iter().zip(&expect) {
        assert!(l.starts_with(e.as_str()), "got {l}\nwant {e}");
    }

    // Once the file loads, a runbook file it names must exist.
    fs::write(
        &bad,
        fs::read_to_string(&bad).unwrap().replace("mongo-pitrr", "mongo-pitr").replace("Asia/Seol", "Asia/Seoul"),
    )
    .unwrap();
    let out = ripcord_tests::bare_cli(dir.path()).args(["drills", "check", bad.to_str().unwrap()]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("{b}:10:14: cannot read runbook ")), "{stderr}");
}

#[test]
fn drills_next_lists_each_drill_in_its_zone_and_in_utc() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        ripcord_tests::bare_cli(dir.path()).args(["drills", "next", &shipped(), "--count", "2"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "{stdout}");
    for row in &rows {
        // 09:00 in Seoul is midnight UTC the same day.
        assert!(row.contains("T09:00:00+09:00 Asia/Seoul"), "{row}");
        let local_day = row.split_whitespace().find(|c| c.ends_with("+09:00")).unwrap()[..10].to_string();
        assert!(row.contains(&format!("{local_day}T00:00:00Z")), "{row}");
    }
}

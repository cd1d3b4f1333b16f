//! Drill schedules at scale: a file of N drills (1,000 by default,
//! `RIPCORD_BENCH_SCHEDULES`) loaded, then each drill's next due occurrence
//! computed. Prints numbers; asserts nothing about speed.

use ripcord_engine::clock::parse_rfc3339;
use std::time::Instant;

fn main() {
    let n: usize = std::env::var("RIPCORD_BENCH_SCHEDULES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    // A mix of the shapes drills use: quarterly first weekdays in several
    // zones, weekly rules across daylight saving, month ends.
    let zones = ["Asia/Seoul", "America/New_York", "Europe/Berlin", "UTC", "Australia/Sydney"];
    let rules = [
        "FREQ=YEARLY;BYMONTH=3,6,9,12;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=30;BYSECOND=0",
        "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18;BYMINUTE=0;BYSECOND=0",
        "FREQ=MONTHLY;BYDAY=2TU;BYHOUR=10;BYMINUTE=0;BYSECOND=0",
    ];
    let mut text = String::from("drills:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - name: drill-{i}\n    runbook: redis-aof\n    environment: staging\n    owners: [team-{}]\n    schedule:\n      rrule: \"{}\"\n      timezone: {}\n",
            i % 7,
            rules[i % rules.len()],
            zones[i % zones.len()],
        ));
    }
    let t = Instant::now();
    let drills = match ripcord_schedule::load(&text) {
        Ok(d) => d,
        Err(d) => panic!("bench file does not load: {:?}", d.first()),
    };
    let load = t.elapsed();

    let now = parse_rfc3339("2026-12-02T15:00:00Z").unwrap_or_default();
    let t = Instant::now();
    let mut due = 0;
    for d in &drills.drills {
        if d.next_due(now).is_some() {
            due += 1;
        }
    }
    let next = t.elapsed();
    // The scheduler's question after it wakes: which is the earliest?
    let t = Instant::now();
    let earliest = drills.drills.iter().filter_map(|d| d.next_due(now)).map(|o| o.at).min();
    let earliest_time = t.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("schedules: {n} ({} bytes of YAML)", text.len());
    println!("load + check:        {:>9.2} ms total, {:>7.2} µs per schedule", load.as_secs_f64() * 1e3, per(load));
    println!(
        "next due (each):     {:>9.2} ms total, {:>7.2} µs per schedule ({due} due)",
        next.as_secs_f64() * 1e3,
        per(next)
    );
    println!(
        "earliest of all:     {:>9.2} ms total (at {})",
        earliest_time.as_secs_f64() * 1e3,
        earliest.map(ripcord_engine::clock::rfc3339).unwrap_or_default()
    );
}

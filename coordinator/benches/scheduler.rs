//! Drill scheduler benchmark: prints numbers, asserts nothing about speed.
//!
//! 1,000 drills (a generated `drills.yaml`, rules and zones varied): the
//! time to load them, to compute the next due occurrence of every one, and
//! to list them through the scheduler's handle; then the process's CPU
//! while the scheduler task runs idle for a few seconds of real time (it
//! should sleep until the next occurrence or reminder: no polling).
//!
//! Run: `cargo bench -p ripcord-coordinator --bench scheduler` (or scripts/bench).

use ripcord_coordinator::integrations::BoxFuture;
use ripcord_coordinator::scheduler::{LaunchError, Launcher, OwnerNotice, Scheduler, Tell, TellError};
use ripcord_coordinator::store::Store;
use ripcord_schedule::Drill;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DRILLS: usize = 1_000;
const IDLE_SECONDS: u32 = 3;

fn drills_yaml(n: usize) -> String {
    let zones = ["UTC", "Asia/Seoul", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"];
    let days = ["MO", "TU", "WE", "TH", "FR"];
    let mut s = "drills:\n".to_string();
    for i in 0..n {
        let rule = match i % 4 {
            0 => format!(
                "FREQ=YEARLY;BYMONTH={};BYDAY=1{};BYHOUR={};BYMINUTE=0;BYSECOND=0",
                1 + i % 12,
                days[i % 5],
                i % 24
            ),
            1 => format!("FREQ=MONTHLY;BYDAY=2{};BYHOUR={};BYMINUTE=30;BYSECOND=0", days[i % 5], i % 24),
            2 => format!("FREQ=WEEKLY;BYDAY={};BYHOUR={};BYMINUTE=15;BYSECOND=0", days[i % 5], i % 24),
            _ => format!("FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR={};BYMINUTE=0;BYSECOND=0", i % 24),
        };
        s.push_str(&format!(
            "  - name: drill-{i:04}\n    runbook: drill.yaml\n    environment: staging\n    owners: [DevOps]\n    \
             schedule:\n      rrule: {rule}\n      timezone: {}\n    remind_before: 7d\n    grace: 2h\n",
            zones[i % zones.len()]
        ));
    }
    s
}

struct Count(AtomicUsize);

impl Launcher for Count {
    fn launch(&self, _drill: &Drill, _run_id: &str, _by: &str) -> BoxFuture<Result<(), LaunchError>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

impl Tell for Count {
    fn tell(&self, _notice: &OwnerNotice) -> BoxFuture<Result<(), TellError>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// CPU time of the whole process (every thread), in nanoseconds: the sum
/// of each thread's `schedstat` run time, or `stat`'s utime + stime in
/// clock ticks (100 a second) where schedstat is missing.
fn cpu_ns() -> u64 {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat"))
                && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found {
        return total;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10_000_000
}

fn main() {
    let text = drills_yaml(DRILLS);
    let t = Instant::now();
    let drills = ripcord_schedule::load(&text).unwrap_or_else(|e| panic!("generated drills.yaml: {e:?}"));
    println!("load {DRILLS} drills: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    let now = ripcord_pki::clock::now_ms();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let due = drills.drills.iter().filter_map(|d| d.next_due(now)).count();
        runs.push(t.elapsed());
        assert_eq!(due, DRILLS);
    }
    runs.sort();
    let median = runs[runs.len() / 2];
    println!(
        "next due occurrence of all {DRILLS}: {:.1} ms median of 5 ({:.1} µs a drill)",
        median.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e6 / DRILLS as f64
    );

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let launched = Arc::new(Count(AtomicUsize::new(0)));
        let told = Arc::new(Count(AtomicUsize::new(0)));
        let clock = Arc::new(ripcord_pki::clock::now_ms);
        let scheduler = Scheduler::new(drills, Store::memory(), launched.clone(), told.clone(), clock);
        let handle = scheduler.handle();
        let t = Instant::now();
        let listed = handle.list().iter().filter(|d| d.next.is_some()).count();
        println!("list {listed} drills with their next occurrence: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

        let cpu = cpu_ns();
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "baseline, the runtime alone: {:.2} ms CPU in {:.1} s",
            (cpu_ns() - cpu) as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cpu0 = cpu_ns();
        let t = Instant::now();
        let task = tokio::spawn(scheduler.run(async {
            let _ = stopped.await;
        }));
        // Its first wake looks at every drill; give it a moment, then measure.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let first = (cpu_ns() - cpu0) as f64 / 1e6;
        println!(
            "first wake over {DRILLS} drills (watch records, reminders due): {first:.1} ms CPU in {:.0} ms; {} reminders, {} starts",
            t.elapsed().as_secs_f64() * 1e3,
            told.0.load(Ordering::Relaxed),
            launched.0.load(Ordering::Relaxed)
        );
        let mut per_second = Vec::new();
        let mut total_ms = 0.0;
        let t = Instant::now();
        for _ in 0..IDLE_SECONDS {
            let cpu = cpu_ns();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ms = (cpu_ns() - cpu) as f64 / 1e6;
            total_ms += ms;
            per_second.push(format!("{ms:.2}"));
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "idle with the scheduler running: {total_ms:.2} ms CPU in {secs:.1} s = {:.3} ms CPU a second (each second: {})",
            total_ms / secs,
            per_second.join(", ")
        );
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    });
}

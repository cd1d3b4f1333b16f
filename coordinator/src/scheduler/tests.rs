//! The scheduler over the memory store, with a fake launcher and a fake
//! channel, in paused tokio time: the clock is T0 plus the paused time
//! elapsed, so sleeping in the test moves the scheduler's world.

use super::*;
use crate::integrations::http::WebhookError;
use crate::store::{Delivery, OccurrenceRecord, OccurrenceState, Origin};
use ripcord_schedule::{Occurrence, occurrence_id};
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// 2027-01-15T08:00:00Z.
const T0: Millis = 1_800_000_000_000;
const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// A daily drill at 09:00 UTC (T0 + 1h is one), reminded an hour ahead.
const DAILY: &str = "
drills:
  - name: daily
    runbook: drill.yaml
    environment: staging
    owners: [DevOps, QA]
    schedule:
      rrule: FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0
      timezone: UTC
    remind_before: 1h
    grace: 2h
";

/// The shipped plan's Q1 rule: first Wednesday of March, 09:00 Seoul.
const QUARTERLY: &str = "
drills:
  - name: q1-mongo-pitr
    runbook: drill.yaml
    environment: staging
    owners: [DevOps]
    schedule:
      rrule: FREQ=YEARLY;BYMONTH=3;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0
      timezone: Asia/Seoul
";

fn drills(text: &str) -> Drills {
    ripcord_schedule::load(text).unwrap_or_else(|e| panic!("drills: {e:?}"))
}

/// How the fake launcher answers its next calls.
enum Script {
    Refuse(&'static str),
    Unavailable,
    /// Starts the run, then never answers (the coordinator dies meanwhile).
    StartThenHang,
}

/// Starts runs by id; a second start of an id is `Exists`.
#[derive(Default)]
struct FakeLauncher {
    /// (drill, run id, by) of every run started.
    runs: Mutex<Vec<(String, String, String)>>,
    /// (run id, virtual ms) of every call.
    calls: Mutex<Vec<(String, Millis)>>,
    script: Mutex<VecDeque<Script>>,
    /// Yield once before answering, so racing schedulers interleave.
    yield_first: bool,
    clock: Option<Clock>,
}

impl FakeLauncher {
    fn new(clock: &Clock) -> Arc<Self> {
        Arc::new(Self { clock: Some(clock.clone()), ..Default::default() })
    }
    fn runs(&self) -> Vec<(String, String, String)> {
        self.runs.lock().unwrap().clone()
    }
    fn calls(&self) -> Vec<(String, Millis)> {
        self.calls.lock().unwrap().clone()
    }
    fn then(&self, s: Script) {
        self.script.lock().unwrap().push_back(s);
    }
}

impl Launcher for FakeLauncher {
    fn launch(&self, drill: &Drill, run_id: &str, by: &str) -> BoxFuture<Result<(), LaunchError>> {
        let now = self.clock.as_ref().map_or(0, |c| c());
        self.calls.lock().unwrap().push((run_id.to_string(), now));
        let mut runs = self.runs.lock().unwrap();
        let start = (drill.name.clone(), run_id.to_string(), by.to_string());
        let result = if runs.iter().any(|(_, id, _)| id == run_id) {
            Err(LaunchError::Exists)
        } else {
            match self.script.lock().unwrap().pop_front() {
                Some(Script::Refuse(r)) => Err(LaunchError::Refused(r.into())),
                Some(Script::Unavailable) => Err(LaunchError::Unavailable("driver busy".into())),
                Some(Script::StartThenHang) => {
                    runs.push(start);
                    return Box::pin(std::future::pending());
                }
                None => {
                    runs.push(start);
                    Ok(())
                }
            }
        };
        let yield_first = self.yield_first;
        Box::pin(async move {
            if yield_first {
                tokio::task::yield_now().await;
            }
            result
        })
    }
}

/// Records every notice; fails the first `fail` calls.
#[derive(Default)]
struct FakeTell {
    told: Mutex<Vec<OwnerNotice>>,
    fail: Mutex<usize>,
}

impl FakeTell {
    fn told(&self) -> Vec<OwnerNotice> {
        self.told.lock().unwrap().clone()
    }
    fn keys(&self) -> Vec<String> {
        self.told().into_iter().map(|n| n.key).collect()
    }
}

impl Tell for FakeTell {
    fn tell(&self, notice: &OwnerNotice) -> BoxFuture<Result<(), TellError>> {
        let mut fail = self.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Box::pin(async { Err(TellError::Webhook(WebhookError::Status(503))) });
        }
        self.told.lock().unwrap().push(notice.clone());
        Box::pin(async { Ok(()) })
    }
}

/// One test's world: the store, launcher and channel outlive schedulers.
struct World {
    drills: Drills,
    store: Store,
    launcher: Arc<FakeLauncher>,
    tell: Arc<FakeTell>,
    base: Instant,
    clock: Clock,
}

impl World {
    fn new(text: &str) -> Self {
        let base = Instant::now();
        let clock: Clock = Arc::new(move || T0 + i64::try_from(base.elapsed().as_millis()).unwrap_or(0));
        Self {
            drills: drills(text),
            store: Store::memory(),
            launcher: FakeLauncher::new(&clock),
            tell: Arc::new(FakeTell::default()),
            base,
            clock,
        }
    }

    fn scheduler(&self) -> Scheduler {
        Scheduler::new(
            self.drills.clone(),
            self.store.clone(),
            self.launcher.clone(),
            self.tell.clone(),
            self.clock.clone(),
        )
    }

    /// A scheduler task, "killed" by aborting it.
    async fn start(&self) -> JoinHandle<Result<(), Error>> {
        let task = tokio::spawn(self.scheduler().run(std::future::pending()));
        settle().await;
        task
    }

    /// Moves paused time to `at` and lets the tasks run.
    async fn until(&self, at: Millis) {
        assert!(at >= (self.clock)(), "time only moves forward");
        tokio::time::sleep_until(self.base + std::time::Duration::from_millis((at - T0) as u64)).await;
        settle().await;
    }

    fn drill(&self) -> &Drill {
        &self.drills.drills[0]
    }

    /// The drill's first occurrence after `after`, and its run id.
    fn next(&self, after: Millis) -> (Occurrence, String) {
        let occ = self.drill().occurrences_after(after, 1).remove(0);
        let id = occurrence_id(self.drill(), &occ);
        (occ, id)
    }

    fn record(&self, id: &str) -> OccurrenceRecord {
        self.store.occurrence(id).unwrap().unwrap_or_else(|| panic!("no record of {id}"))
    }

    /// How many times the run `id` was started.
    fn starts(&self, id: &str) -> usize {
        self.launcher.runs().iter().filter(|(_, r, _)| r == id).count()
    }
}

/// Lets every ready task run (bounded; no time passes).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

async fn kill(task: JoinHandle<Result<(), Error>>) {
    task.abort();
    let _ = task.await;
}

#[tokio::test(start_paused = true)]
async fn an_occurrence_that_comes_due_starts_exactly_once() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    assert_eq!(occ.at, T0 + HOUR);
    let task = w.start().await;
    w.until(occ.at - 1).await;
    assert!(w.launcher.runs().is_empty(), "started before its time");
    w.until(occ.at).await;
    assert_eq!(w.launcher.runs(), vec![("daily".into(), id.clone(), ACTOR.into())]);
    assert_eq!(w.launcher.calls(), vec![(id.clone(), occ.at)], "started at its instant");
    let rec = w.record(&id);
    assert_eq!(rec.state, OccurrenceState::Started { run_id: id.clone(), at: occ.at, late_ms: 0 });
    assert_eq!(
        (rec.due_at, rec.due_local.as_str(), &rec.origin),
        (occ.at, "2027-01-15T09:00:00+00:00", &Origin::Schedule)
    );
    // Three more days: one start per occurrence, each with its own id.
    w.until(occ.at + 3 * DAY + MINUTE).await;
    let ids: Vec<String> = w.drill().occurrences_after(T0, 4).iter().map(|o| occurrence_id(w.drill(), o)).collect();
    let started: Vec<String> = w.launcher.runs().into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(started, ids);
    assert_eq!(w.launcher.calls().len(), 4, "no start tried twice");
    kill(task).await;
}

#[tokio::test(start_paused = true)]
async fn killed_just_before_due_the_next_scheduler_starts_it_once() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    let a = w.start().await;
    w.until(occ.at - 1).await;
    kill(a).await;
    assert!(w.launcher.runs().is_empty());
    let b = w.start().await;
    w.until(occ.at + MINUTE).await;
    assert_eq!(w.starts(&id), 1);
    assert_eq!(w.launcher.calls().len(), 1);
    assert!(matches!(w.record(&id).state, OccurrenceState::Started { late_ms: 0, .. }));
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn killed_just_after_due_the_next_scheduler_does_not_start_it_again() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    let a = w.start().await;
    w.until(occ.at + 1).await;
    kill(a).await;
    assert_eq!(w.starts(&id), 1);
    let b = w.start().await;
    w.until(occ.at + MINUTE).await;
    assert_eq!(w.launcher.calls().len(), 1, "the record says started: not even tried");
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn killed_between_the_start_and_its_record_the_next_scheduler_finds_it_exists() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    w.launcher.then(Script::StartThenHang);
    let a = w.start().await;
    w.until(occ.at).await;
    assert_eq!(w.starts(&id), 1, "the run started");
    assert_eq!(w.record(&id).state, OccurrenceState::Launching { since: occ.at }, "but its record says launching");
    kill(a).await;
    let b = w.start().await;
    assert_eq!(w.launcher.calls().len(), 2, "started again, and told it exists");
    assert_eq!(w.starts(&id), 1, "still one run");
    assert!(matches!(w.record(&id).state, OccurrenceState::Started { .. }), "{:?}", w.record(&id));
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn two_schedulers_racing_over_one_store_start_it_once() {
    let mut w = World::new(DAILY);
    w.launcher = Arc::new(FakeLauncher { yield_first: true, clock: Some(w.clock.clone()), ..Default::default() });
    let (occ, id) = w.next(T0);
    let (a, b) = (w.start().await, w.start().await);
    w.until(occ.at + 2 * DAY + MINUTE).await;
    for o in w.drill().occurrences_after(T0, 3) {
        let id = occurrence_id(w.drill(), &o);
        assert_eq!(w.starts(&id), 1, "occurrence {}", o.local);
        assert!(matches!(w.record(&id).state, OccurrenceState::Started { late_ms: 0, .. }));
    }
    assert_eq!(
        w.launcher.calls().iter().filter(|(c, _)| *c == id).count(),
        2,
        "both tried: one started, one was told it exists"
    );
    // The reminders: each told once, whoever sent it.
    let keys = w.tell.keys();
    let unique: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "a reminder told twice: {keys:?}");
    kill(a).await;
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn missed_within_grace_starts_late_with_its_lateness() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    let a = w.start().await;
    kill(a).await;
    w.until(occ.at + 30 * MINUTE).await;
    assert!(w.launcher.runs().is_empty(), "nobody was there");
    let b = w.start().await;
    assert_eq!(w.starts(&id), 1);
    assert_eq!(
        w.record(&id).state,
        OccurrenceState::Started { run_id: id.clone(), at: occ.at + 30 * MINUTE, late_ms: 30 * MINUTE }
    );
    assert!(!w.tell.keys().iter().any(|k| k.ends_with("/missed")));
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn missed_beyond_grace_is_recorded_and_its_owners_told_once() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    let a = w.start().await;
    kill(a).await;
    w.until(occ.at + 3 * HOUR).await;
    *w.tell.fail.lock().unwrap() = 1; // the first try at telling fails
    let b = w.start().await;
    assert!(w.launcher.runs().is_empty(), "not started beyond its grace");
    let rec = w.record(&id);
    assert_eq!(rec.state, OccurrenceState::Missed { noticed_at: occ.at + 3 * HOUR });
    assert_eq!(rec.notice, Some(Delivery::Pending { since: occ.at + 3 * HOUR }), "not told yet");
    w.until(occ.at + 3 * HOUR + MINUTE).await; // the retry (30 s later)
    let missed: Vec<OwnerNotice> = w.tell.told().into_iter().filter(|n| n.kind == NoticeKind::Missed).collect();
    assert_eq!(missed.len(), 1);
    let n = &missed[0];
    assert_eq!((n.key.as_str(), n.run_id.as_str()), (format!("{id}/missed").as_str(), id.as_str()));
    assert_eq!(n.owners, vec!["DevOps", "QA"]);
    for part in ["daily", "2027-01-15T09:00:00+00:00", "UTC", "DevOps, QA", "missed", "2h"] {
        assert!(n.text.contains(part), "{part:?} not in {:?}", n.text);
    }
    assert!(matches!(w.record(&id).notice, Some(Delivery::Sent { .. })));
    kill(b).await;
    let c = w.start().await;
    w.until(occ.at + 4 * HOUR).await;
    assert_eq!(w.tell.told().iter().filter(|n| n.kind == NoticeKind::Missed).count(), 1, "told again after a restart");
    assert!(w.launcher.runs().is_empty());
    kill(c).await;
}

#[tokio::test(start_paused = true)]
async fn the_reminder_comes_remind_before_the_occurrence_once_with_the_checklist() {
    let w = World::new(QUARTERLY);
    let (occ, id) = w.next(T0);
    assert_eq!(occ.local, "2027-03-03T09:00:00+09:00");
    let remind_at = occ.at - 7 * DAY;
    let task = w.start().await;
    w.until(remind_at - 1).await;
    assert!(w.tell.told().is_empty(), "reminded before its time");
    w.until(remind_at).await;
    let told = w.tell.told();
    assert_eq!(told.len(), 1);
    let n = &told[0];
    assert_eq!(n.key, format!("{id}/reminder"));
    assert_eq!(n.kind, NoticeKind::Reminder { checklist: CHECKLIST.iter().map(|s| s.to_string()).collect() });
    assert_eq!((n.due_at, n.due_local.as_str(), n.timezone.as_str()), (occ.at, occ.local.as_str(), "Asia/Seoul"));
    for part in ["q1-mongo-pitr", "2027-03-03T09:00:00+09:00", "Asia/Seoul", "DevOps", "7d", "check backups"] {
        assert!(n.text.contains(part), "{part:?} not in {:?}", n.text);
    }
    assert_eq!(w.record(&id).reminder, Some(Delivery::Sent { at: remind_at }));
    w.until(occ.at + MINUTE).await;
    assert_eq!(w.tell.told().len(), 1, "reminded again");
    assert_eq!(w.starts(&id), 1);
    kill(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_reminder_due_while_the_coordinator_was_down_is_sent_late() {
    let w = World::new(QUARTERLY);
    let (occ, id) = w.next(T0);
    let remind_at = occ.at - 7 * DAY;
    let a = w.start().await;
    w.until(remind_at - HOUR).await;
    kill(a).await;
    w.until(remind_at + 2 * DAY).await;
    assert!(w.tell.told().is_empty());
    let b = w.start().await;
    assert_eq!(w.tell.keys(), vec![format!("{id}/reminder")]);
    assert_eq!(w.record(&id).reminder, Some(Delivery::Sent { at: remind_at + 2 * DAY }));
    kill(b).await;
    let c = w.start().await;
    assert_eq!(w.tell.told().len(), 1, "a sent reminder is not sent again after a restart");
    kill(c).await;
}

#[tokio::test(start_paused = true)]
async fn a_pending_reminder_is_sent_again_after_a_restart() {
    let w = World::new(QUARTERLY);
    let (occ, id) = w.next(T0);
    w.until(occ.at - 7 * DAY).await;
    *w.tell.fail.lock().unwrap() = 1;
    let a = w.start().await;
    assert_eq!(w.record(&id).reminder, Some(Delivery::Pending { since: occ.at - 7 * DAY }));
    kill(a).await;
    let b = w.start().await;
    assert_eq!(w.tell.keys(), vec![format!("{id}/reminder")]);
    assert!(matches!(w.record(&id).reminder, Some(Delivery::Sent { .. })));
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn a_new_scheduler_does_not_mark_old_occurrences_missed() {
    // A year of daily occurrences lies between the rule's start and T0.
    let w = World::new(DAILY);
    let a = w.start().await;
    let records = w.store.occurrences().unwrap();
    assert!(records.iter().all(|r| r.due_at > T0), "records of the past: {records:?}");
    assert!(w.launcher.runs().is_empty());
    assert!(!w.tell.keys().iter().any(|k| k.ends_with("/missed")));
    assert_eq!(w.store.watching_since("daily", 0).unwrap(), T0);
    kill(a).await;
    // But what falls due once it watches does count.
    w.until(T0 + 3 * DAY).await;
    let b = w.start().await;
    let missed =
        w.store.occurrences().unwrap().into_iter().filter(|r| matches!(r.state, OccurrenceState::Missed { .. }));
    assert_eq!(missed.count(), 3);
    assert_eq!(w.tell.keys().iter().filter(|k| k.ends_with("/missed")).count(), 3);
    kill(b).await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_start_is_recorded_and_its_owners_told() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    w.launcher.then(Script::Refuse("cluster chat-prod is protected"));
    let task = w.start().await;
    w.until(occ.at + HOUR).await;
    assert_eq!(w.launcher.calls().len(), 1, "a refusal is not tried again");
    let rec = w.record(&id);
    assert_eq!(rec.state, OccurrenceState::Refused { at: occ.at, reason: "cluster chat-prod is protected".into() });
    let refused: Vec<OwnerNotice> =
        w.tell.told().into_iter().filter(|n| matches!(n.kind, NoticeKind::Refused { .. })).collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].text.contains("cluster chat-prod is protected"), "{}", refused[0].text);
    kill(task).await;
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_launcher_is_tried_again_with_backoff() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    w.launcher.then(Script::Unavailable);
    w.launcher.then(Script::Unavailable);
    let task = w.start().await;
    w.until(occ.at + MINUTE).await;
    let at: Vec<Millis> = w.launcher.calls().into_iter().map(|(_, at)| at - occ.at).collect();
    assert_eq!(at, vec![0, 5_000, 15_000]);
    assert_eq!(
        w.record(&id).state,
        OccurrenceState::Started { run_id: id.clone(), at: occ.at + 15_000, late_ms: 15_000 }
    );
    kill(task).await;
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_launcher_past_the_grace_makes_it_missed() {
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    for _ in 0..100 {
        w.launcher.then(Script::Unavailable);
    }
    let task = w.start().await;
    w.until(occ.at + 3 * HOUR).await;
    assert!(w.launcher.runs().is_empty());
    assert!(matches!(w.record(&id).state, OccurrenceState::Missed { .. }));
    let calls = w.launcher.calls().into_iter().filter(|(c, _)| *c == id).count();
    assert!((5..=40).contains(&calls), "{calls} tries in two hours");
    kill(task).await;
}

#[tokio::test(start_paused = true)]
async fn run_now_starts_with_an_id_of_its_own_and_history_lists_it() {
    let w = World::new(DAILY);
    let scheduler = w.scheduler();
    let handle = scheduler.handle();
    let task = tokio::spawn(scheduler.run(std::future::pending()));
    settle().await;
    let (occ, occ_id) = w.next(T0);

    let list = handle.list();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].name.as_str(), list[0].timezone.as_str()), ("daily", "UTC"));
    assert_eq!(
        list[0].next,
        Some(NextOccurrence { at: occ.at, local: "2027-01-15T09:00:00+00:00".into(), run_id: occ_id.clone() })
    );

    w.until(T0 + 10 * MINUTE).await;
    let id = handle.run_now("daily", "alice").await.unwrap();
    assert_eq!(id.len(), 16);
    assert_ne!(id, occ_id);
    assert_eq!(w.launcher.runs(), vec![("daily".into(), id.clone(), "alice".into())]);
    let e = handle.run_now("dayly", "alice").await.unwrap_err();
    assert_eq!(e.to_string(), "no drill called \"dayly\" (did you mean \"daily\"?)");

    w.until(occ.at + MINUTE).await;
    let history = handle.history(Some("daily")).unwrap();
    let got: Vec<(&str, &Origin)> = history.iter().map(|r| (r.id.as_str(), &r.origin)).collect();
    assert_eq!(
        got,
        vec![(occ_id.as_str(), &Origin::Schedule), (id.as_str(), &Origin::RunNow { by: "alice".into() })],
        "newest first"
    );
    assert_eq!(history[1].state, OccurrenceState::Started { run_id: id.clone(), at: T0 + 10 * MINUTE, late_ms: 0 });
    assert_eq!(history[1].due_local, "2027-01-15T08:10:00+00:00");
    assert_eq!(handle.history(None).unwrap().len(), 2);
    assert!(matches!(handle.history(Some("nope")), Err(Error::UnknownDrill { .. })));
    kill(task).await;
}

#[tokio::test(start_paused = true)]
async fn killed_mid_start_and_back_after_the_grace_the_driver_store_decides() {
    use crate::store::{Commit, RunRecord};
    use ripcord_engine::run::Actor;
    let w = World::new(DAILY);
    let (occ, id) = w.next(T0);
    let (next, next_id) = w.next(occ.at);
    w.launcher.then(Script::StartThenHang); // today's starts, never answers
    let a = w.start().await;
    w.until(occ.at).await;
    // The driver committed today's run before the coordinator died.
    let by = Actor { name: ACTOR.into(), role: "scheduler".into() };
    let run = RunRecord::new("drill.yaml".into(), "id: rb".into(), crate::store::conformance::state(&id, occ.at), by);
    w.store.commit(&[Commit { record: &run, events: &[], new_effects: &[], acked: &[] }]).unwrap();
    kill(a).await;
    // Tomorrow's was recorded launching too, but its run never came to be.
    let mut launching =
        OccurrenceRecord::new(next_id.clone(), "daily".into(), next.at, next.local.clone(), Origin::Schedule);
    launching.state = OccurrenceState::Launching { since: next.at };
    assert!(w.store.swap_occurrence(None, &launching).unwrap());
    w.until(next.at + 3 * HOUR).await;
    let b = w.start().await;
    assert_eq!(
        w.record(&id).state,
        OccurrenceState::Started { run_id: id.clone(), at: next.at + 3 * HOUR, late_ms: 0 }
    );
    assert_eq!(w.record(&next_id).state, OccurrenceState::Missed { noticed_at: next.at + 3 * HOUR });
    assert_eq!(w.launcher.calls().len(), 1, "nothing started beyond its grace");
    kill(b).await;
}

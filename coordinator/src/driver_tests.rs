//! The driver with the in-memory store, a fake performer and paused time:
//! group commit, commit-then-act, resume, stale results, timers across a
//! restart, and a failing commit.

use super::*;
use crate::integrations::BoxFuture;
use crate::store::memory::{Failing, MemoryStorage};
use ripcord_engine::value::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

const T0: Millis = 1_800_000_000_000;

/// A performer that records every call, checks the effect was committed
/// before it was called, and answers when the test says so.
struct Fake {
    store: Store,
    calls: Mutex<Vec<(run::Key, bool)>>,
    answers: Mutex<Vec<(run::Key, oneshot::Sender<Outcome>)>>,
    /// Answer at once with success instead of waiting.
    instant: bool,
}

impl Fake {
    fn new(store: &Store, instant: bool) -> Arc<Self> {
        let (calls, answers) = (Mutex::default(), Mutex::default());
        Arc::new(Fake { store: store.clone(), calls, answers, instant })
    }

    fn calls(&self) -> Vec<(run::Key, bool)> {
        self.calls.lock().unwrap().clone()
    }

    /// Answers the pending call for `step`, attempt `attempt`.
    fn answer(&self, step: &str, attempt: u32, outcome: Outcome) {
        let mut answers = self.answers.lock().unwrap();
        let i = answers.iter().position(|(k, _)| k.step == step && k.attempt == attempt).expect("a pending call");
        let (_, tx) = answers.remove(i);
        tx.send(outcome).expect("the driver is waiting");
    }
}

impl Performer for Fake {
    fn perform(&self, r: Request) -> BoxFuture<Outcome> {
        let id = effect_id(&Effect::Perform {
            key: r.key.clone(),
            action: r.action.clone(),
            args: r.args.clone(),
            target: None,
            timeout_ms: None,
        });
        let committed = self.store.pending_effects(&r.key.run).is_ok_and(|p| p.iter().any(|(pid, _)| *pid == id));
        self.calls.lock().unwrap().push((r.key.clone(), committed));
        if self.instant {
            return Box::pin(async { Outcome::Succeeded(BTreeMap::new()) });
        }
        let (tx, rx) = oneshot::channel();
        self.answers.lock().unwrap().push((r.key, tx));
        Box::pin(async move { rx.await.unwrap_or_else(|_| Outcome::Failed("dropped".into())) })
    }
}

/// The driver's clock: paused tokio time from T0.
fn clock() -> Arc<dyn Fn() -> Millis + Send + Sync> {
    let base = tokio::time::Instant::now();
    Arc::new(move || T0 + i64::try_from(base.elapsed().as_millis()).unwrap_or(0))
}

fn start_req(text: &str) -> StartRequest {
    StartRequest {
        id: None,
        source: "test.yaml".into(),
        text: text.into(),
        params: BTreeMap::new(),
        incident_at: None,
        mode: run::Mode::Drill,
        by: Actor { name: "alice".into(), role: "operator".into() },
        environment: None,
        parent: None,
    }
}

/// Lets the other tasks run until `done` holds (bounded).
async fn settle(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

fn status(store: &Store, id: &str) -> run::RunStatus {
    store.run(id).unwrap().expect("stored").state.status
}

const ONE_STEP: &str = "id: one\ntitle: one\nsteps:\n  - {id: a, action: noop}\n";
const GATE: &str = "id: gate\ntitle: gate\nsteps:\n  - {id: g, action: approve}\n";

#[tokio::test(start_paused = true)]
async fn runs_queued_together_are_committed_together() {
    let memory = Arc::new(MemoryStorage::default());
    let store = Store::new(memory.clone());
    let (driver, runs) = Driver::new(store.clone(), Fake::new(&store, true), clock());
    let starts: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn({
                let runs = runs.clone();
                async move { runs.start(start_req(GATE)).await }
            })
        })
        .collect();
    // Every start is queued before the driver takes the first.
    tokio::task::yield_now().await;
    tokio::spawn(driver.run());
    for s in starts {
        s.await.unwrap().unwrap();
    }
    assert_eq!(store.runs().unwrap().len(), 20);
    assert_eq!(memory.commits(), 1, "20 starts queued together make one commit");
}

#[tokio::test(start_paused = true)]
async fn an_effect_is_committed_before_it_is_performed() {
    let store = Store::memory();
    let fake = Fake::new(&store, false);
    let (driver, runs) = Driver::new(store.clone(), fake.clone(), clock());
    tokio::spawn(driver.run());
    let id = runs.start(start_req(ONE_STEP)).await.unwrap();
    settle("the step to be performed", || !fake.calls().is_empty()).await;
    assert_eq!(fake.calls(), vec![(run::Key { run: id.clone(), step: "a".into(), attempt: 1 }, true)]);
    fake.answer("a", 1, Outcome::Succeeded(BTreeMap::new()));
    settle("the run to succeed", || status(&store, &id) == run::RunStatus::Succeeded).await;
    assert!(store.pending_effects(&id).unwrap().is_empty(), "the outcome acknowledged the effect");
}

#[tokio::test(start_paused = true)]
async fn a_restart_performs_every_unacknowledged_effect_again_with_the_same_key() {
    let store = Store::memory();
    let first = Fake::new(&store, false);
    let (driver, runs) = Driver::new(store.clone(), first.clone(), clock());
    let task = tokio::spawn(driver.run());
    let text = "id: two\ntitle: two\nsteps:\n  - {id: a, action: noop}\n  - {id: b, action: noop}\n";
    let id = runs.start(start_req(text)).await.unwrap();
    settle("both steps to be performed", || first.calls().len() == 2).await;
    // The coordinator dies with both effects committed, neither answered.
    task.abort();
    drop(runs);

    let second = Fake::new(&store, true);
    let (driver, _runs) = Driver::new(store.clone(), second.clone(), clock());
    tokio::spawn(driver.run());
    settle("the run to succeed", || status(&store, &id) == run::RunStatus::Succeeded).await;
    let mut before: Vec<run::Key> = first.calls().into_iter().map(|(k, _)| k).collect();
    let mut after: Vec<run::Key> = second.calls().into_iter().map(|(k, _)| k).collect();
    before.sort();
    after.sort();
    assert_eq!(after, before, "the same keys, each once");
}

#[tokio::test(start_paused = true)]
async fn a_result_for_an_attempt_that_is_no_longer_current_is_ignored() {
    let store = Store::memory();
    let fake = Fake::new(&store, false);
    let (driver, runs) = Driver::new(store.clone(), fake.clone(), clock());
    tokio::spawn(driver.run());
    let text = "id: r\ntitle: r\nsteps:\n  - {id: a, action: noop, timeout: 1m, retry: {attempts: 2, backoff: 1s}}\n";
    let id = runs.start(start_req(text)).await.unwrap();
    settle("attempt 1", || fake.calls().len() == 1).await;
    // Attempt 1 times out; attempt 2 starts after the backoff.
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    settle("attempt 1 to time out", || {
        store.events(&id).unwrap().iter().any(|e| e.event.kind == EventKind::StepRetrying)
    })
    .await;
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    settle("attempt 2", || fake.calls().len() == 2).await;
    fake.answer("a", 1, Outcome::Succeeded(BTreeMap::new()));
    settle("the late result to be logged", || {
        store.events(&id).unwrap().iter().any(|e| e.event.kind == EventKind::Ignored)
    })
    .await;
    let st = &store.run(&id).unwrap().unwrap().state.steps["a"];
    assert_eq!((st.attempt, st.status.name()), (2, "running"), "the late success of attempt 1 changed nothing");
    fake.answer("a", 2, Outcome::Succeeded(BTreeMap::new()));
    settle("the run to succeed", || status(&store, &id) == run::RunStatus::Succeeded).await;
}

#[tokio::test(start_paused = true)]
async fn a_timer_set_before_a_restart_fires_after_it() {
    let store = Store::memory();
    let clock = clock();
    let (driver, runs) = Driver::new(store.clone(), Fake::new(&store, true), Arc::clone(&clock));
    let task = tokio::spawn(driver.run());
    let text = "id: w\ntitle: w\nsteps:\n  - {id: pause, action: wait, with: {duration: 1h}}\n";
    let id = runs.start(start_req(text)).await.unwrap();
    task.abort();
    drop(runs);

    let (driver, _runs) = Driver::new(store.clone(), Fake::new(&store, true), clock);
    tokio::spawn(driver.run());
    settle("the restarted driver to be idle", || true).await;
    assert_eq!(status(&store, &id), run::RunStatus::Running);
    tokio::time::advance(std::time::Duration::from_secs(3600)).await;
    settle("the wait to end", || status(&store, &id) == run::RunStatus::Succeeded).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_stops_the_driver_with_the_error_and_tells_the_caller() {
    let store = Store::new(Arc::new(Failing::new(MemoryStorage::default(), 2)));
    let (driver, runs) = Driver::new(store.clone(), Fake::new(&store, false), clock());
    let task = tokio::spawn(driver.run());
    runs.start(start_req(GATE)).await.expect("commit 1 works");
    let e = runs.start(start_req(GATE)).await.expect_err("commit 2 fails");
    assert!(matches!(e, Error::Stopped), "{e}");
    let stopped = task.await.unwrap().expect_err("the driver stops");
    assert_eq!(stopped.to_string(), "cannot commit run changes: store: commit 2 failed: no space left on device");
    assert_eq!(store.runs().unwrap().len(), 1, "nothing of the failed commit is stored");
}

#[tokio::test(start_paused = true)]
async fn a_start_with_a_given_id_happens_once() {
    let store = Store::memory();
    let (driver, runs) = Driver::new(store.clone(), Fake::new(&store, true), clock());
    tokio::spawn(driver.run());
    let given = || StartRequest { id: Some("00000000feedbeef".into()), ..start_req(ONE_STEP) };
    let (first, second) = tokio::join!(runs.start(given()), runs.start(given()));
    let started = [&first, &second].iter().filter(|r| r.as_ref().is_ok_and(|id| id == "00000000feedbeef")).count();
    let refused =
        [&first, &second].iter().filter(|r| matches!(r, Err(Error::Exists(id)) if id == "00000000feedbeef")).count();
    assert_eq!((started, refused), (1, 1), "{first:?} {second:?}");
    assert_eq!(store.runs().unwrap().len(), 1);
    // Once finished and out of memory, the stored run still refuses it.
    settle("the run finished", || status(&store, "00000000feedbeef").is_finished()).await;
    assert!(matches!(runs.start(given()).await, Err(Error::Exists(_))));
    assert_eq!(store.runs().unwrap().len(), 1);
}

/// A checklist whose one item an HTTP check decides, then a step after it.
const CHECKED: &str = "id: c\ntitle: c\nsteps:\n  - id: v\n    action: checklist\n    timeout: 10m\n    with:\n      items:\n        - {text: the API answers, check: {action: http.check, with: {url: \"http://api/{{ run.short_id }}\"}}}\n  - {id: after, action: noop, needs: [v]}\n";

#[tokio::test(start_paused = true)]
async fn a_checklist_item_is_confirmed_by_its_checks_outcome() {
    let store = Store::memory();
    let fake = Fake::new(&store, false);
    let (driver, runs) = Driver::new(store.clone(), fake.clone(), clock());
    tokio::spawn(driver.run());
    let id = runs.start(start_req(CHECKED)).await.unwrap();
    settle("the check to be performed", || !fake.calls().is_empty()).await;
    let key = run::Key::check(&id, "v", 1, 1);
    assert_eq!(fake.calls(), vec![(key.clone(), true)], "committed, then performed under the item's key");
    let pending = store.pending_effects(&id).unwrap();
    let (effect_id, effect) = pending.iter().find(|(_, e)| matches!(e, Effect::Perform { .. })).expect("stored");
    assert_eq!(*effect_id, format!("{id}/v#1/1/perform"));
    let Effect::Perform { args, timeout_ms, .. } = effect else { unreachable!() };
    assert_eq!(args.get("url").and_then(Value::as_str), Some(format!("http://api/{}", &id[..8]).as_str()));
    assert_eq!(*timeout_ms, Some(600_000), "the step's timeout");

    let outputs = BTreeMap::from([("status".to_string(), Value::Int(200))]);
    fake.answer("v#1", 1, Outcome::Succeeded(outputs));
    settle("the step after to be performed", || fake.calls().len() == 2).await;
    let record = store.run(&id).unwrap().unwrap();
    let v = &record.state.steps["v"];
    assert_eq!(v.status, run::StepStatus::Succeeded);
    let confirmed = v.checklist[0].clone().expect("confirmed by the check");
    assert_eq!((confirmed.by, confirmed.note.as_str()), (Actor::check(), "http.check: status=200"));
    let events = store.events(&id).unwrap();
    let passed = events.iter().find(|e| e.event.kind == EventKind::CheckPassed).expect("a check_passed event");
    assert_eq!((passed.event.step.as_deref(), passed.event.facts.item), (Some("v"), Some(1)));
    assert_eq!(passed.event.facts.action.as_deref(), Some("http.check"));
    assert!(!store.pending_effects(&id).unwrap().iter().any(|(e, _)| *e == format!("{id}/v#1/1/perform")), "acked");
    let rb = ripcord_engine::check::check(CHECKED).unwrap();
    let view = crate::view::run_view(&rb, &record, &events, T0);
    let item = &view.step("v").unwrap().checklist[0];
    assert_eq!(item.check.as_ref().map(|c| c.result), Some(run::CheckResult::Passed));
    fake.answer("after", 1, Outcome::Succeeded(BTreeMap::new()));
    settle("the run to succeed", || status(&store, &id) == run::RunStatus::Succeeded).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_performs_a_check_again_and_a_person_confirms_what_it_could_not() {
    let store = Store::memory();
    let first = Fake::new(&store, false);
    let (driver, runs) = Driver::new(store.clone(), first.clone(), clock());
    let task = tokio::spawn(driver.run());
    let id = runs.start(start_req(CHECKED)).await.unwrap();
    settle("the check to be performed", || first.calls().len() == 1).await;
    task.abort();
    drop(runs);

    let second = Fake::new(&store, false);
    let (driver, runs) = Driver::new(store.clone(), second.clone(), clock());
    tokio::spawn(driver.run());
    settle("the check to be performed again", || second.calls().len() == 1).await;
    assert_eq!(second.calls(), first.calls(), "the same key");
    second.answer("v#1", 1, Outcome::Failed("status 503, expected 200".into()));
    settle("the failure to be logged", || {
        store.events(&id).unwrap().iter().any(|e| e.event.kind == EventKind::CheckFailed)
    })
    .await;
    let state = store.run(&id).unwrap().unwrap().state;
    assert_eq!((state.steps["v"].status.name(), state.status), ("waiting", run::RunStatus::Running));
    let check = state.steps["v"].checks[0].clone().unwrap();
    assert_eq!(check.error.as_deref(), Some("status 503, expected 200"));
    let bob = Actor { name: "bob".into(), role: "operator".into() };
    let confirm = Input::Confirm { step: "v".into(), item: 1, by: bob.clone(), note: "it answers now".into() };
    runs.operate(&id, confirm, bob.clone()).await.unwrap();
    settle("the step after to be performed", || second.calls().len() == 2).await;
    assert_eq!(store.run(&id).unwrap().unwrap().state.steps["v"].checklist[0].as_ref().unwrap().by, bob);
}

/// A gate with escalation tiers 1m and 2m after the incident.
const ESCALATING: &str = "id: esc\ntitle: esc\nnotify:\n  webhook: \"http://127.0.0.1:9/h\"\n  on: [escalation]\n  escalate:\n    - { after: 1m, text: leads }\n    - { after: 2m, text: everyone }\nsteps:\n  - {id: g, action: approve}\n";

fn kinds(store: &Store, id: &str) -> Vec<run::EventKind> {
    store.events(id).unwrap().into_iter().map(|e| e.event.kind).collect()
}

#[tokio::test(start_paused = true)]
async fn an_ack_between_two_tiers_sends_the_first_and_only_logs_the_second() {
    let store = Store::memory();
    let fake = Fake::new(&store, true);
    let (driver, runs) = Driver::new(store.clone(), fake.clone(), clock());
    tokio::spawn(driver.run());
    let id = runs.start(start_req(ESCALATING)).await.unwrap();
    let notified = |name: &str| fake.calls().iter().any(|(k, _)| k.step == name);

    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    settle("tier 1 to be sent", || kinds(&store, &id).contains(&run::EventKind::Notified)).await;
    assert!(notified("@escalate.1"), "{:?}", fake.calls());

    let bob = Actor { name: "bob".into(), role: "operator".into() };
    runs.operate(&id, Input::Ack { by: bob.clone(), note: "on it".into() }, bob.clone()).await.unwrap();
    let acked = store.run(&id).unwrap().unwrap().state.acknowledged.expect("committed");
    assert_eq!((acked.by, acked.note.as_str()), (bob.clone(), "on it"));

    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    settle("tier 2's timer to fire", || kinds(&store, &id).contains(&run::EventKind::EscalationSuppressed)).await;
    let events = store.events(&id).unwrap();
    let e = events.iter().find(|e| e.event.kind == run::EventKind::EscalationSuppressed).unwrap();
    assert_eq!((e.event.facts.tier, e.event.facts.by.clone()), (Some(2), Some(bob)));
    assert!(!notified("@escalate.2"), "no Notify performed for tier 2: {:?}", fake.calls());
    assert!(store.pending_effects(&id).unwrap().is_empty(), "tier 2's timer is acknowledged: {:?}", fake.calls());
    assert_eq!(status(&store, &id), run::RunStatus::Running);
}

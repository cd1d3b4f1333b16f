//! A store that fails stops the coordinator: it returns the error (the
//! binary logs it once and exits 1) instead of answering UNAVAILABLE
//! forever while no run can move.

use ripcord_coordinator::store::memory::{Failing, MemoryStorage};
use ripcord_coordinator::store::{Commit, RunRecord, Storage, Store};
use ripcord_engine::Role;
use ripcord_engine::run::{Actor, Mode, NewRun};
use ripcord_tests::{CoordinatorExtras, Pki, patience, write_coordinator_config};
use std::sync::Arc;

#[test]
fn a_commit_that_fails_stops_the_coordinator_with_the_error() {
    ripcord_pki::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    pki.issue("coordinator", Role::Coordinator);
    let cfg = write_coordinator_config(dir.path(), &pki, "127.0.0.1:0", &CoordinatorExtras::default());
    let config = ripcord_coordinator::config::Config::load(&cfg).unwrap();

    // A run whose first step was committed and never answered: resuming it
    // performs the step, and committing its outcome is the commit that fails.
    let text = "id: one\ntitle: one\nsteps:\n  - {id: a, action: noop}\n";
    let rb = ripcord_engine::check::check(text).unwrap();
    let new =
        NewRun { id: "0123456789abcdef".into(), mode: Mode::Drill, params: Default::default(), incident_at: None };
    let t = ripcord_engine::run::start(&rb, new, ripcord_pki::clock::now_ms()).unwrap();
    let by = Actor { name: "alice".into(), role: "operator".into() };
    let record = RunRecord::new("test".into(), text.into(), t.state, by);
    let memory = MemoryStorage::default();
    memory.commit(&[Commit { record: &record, events: &[], new_effects: &t.effects, acked: &[] }]).unwrap();
    let store = Store::new(Arc::new(Failing::new(memory, 1)));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let serve = ripcord_coordinator::run_with_store(config, move || Ok(store), std::future::pending());
        tokio::time::timeout(patience(), serve).await
    });
    let e = result.expect("the coordinator stopped by itself").expect_err("it stopped with an error");
    assert!(matches!(e, ripcord_coordinator::Error::Driver(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the run driver stopped: cannot commit run changes: store: commit 1 failed: no space left on device; \
         restart the coordinator to resume the runs from what was committed"
    );
}

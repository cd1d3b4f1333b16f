//! Runs end to end: a runbook with parallel branches, an approval, a retry,
//! a deferred step and a failure handler; operator errors; runbook check.

use ripcord_tests::http::TestServer;
use ripcord_tests::{Cluster, OPERATOR, VIEWER, step, text};
use std::fs;

fn runbook(server: &TestServer) -> String {
    format!(
        r#"id: e2e
title: end to end
rto: 5m
params:
  base: {{ default: "{base}" }}
  hook: {{ default: "{hook}", secret: true }}
steps:
  - id: start
    action: noop
    budget: 1s
  - id: left
    needs: [start]
    action: http.check
    with: {{ url: "{{{{ params.base }}}}/left", expect_status: 200, expect_json: {{ ok: true }} }}
  - id: right
    needs: [start]
    action: http.check
    with: {{ url: "{{{{ params.base }}}}/flaky" }}
    retry: {{ attempts: 3, backoff: 200ms }}
  - id: gate
    needs: [left, right]
    action: approve
    with: {{ message: "both branches are healthy" }}
  - id: tell
    needs: [gate]
    action: notify
    with: {{ webhook: "{{{{ params.hook }}}}", text: "run {{{{ run.short_id }}}} approved by {{{{ steps.gate.approved_by }}}}" }}
  - id: risky
    needs: [tell]
    action: http.check
    with: {{ url: "{{{{ params.base }}}}/risky" }}
    on_failure: [alarm]
  - id: later
    needs: [risky]
    action: http.check
    with: {{ url: "{{{{ params.base }}}}/later" }}
    after: 1s
  - id: alarm
    action: notify
    with: {{ webhook: "{{{{ params.hook }}}}", text: "risky failed in {{{{ run.id }}}}" }}
"#,
        base = server.url(""),
        hook = server.url("/hook/T0KEN-SECRET-123"),
    )
}

#[test]
fn a_run_with_parallel_branches_approval_retry_handler_and_deferred_step() {
    let server = TestServer::start();
    server.fail_next("/flaky", 1);
    server.fail_next("/risky", 1);
    let cluster = Cluster::start(&[]);
    let file = cluster.path().join("e2e.yaml");
    fs::write(&file, runbook(&server)).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);

    // Both branches ran; the flaky one needed a second attempt; the gate waits.
    let v = cluster.wait_run(&run, "gate waiting", |v| step(v, "gate")["status"] == "waiting");
    assert_eq!(step(&v, "left")["status"], "succeeded");
    assert_eq!(step(&v, "right")["status"], "succeeded");
    assert_eq!(step(&v, "right")["attempt"], 2);
    assert!(step(&v, "gate")["waiting_for"].as_str().unwrap().contains("both branches are healthy"));

    // A viewer may not approve; an operator may, and the log says who.
    let out = cluster.cli(VIEWER, &["approve", &run, "gate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("viewer \"val\" may not call Control/ApproveStep"), "{:?}", text(&out));
    let out = cluster.cli(OPERATOR, &["approve", &run, "gate", "--note", "looks good"]);
    assert!(out.status.success(), "{:?}", text(&out));

    // risky fails (no retry) → the alarm handler runs → the run fails.
    let v = cluster.wait_run(&run, "failed", |v| v["status"] == "failed");
    assert_eq!(step(&v, "risky")["status"], "failed");
    assert_eq!(step(&v, "alarm")["status"], "succeeded");
    assert_eq!(step(&v, "later")["status"], "pending");
    let approval = &step(&v, "gate")["approval"];
    let alice = serde_json::json!({"name": "alice", "role": "operator"});
    assert_eq!(approval["by"], alice);
    assert_eq!(approval["note"], "looks good");
    let events = v["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "approved" && e["actor"] == alice));
    assert!(events.iter().any(|e| e["kind"] == "run_started" && e["actor"] == alice));

    // Retry resumes from the failed step only; the deferred step then waits its second.
    let out = cluster.cli(OPERATOR, &["retry", &run]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v = cluster.wait_run(&run, "succeeded", |v| v["status"] == "succeeded");
    assert_eq!(step(&v, "risky")["attempt"], 2);
    assert_eq!(step(&v, "left")["attempt"], 1, "what succeeded is not re-run");
    assert!(v["recovered_at_ms"].as_i64().unwrap() <= step(&v, "later")["started_at_ms"].as_i64().unwrap());
    assert!(
        step(&v, "later")["started_at_ms"].as_i64().unwrap() - step(&v, "risky")["finished_at_ms"].as_i64().unwrap()
            >= 1000,
        "the deferred step waited its delay"
    );
    assert!(v["events"].as_array().unwrap().iter().any(|e| e["kind"] == "retry_requested" && e["actor"] == alice));

    // Side effects: one request per key, the notify text resolved, the secret never shown.
    let reqs = server.requests();
    let notify = reqs.iter().find(|r| r.path.starts_with("/hook/") && r.body.contains("approved by alice")).unwrap();
    assert!(notify.key.as_deref().unwrap().ends_with("/tell/1"), "{notify:?}");
    let shown =
        text(&cluster.cli(OPERATOR, &["show", &run])).0 + &text(&cluster.cli(OPERATOR, &["show", &run, "--json"])).0;
    assert!(!shown.contains("T0KEN-SECRET-123"), "a secret param leaked into show: {shown}");
    assert!(shown.contains("••••••"));
    assert!(!cluster.coordinator.log_text().contains("T0KEN-SECRET-123"), "a secret leaked into the log");

    let out = cluster.cli(OPERATOR, &["runs"]);
    assert!(text(&out).0.contains(&run) && text(&out).0.contains("succeeded"));
}

#[test]
fn operator_mistakes_are_clear_errors_with_nonzero_exit() {
    let server = TestServer::start();
    let cluster = Cluster::start(&[]);
    let file = cluster.path().join("e2e.yaml");
    fs::write(&file, runbook(&server)).unwrap();

    let fails = |args: &[&str], code: i32, expect: &str| {
        let out = cluster.cli(OPERATOR, args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stdout} {stderr}");
        assert!(stderr.contains(expect), "{args:?}: expected {expect:?} in {stderr:?}");
    };
    fails(
        &["run", "mongo-pitrr"],
        2,
        "no runbook file or built-in runbook \"mongo-pitrr\" (did you mean \"mongo-pitr\"?)",
    );
    fails(&["run", "redis-aof"], 1, "missing required param");
    fails(&["run", file.to_str().unwrap(), "--param", "bogus"], 2, "\"bogus\" is not KEY=VALUE");
    fails(
        &["run", file.to_str().unwrap(), "--param", "bse=x"],
        1,
        "runbook e2e has no param \"bse\" (did you mean \"base\"?)",
    );
    fails(
        &["run", file.to_str().unwrap(), "--incident-at", "yesterday"],
        1,
        "incident time \"yesterday\" is not RFC 3339",
    );

    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    cluster.wait_run(&run, "gate waiting", |v| step(v, "gate")["status"] == "waiting");
    fails(&["approve", &run, "left"], 1, "step \"left\" is a http.check step, not an approval");
    fails(&["approve", &run, "nope"], 1, "no step \"nope\"");
    fails(&["approve", "ffffffffffff", "gate"], 1, "no run \"ffffffffffff\"");
    fails(&["retry", &run], 1, "is running; only a failed run can be retried");
    fails(&["abort", &run, "--reason", " "], 1, "an abort needs a reason");
    let out = cluster.cli(VIEWER, &["abort", &run, "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1));

    let out = cluster.cli(OPERATOR, &["abort", &run, "--reason", "drill over"]);
    assert!(out.status.success());
    let v = cluster.view(&run).unwrap();
    assert_eq!(v["status"], "aborted");
    fails(&["approve", &run, "gate"], 1, "is already aborted");
    // Short ids work.
    assert!(cluster.cli(OPERATOR, &["show", &run[..8]]).status.success());
}

#[test]
fn runbook_check_prints_every_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    fs::write(
        &bad,
        "id: bad\ntitle: typos\nsteps:\n  - id: a\n    action: redis.chek_aof\n  - id: b\n    action: noop\n    needs: [c]\n  - id: c\n    action: noop\n    needs: [b]\n    budget: 5 mins\n",
    )
    .unwrap();
    let out = ripcord_tests::bare_cli(dir.path()).args(["runbook", "check", bad.to_str().unwrap()]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = stderr.lines().collect();
    let b = bad.display();
    assert_eq!(
        lines,
        vec![
            format!("{b}:5:13: unknown action \"redis.chek_aof\" (did you mean \"redis.check_aof\"?)"),
            format!("{b}:6:5: steps form a cycle: b → c → b"),
            format!("{b}:12:13: bad duration \"5 mins\": unknown unit \"mins\" (examples: 500ms, 30s, 5m, 1h30m, 1d)"),
        ],
        "{stderr}"
    );

    let out =
        ripcord_tests::bare_cli(dir.path()).args(["runbook", "check", "redis-aof", "mongo-pitr"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn watch_follows_a_run_to_its_end_and_plan_names_the_agents() {
    let server = TestServer::start();
    let cluster = Cluster::start(&[ripcord_tests::AgentSpec::new("cache-1").label("role", "redis")]);
    let file = cluster.path().join("short.yaml");
    fs::write(
        &file,
        format!(
            "id: short\ntitle: short\nrto: 1m\nsteps:\n  - {{id: a, action: http.check, with: {{url: \"{}\"}}, budget: 10s}}\n  - {{id: b, needs: [a], action: wait, with: {{duration: 300ms}}}}\n",
            server.url("/health")
        ),
    )
    .unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let out = cluster.cli(OPERATOR, &["watch", &run, "--interval", "100ms"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("[a] http.check") && stdout.contains("[b] succeeded"), "{stdout}");
    assert!(stdout.contains("recovered") && stdout.contains("of the 1m RTO"), "{stdout}");

    // The plan knows which agents an agent step would use.
    let out = cluster.cli(OPERATOR, &["runbook", "plan", "redis-aof", "--param", "webhook=http://x"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout} {stderr}");
    let line =
        |step: &str| stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(step)).unwrap_or("").to_string();
    assert!(line("ping").contains("agents: cache-1 (ready)"), "{stdout}");
    assert!(line("fix").contains("cache-1 (DOES NOT ALLOW IT) — NO USABLE AGENT"), "{stdout}");
    assert!(stdout.contains("critical path 5m of 5m RTO"), "{stdout}");
}

#[test]
fn the_agents_param_picks_one_redis_host_of_several() {
    let cluster = Cluster::start(&[
        ripcord_tests::AgentSpec::new("cache-1").label("role", "redis").label("host", "cache-1"),
        ripcord_tests::AgentSpec::new("cache-2").label("role", "redis").label("host", "cache-2"),
    ]);
    let plan = |extra: &[&str]| {
        let mut args = vec!["runbook", "plan", "redis-aof", "--param", "webhook=http://x"];
        args.extend_from_slice(extra);
        let out = cluster.cli(OPERATOR, &args);
        let (stdout, stderr) = text(&out);
        let ping = stdout.lines().find(|l| l.split_whitespace().nth(1) == Some("ping")).unwrap_or("").to_string();
        (out.status.code(), ping, stdout, stderr)
    };
    // The default (role=redis) matches both hosts: the plan says so.
    let (_, ping, stdout, _) = plan(&[]);
    assert!(ping.contains("redis.ping @ role=redis"), "{stdout}");
    assert!(ping.contains("cache-1 (ready), cache-2 (ready) — 2 match but the step wants exactly one"), "{stdout}");
    // Naming the host picks it alone.
    let (code, ping, stdout, stderr) = plan(&["--param", "agents=host=cache-2"]);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(ping.contains("redis.ping @ host=cache-2") && ping.contains("agents: cache-2 (ready)"), "{stdout}");
    assert!(!ping.contains("cache-1"), "{stdout}");

    // A value that is no selector refuses the run, and nothing starts.
    let out =
        cluster.cli(OPERATOR, &["run", "redis-aof", "--param", "webhook=http://x", "--param", "agents=host=cache 2"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "the run started: {stdout}");
    assert!(
        stderr.contains("step fix: target \"{{ params.agents }}\" gives bad selector \"host=cache 2\""),
        "{stderr}"
    );
    let runs = cluster.cli(OPERATOR, &["runs", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("runs JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

#[test]
fn an_agent_action_in_flight_when_the_coordinator_dies_runs_once() {
    let mut cluster = Cluster::start(&[]);
    let dir = cluster.path().join("slow");
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("starts.log");
    // A service that ignores SIGTERM: stopping it takes the whole grace period.
    let allow = format!(
        "\n[[allow.service]]\nname = \"slow\"\nbackend = \"exec\"\nargv = [\"sh\", \"-c\", \"trap '' TERM; echo started $$ >> {log}; while true; do sleep 0.1; done\"]\npid_file = \"{pid}\"\nstop_grace = \"1500ms\"\n",
        log = log.display(),
        pid = dir.join("slow.pid").display()
    );
    cluster.start_agent(
        &ripcord_tests::AgentSpec::new("host-1")
            .label("role", "app")
            .actions(&["service.start", "service.restart"])
            .allow(&allow),
    );
    cluster.wait_connected("host-1");
    let rb = cluster.path().join("slow.yaml");
    fs::write(
        &rb,
        "id: slow\ntitle: slow\nsteps:\n  - {id: start, action: service.start, target: \"role=app\", with: {service: slow}}\n  - {id: restart, needs: [start], action: service.restart, target: \"role=app\", with: {service: slow}}\n",
    )
    .unwrap();
    let run = cluster.start_run(rb.to_str().unwrap(), &[]);
    // Kill the coordinator while the restart is stopping the service.
    ripcord_tests::eventually("the restart to be under way", || {
        let l = cluster.agents[0].log_text();
        if l.contains("action=service.restart") { Ok(()) } else { Err("not yet".to_string()) }
    });
    cluster.restart_coordinator();
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    // The service writes its line a moment after the agent has answered, so
    // wait for the line of the process that is running now (the pid file's),
    // which comes after the line of every process started before it.
    let pid = fs::read_to_string(dir.join("slow.pid")).unwrap();
    let starts = ripcord_tests::eventually("the running service to write its line", || {
        let lines = fs::read_to_string(&log).unwrap_or_default();
        if lines.lines().any(|l| l == format!("started {}", pid.trim())) {
            Ok(lines.lines().count())
        } else {
            Err(lines)
        }
    });
    assert_eq!(starts, 2, "started once by `start` and once by the single `restart`");
    let agent_log = cluster.agents[0].log_text();
    assert!(
        agent_log.contains("still running; waiting for it") || agent_log.contains("answered from the journal"),
        "the repeated command was answered, not re-run"
    );
    if let Ok(pid) = fs::read_to_string(dir.join("slow.pid")) {
        let _ = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status();
    }
}

#[test]
fn http_check_probes_post_a_body_and_check_the_answer() {
    let server = TestServer::start();
    server.answer("/login", 200, "{\"ok\":true,\"user\":{\"name\":\"alice\"}}");
    server.answer("/messages", 201, "{\"ok\":false}");
    let cluster = Cluster::start(&[]);
    let file = cluster.path().join("probes.yaml");
    fs::write(
        &file,
        format!(
            r#"id: probes
title: validation probes
steps:
  - id: login
    action: http.check
    with:
      url: "{login}"
      method: POST
      headers: {{ X-Probe: ripcord }}
      body: {{ user: alice, password: probe }}
      expect_status: 200
      expect_json: {{ ok: true, user: {{ name: alice }} }}
      max_latency: 5s
  - id: send
    needs: [login]
    action: http.check
    with:
      url: "{messages}"
      method: POST
      body: {{ room: r1, text: hello }}
      expect_status: 201
      expect_json: {{ ok: true }}
    on_failure: continue
  - id: slow
    needs: [login]
    action: http.check
    with: {{ url: "{slow}", max_latency: 50ms }}
    on_failure: continue
"#,
            login = server.url("/login"),
            messages = server.url("/messages"),
            slow = server.url("/slow/health"),
        ),
    )
    .unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(step(&v, "login")["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    assert_eq!(step(&v, "login")["outputs"]["status"], 200);
    let err = step(&v, "send")["error"].as_str().unwrap().to_string();
    assert!(err.contains("body field ok is false, expected true"), "{err}");
    // The test server holds /slow answers for 120 ms: over a 50 ms limit.
    let err = step(&v, "slow")["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("more than max_latency 50ms"), "{err}");
    let login = server.requests().into_iter().find(|r| r.path == "/login").unwrap();
    assert_eq!(login.method, "POST");
    let body: serde_json::Value = serde_json::from_str(&login.body).unwrap();
    assert_eq!(body, serde_json::json!({"user": "alice", "password": "probe"}));
}

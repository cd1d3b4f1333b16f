//! Credentials the coordinator holds (`[credentials.NAME]`): a runbook names
//! them, the integration that uses one gets the value, and everything else —
//! outputs, errors, messages to people, the run's view, the logs, the sled
//! files — only ever holds the token `{{ credentials.NAME.FIELD }}`.

use ripcord_tests::http::TestServer;
use ripcord_tests::{AgentSpec, Cluster, CoordinatorExtras, OPERATOR, step, step_states, text};
use std::fs;

const USER: &str = "probe-user";
// With a quote and a backslash, so that it reads differently inside JSON.
const PASSWORD: &str = r#"Pr0be-"pa55\word"-never-shown"#;
const TOKEN: &str = "{{ credentials.probe.password }}";

/// The password as it stands inside a JSON string.
fn in_json() -> String {
    let quoted = serde_json::to_string(PASSWORD).expect("a string");
    quoted[1..quoted.len() - 1].to_string()
}

fn cluster_with_probe_credentials() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("probe-password");
    fs::write(&file, format!("{PASSWORD}\n")).expect("password file");
    let extras = CoordinatorExtras {
        toml: format!("\n[credentials.probe]\nuser = \"{USER}\"\npassword_file = \"{}\"\n", file.display()),
        env: vec![],
    };
    let agent = AgentSpec::new("app-1").label("role", "app").actions(&["file.newest"]);
    let cluster = Cluster::start_with(&[agent], extras);
    // The coordinator read the file at start; it may go.
    drop(dir);
    cluster
}

#[test]
fn a_probe_gets_the_password_and_the_run_only_ever_holds_its_token() {
    let server = TestServer::start();
    // The login answer and the failing probe's error echo the password back.
    server.answer("/login", 200, &serde_json::json!({"ok": true, "session": format!("for {PASSWORD}")}).to_string());
    server.answer("/echo", 500, &serde_json::json!({"error": format!("bad password {PASSWORD}")}).to_string());
    let cluster = cluster_with_probe_credentials();
    let file = cluster.path().join("probe.yaml");
    fs::write(
        &file,
        format!(
            r#"id: probe
title: a login probe with the coordinator's credentials
steps:
  - id: login
    action: http.check
    with:
      url: "{login}"
      method: POST
      headers: {{ Authorization: "Bearer {{{{ credentials.probe.password }}}}" }}
      body: {{ user: "{{{{ credentials.probe.user }}}}", password: "{{{{ credentials.probe.password }}}}" }}
      expect_json: {{ ok: true }}
  - id: echo
    needs: [login]
    action: http.check
    with:
      url: "{echo}"
      method: POST
      body: {{ password: "{{{{ credentials.probe.password }}}}" }}
      expect_status: 200
    on_failure: continue
  - id: from-the-host
    needs: [login]
    action: file.newest
    target: "role=app"
    with:
      dir: /tmp
      pattern: "{{{{ steps.login.body }}}}"
    on_failure: continue
  - id: gate
    needs: [login]
    action: approve
    with: {{ message: "carry on?" }}
  - id: tell
    needs: [gate]
    action: notify
    with:
      webhook: "{hook}"
      text: "logged in: {{{{ steps.login.body }}}}"
"#,
            login = server.url("/login"),
            echo = server.url("/echo"),
            hook = server.url("/hook"),
        ),
    )
    .expect("runbook");
    let run = cluster.start_run(file.to_str().expect("utf-8 path"), &[]);
    cluster.wait_run(&run, "the gate", |v| v["status"] != "running" || step(v, "gate")["status"] == "waiting");
    // An agent step given an output with a token is refused, clearly, and
    // nothing reached the host.
    let v = cluster.wait_run(&run, "from-the-host", |v| step(v, "from-the-host")["status"] == "failed");
    let error = step(&v, "from-the-host")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("file.newest runs on an agent, and its arguments carry credentials (probe)"), "{error}");
    assert_eq!(
        server.requests().iter().filter(|r| r.path == "/login").count(),
        1,
        "only the coordinator's probe reached the service"
    );
    // An operator pastes the password into a note: it is stored as the token.
    let note = format!("checked with {PASSWORD}");
    let out = cluster.cli(OPERATOR, &["approve", &run, "gate", "--note", &note]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(step(&v, "gate")["approval"]["note"], format!("checked with {TOKEN}"));
    assert_eq!(step(&v, "login")["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(step(&v, "tell")["status"], "succeeded", "{}", step_states(&v));

    // The service that needs the credential got the real one.
    let requests = server.requests();
    let login = requests.iter().find(|r| r.path == "/login").expect("login request");
    assert_eq!(login.authorization.as_deref(), Some(format!("Bearer {PASSWORD}").as_str()));
    let body: serde_json::Value = serde_json::from_str(&login.body).expect("login body");
    assert_eq!(body, serde_json::json!({"user": USER, "password": PASSWORD}));
    let echo = requests.iter().find(|r| r.path == "/echo").expect("echo request");
    let echoed: serde_json::Value = serde_json::from_str(&echo.body).expect("echo body");
    assert_eq!(echoed["password"], PASSWORD, "{}", echo.body);

    // What came back holds the token: the output, the error…
    assert_eq!(step(&v, "login")["outputs"]["body"]["session"], format!("for {TOKEN}"));
    let error = step(&v, "echo")["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("bad password {TOKEN}")), "{error}");
    assert!(!error.contains("pa55"), "the raw answer's JSON-escaped password is concealed too: {error}");
    // …and a message to people is sent the token, never the value.
    let hook = requests.iter().find(|r| r.path == "/hook").expect("webhook request");
    assert!(hook.body.contains("credentials.probe.password") && !hook.body.contains("pa55"), "{}", hook.body);

    // Nowhere in what the coordinator shows, logs or stores.
    let show = text(&cluster.cli(OPERATOR, &["show", &run])).0;
    let json = text(&cluster.cli(OPERATOR, &["show", &run, "--json"])).0;
    for (what, t) in [("show", &show), ("show --json", &json)] {
        assert!(t.contains(&run[..8]), "{what} printed nothing useful: {t}");
    }
    for (what, t) in [("show", show), ("show --json", json), ("the coordinator log", cluster.coordinator.log_text())] {
        assert!(!t.contains(PASSWORD) && !t.contains(&in_json()), "the password leaked into {what}:\n{t}");
    }
    cluster.assert_not_stored(&run, &[PASSWORD, &in_json()]);
}

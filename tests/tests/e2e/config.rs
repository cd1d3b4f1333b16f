//! Malformed configuration is refused at start with the file, position and
//! field named; the CLI finds its settings in the usual places.

use ripcord_tests::{AgentSpec, Cluster, CoordinatorExtras, OPERATOR, Pki, bare_cli, bin, text};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn run(bin_name: &str, config: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(bin(bin_name)).arg("--config").arg(config).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn malformed_coordinator_config_names_file_field_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    pki.issue("coordinator", ripcord_engine::Role::Coordinator);
    pki.issue("cache-1", ripcord_engine::Role::Agent);
    let good = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.ca().display(),
        pki.cert("coordinator").display(),
        pki.key("coordinator").display()
    );
    let cfg = dir.path().join("coordinator.toml");
    let table = [
        (good.replace("data_dir", "datadir"), "coordinator.toml:2:1: unknown field `datadir`"),
        (good.replace("127.0.0.1:0", "127.0.0.1"), "coordinator.toml:1:10: invalid socket address syntax"),
        (
            good.replace("[tls]", "heartbeat_interval = \"5 mins\"\n[tls]"),
            "coordinator.toml:4:22: bad duration \"5 mins\"",
        ),
        (good.replace("key = ", "# key = "), "missing field `key`"),
        (
            good.replace("coordinator.crt", "cache-1.crt").replace("coordinator.key", "cache-1.key"),
            "certificate is for agent \"cache-1\", but this program needs a coordinator certificate",
        ),
        (good.replace("coordinator.crt", "nope.crt"), "nope.crt"),
        (format!("{good}\n[credentials.db]\nuser = \"u\"\n"), "missing field `password_file`"),
        (
            format!("{good}\n[credentials.db]\npassword_file = \"absent\"\n"),
            "credentials.db: cannot read password_file",
        ),
        (format!("{good}\n[credentials.db]\npassword_file = \"short\"\n"), "credentials.db: the password in"),
    ];
    fs::write(dir.path().join("short"), "abc\n").unwrap();
    for (text, expect) in table {
        fs::write(&cfg, &text).unwrap();
        let (code, stderr) = run("ripcord-coordinator", &cfg);
        assert_ne!(code, Some(0), "must fail: {text}");
        assert!(stderr.contains(expect), "expected {expect:?} in {stderr:?}");
        assert!(!stderr.contains("abc"), "a password is shown: {stderr:?}");
    }
    let (code, stderr) = run("ripcord-coordinator", &dir.path().join("missing.toml"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot read config") && stderr.contains("missing.toml"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "a refused config must not create the data directory");
}

#[test]
fn malformed_agent_config_names_file_field_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let good = "id = \"cache-1\"\ncoordinator = \"https://127.0.0.1:1\"\n\n[tls]\nca = \"ca.crt\"\ncert = \"c.crt\"\nkey = \"c.key\"\n\n[allow]\nactions = [\"redis.ping\"]\n";
    let cfg = dir.path().join("agent.toml");
    let table = [
        (good.replace("[allow]", "[allowed]"), "agent.toml:9:2: unknown field `allowed`"),
        (
            good.replace("redis.ping", "redis.chek_aof"),
            "allow.actions: unknown action \"redis.chek_aof\" (did you mean \"redis.check_aof\"?)",
        ),
        (good.replace("redis.ping", "atlas.pitr_restore"), "it runs in the coordinator, not on agents"),
        (good.replace("https://", "http://"), "coordinator: \"http://127.0.0.1:1\" must be an https:// URL"),
        (format!("{good}\n[reconnect]\nmax = \"soon\"\n"), "agent.toml:13:7: bad duration \"soon\""),
    ];
    for (text, expect) in table {
        fs::write(&cfg, &text).unwrap();
        let (code, stderr) = run("ripcord-agent", &cfg);
        assert_eq!(code, Some(2), "must fail: {text}");
        assert!(stderr.contains(expect), "expected {expect:?} in {stderr:?}");
    }
}

#[test]
fn cli_finds_settings_in_its_config_file_and_names_what_is_missing() {
    let cluster = Cluster::start(&[AgentSpec::new("cache-1")]);
    let home = cluster.path().join("home");
    fs::create_dir_all(home.join(".config/ripcord")).unwrap();

    let out = bare_cli(&home).arg("agents").output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("coordinator (--coordinator, RIPCORD_COORDINATOR, or `coordinator` in"), "{stderr}");
    assert!(stderr.contains(".config/ripcord/config.toml"), "{stderr}");

    let file = home.join(".config/ripcord/config.toml");
    let settings = format!(
        "coordinator = \"{}\"\nserver_name = \"localhost\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cluster.url(),
        cluster.pki.ca().display(),
        cluster.pki.cert(OPERATOR).display(),
        cluster.pki.key(OPERATOR).display()
    );
    fs::write(&file, &settings).unwrap();
    let out = bare_cli(&home).args(["agents", "--json"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("cache-1"));

    // The environment beats the file.
    let out = bare_cli(&home).env("RIPCORD_COORDINATOR", "https://127.0.0.1:1").arg("agents").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot reach coordinator at https://127.0.0.1:1"), "{:?}", text(&out));

    fs::write(&file, format!("{settings}certificate = \"x\"\n")).unwrap();
    let out = bare_cli(&home).arg("agents").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("config.toml:6:1: unknown field `certificate`"), "{:?}", text(&out));
}

#[test]
fn certs_cli_writes_private_keys_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("pki");
    let ripcord = |args: &[&str]| bare_cli(dir.path()).args(args).output().unwrap();
    assert!(ripcord(&["certs", "init", "--dir", d.to_str().unwrap()]).status.success());
    let issue = ["certs", "issue", "--dir", d.to_str().unwrap(), "--role", "agent", "--name", "cache-1"];
    assert!(ripcord(&issue).status.success());
    let mode = |f: &str| fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("cache-1.key"), 0o600);
    assert_eq!(mode("ca.key"), 0o600);
    let key_before = fs::read(d.join("cache-1.key")).unwrap();

    let out = ripcord(&issue);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("already exists (pass --force to replace it)"), "{:?}", text(&out));
    assert_eq!(fs::read(d.join("cache-1.key")).unwrap(), key_before);

    let out = ripcord(&[&issue[..], &["--force"]].concat());
    assert!(out.status.success());
    assert_ne!(fs::read(d.join("cache-1.key")).unwrap(), key_before);

    let out = ripcord(&["certs", "show", d.join("cache-1.crt").to_str().unwrap()]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("identity:   cache-1") && stdout.contains("role:       agent"), "{stdout}");

    let out = ripcord(&["certs", "issue", "--dir", d.to_str().unwrap(), "--role", "admin", "--name", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown role \"admin\""), "{:?}", text(&out));
    assert!(!d.join("x.key").exists());
}

/// A coordinator without `[aws]` builds no AWS client, so the AWS chain
/// never runs and never asks the instance-metadata service: the metadata
/// endpoint (a recording server on loopback, with metadata lookups allowed)
/// sees no request. With an `[aws]` section that names no region, the same
/// endpoint is asked, which shows the recording would catch a lookup.
#[test]
fn coordinator_without_aws_section_makes_no_metadata_lookup() {
    let imds = ripcord_tests::http::TestServer::start();
    let env = vec![
        ("AWS_EC2_METADATA_DISABLED".to_string(), "false".to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), format!("http://{}", imds.addr)),
    ];
    let cluster = Cluster::start_with(&[], CoordinatorExtras { toml: String::new(), env: env.clone() });

    let file = cluster.path().join("aws.yaml");
    fs::write(
        &file,
        "id: aws-step\ntitle: aws step\nrto: 10m\nsteps:\n  - {id: switch, action: aws.update_secret, with: {secret_id: app/db, set: {k: v}}}\n",
    )
    .unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let v = cluster.wait_run(&run, "to finish", |v| v["status"] != "running");
    assert_eq!(v["status"], "failed", "{v}");
    let (status, stderr) = text(&cluster.cli(OPERATOR, &["status"]));
    let integrations = status.lines().find(|l| l.starts_with("integrations:")).unwrap_or_default();
    assert!(!integrations.is_empty() && !integrations.contains("aws"), "{status}{stderr}");
    let log = cluster.coordinator.log_text();
    assert!(log.contains("aws.* actions need an [aws] section in the coordinator config"), "{log}");
    assert!(!log.contains("aws client built") && !log.contains("aws_config"), "{log}");
    assert_eq!(imds.requests(), vec![], "instance-metadata lookups");
    drop(cluster);

    // The positive control: [aws] without a region asks the chain, and so
    // the metadata endpoint, for one.
    let cluster = Cluster::start_with(&[], CoordinatorExtras { toml: "\n[aws]\n".into(), env });
    let log = cluster.coordinator.log_text();
    assert!(log.contains("aws client built"), "{log}");
    assert!(!imds.requests().is_empty(), "an [aws] section without region asks instance metadata");
}

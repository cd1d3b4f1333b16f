//! The systemd and sysv backends' command lines, checked with stand-in
//! `systemctl` and `service` programs on the agent's PATH that record their
//! arguments (these machines have no systemd).

use ripcord_tests::{AgentSpec, Cluster, step};
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn systemd_and_sysv_backends_run_the_expected_commands() {
    let mut cluster = Cluster::start(&[]);
    let bin = cluster.path().join("standin-bin");
    fs::create_dir_all(&bin).unwrap();
    let record = cluster.path().join("calls.log");
    for prog in ["systemctl", "service"] {
        let p = bin.join(prog);
        fs::write(&p, format!("#!/bin/sh\necho \"{prog} $*\" >> {}\nexit 0\n", record.display())).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let allow = "\n[[allow.service]]\nname = \"cache\"\nbackend = \"systemd\"\nunit = \"redis-server\"\n\n[[allow.service]]\nname = \"web\"\nbackend = \"sysv\"\nunit = \"nginx\"\n";
    cluster.start_agent(
        &AgentSpec::new("host-1")
            .label("role", "app")
            .actions(&["service.restart", "service.status", "service.stop", "service.start"])
            .allow(allow)
            .env("PATH", &path),
    );
    cluster.wait_connected("host-1");
    let rb = cluster.path().join("svc.yaml");
    fs::write(
        &rb,
        "id: svc\ntitle: svc\nsteps:\n\
         - {id: a, action: service.restart, target: \"role=app\", with: {service: cache}}\n\
         - {id: b, needs: [a], action: service.status, target: \"role=app\", with: {service: cache}}\n\
         - {id: c, needs: [b], action: service.stop, target: \"role=app\", with: {service: web}}\n\
         - {id: d, needs: [c], action: service.start, target: \"role=app\", with: {service: web}}\n",
    )
    .unwrap();
    let run = cluster.start_run(rb.to_str().unwrap(), &[]);
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    assert_eq!(step(&v, "b")["outputs"]["state"], "running");
    let calls: Vec<String> = fs::read_to_string(&record).unwrap().lines().map(str::to_string).collect();
    assert_eq!(
        calls,
        vec![
            "systemctl stop redis-server",
            "systemctl start redis-server",
            "systemctl is-active --quiet redis-server",
            "systemctl is-active --quiet redis-server",
            "service nginx stop",
            "service nginx start",
            "service nginx status",
        ]
    );
}

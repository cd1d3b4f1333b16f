//! `compose.restart` and `compose.logs` through the agent against a real
//! Docker engine and docker-compose, with an image made without a registry
//! (`local/busybox:1`, built by scripts/test with `docker import`).

use ripcord_tests::{AgentSpec, Cluster, step};
use std::process::Command;

fn engine_ready() -> Result<(), String> {
    let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok(Command::new("docker").arg("info")) {
        return Err("no Docker engine answers `docker info`".into());
    }
    if !ok(Command::new("docker-compose").arg("version")) && !ok(Command::new("docker").args(["compose", "version"])) {
        return Err("neither `docker compose` nor `docker-compose` is installed".into());
    }
    if !ok(Command::new("docker").args(["image", "inspect", "local/busybox:1"])) {
        return Err("image local/busybox:1 is missing (scripts/test builds it)".into());
    }
    Ok(())
}

struct Project {
    name: String,
    file: std::path::PathBuf,
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["-p", &self.name, "-f"])
            .arg(&self.file)
            .args(["down", "-t", "1"])
            .output();
    }
}

#[test]
fn compose_restart_and_logs_through_the_agent() {
    if let Err(why) = engine_ready() {
        // Said loudly, not silently passed: this test needs the engine.
        eprintln!("SKIPPED compose_restart_and_logs_through_the_agent: {why}");
        return;
    }
    let mut cluster = Cluster::start(&[]);
    let name = format!("ripcord-test-{}", fastrand::u32(..));
    let file = cluster.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        "version: \"2.4\"\nservices:\n  web:\n    image: local/busybox:1\n    command: [\"sh\", \"-c\", \"echo web started; exec sleep 3600\"]\n    stop_signal: SIGKILL\n",
    )
    .unwrap();
    let project = Project { name: name.clone(), file: file.clone() };
    let up = Command::new("docker-compose").args(["-p", &name, "-f"]).arg(&file).args(["up", "-d"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    let allow = format!(
        "\n[[allow.service]]\nname = \"web\"\nbackend = \"compose\"\ncompose_file = \"{}\"\ncompose_project = \"{name}\"\ncompose_service = \"web\"\n",
        file.display()
    );
    cluster.start_agent(
        &AgentSpec::new("app-1").label("role", "app").actions(&["compose.restart", "compose.logs"]).allow(&allow),
    );
    cluster.wait_connected("app-1");
    let rb = cluster.path().join("compose.yaml");
    std::fs::write(
        &rb,
        format!(
            "id: compose\ntitle: compose\nsteps:\n  - {{id: restart, action: compose.restart, target: \"role=app\", with: {{project: {name}, service: web}}}}\n  - {{id: logs, needs: [restart], action: compose.logs, target: \"role=app\", with: {{project: {name}, service: web, tail: 10}}}}\n  - {{id: other, needs: [logs], action: compose.logs, target: \"role=app\", with: {{project: someone-else, service: web}}, on_failure: continue}}\n"
        ),
    )
    .unwrap();
    let run = cluster.start_run(rb.to_str().unwrap(), &[]);
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    let lines = step(&v, "logs")["outputs"]["lines"].as_array().unwrap().clone();
    let started = lines.iter().filter(|l| l.as_str().unwrap_or("").contains("web started")).count();
    assert!(started >= 2, "the restart started the container again: {lines:?}");
    assert!(step(&v, "other")["error"].as_str().unwrap().contains("is not allowed"));
    drop(project);
}

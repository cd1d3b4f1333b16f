//! Running a program from a fixed argv, streaming its output, with an
//! optional stdin and a timeout. A non-zero exit is an outcome, not an error.

use super::Output;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (or stdout), for error messages.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }
}

/// Reads `pipe` line by line, streaming each line to `out`; returns it all.
async fn collect<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>, out: &Output) -> String {
    let mut all = String::new();
    if let Some(p) = pipe {
        let mut lines = BufReader::new(p).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            out.line(&l);
            all.push_str(&l);
            all.push('\n');
        }
    }
    all
}

/// Runs `argv`, feeding `stdin`, streaming both outputs to `out`.
pub async fn run(argv: &[&str], stdin: Option<&str>, out: &Output, timeout: Duration) -> Result<Finished, String> {
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        let _ = w.write_all(input.as_bytes()).await;
        drop(w);
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let (o, e) = tokio::join!(collect(stdout, out), collect(stderr, out));
        let status = child.wait().await.map_err(|e| format!("waiting for {prog}: {e}"))?;
        Ok::<_, String>(Finished { code: status.code(), stdout: o, stderr: e })
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("{prog} did not finish within {timeout:?}"))?
}

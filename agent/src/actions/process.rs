//! Running a program from a fixed argv, streaming its output, with an
//! optional stdin and a timeout. A non-zero exit is an outcome, not an error.

use super::Output;
use std::io;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Why a program gave no exit status. A non-zero exit is not one of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("empty command")]
    Empty,
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("waiting for {program}: {source}")]
    Wait { program: String, source: io::Error },
    #[error("{program} did not finish within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
}

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
pub async fn run(argv: &[&str], stdin: Option<&str>, out: &Output, timeout: Duration) -> Result<Finished, Error> {
    let (prog, args) = argv.split_first().ok_or(Error::Empty)?;
    let program = || prog.to_string();
    let mut child = Command::new(prog)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn { program: program(), source })?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        let _ = w.write_all(input.as_bytes()).await;
        drop(w);
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let (o, e) = tokio::join!(collect(stdout, out), collect(stderr, out));
        let status = child.wait().await.map_err(|source| Error::Wait { program: program(), source })?;
        Ok::<_, Error>(Finished { code: status.code(), stdout: o, stderr: e })
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| Error::Timeout { program: program(), timeout })?
}

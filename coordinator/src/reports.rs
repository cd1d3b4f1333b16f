//! The report each run leaves behind: when a run finishes, the coordinator
//! writes its report (the incident report of a recovery, the rehearsal
//! report of a drill) under `DATA_DIR/reports/` as Markdown, HTML and JSON,
//! and posts a short Markdown summary to the run's webhook (its `notify:`
//! section's, else its `webhook` param), with `RUN/report` as the
//! idempotency key.
//!
//! A marker file (`RUN.posted`) says it is done. On start, every finished
//! run without one is published again, so a crash between a run's end and
//! its report loses nothing; a receiver that honours the idempotency key
//! sees one summary.

use crate::driver::Runs;
use crate::integrations::http::Http;
use crate::store::Store;
use ripcord_report::{Format, Report};
use std::path::{Path, PathBuf};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// The param a runbook without a `notify:` section names its webhook in.
const WEBHOOK_PARAM: &str = "webhook";

/// Where reports go, and how the summary is sent.
#[derive(Clone)]
pub struct Reports {
    dir: PathBuf,
    store: Store,
    http: Http,
}

/// Why a report could not be published.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("no run {0}")]
    NoRun(String),
    #[error("run {0}: its stored runbook no longer loads")]
    Runbook(String),
    #[error("cannot write report {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    /// The webhook did not take the summary (the report files are written).
    #[error("summary not delivered: {0}")]
    Webhook(String),
}

impl Reports {
    pub fn new(dir: PathBuf, store: Store, http: Http) -> Self {
        Self { dir, store, http }
    }

    /// The report file of `run` in `format`.
    pub fn path(&self, run: &str, format: Format) -> PathBuf {
        let ext = match format {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Json => "json",
        };
        self.dir.join(format!("{run}.{ext}"))
    }

    fn marker(&self, run: &str) -> PathBuf {
        self.dir.join(format!("{run}.posted"))
    }

    /// Publishes every finished run that has not been, then each run as it
    /// finishes, until the driver stops.
    pub async fn serve(self, runs: Runs) {
        let mut finished = runs.subscribe_finished();
        self.catch_up();
        loop {
            match finished.recv().await {
                Ok(id) => self.publish_logged(&id).await,
                // Some went by unseen: look at them all.
                Err(RecvError::Lagged(_)) => self.catch_up(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn catch_up(&self) {
        let runs = match self.store.runs() {
            Ok(r) => r,
            Err(e) => return warn!(error = %e, "cannot list runs for their reports"),
        };
        for rec in runs.into_iter().filter(|r| r.state.status.is_finished()) {
            let id = rec.state.id;
            if !self.marker(&id).exists() {
                let me = self.clone();
                tokio::spawn(async move { me.publish_logged(&id).await });
            }
        }
    }

    async fn publish_logged(&self, id: &str) {
        match self.publish(id).await {
            Ok(Some(path)) => info!(run = %id, report = %path.display(), "report written, summary posted"),
            Ok(None) => {}
            Err(e) => warn!(run = %id, error = %e, "run report"),
        }
    }

    /// Writes the run's report files and posts its summary, unless done
    /// before. Returns the Markdown file's path when it did the work.
    pub async fn publish(&self, id: &str) -> Result<Option<PathBuf>, Error> {
        if self.marker(id).exists() {
            return Ok(None);
        }
        let (report, webhook) = self.report(id)?;
        for format in [Format::Markdown, Format::Html, Format::Json] {
            write(&self.path(id, format), format.render(&report).as_bytes())?;
        }
        if let Some(url) = webhook {
            let text = ripcord_report::summary(&report);
            self.http.post_text(&url, &format!("{id}/report"), &text, None).await.map_err(Error::Webhook)?;
        }
        write(&self.marker(id), b"")?;
        Ok(Some(self.path(id, Format::Markdown)))
    }

    /// The run's report and the webhook its summary goes to.
    fn report(&self, id: &str) -> Result<(Report, Option<String>), Error> {
        let rec = self.store.run(id)?.ok_or_else(|| Error::NoRun(id.to_string()))?;
        let rb = ripcord_engine::check::check(&rec.runbook_text).map_err(|_| Error::Runbook(id.to_string()))?;
        let events = self.store.events(id)?;
        let now = rec.state.finished_at.unwrap_or_else(ripcord_pki::clock::now_ms);
        let view = crate::view::run_view(&rb, &rec, &events, now);
        // The runbook's `notify:` webhook, else its `webhook` param (every
        // built-in runbook has one, for its escalation messages).
        let webhook = rec.state.notify_webhook.clone().or_else(|| {
            rec.state.params.get(WEBHOOK_PARAM).and_then(|v| v.as_str()).filter(|u| !u.is_empty()).map(str::to_string)
        });
        let mut report = Report::of(&view);
        // A part's child may have gone on (its drill cleanup) after the
        // step took its outputs: say how it ended, as stored now.
        for part in &mut report.parts {
            if let Some(child) = part.run_id.as_deref().and_then(|c| self.store.run(c).ok().flatten()) {
                part.child_status = Some(child.state.status.to_string());
            }
        }
        Ok((report, webhook))
    }
}

fn write(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let failed = |reason: String| Error::Write { path: path.to_path_buf(), reason };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    }
    ripcord_pki::files::write_atomic(path, contents, 0o640).map_err(|e| failed(e.to_string()))
}

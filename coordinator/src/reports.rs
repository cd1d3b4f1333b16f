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
//! sees one summary. Runs that ended more than a day before get their
//! files but no summary.

use crate::driver::Runs;
use crate::integrations::http::Http;
use crate::store::Store;
use ripcord_report::{Format, Report};
use std::path::{Path, PathBuf};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// How long after its end a run's summary is still worth posting.
pub const STALE_MS: i64 = 24 * 3600 * 1000;

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
    Webhook(#[from] crate::integrations::http::WebhookError),
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
        self.catch_up().await;
        loop {
            match finished.recv().await {
                Ok(id) => self.publish_logged(&id, true).await,
                // Some went by unseen: look at them all.
                Err(RecvError::Lagged(_)) => self.catch_up().await,
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Finished runs without a report, one after the other. Their summary
    /// is posted only if they ended within [`STALE_MS`]: a coordinator
    /// upgraded onto a store of old runs writes their reports but does not
    /// flood the channel with last year's runs.
    async fn catch_up(&self) {
        let runs = match self.store.runs() {
            Ok(r) => r,
            Err(e) => return warn!(error = %e, "cannot list runs for their reports"),
        };
        let now = ripcord_pki::clock::now_ms();
        for rec in runs.into_iter().filter(|r| r.state.status.is_finished()) {
            if !self.marker(&rec.state.id).exists() {
                let recent = rec.state.finished_at.is_some_and(|at| now - at <= STALE_MS);
                self.publish_logged(&rec.state.id, recent).await;
            }
        }
    }

    async fn publish_logged(&self, id: &str, post: bool) {
        match self.publish(id, post).await {
            Ok(Some(path)) => info!(run = %id, report = %path.display(), posted = post, "report written"),
            Ok(None) => {}
            Err(e) => warn!(run = %id, error = %e, "run report"),
        }
    }

    /// Writes the run's report files and (with `post`) posts its summary,
    /// unless done before. Returns the Markdown file's path when it did
    /// the work.
    pub async fn publish(&self, id: &str, post: bool) -> Result<Option<PathBuf>, Error> {
        if self.marker(id).exists() {
            return Ok(None);
        }
        let (report, webhook) = self.report(id)?;
        for format in [Format::Markdown, Format::Html, Format::Json] {
            write(&self.path(id, format), format.render(&report).as_bytes())?;
        }
        if let Some(url) = webhook.filter(|_| post) {
            let text = ripcord_report::summary(&report);
            self.http.post_text(&url, &format!("{id}/report"), &text, None).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Commit, RunRecord};
    use ripcord_engine::run::{self, Actor, Mode, NewRun, RunStatus};
    use ripcord_engine::value::Value;

    const RUNBOOK: &str =
        "id: t\ntitle: t\nparams:\n  webhook: {type: string, secret: true}\nsteps:\n  - {id: a, action: noop}\n";

    /// A run that ended at `finished_at`, its webhook a closed loopback
    /// port: a summary posted to it fails.
    fn finished(store: &Store, id: &str, finished_at: i64) {
        let rb = ripcord_engine::check::check(RUNBOOK).unwrap();
        let params = [("webhook".to_string(), Value::str("http://127.0.0.1:1/hook"))].into();
        let new = NewRun { id: id.into(), mode: Mode::Recovery, params, incident_at: None };
        let mut state = run::start(&rb, new, finished_at - 1000).unwrap().state;
        (state.status, state.finished_at) = (RunStatus::Succeeded, Some(finished_at));
        let record =
            RunRecord::new("t.yaml".into(), RUNBOOK.into(), state, Actor { name: "a".into(), role: "operator".into() });
        store.commit(&[Commit { record: &record, events: &[], new_effects: &[], acked: &[] }]).unwrap();
    }

    #[tokio::test]
    async fn catching_up_writes_every_report_but_posts_only_recent_ones() {
        ripcord_pki::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::memory();
        let now = ripcord_pki::clock::now_ms();
        finished(&store, "old", now - 2 * STALE_MS);
        finished(&store, "new", now - 1000);
        let reports = Reports::new(dir.path().join("reports"), store, Http::new());
        reports.catch_up().await;
        // The old one: files and its mark, no post tried (it would have failed).
        for format in [Format::Markdown, Format::Html, Format::Json] {
            assert!(reports.path("old", format).exists(), "{format:?}");
        }
        assert!(reports.marker("old").exists());
        // The recent one: its post was tried, failed, and so it is not marked
        // done (the next start tries again); its files are written.
        assert!(reports.path("new", Format::Json).exists());
        assert!(!reports.marker("new").exists());
        let again = reports.publish("new", true).await;
        assert!(matches!(again, Err(Error::Webhook(_))), "{again:?}");
        assert!(matches!(reports.publish("old", true).await, Ok(None)), "done once is done");
    }
}

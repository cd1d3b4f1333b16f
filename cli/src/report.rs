//! `ripcord report RUN`: the run's incident or rehearsal report
//! (`ripcord_report`), built from the same view `ripcord show` reads.

use crate::{Failure, get_view};
use anyhow::Context;
use ripcord_cli::{client, settings};
use ripcord_report::{Format, Report};
use std::path::PathBuf;
use std::process::ExitCode;

/// Renders the report of `run` in `format`, to `out` (written atomically)
/// or to stdout.
pub async fn report(
    s: settings::Settings,
    run: String,
    format: Format,
    out: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let view = get_view(&mut c, &run).await?;
    let report = Report::of(&view);
    let mut text = format.render(&report);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match out {
        None => print!("{text}"),
        Some(path) => {
            ripcord_pki::files::write_atomic(&path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write the report of run {}", view.run_id))?;
            eprintln!("wrote {} of run {} to {}", report.title, view.run_id, path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

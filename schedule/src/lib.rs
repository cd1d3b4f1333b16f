//! Drill schedules as code: the `drills.yaml` model and its loader
//! ([`load`]), the occurrences of each drill's RFC 5545 recurrence rule in
//! its IANA time zone ([`Drill::occurrences_after`], [`Drill::next_due`]),
//! and the run id each occurrence gets ([`occurrence_id`]).
//!
//! Pure computation, like the engine: no clock is read and nothing is
//! read or written; `now` comes in as [`Millis`]. The `rrule` crate does the
//! calendar (daylight saving, month ends, "first Wednesday"), on chrono and
//! chrono-tz's copy of the IANA database.
//!
//! ```yaml
//! drills:
//!   - name: q1-mongo-pitr
//!     runbook: mongo-pitr            # a built-in id, or a file (ending in .yaml)
//!     environment: staging
//!     params: {project_id: staging-project}
//!     owners: [DevOps]
//!     schedule:
//!       rrule: FREQ=YEARLY;BYMONTH=3;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0
//!       timezone: Asia/Seoul
//!     remind_before: 7d
//!     grace: 2h
//! ```

mod load;
mod occurrence;

pub use load::{DEFAULT_GRACE, DEFAULT_REMIND_BEFORE, DEFAULT_START, Drill, Drills, RunbookRef, Schedule, load};
pub use occurrence::{Occurrence, occurrence_id};
pub use ripcord_engine::clock::Millis;
pub use ripcord_engine::runbook::Diagnostic;

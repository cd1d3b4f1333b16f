//! Drills end to end: the guard, a staging drill that cleans up after itself, the scheduler through the CLI.

//! Shared by the integration tests.

use std::sync::{Mutex, MutexGuard};

/// tch's random generator is global to the process, and the tests of one binary run on parallel
/// threads: a test that seeds it and draws from it (training, initialisation, shuffling) holds
/// this lock for its whole body, so that it sees the numbers its seed gives and its result is
/// the same on every run.
static SEEDED: Mutex<()> = Mutex::new(());

/// Take the seeded-generator lock (a test that panicked while holding it does not poison it for
/// the others).
pub fn seeded() -> MutexGuard<'static, ()> {
    SEEDED.lock().unwrap_or_else(|e| e.into_inner())
}

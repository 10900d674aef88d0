//! bitspike host library: datasets, quantized networks and their quantizers, quantization-aware
//! training, integer export and evaluation, reports, and built-in random-weight architectures.
//! The integer executor is the firmware runtime `bitspike-rt` compiled for the host (the golden
//! rule of docs/design.md).

pub mod boards;
pub mod builtin;
pub mod config;
pub mod csource;
pub mod data;
pub mod device_costs;
pub mod eval;
pub mod export;
pub mod figures;
pub mod methods;
pub mod mps;
pub use mps::board as mps_board;
pub use mps::report as mps_report;
pub mod net;
pub mod qac;
pub use qac::report as qac_report;
pub use qac::snn;
pub mod quant;
pub mod report;
pub mod slots;
pub mod spec;
pub mod ssql;
pub use ssql::eval as ssql_eval;
pub use ssql::report as ssql_report;
pub mod train;

/// For tests: tch's random generator is global to the process and tests run on parallel
/// threads, so a test that seeds the generator and draws from it (training, initialisation,
/// shuffling) holds this lock for its whole body; it then sees the numbers its seed gives
/// whatever else runs (a test that panicked while holding it does not poison it for the
/// others). The unit tests and the integration tests (`host/tests/`) share it.
#[doc(hidden)]
pub fn seeded() -> std::sync::MutexGuard<'static, ()> {
    static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SEEDED.lock().unwrap_or_else(|e| e.into_inner())
}

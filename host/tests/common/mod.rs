//! Shared by the integration tests.

/// The seeded-generator lock every test that draws from tch's generator holds.
pub use bitspike::seeded;

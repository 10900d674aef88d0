//! Cross-crate test support for bitspike: independent oracles, deterministic model builders, a
//! model generator for fuzzing and property tests, and the comparison of every kernel set.
//!
//! The oracles never call the runtime's kernels; they recompute every layer from the
//! definitions in plain wide-integer arithmetic so that a kernel bug cannot hide in shared code.
//! [`sets`] runs the runtime's kernels against them.

pub mod generate;
pub mod models;
pub mod oracle;
pub mod sets;

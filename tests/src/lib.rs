//! Cross-crate test support for bitspike: independent oracles and deterministic model builders.
//!
//! Nothing here calls the runtime's kernels; the oracles recompute every layer from the
//! definitions in plain wide-integer arithmetic so that a kernel bug cannot hide in shared code.

pub mod models;
pub mod oracle;

//! bitspike host library: model reports and the built-in architectures. The trainer (libtorch
//! through `tch`) joins this crate with the trainer issue; the integer executor is the firmware
//! runtime `bitspike-rt`, compiled for the host (DESIGN.md, the golden rule).

pub mod builtin;
pub mod report;

//! bitspike host library: datasets, quantized networks and their quantizers, quantization-aware
//! training, integer export and evaluation, reports, and built-in random-weight architectures.
//! The integer executor is the firmware runtime `bitspike-rt` compiled for the host (DESIGN.md,
//! the golden rule).

pub mod boards;
pub mod builtin;
pub mod config;
pub mod data;
pub mod eval;
pub mod export;
pub mod mps;
pub mod mps_report;
pub mod net;
pub mod qac;
pub mod qac_report;
pub mod quant;
pub mod report;
pub mod snn;
pub mod ssql;
pub mod ssql_eval;
pub mod train;

//! bitspike-core: what host and device share.
//!
//! * [`layer`]: the layer kinds, their geometry and shape rules;
//! * [`band`]: row-local layers a few output rows at a time, and in-place execution;
//! * [`quant`]: the integer semantics (Q31 multiply, rounding shift, requantize, clamp);
//! * [`kernel`]: which kernel runs each layer, and the scratch it needs;
//! * [`pack`]: packing of 2..=8 bit weights;
//! * [`cost`]: MACs, BOPs (One-Shot MPS eq. S13), RAM (eq. S14), synaptic operations, energy;
//! * [`format`](mod@format): the model file (reader `no_std` and zero-copy; writer behind `std`);
//! * [`snn`]: the integer integrate-and-fire neuron and temporal alignment (the spiking contract);
//! * [`vectors`]: golden vector files (inputs with the outputs the host computed);
//! * [`def`] and [`plan`] (`std`): owned model definitions and the arena planner the exporter uses.
//!
//! `no_std` unless the `std` feature is on; `defmt` derives `defmt::Format` on the public types.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod band;
pub mod cost;
#[cfg(feature = "std")]
pub mod def;
pub mod format;
pub mod kernel;
pub mod layer;
pub mod pack;
#[cfg(feature = "std")]
pub mod plan;
pub mod quant;
pub mod snn;
pub mod vectors;

/// The unit tests' random numbers: a 64-bit xorshift stream from `seed`.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

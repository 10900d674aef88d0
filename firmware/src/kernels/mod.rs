//! Kernels: one function per layer kind.
//!
//! [`reference`](mod@reference) holds the plain, obviously right versions that define what every
//! other kernel must compute bit for bit (CONVENTIONS 4). [`optimized`] holds faster convolution
//! and dense kernels, tested bit-exact against them; the runtime uses the optimized ones unless
//! the `reference-kernels` feature is on (chosen at compile time).
//!
//! Every kernel takes slices whose lengths the caller has checked against the layer geometry
//! (the runtime checks them once per layer before the call); kernels then index in bounds by
//! construction.

pub mod optimized;
pub mod reference;

use bitspike_core::format::I32s;
use bitspike_core::quant::requantize;
use bitspike_core::snn;

/// A weighted layer's parameters as stored in the model file.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// Weights packed at `bits` (see `bitspike_core::pack`).
    pub packed: &'a [u8],
    /// Weight bit width, 2..=8.
    pub bits: u8,
    /// i32 bias per output channel, in accumulator units.
    pub bias: Option<I32s<'a>>,
}

/// How a layer turns its i32 accumulators into output bytes.
#[derive(Clone, Copy, Debug)]
pub enum Stage<'a> {
    /// Per-channel requantization to codes `0..=levels` (DESIGN.md, the integer contract).
    Requantize {
        /// Q31 multiplier per output channel.
        multipliers: I32s<'a>,
        /// Shift per output channel (raw i8 bytes).
        shifts: &'a [u8],
        /// Offset added after scaling.
        offset: i32,
        /// Output level count.
        levels: u8,
    },
    /// Raw i32 accumulators, little-endian, four bytes per element.
    Raw,
    /// Soft-reset integrate-and-fire neurons (the spiking contract, `bitspike_core::snn`): the
    /// accumulator of spike counts, shifted into membrane units plus the bias, is the constant
    /// input current of each of `timesteps` steps (averaging alignment); the output code is the
    /// number of spikes, `0..=timesteps`.
    Fire {
        /// Threshold per output channel, membrane units.
        threshold: I32s<'a>,
        /// Initial potential per output channel, membrane units.
        v0: I32s<'a>,
        /// Bias per output channel, membrane units.
        bias: Option<I32s<'a>>,
        /// Membrane shift.
        shift: u8,
        /// Timesteps.
        timesteps: u16,
    },
}

impl Stage<'_> {
    /// Bytes per output element.
    pub const fn elem_size(&self) -> usize {
        match self {
            Self::Requantize { .. } | Self::Fire { .. } => 1,
            Self::Raw => 4,
        }
    }

    /// Store output element `idx` of channel `c` from accumulator `acc`.
    #[inline]
    pub fn store(&self, out: &mut [u8], idx: usize, c: usize, acc: i32) {
        match *self {
            Self::Requantize {
                multipliers,
                shifts,
                offset,
                levels,
            } => {
                let s = shifts.get(c).copied().unwrap_or(0) as i8;
                if let Some(o) = out.get_mut(idx) {
                    *o = requantize(acc, multipliers.get(c), s, offset, levels);
                }
            }
            Self::Fire {
                threshold,
                v0,
                bias,
                shift,
                timesteps,
            } => {
                let i = snn::current(acc, shift, bias.map_or(0, |b| b.get(c)));
                let n = snn::fire(i, v0.get(c), threshold.get(c), timesteps);
                if let Some(o) = out.get_mut(idx) {
                    *o = n.min(u8::MAX as u16) as u8;
                }
            }
            Self::Raw => {
                let at = idx.wrapping_mul(4);
                if let Some(o) = out.get_mut(at..at.wrapping_add(4)) {
                    o.copy_from_slice(&acc.to_le_bytes());
                }
            }
        }
    }
}

//! Kernels: one function per layer kind.
//!
//! [`reference`](mod@reference) holds the plain, obviously right versions that define what every
//! other kernel must compute bit for bit (docs/conventions.md, 4). [`optimized`] holds faster conv
//! and dense kernels, tested bit-exact against them; the runtime uses the optimized ones unless
//! the `reference-kernels` feature is on (chosen at compile time).
//!
//! Every kernel takes slices whose lengths the caller has checked against the layer geometry
//! (the runtime checks them once per layer before the call); kernels then index in bounds by
//! construction.

#[cfg(bitspike_dsp)]
mod dsp;
pub mod gather;
pub mod narrow;
pub mod optimized;
pub mod packed;
pub mod packed_dense;
pub mod packed_depthwise;
pub mod pairs;
pub mod pool;
pub mod reference;
#[cfg(any(bitspike_v6m, bitspike_v7m))]
mod row_plan;
pub mod scatter;
#[cfg(bitspike_v6m)]
mod v6m;
#[cfg(bitspike_v7m)]
mod v7m;
mod words;

use bitspike_core::format::I32s;
use bitspike_core::layer::Geometry;
use bitspike_core::quant::{requantize, Requantizer};
use bitspike_core::snn;

use crate::ops::Ops;

/// An implementation of the weighted layers (convolution and dense). Every implementation
/// computes what [`Reference`] computes, bit for bit; one that cannot run a layer (too little
/// scratch, a geometry outside its preconditions) writes nothing and returns `false`, and the
/// runtime runs the reference kernel instead. The test suite runs every implementation through
/// the same generic checks.
pub trait WeightedKernel {
    /// Name for reports and test failures.
    const NAME: &'static str;

    /// Scratch bytes the kernel needs for layer `g` with `bits`-bit weights (what the model
    /// file gives a layer that may run on it).
    fn scratch(g: &Geometry, bits: u8) -> u32 {
        bitspike_core::kernel::scratch_bytes(g, bits)
    }

    /// 2-D convolution (the contract of [`reference::conv2d`]).
    #[allow(clippy::too_many_arguments)]
    fn conv2d(
        g: &Geometry,
        w: &Weights<'_>,
        stage: &Stage<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
        ops: &mut Ops,
    ) -> bool;

    /// Fully connected layer (the contract of [`reference::dense`]).
    #[allow(clippy::too_many_arguments)]
    fn dense(
        g: &Geometry,
        w: &Weights<'_>,
        stage: &Stage<'_>,
        input: &[u8],
        output: &mut [u8],
        scratch: &mut [u8],
        ops: &mut Ops,
    ) -> bool;
}

/// The reference kernels ([`mod@reference`]); they need no scratch and always run.
pub struct Reference;
/// The row kernels ([`optimized`]).
pub struct Row;
/// The gather convolution ([`gather`]); dense layers decline (they run on [`Row`]).
pub struct Gather;
/// The narrow convolution ([`narrow`]) for few input channels; other layers decline.
pub struct Narrow;
/// The event-driven row kernels for spike counts ([`optimized::conv2d_events`]): every input
/// visited, zero codes skipped (what [`Scatter`] falls back to when its scratch is short).
pub struct Events;
/// The event-driven scatter kernels ([`scatter`]): each nonzero input adds its weights to the
/// outputs it reaches; convolutions with groups decline.
pub struct Scatter;
/// The depthwise convolution ([`optimized::depthwise`]); other layers decline.
pub struct Depthwise;
/// The depthwise convolution four channels at a time
/// ([`optimized::depthwise_words`], what [`Depthwise`] runs on the DSP); other layers decline.
pub struct DepthwiseWords;
/// The depthwise convolution one product at a time, all channels of a pixel per kernel position
/// ([`optimized::depthwise_channels`], what [`Depthwise`] runs elsewhere and for the layers
/// [`DepthwiseWords`] declines); other layers decline.
pub struct DepthwiseChannels;

/// The packed dense kernel ([`packed_dense`]) for 4- and 2-bit weights; convolutions and other
/// dense layers decline.
pub struct PackedDense;

/// The layers a kernel does not take (see [`WeightedKernel`]): it declines, having written
/// nothing.
#[allow(clippy::too_many_arguments)]
fn decline(
    _: &Geometry,
    _: &Weights<'_>,
    _: &Stage<'_>,
    _: &[u8],
    _: &mut [u8],
    _: &mut [u8],
    _: &mut Ops,
) -> bool {
    false
}

macro_rules! weighted {
    ($t:ty, $name:literal, $conv:expr, $dense:expr) => {
        weighted!(
            $t,
            $name,
            $conv,
            $dense,
            bitspike_core::kernel::scratch_bytes
        );
    };
    ($t:ty, $name:literal, $conv:expr, $dense:expr, $scratch:expr) => {
        impl WeightedKernel for $t {
            const NAME: &'static str = $name;
            fn scratch(g: &Geometry, bits: u8) -> u32 {
                $scratch(g, bits)
            }
            #[inline]
            fn conv2d(
                g: &Geometry,
                w: &Weights<'_>,
                stage: &Stage<'_>,
                input: &[u8],
                output: &mut [u8],
                scratch: &mut [u8],
                ops: &mut Ops,
            ) -> bool {
                $conv(g, w, stage, input, output, scratch, ops)
            }
            #[inline]
            fn dense(
                g: &Geometry,
                w: &Weights<'_>,
                stage: &Stage<'_>,
                input: &[u8],
                output: &mut [u8],
                scratch: &mut [u8],
                ops: &mut Ops,
            ) -> bool {
                $dense(g, w, stage, input, output, scratch, ops)
            }
        }
    };
}

weighted!(
    Reference,
    "reference",
    |g, w, s, i, o, _: &mut [u8], ops| {
        reference::conv2d(g, w, s, i, o, ops);
        true
    },
    |g, w, s, i, o, _: &mut [u8], ops| {
        reference::dense(g, w, s, i, o, ops);
        true
    }
);
weighted!(Row, "row", optimized::conv2d, optimized::dense);
weighted!(Gather, "gather", gather::conv2d, decline);
weighted!(PackedDense, "packed-dense", decline, packed_dense::dense);
weighted!(Narrow, "narrow", narrow::conv2d, decline);
weighted!(Depthwise, "depthwise", optimized::depthwise, decline);
weighted!(
    DepthwiseWords,
    "depthwise-words",
    optimized::depthwise_words,
    decline
);
weighted!(
    DepthwiseChannels,
    "depthwise-channels",
    optimized::depthwise_channels,
    decline
);
weighted!(
    Events,
    "events",
    optimized::conv2d_events,
    optimized::dense_events
);

weighted!(
    Scatter,
    "scatter",
    scatter::conv2d,
    scatter::dense,
    bitspike_core::kernel::events_scratch_bytes
);

/// Unpack `out.len()` weights of a `bits`-bit stream from index `first`, as 8-bit bytes (i8
/// values); the same values as `bitspike_core::pack::unpack_one`, a 32-bit window per weight
/// instead of two byte reads. An invalid width reads as 8 bits, as there.
pub fn unpack_row(packed: &[u8], bits: u8, first: usize, out: &mut [u8]) {
    let bits = if bitspike_core::pack::valid_bits(bits) {
        bits as usize
    } else {
        8
    };
    let mask = (1u32 << bits) - 1;
    let shift = 32 - bits as u32;
    let mut b = first.wrapping_mul(bits);
    for o in out.iter_mut() {
        let field = (rd_lenient(packed, b / 8) >> (b % 8)) & mask;
        *o = (((field << shift) as i32) >> shift) as i8 as u8;
        b = b.wrapping_add(bits);
    }
}

/// Little-endian u32 at byte `at`, missing bytes past the end read as 0.
#[inline(always)]
fn rd_lenient(b: &[u8], at: usize) -> u32 {
    match b.get(at..at.saturating_add(4)) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => {
            let mut v = 0u32;
            for k in 0..4 {
                v |= (b.get(at.wrapping_add(k)).copied().unwrap_or(0) as u32) << (8 * k);
            }
            v
        }
    }
}

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
    /// Per-channel requantization to codes `0..=levels` (docs/design.md, the integer contract).
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

impl<'a> Stage<'a> {
    /// Bytes per output element.
    pub const fn elem_size(&self) -> usize {
        match self {
            Self::Requantize { .. } | Self::Fire { .. } => 1,
            Self::Raw => 4,
        }
    }

    /// Channel `c`'s output step, prepared once for the many outputs of that channel.
    #[inline]
    pub fn channel(&self, c: usize) -> ChannelStage<'_, 'a> {
        if let Self::Requantize {
            multipliers,
            shifts,
            offset,
            levels,
        } = *self
        {
            let s = shifts.get(c).copied().unwrap_or(0) as i8;
            if let Some(r) = Requantizer::new(multipliers.get(c), s, offset, levels) {
                return ChannelStage::Requantize(r);
            }
        }
        if let Self::Fire {
            threshold,
            v0,
            bias,
            shift,
            timesteps,
        } = *self
        {
            let b = bias.map_or(0, |b| b.get(c));
            return ChannelStage::Fire(snn::Neuron::new(
                threshold.get(c),
                v0.get(c),
                b,
                shift,
                timesteps,
            ));
        }
        ChannelStage::Other(self, c)
    }

    /// Store output element `idx` of channel `c` from accumulator `acc`. Out of line: the fast
    /// kernels store through [`ChannelStage`] and reach this only for stages they do not
    /// prepare; inlined everywhere it cost about 7 KB of flash on Cortex-M4 for at most 1.4 %
    /// fewer instructions on the bench models.
    #[inline(never)]
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

/// A spiking channel's output (out of line: it keeps the requantizing kernels' loops small).
#[inline(never)]
fn fire_store(n: &snn::Neuron, out: &mut [u8], idx: usize, acc: i32) {
    if let Some(o) = out.get_mut(idx) {
        *o = n.count(acc);
    }
}

/// One channel's output step (see [`Stage::channel`]).
#[derive(Clone, Copy, Debug)]
pub enum ChannelStage<'s, 'a> {
    /// Requantization with the channel's parameters read once.
    Requantize(Requantizer),
    /// Integrate-and-fire neurons with the channel's parameters read once, the count in closed
    /// form where it is exact ([`snn::Neuron`]).
    Fire(snn::Neuron),
    /// Any other stage, through [`Stage::store`].
    Other(&'s Stage<'a>, usize),
}

impl ChannelStage<'_, '_> {
    /// Store output element `idx` from accumulator `acc`; the same bytes as [`Stage::store`]
    /// (for a spiking stage, within the model file reader's membrane bound, which every
    /// loaded model meets: see [`snn::Neuron`]).
    #[inline(always)]
    pub fn store(&self, out: &mut [u8], idx: usize, acc: i32) {
        match self {
            Self::Requantize(r) => {
                if let Some(o) = out.get_mut(idx) {
                    *o = r.apply(acc);
                }
            }
            Self::Fire(n) => fire_store(n, out, idx, acc),
            Self::Other(stage, c) => stage.store(out, idx, *c, acc),
        }
    }
}

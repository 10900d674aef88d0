//! The scratch a layer's kernels need, and the policy that bounds what a model file grants: a
//! fast kernel never takes many times the RAM of the layer it speeds up.

use super::{
    depthwise_layout, depthwise_packable, fan_in, fast_kernel, gather_layout, narrow,
    narrow_layout, packed_dense_layout, packed_depthwise_layout, Isa, Kernel, PACKED_MAX_CODE,
    ROW_CHUNK,
};
use crate::layer::{Geometry, LayerKind};

/// Scratch bytes layer `g` with `bits`-bit weights needs for its fastest kernel on any target
/// (0 when no kernel for it needs any), including 3 bytes for aligning the start to 4: the
/// gather kernel's [`gather_layout`] for convolutions with one group (the row kernel that runs
/// them without the DSP extension uses part of it), or the [`narrow_layout`] when it is larger
/// and the layer is [`narrow`]; otherwise the row kernel's one output channel of weights at 8
/// bits (dense layers unpack rows longer than [`ROW_CHUNK`] in chunks), or the
/// [`packed_dense_layout`] when it is larger.
pub const fn scratch_bytes(g: &Geometry, bits: u8) -> u32 {
    let n = match fast_kernel(g, Isa::Dsp) {
        Some(Kernel::Gather) if narrow(g) => {
            let (a, b) = (gather_layout(g, bits).bytes, narrow_layout(g).bytes);
            if a > b {
                a
            } else {
                b
            }
        }
        Some(Kernel::Gather) => gather_layout(g, bits).bytes,
        // Room for the packed depthwise kernel too where its fields hold the sums over inputs
        // of 16 levels (3x3 windows of weights up to 5 bits).
        Some(Kernel::Depthwise) if depthwise_packable(g, bits, PACKED_MAX_CODE) => {
            let (a, b) = (depthwise_layout(g).bytes, packed_depthwise_layout(g).bytes);
            if a > b {
                a
            } else {
                b
            }
        }
        Some(Kernel::Depthwise) => depthwise_layout(g).bytes,
        Some(Kernel::Row) => {
            let row = row_layout(g);
            let packed = packed_dense_layout(g, bits);
            if packed > row {
                packed
            } else {
                row
            }
        }
        _ => return 0,
    };
    with_align(n)
}

/// How many times a layer's own bytes (its packed weights, its input and output tensors) a
/// model file may give it as scratch beyond [`SCRATCH_FREE`] ([`granted_scratch`]). A kernel
/// whose layout is larger costs more RAM than the layer it speeds up: a convolution with one
/// output channel and a fan-in of 72 072 (a 7x9 kernel over 1 144 channels) needs 1.3 MB of
/// lanes and offsets for the gather kernel, for 18 kB of 2-bit weights. The trained networks
/// of this repository give their kernels at most 3 times their layers' bytes.
pub const SCRATCH_MAX_SHARE: u64 = 4;

/// Scratch bytes a model file may give any layer whatever its size ([`granted_scratch`]): a
/// small layer's fast kernel may take many times the layer's bytes and still little RAM.
pub const SCRATCH_FREE: u64 = 8192;

/// The most scratch bytes an exporter gives a layer whose own bytes are `own`: the larger of
/// [`SCRATCH_FREE`] and [`SCRATCH_MAX_SHARE`] times `own`.
pub const fn scratch_cap(own: u64) -> u64 {
    let share = own.saturating_mul(SCRATCH_MAX_SHARE);
    if share > SCRATCH_FREE {
        share
    } else {
        SCRATCH_FREE
    }
}

/// The scratch bytes an exporter gives layer `g` with `bits`-bit weights whose own bytes (packed
/// weights, input and output tensors) are `own`: the fastest kernels' ([`scratch_bytes`]) when
/// that is at most [`scratch_cap`]`(own)`; otherwise the first of these that is,
/// each a kernel [`choose`](super::choose) then picks: the fast kernel's base layout without the narrow, packed
/// depthwise or packed dense kernels' room (the gather, depthwise or row kernel), the row
/// kernel's one channel of weights at 8 bits for a convolution, or none (the reference kernel).
pub const fn granted_scratch(g: &Geometry, bits: u8, own: u64) -> u32 {
    let cap = scratch_cap(own);
    let fast = scratch_bytes(g, bits);
    if fast as u64 <= cap {
        return fast;
    }
    let base = match fast_kernel(g, Isa::Dsp) {
        Some(Kernel::Gather) => with_align(gather_layout(g, bits).bytes),
        Some(Kernel::Depthwise) => with_align(depthwise_layout(g).bytes),
        Some(Kernel::Row) => with_align(row_layout(g)),
        _ => 0,
    };
    if base as u64 <= cap {
        return base;
    }
    let row = with_align(row_layout(g));
    if matches!(g.kind, LayerKind::Conv2d) && row as u64 <= cap {
        return row;
    }
    0
}

/// Scratch bytes of the row kernel (without the 3 aligning bytes): one output channel's weights
/// at 8 bits, rounded up to a word (dense layers unpack rows longer than [`ROW_CHUNK`] in
/// chunks).
pub(super) const fn row_layout(g: &Geometry) -> usize {
    let fan = fan_in(g);
    let fan = if matches!(g.kind, LayerKind::Dense) && fan > ROW_CHUNK {
        ROW_CHUNK
    } else {
        fan
    };
    fan.div_ceil(4) * 4
}

/// A layout's bytes plus the 3 that align its start to 4, as a file's scratch field (saturated).
pub(super) const fn with_align(bytes: usize) -> u32 {
    let n = bytes.saturating_add(3);
    if n > u32::MAX as usize {
        u32::MAX
    } else {
        n as u32
    }
}

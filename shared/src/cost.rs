//! Cost models: MACs, BOPs, RAM, peak live activation bytes and synaptic operations.
//!
//! These are analytic counts from the layer geometry, used by the exporter, by One-Shot MPS's
//! hardware term and by the reports. The runtime's operation counters count what the kernels
//! actually execute; the two agree except at padded borders, which the kernels skip (see
//! [`macs`]).

use crate::layer::{Geometry, LayerKind};
use crate::quant::code_bits;

/// Multiply-accumulates of one layer, counting padded positions as if they were computed (the
/// usual convention in papers and in One-Shot MPS eq. S13). Convolution:
/// `out_h * out_w * out_c * kh * kw * in_c / groups`; dense: `out * in`; every other kind 0 (pools
/// and adds do additions and a requantization, not MACs).
pub const fn macs(g: &Geometry) -> u64 {
    match g.kind {
        LayerKind::Conv2d => {
            (g.output.h as u64 * g.output.w as u64).saturating_mul(g.weight_count())
        }
        LayerKind::Dense => g.weight_count(),
        _ => 0,
    }
}

/// Inner-loop steps of one layer: what its reference kernel iterates over, padded positions
/// included. Convolution and dense: their MACs; windowed pools: `out elements * kh * kw`; global
/// average pool: its input elements; add: its output elements; flatten: 0. Unlike [`macs`], this
/// bounds the work of every kind, so a caller can refuse a model too slow for its budget.
pub const fn work(g: &Geometry) -> u64 {
    match g.kind {
        LayerKind::Conv2d | LayerKind::Dense => macs(g),
        LayerKind::AvgPool | LayerKind::MaxPool => {
            (g.output.len() as u64).saturating_mul(g.window.kh as u64 * g.window.kw as u64)
        }
        LayerKind::GlobalAvgPool => g.input.len() as u64,
        LayerKind::Add => g.output.len() as u64,
        LayerKind::Flatten => 0,
    }
}

/// Bit operations of one layer, One-Shot MPS eq. S13: `MACs * b_w * b_x`, where `b_w` is the
/// weight bit width and `b_x` the input's bit width (`ceil(log2(L + 1))` for `L` input levels).
pub const fn bops(g: &Geometry, weight_bits: u8, input_levels: u8) -> u64 {
    macs(g).saturating_mul(weight_bits as u64 * code_bits(input_levels) as u64)
}

/// RAM of a model in bytes, One-Shot MPS eq. S14:
/// `RAM = I + sum_k K_k * b_w,k / 8 + sum_k F_k * b_x,k / 8`, with `I` the input size in bytes,
/// `K_k` the number of weights of layer k and `F_k` the size of its input feature map in elements.
///
/// Following the equation, layers without weights contribute their input features too (at their
/// input bit width) and biases are not counted (the supplement counts trainable variables at the
/// weight bit width; our biases are i32 and listed separately by the reports). The result is in
/// bits / 8, so fractional bytes round up at the end.
pub fn ram_s14<I>(input_bytes: u64, layers: I) -> u64
where
    I: IntoIterator<Item = (Geometry, u8, u8)>,
{
    let mut bits: u64 = input_bytes * 8;
    for (g, weight_bits, input_levels) in layers {
        bits += g.weight_count() * weight_bits as u64;
        bits += g.input.len() as u64 * code_bits(input_levels) as u64;
    }
    bits.div_ceil(8)
}

/// Synaptic operations (accumulates) of a spiking layer for a given number of input spikes:
/// `spikes * fan_out`, with the layer's average fan-out `MACs / input elements` (exact for a
/// dense layer and for a convolution away from its borders). Rounded to nearest.
pub const fn synops(g: &Geometry, input_spikes: u64) -> u64 {
    let inputs = g.input.len() as u64;
    if inputs == 0 {
        return 0;
    }
    let total = input_spikes as u128 * macs(g) as u128;
    ((total + inputs as u128 / 2) / inputs as u128) as u64
}

/// Energy estimate with the 45 nm figures SNN papers use (Horowitz, ISSCC 2014): 4.6 pJ per
/// 32-bit MAC and 0.9 pJ per accumulate. Returns picojoules. This is an analytic estimate, not a
/// measurement; reports must label it so.
pub fn energy_45nm_pj(macs: u64, accumulates: u64) -> f64 {
    macs as f64 * PJ_PER_MAC_45NM + accumulates as f64 * PJ_PER_AC_45NM
}

/// Picojoules per multiply-accumulate in the 45 nm estimate.
pub const PJ_PER_MAC_45NM: f64 = 4.6;
/// Picojoules per accumulate in the 45 nm estimate.
pub const PJ_PER_AC_45NM: f64 = 0.9;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Shape, Window};

    fn conv(input: Shape, output: Shape, k: u8, groups: u16) -> Geometry {
        Geometry {
            kind: LayerKind::Conv2d,
            window: Window::square(k, 1, 0),
            groups,
            input,
            output,
        }
    }

    #[test]
    fn conv_macs_and_bops() {
        // 3x3 conv, 8x8x4 -> 6x6x16: 36 * 16 * 9 * 4 MACs.
        let g = conv(Shape::new(8, 8, 4), Shape::new(6, 6, 16), 3, 1);
        assert_eq!(macs(&g), 36 * 16 * 9 * 4);
        // 4-bit weights, 15-level (4-bit) inputs.
        assert_eq!(bops(&g, 4, 15), 36 * 16 * 9 * 4 * 16);
        // Depthwise: groups = channels.
        let dw = conv(Shape::new(8, 8, 4), Shape::new(6, 6, 4), 3, 4);
        assert_eq!(macs(&dw), 36 * 4 * 9);
    }

    #[test]
    fn ram_follows_s14() {
        let g = Geometry {
            kind: LayerKind::Dense,
            window: Window::default(),
            groups: 1,
            input: Shape::vector(100),
            output: Shape::vector(10),
        };
        // I = 100 bytes; K = 1000 weights at 2 bits = 250 bytes; F = 100 inputs at 3 bits
        // (7 levels) = 37.5 bytes; total 387.5 -> 388.
        assert_eq!(ram_s14(100, [(g, 2, 7)]), 388);
        assert_eq!(synops(&g, 7), 70);
        assert!((energy_45nm_pj(10, 10) - 55.0).abs() < 1e-9);
    }
}

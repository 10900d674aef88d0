//! Reference kernels: plain loops, one output element at a time, weights unpacked one by one.
//!
//! These define the arithmetic. They are deliberately not optimized: an optimized kernel is
//! correct when it matches these bit for bit. Accumulation is i32 and wraps on overflow (as the
//! device's 32-bit adders do), though it never has to: the loader refuses any layer whose
//! accumulator could leave the i32 range (`bitspike_core::format::accumulator_bound`).
//!
//! Layouts: activations HWC, convolution weights OHWI, dense weights `[out][in]`
//! (see `bitspike_core::layer`).

use bitspike_core::format::I32s;
use bitspike_core::layer::{Geometry, Shape};
use bitspike_core::pack::unpack_one;

use super::{Stage, Weights};
use crate::ops::Ops;

/// Input element at (`y`, `x`, `c`) of an HWC tensor, or `None` in the zero padding.
#[inline]
fn at(input: &[u8], s: Shape, y: isize, x: isize, c: usize) -> Option<i32> {
    if y < 0 || x < 0 || y >= s.h as isize || x >= s.w as isize {
        return None;
    }
    let i = (y as usize * s.w as usize + x as usize) * s.c as usize + c;
    input.get(i).map(|&v| v as i32)
}

/// 2-D convolution with stride, symmetric zero padding and groups.
///
/// ```text
/// out[oy][ox][o] = stage(bias[o] + sum over ky, kx, ci of
///                  in[oy*sh + ky - ph][ox*sw + kx - pw][g*cin_g + ci] * w[o][ky][kx][ci])
/// ```
/// with `g = o / cout_g`; padded positions contribute nothing.
pub fn conv2d(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    ops: &mut Ops,
) {
    let (weights, bits, bias) = (w.packed, w.bits, w.bias);
    let w = g.window;
    let (inp, out) = (g.input, g.output);
    let groups = g.groups.max(1) as usize;
    let cin_g = inp.c as usize / groups;
    let cout_g = (out.c as usize / groups).max(1);
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for o in 0..out.c as usize {
                let grp = o / cout_g;
                let mut acc = bias.map_or(0, |b| b.get(o));
                for ky in 0..w.kh as usize {
                    let y = (oy * w.sh as usize + ky) as isize - w.ph as isize;
                    for kx in 0..w.kw as usize {
                        let x = (ox * w.sw as usize + kx) as isize - w.pw as isize;
                        for ci in 0..cin_g {
                            let Some(v) = at(input, inp, y, x, grp * cin_g + ci) else {
                                continue;
                            };
                            let wi = ((o * w.kh as usize + ky) * w.kw as usize + kx) * cin_g + ci;
                            let wt = unpack_one(weights, bits, wi) as i32;
                            acc = acc.wrapping_add(v * wt);
                            ops.mac(1);
                        }
                    }
                }
                stage.store(
                    output,
                    (oy * out.w as usize + ox) * out.c as usize + o,
                    o,
                    acc,
                );
            }
        }
    }
}

/// Fully connected layer: `out[o] = stage(bias[o] + sum_i in[i] * w[o][i])`.
pub fn dense(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    ops: &mut Ops,
) {
    let (weights, bits, bias) = (w.packed, w.bits, w.bias);
    let n = g.input.len();
    for o in 0..g.output.c as usize {
        let mut acc = bias.map_or(0, |b| b.get(o));
        for (i, &x) in input.iter().enumerate().take(n) {
            let wt = unpack_one(weights, bits, o * n + i) as i32;
            acc = acc.wrapping_add(x as i32 * wt);
            ops.mac(1);
        }
        stage.store(output, o, o, acc);
    }
}

/// Average pooling: the window's sum, padding counted as zero; the divisor `kh * kw` is folded
/// into the stage's multipliers.
pub fn avg_pool(g: &Geometry, stage: &Stage<'_>, input: &[u8], output: &mut [u8]) {
    let w = g.window;
    let (inp, out) = (g.input, g.output);
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for c in 0..out.c as usize {
                let mut acc = 0i32;
                for ky in 0..w.kh as usize {
                    let y = (oy * w.sh as usize + ky) as isize - w.ph as isize;
                    for kx in 0..w.kw as usize {
                        let x = (ox * w.sw as usize + kx) as isize - w.pw as isize;
                        acc = acc.wrapping_add(at(input, inp, y, x, c).unwrap_or(0));
                    }
                }
                stage.store(
                    output,
                    (oy * out.w as usize + ox) * out.c as usize + c,
                    c,
                    acc,
                );
            }
        }
    }
}

/// Max pooling over the window's positions inside the input (padding is ignored). Codes pass
/// through unchanged.
pub fn max_pool(g: &Geometry, input: &[u8], output: &mut [u8]) {
    let w = g.window;
    let (inp, out) = (g.input, g.output);
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for c in 0..out.c as usize {
                let mut m = 0i32;
                for ky in 0..w.kh as usize {
                    let y = (oy * w.sh as usize + ky) as isize - w.ph as isize;
                    for kx in 0..w.kw as usize {
                        let x = (ox * w.sw as usize + kx) as isize - w.pw as isize;
                        if let Some(v) = at(input, inp, y, x, c) {
                            m = m.max(v);
                        }
                    }
                }
                if let Some(o) = output.get_mut((oy * out.w as usize + ox) * out.c as usize + c) {
                    *o = m as u8;
                }
            }
        }
    }
}

/// Global average pooling: per channel, the sum over all positions; `1 / (h * w)` is folded into
/// the stage's multipliers.
pub fn global_avg_pool(g: &Geometry, stage: &Stage<'_>, input: &[u8], output: &mut [u8]) {
    let c_n = g.input.c as usize;
    for c in 0..c_n {
        let mut acc = 0i32;
        for p in 0..g.input.h as usize * g.input.w as usize {
            acc = acc.wrapping_add(input.get(p * c_n + c).copied().unwrap_or(0) as i32);
        }
        stage.store(output, c, c, acc);
    }
}

/// Residual add: `out = stage(a * wa + b * wb + bias)`, element by element; the integer
/// weights carry the ratio of the two input scales, the bias (per channel, absent: 0) undoes
/// the inputs' zero points.
pub fn add(
    g: &Geometry,
    weights: [i16; 2],
    bias: Option<I32s<'_>>,
    stage: &Stage<'_>,
    a: &[u8],
    b: &[u8],
    output: &mut [u8],
) {
    let c_n = g.output.c as usize;
    for (i, (&x, &y)) in a.iter().zip(b).enumerate().take(g.output.len()) {
        let c = i % c_n.max(1);
        let acc = (x as i32 * weights[0] as i32)
            .wrapping_add(y as i32 * weights[1] as i32)
            .wrapping_add(bias.map_or(0, |b| b.get(c)));
        stage.store(output, i, c, acc);
    }
}

//! Event-driven convolution and dense kernels: each nonzero input code adds its weights to the
//! outputs it reaches (a scatter), so the work follows the input's nonzero codes instead of its
//! size; the same contract as [`super::reference::conv2d`] and [`super::reference::dense`].
//!
//! A convolution runs one output row at a time: the row's accumulators (`out_w x C_out` i32) and
//! the weights unpacked to i8 and transposed (the `C_out` weights of each input position
//! together) live in the layer's scratch ([`bitspike_core::kernel::events_scratch_bytes`]). For each input row the
//! window reads, every nonzero code `x` at `(ix, ci)` adds `x w[co][ky][kx][ci]` to output
//! pixel `(ix + pw - kx) / sw` (when that divides and lies in the row) for every output channel:
//! about four instructions per synapse, against one or two per multiply for the dense kernels,
//! so the scatter pays on sparse inputs only (the exporter measures each layer's input density
//! and the runtime chooses, [`bitspike_core::kernel::events_pay`]). A dense layer is one row.
//!
//! MAC counters count what the dense kernels count (every valid window position), so that
//! reports do not depend on the kernel. A kernel whose scratch is short, or a convolution with
//! groups, declines without writing.

use bitspike_core::kernel::events_scratch_bytes;
use bitspike_core::layer::Geometry;

use super::optimized::valid;
use super::{Stage, Weights};
use crate::ops::Ops;

/// Split the scratch into the accumulators (`acc` words, aligned), the transposed weights
/// (`fan c_out` bytes) and one unpacked row (`fan` bytes); `None` when it is too short.
#[allow(clippy::type_complexity)]
fn carve(
    scratch: &mut [u8],
    acc: usize,
    fan: usize,
    c_out: usize,
) -> Option<(&mut [u32], &mut [u8], &mut [u8])> {
    let bytes = acc.checked_mul(4)?.checked_add(fan.checked_mul(c_out)?)?;
    let body = super::words::aligned(scratch, bytes.checked_add(fan)?)?;
    let (a, rest) = body.split_at_mut_checked(4 * acc)?;
    let (head, words) = super::words::words_mut(a);
    if head != 0 || words.len() != acc {
        return None;
    }
    let (wt, rest) = rest.split_at_mut_checked(fan.checked_mul(c_out)?)?;
    let row = rest.get_mut(..fan)?;
    Some((words, wt, row))
}

/// Add `x w[co]` to accumulator `co`, for the `acc.len()` weights `w` (one per output channel).
#[inline(always)]
fn add_weights(acc: &mut [u32], x: i32, w: &[u8]) {
    for (a, &w) in acc.iter_mut().zip(w) {
        *a = a.wrapping_add((x * w as i8 as i32) as u32);
    }
}

/// The weights of `c_out` rows of `fan` (OHWI, or `[out][in]`) transposed into `wt`: the
/// `c_out` weights of input position `k` at `k c_out ..`, as i8 bytes; `row` holds one row
/// unpacked. `None` when a buffer is short.
fn transpose(
    w: &Weights<'_>,
    fan: usize,
    c_out: usize,
    row: &mut [u8],
    wt: &mut [u8],
) -> Option<()> {
    let row = row.get_mut(..fan)?;
    let wt = wt.get_mut(..fan * c_out)?;
    for o in 0..c_out {
        super::unpack_row(w.packed, w.bits, o * fan, row);
        for (k, &v) in row.iter().enumerate() {
            *wt.get_mut(k * c_out + o)? = v;
        }
    }
    Some(())
}

/// Event-driven 2-D convolution (one group); `false`, writing nothing, when it cannot run.
#[inline(never)]
pub fn conv2d(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    if g.groups != 1 || scratch.len() < events_scratch_bytes(g, w.bits) as usize {
        return false;
    }
    let win = g.window;
    let (ih, iw, c_in) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let (oh, ow, c_out) = (
        g.output.h as usize,
        g.output.w as usize,
        g.output.c as usize,
    );
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let (sh, sw, ph, pw) = (
        win.sh as usize,
        win.sw as usize,
        win.ph as isize,
        win.pw as usize,
    );
    let fan = kh * kw * c_in;
    let Some((acc, wt, row)) = carve(scratch, ow * c_out, fan, c_out) else {
        return false;
    };
    if transpose(w, fan, c_out, row, wt).is_none() {
        return false;
    }
    let wt = &*wt;
    // Valid kernel columns summed over the row's pixels: the MACs per valid kernel row.
    let columns: usize = (0..ow)
        .map(|ox| {
            let (a, b) = valid((ox * sw) as isize - pw as isize, kw, iw);
            b - a
        })
        .sum();
    let back = sw * c_in * c_out;
    for oy in 0..oh {
        acc.fill(0);
        let top = (oy * sh) as isize - ph;
        let (ky0, ky1) = valid(top, kh, ih);
        for ky in ky0..ky1 {
            let iy = (top + ky as isize) as usize;
            let Some(line) = input.get(iy * iw * c_in..(iy + 1) * iw * c_in) else {
                continue;
            };
            for (ix, px) in line.chunks_exact(c_in.max(1)).enumerate() {
                for (ci, &x) in px.iter().enumerate() {
                    if x == 0 {
                        continue;
                    }
                    // Output column ox takes this input at kernel column kx = t - ox sw, for
                    // the ox with 0 <= kx < kw.
                    let t = ix + pw;
                    let (lo, hi) = if sw == 1 {
                        ((t + 1).saturating_sub(kw), t.min(ow.saturating_sub(1)))
                    } else {
                        (
                            (t + 1).saturating_sub(kw).div_ceil(sw),
                            (t / sw).min(ow.saturating_sub(1)),
                        )
                    };
                    if lo > hi {
                        continue;
                    }
                    // Weights of (ky, kx = t - lo sw, ci), then sw kernel columns fewer per
                    // output column.
                    let mut pos = ((ky * kw + t - lo * sw) * c_in + ci) * c_out;
                    let mut at = lo * c_out;
                    for _ in lo..=hi {
                        if let (Some(a), Some(ws)) =
                            (acc.get_mut(at..at + c_out), wt.get(pos..pos + c_out))
                        {
                            add_weights(a, x as i32, ws);
                        }
                        pos = pos.wrapping_sub(back);
                        at += c_out;
                    }
                }
            }
        }
        ops.mac(((ky1 - ky0) * columns * c_in * c_out) as u64);
        for co in 0..c_out {
            let out = stage.channel(co);
            let bias = w.bias.map_or(0, |b| b.get(co));
            for ox in 0..ow {
                let v = acc.get(ox * c_out + co).copied().unwrap_or(0) as i32;
                out.store(output, (oy * ow + ox) * c_out + co, v.wrapping_add(bias));
            }
        }
    }
    true
}

/// Event-driven fully connected layer; `false`, writing nothing, when it cannot run.
#[inline(never)]
pub fn dense(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    if scratch.len() < events_scratch_bytes(g, w.bits) as usize {
        return false;
    }
    let n = g.input.len();
    let c_out = g.output.c as usize;
    let Some((acc, wt, row)) = carve(scratch, c_out, n, c_out) else {
        return false;
    };
    if transpose(w, n, c_out, row, wt).is_none() {
        return false;
    }
    acc.fill(0);
    for (i, &x) in input.iter().take(n).enumerate() {
        if x != 0 {
            if let Some(ws) = wt.get(i * c_out..(i + 1) * c_out) {
                add_weights(acc, x as i32, ws);
            }
        }
    }
    ops.mac((n * c_out) as u64);
    for o in 0..c_out {
        let v = acc.get(o).copied().unwrap_or(0) as i32;
        stage.store(output, o, o, v.wrapping_add(w.bias.map_or(0, |b| b.get(o))));
    }
    true
}

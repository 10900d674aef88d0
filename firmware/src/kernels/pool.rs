//! The pooling kernels, bit-exact with [`super::reference`]: max pooling all channels of a pixel
//! at once, average pooling four channels per input word.

use bitspike_core::layer::Geometry;

use super::optimized::valid;
use super::words::word;
use super::Stage;

/// The valid window of output pixel `(oy, ox)`: rows `ky0..ky1` and columns `kx0..kx1` of the
/// kernel lie inside the input, and `first` is the input index of the first valid position
/// (channel 0); `None` when no position is inside.
#[inline(always)]
fn window(g: &Geometry, oy: usize, ox: usize) -> Option<(usize, usize, usize, usize, usize)> {
    let win = g.window;
    let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
    let x0 = (ox * win.sw as usize) as isize - win.pw as isize;
    let (ky0, ky1) = valid(y0, win.kh as usize, g.input.h as usize);
    let (kx0, kx1) = valid(x0, win.kw as usize, g.input.w as usize);
    if ky0 == ky1 || kx0 == kx1 {
        return None;
    }
    let iy = (y0 + ky0 as isize) as usize;
    let ix = (x0 + kx0 as isize) as usize;
    let first = (iy * g.input.w as usize + ix) * g.input.c as usize;
    Some((ky0, ky1, kx0, kx1, first))
}

/// Max pooling over the window's positions inside the input (padding ignored, 0 when none),
/// all channels of an output pixel at once: the first valid position copied, the others folded
/// in with a byte-wise maximum (`USUB8`/`SEL` on the DSP); the same contract as
/// [`super::reference::max_pool`].
pub fn max_pool(g: &Geometry, input: &[u8], output: &mut [u8]) {
    let win = g.window;
    let c_n = g.input.c as usize;
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let (ih, iw) = (g.input.h as usize, g.input.w as usize);
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let mut rows = output.chunks_exact_mut(c_n.max(1));
    if win.ph == 0 && win.pw == 0 {
        // No padding: every window lies inside the input, whole.
        for oy in 0..oh {
            for ox in 0..ow {
                let Some(dst) = rows.next() else {
                    return;
                };
                let base = (oy * win.sh as usize * iw + ox * win.sw as usize) * c_n;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let at = base + (ky * iw + kx) * c_n;
                        let Some(src) = input.get(at..at + c_n) else {
                            continue;
                        };
                        if ky == 0 && kx == 0 {
                            for (d, &x) in dst.iter_mut().zip(src) {
                                *d = x;
                            }
                            continue;
                        }
                        #[cfg(bitspike_dsp)]
                        if super::dsp::max_bytes(dst, src).is_some() {
                            continue;
                        }
                        for (d, &x) in dst.iter_mut().zip(src) {
                            *d = (*d).max(x);
                        }
                    }
                }
            }
        }
        return;
    }
    for oy in 0..oh {
        let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
        let (ky0, ky1) = valid(y0, kh, ih);
        for ox in 0..ow {
            let Some(dst) = rows.next() else {
                return;
            };
            let x0 = (ox * win.sw as usize) as isize - win.pw as isize;
            let (kx0, kx1) = valid(x0, kw, iw);
            let mut first = true;
            for ky in ky0..ky1 {
                let iy = (y0 + ky as isize) as usize;
                for kx in kx0..kx1 {
                    let ix = (x0 + kx as isize) as usize;
                    let at = (iy * iw + ix) * c_n;
                    let Some(src) = input.get(at..at + c_n) else {
                        continue;
                    };
                    if first {
                        dst.copy_from_slice(src);
                        first = false;
                        continue;
                    }
                    #[cfg(bitspike_dsp)]
                    if super::dsp::max_bytes(dst, src).is_some() {
                        continue;
                    }
                    for (d, &x) in dst.iter_mut().zip(src) {
                        *d = (*d).max(x);
                    }
                }
            }
            if first {
                dst.fill(0);
            }
        }
    }
}

/// The most window positions whose codes [`avg_pool`] sums in 16-bit lanes (`257 x 255` fits).
pub const LANE_SUM_MAX: usize = 257;

/// Average pooling: the window's sum (padding counted as zero) through the layer's output step.
/// Four channels at a time when `C` is a multiple of four and the window has at most
/// [`LANE_SUM_MAX`] positions: each input word's even and odd bytes are summed in two words of
/// 16-bit lanes, and the four channels' output steps are prepared once; else channel by
/// channel. A 2x2 window whose four channels' output steps give back every sum the window can
/// make from codes up to `levels` (the input's top code: the sum of four counts of a spiking
/// network keeps every level) is one byte-wise sum of four words per pixel, stored as it is.
/// The same contract as [`super::reference::avg_pool`] for inputs with codes up to `levels`.
#[inline(never)]
pub fn avg_pool(g: &Geometry, stage: &Stage<'_>, input: &[u8], levels: u8, output: &mut [u8]) {
    let win = g.window;
    let c_n = g.input.c as usize;
    let lanes = c_n.is_multiple_of(4) && win.kh as usize * win.kw as usize <= LANE_SUM_MAX;
    let step = if lanes { 4 } else { 1 };
    for c0 in (0..c_n).step_by(step) {
        let outs = [0, 1, 2, 3].map(|i| stage.channel(c0 + i));
        // Requantizers whose left shift cannot saturate on a window sum of codes: each output
        // is then a shift, one multiply-accumulate, a shift, the offset and the clamp (the
        // general step handles everything else).
        let most = win.kh as i64 * win.kw as i64 * u8::MAX as i64;
        let fast = |o: &super::ChannelStage<'_, '_>| match o {
            super::ChannelStage::Requantize(r) if most <= (i32::MAX >> r.left_shift()) as i64 => {
                Some(*r)
            }
            _ => None,
        };
        let rq = [0, 1, 2, 3].map(|i| fast(&outs[i]));
        // Sums up to `4 x levels` that fit a byte and that every channel keeps as they are. On
        // sums its left shift cannot saturate, a requantizer is one floor of a non-decreasing
        // affine function of the sum, then the offset and the clamp: if it keeps 0 and the
        // largest sum, it keeps every sum between.
        let most = 4 * levels as i32;
        let keeps = |o: &super::ChannelStage<'_, '_>| match o {
            super::ChannelStage::Requantize(r) => {
                most <= i32::MAX >> r.left_shift()
                    && r.apply(0) == 0
                    && r.apply(most) as i32 == most
            }
            _ => false,
        };
        let exact = lanes && most <= u8::MAX as i32 && outs.iter().all(keeps);
        let pool = Pool {
            g,
            input,
            c0,
            lanes,
            exact,
        };
        if (0..step).all(|i| rq[i].is_some()) {
            pool.channels::<true>(&outs, &rq, output);
        } else {
            pool.channels::<false>(&outs, &rq, output);
        }
    }
}

/// `out.store(output, at, acc)` out of line: the general output step, kept out of the pool's
/// unrolled loops.
#[inline(never)]
fn store_one(out: &super::ChannelStage<'_, '_>, output: &mut [u8], at: usize, acc: i32) {
    out.store(output, at, acc);
}

/// The four words of channels (four each) of a 2x2 window from input index `first`: it, the
/// next pixel (`c` on), and the two below (`row` on).
#[inline(always)]
fn square(input: &[u8], first: usize, row: usize, c: usize) -> [u32; 4] {
    let below = first + row;
    [
        word(input, first),
        word(input, first + c),
        word(input, below),
        word(input, below + c),
    ]
}

/// One block of an average pool's channels (four channels from `c0` with `lanes`, else one).
struct Pool<'p> {
    g: &'p Geometry,
    input: &'p [u8],
    c0: usize,
    lanes: bool,
    /// Every sum of a 2x2 window fits a byte and is its own output code.
    exact: bool,
}

impl Pool<'_> {
    /// Every output pixel of the block; with `FAST`, through the requantizers `rq` (a shift
    /// that cannot saturate, then the right-shift step), else through `outs`.
    #[inline(always)]
    fn channels<const FAST: bool>(
        &self,
        outs: &[super::ChannelStage<'_, '_>; 4],
        rq: &[Option<bitspike_core::quant::Requantizer>; 4],
        output: &mut [u8],
    ) {
        const M: u32 = 0x00FF_00FF;
        let (g, input, c0) = (self.g, self.input, self.c0);
        let c_n = g.input.c as usize;
        let iw = g.input.w as usize;
        let (oh, ow) = (g.output.h as usize, g.output.w as usize);
        let step = if self.lanes { 4 } else { 1 };
        let put = |output: &mut [u8], at: usize, i: usize, acc: i32| {
            if FAST {
                if let (Some(r), Some(o)) = (rq[i], output.get_mut(at + i)) {
                    *o = r.apply_right(acc << r.left_shift());
                }
            } else {
                store_one(&outs[i], output, at + i, acc);
            }
        };
        let win = g.window;
        let (kh, kw, sh, sw) = (
            win.kh as usize,
            win.kw as usize,
            win.sh as usize,
            win.sw as usize,
        );
        let inside = win.ph == 0
            && win.pw == 0
            && (oh.saturating_sub(1) * sh + kh) <= g.input.h as usize
            && (ow.saturating_sub(1) * sw + kw) <= iw;
        if self.exact && inside && kh == 2 && kw == 2 {
            // Four channels' sums in the bytes of one word, stored as they are.
            for oy in 0..oh {
                let mut first = oy * sh * iw * c_n + c0;
                for ox in 0..ow {
                    let at = (oy * ow + ox) * c_n + c0;
                    let [a, b, c, d] = square(input, first, iw * c_n, c_n);
                    let sum = a.wrapping_add(b).wrapping_add(c).wrapping_add(d);
                    if let Some(o) = output.get_mut(at..at + 4) {
                        o.copy_from_slice(&sum.to_le_bytes());
                    }
                    first += sw * c_n;
                }
            }
            return;
        }
        if self.lanes && inside && kh == 2 && kw == 2 {
            // The common 2x2 window, inside the input: four word loads per pixel, no clipping.
            for oy in 0..oh {
                let mut first = oy * sh * iw * c_n + c0;
                for ox in 0..ow {
                    let at = (oy * ow + ox) * c_n + c0;
                    let (mut even, mut odd) = (0u32, 0u32);
                    for v in square(input, first, iw * c_n, c_n) {
                        even += v & M;
                        odd += (v >> 8) & M;
                    }
                    put(output, at, 0, (even & 0xFFFF) as i32);
                    put(output, at, 1, (odd & 0xFFFF) as i32);
                    put(output, at, 2, (even >> 16) as i32);
                    put(output, at, 3, (odd >> 16) as i32);
                    first += sw * c_n;
                }
            }
            return;
        }
        for oy in 0..oh {
            for ox in 0..ow {
                let at = (oy * ow + ox) * c_n + c0;
                let Some((ky0, ky1, kx0, kx1, first)) = window(g, oy, ox) else {
                    for i in 0..step {
                        put(output, at, i, 0);
                    }
                    continue;
                };
                let (rows_n, cols) = (ky1 - ky0, kx1 - kx0);
                let mut row = first + c0;
                if self.lanes {
                    let (mut even, mut odd) = (0u32, 0u32);
                    for _ in 0..rows_n {
                        let mut a = row;
                        for _ in 0..cols {
                            let v = word(input, a);
                            even += v & M;
                            odd += (v >> 8) & M;
                            a += c_n;
                        }
                        row += iw * c_n;
                    }
                    put(output, at, 0, (even & 0xFFFF) as i32);
                    put(output, at, 1, (odd & 0xFFFF) as i32);
                    put(output, at, 2, (even >> 16) as i32);
                    put(output, at, 3, (odd >> 16) as i32);
                } else {
                    let mut acc = 0i32;
                    for _ in 0..rows_n {
                        let mut a = row;
                        for _ in 0..cols {
                            acc = acc.wrapping_add(input.get(a).copied().unwrap_or(0) as i32);
                            a += c_n;
                        }
                        row += iw * c_n;
                    }
                    put(output, at, 0, acc);
                }
            }
        }
    }
}

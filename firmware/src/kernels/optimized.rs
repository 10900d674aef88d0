//! The portable fast kernels, bit-exact with [`super::reference`]: the row kernels (convolution
//! with any groups, dense, and their event-driven forms), depthwise convolution and the residual
//! add (the pools are in [`super::pool`]).
//!
//! What makes the row kernels faster, with the same arithmetic (i32 accumulation, the same order of
//! products does not matter for exact integer sums, the same output stage):
//!
//! * weights are unpacked once per output channel into the layer's scratch (dense layers in
//!   chunks of [`ROW_CHUNK`]), not once per multiply;
//! * the valid kernel window of each output pixel is computed once, so the inner loops have no
//!   padding tests;
//! * with one group, the `kw x C` input values of a kernel row are contiguous in HWC, so each
//!   kernel row is a single dot product of two slices.
//!
//! A kernel returns `false`, having written nothing, when its scratch is shorter than
//! [`bitspike_core::kernel::scratch_bytes`] asks; the runtime then runs the reference kernel.
//! Tested bit-exact against the reference kernels on random shapes (`tests/tests/optimized.rs`)
//! and against the independent oracle through the runtime.

use bitspike_core::format::I32s;
use bitspike_core::kernel::ROW_CHUNK;
use bitspike_core::layer::Geometry;
use bitspike_core::pack::unpack_one;

use super::words::word;
use super::{Stage, Weights};
use crate::ops::Ops;

/// `sum x[i] * w[i]` over two slices of one length (`w` holds i8 weights as bytes), wrapping
/// like the device's adders.
#[inline(always)]
fn dot(x: &[u8], w: &[u8]) -> i32 {
    let n = x.len().min(w.len());
    let (x, w) = (&x[..n], &w[..n]);
    #[cfg(bitspike_dsp)]
    if n >= 16 {
        if let Some(acc) = super::dsp::dot_u8_i8(x, w) {
            let k = n / 4 * 4;
            let mut acc = acc;
            for (&a, &b) in x[k..].iter().zip(&w[k..]) {
                acc = acc.wrapping_add(a as i32 * b as i8 as i32);
            }
            return acc;
        }
    }
    let mut acc = 0i32;
    // Four products per iteration: fewer loop branches and pointer updates per multiply.
    let mut xs = x.chunks_exact(4);
    let mut ws = w.chunks_exact(4);
    for (a, b) in (&mut xs).zip(&mut ws) {
        let p = (a[0] as i32 * b[0] as i8 as i32)
            .wrapping_add(a[1] as i32 * b[1] as i8 as i32)
            .wrapping_add(a[2] as i32 * b[2] as i8 as i32)
            .wrapping_add(a[3] as i32 * b[3] as i8 as i32);
        acc = acc.wrapping_add(p);
    }
    for (&a, &b) in xs.remainder().iter().zip(ws.remainder()) {
        acc = acc.wrapping_add(a as i32 * b as i8 as i32);
    }
    acc
}

/// Event-driven `sum x[i] * w[i]` over spike counts: an input that did not fire costs a test,
/// one that fired `n` times adds its weight `n` times. (The compiler may fold the repeated
/// addition into one multiply; the result is the same integer.)
#[inline(always)]
fn events(x: &[u8], w: &[u8]) -> i32 {
    let mut acc = 0i32;
    for (&n, &wt) in x.iter().zip(w) {
        if n != 0 {
            let wt = wt as i8 as i32;
            for _ in 0..n {
                acc = acc.wrapping_add(wt);
            }
        }
    }
    acc
}

/// The inner sum of a kernel: multiply-accumulate, or event-driven accumulate.
#[inline(always)]
fn sum<const EVENTS: bool>(x: &[u8], w: &[u8]) -> i32 {
    if EVENTS {
        events(x, w)
    } else {
        dot(x, w)
    }
}

/// Unpack weights `first .. first + out.len()` of a packed stream, as i8 bytes.
#[inline]
fn unpack_into(packed: &[u8], bits: u8, first: usize, out: &mut [u8]) {
    super::unpack_row(packed, bits, first, out);
}

/// The kernel offsets `k` in `0..kernel` whose input coordinate `start + k` lies in `0..size`.
#[inline(always)]
pub(crate) fn valid(start: isize, kernel: usize, size: usize) -> (usize, usize) {
    let lo = if start < 0 { (-start) as usize } else { 0 };
    let end = size as isize - start;
    let hi = if end < 0 {
        0
    } else {
        (end as usize).min(kernel)
    };
    (lo.min(hi), hi)
}

/// 2-D convolution; the same contract as [`super::reference::conv2d`].
pub fn conv2d(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    conv2d_with::<false>(g, w, stage, input, output, scratch, ops)
}

/// 2-D convolution over spike counts, event-driven (inputs that did not fire are skipped, the
/// others add their weights once per spike); bit-exact with [`conv2d`].
pub fn conv2d_events(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    conv2d_with::<true>(g, w, stage, input, output, scratch, ops)
}

fn conv2d_with<const EVENTS: bool>(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    let win = g.window;
    let (inp, out) = (g.input, g.output);
    let groups = g.groups.max(1) as usize;
    let (c_in, c_out) = (inp.c as usize, out.c as usize);
    let cin_g = c_in / groups;
    let cout_g = (c_out / groups).max(1);
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let fan = kh * kw * cin_g;
    let Some(wrow) = scratch.get_mut(..fan) else {
        return false;
    };
    let (ih, iw) = (inp.h as usize, inp.w as usize);
    for o in 0..c_out {
        unpack_into(w.packed, w.bits, o * fan, wrow);
        let wrow = &*wrow;
        let grp = o / cout_g;
        let bias = w.bias.map_or(0, |b| b.get(o));
        let out_c = stage.channel(o);
        for oy in 0..out.h as usize {
            let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
            let (ky0, ky1) = valid(y0, kh, ih);
            for ox in 0..out.w as usize {
                let x0 = (ox * win.sw as usize) as isize - win.pw as isize;
                let (kx0, kx1) = valid(x0, kw, iw);
                let mut acc = bias;
                for ky in ky0..ky1 {
                    let iy = (y0 + ky as isize) as usize;
                    if groups == 1 {
                        if kx1 == kx0 {
                            continue; // the whole row lies in the padding
                        }
                        // One contiguous run of (kx1 - kx0) * C values.
                        let ix = (x0 + kx0 as isize) as usize;
                        let len = (kx1 - kx0) * c_in;
                        let at = (iy * iw + ix) * c_in;
                        let wat = (ky * kw + kx0) * c_in;
                        let xs = input.get(at..at + len).unwrap_or(&[]);
                        let ws = wrow.get(wat..wat + len).unwrap_or(&[]);
                        acc = acc.wrapping_add(sum::<EVENTS>(xs, ws));
                        ops.mac(len as u64);
                    } else {
                        for kx in kx0..kx1 {
                            let ix = (x0 + kx as isize) as usize;
                            let at = (iy * iw + ix) * c_in + grp * cin_g;
                            let wat = (ky * kw + kx) * cin_g;
                            let xs = input.get(at..at + cin_g).unwrap_or(&[]);
                            let ws = wrow.get(wat..wat + cin_g).unwrap_or(&[]);
                            acc = acc.wrapping_add(sum::<EVENTS>(xs, ws));
                            ops.mac(cin_g as u64);
                        }
                    }
                }
                out_c.store(output, (oy * out.w as usize + ox) * c_out + o, acc);
            }
        }
    }
    true
}

/// Fully connected layer; the same contract as [`super::reference::dense`].
pub fn dense(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    dense_with::<false>(g, w, stage, input, output, scratch, ops)
}

/// Fully connected layer over spike counts, event-driven; bit-exact with [`dense`].
pub fn dense_events(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    dense_with::<true>(g, w, stage, input, output, scratch, ops)
}

fn dense_with<const EVENTS: bool>(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    let n = g.input.len().min(input.len());
    let Some(buf) = scratch.get_mut(..n.min(ROW_CHUNK)) else {
        return false;
    };
    for o in 0..g.output.c as usize {
        let mut acc = w.bias.map_or(0, |b| b.get(o));
        let mut at = 0;
        // 8-bit rows are used in place.
        if w.bits == 8 {
            if let Some(row) = w.packed.get(o * n..o * n + n) {
                acc = acc.wrapping_add(sum::<EVENTS>(&input[..n], row));
                ops.mac(n as u64);
                stage.store(output, o, o, acc);
                continue;
            }
        }
        while at < n {
            let len = (n - at).min(ROW_CHUNK);
            let chunk = &mut buf[..len];
            unpack_into(w.packed, w.bits, o * g.input.len() + at, chunk);
            acc = acc.wrapping_add(sum::<EVENTS>(&input[at..at + len], chunk));
            ops.mac(len as u64);
            at += len;
        }
        stage.store(output, o, o, acc);
    }
    true
}

/// Depthwise convolution (one input channel per group, as many output channels): all channels of
/// an output pixel at once, their i32 accumulators in `scratch`, the weights transposed once per
/// layer to `[kernel position][channel]` and each channel's requantization prepared once
/// ([`bitspike_core::kernel::depthwise_layout`]). The same contract as
/// [`super::reference::conv2d`]; `false`, having written nothing, when the layer is not depthwise
/// or the scratch is short.
///
/// On the DSP, layers whose channels are whole words and whose kernel has at most
/// [`WORD_POSITIONS`] positions run [`depthwise_words`] instead.
pub fn depthwise(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    #[cfg(bitspike_dsp)]
    if depthwise_words(g, w, stage, input, output, scratch, ops) {
        return true;
    }
    depthwise_channels(g, w, stage, input, output, scratch, ops)
}

/// [`depthwise`] one product at a time: per kernel position, all channels of the pixel, their
/// accumulators in scratch and the weights transposed to `[kernel position][channel]` (every
/// target; the path of layers [`depthwise_words`] does not take).
pub fn depthwise_channels(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    let c_n = g.input.c as usize;
    if g.groups as usize != c_n || g.output.c as usize != c_n || c_n == 0 {
        return false;
    }
    let layout = bitspike_core::kernel::depthwise_layout(g);
    let Some(scratch) = super::words::aligned(scratch, layout.bytes) else {
        return false;
    };
    let (acc, rest) = scratch.split_at_mut(layout.weights);
    let (wt, table) = rest.split_at_mut(layout.table - layout.weights);
    let tabled = super::gather::prepare(stage, table, c_n);
    let table = &*table;
    let win = g.window;
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let k_n = kh * kw;
    for c in 0..c_n {
        for k in 0..k_n {
            if let Some(t) = wt.get_mut(k * c_n + c) {
                *t = unpack_one(w.packed, w.bits, c * k_n + k) as u8;
            }
        }
    }
    let (ih, iw) = (g.input.h as usize, g.input.w as usize);
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let mut macs = 0u64;
    for oy in 0..oh {
        let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
        let (ky0, ky1) = valid(y0, kh, ih);
        for ox in 0..ow {
            let x0 = (ox * win.sw as usize) as isize - win.pw as isize;
            let (kx0, kx1) = valid(x0, kw, iw);
            for (c, a) in acc.chunks_exact_mut(4).enumerate() {
                a.copy_from_slice(&w.bias.map_or(0, |b| b.get(c)).to_le_bytes());
            }
            for ky in ky0..ky1 {
                let iy = (y0 + ky as isize) as usize;
                for kx in kx0..kx1 {
                    let ix = (x0 + kx as isize) as usize;
                    let at = (iy * iw + ix) * c_n;
                    let k = ky * kw + kx;
                    let src = input.get(at..at + c_n).unwrap_or(&[]);
                    let wk = wt.get(k * c_n..(k + 1) * c_n).unwrap_or(&[]);
                    for ((a, &x), &wv) in acc.chunks_exact_mut(4).zip(src).zip(wk) {
                        let v = i32::from_le_bytes([a[0], a[1], a[2], a[3]])
                            .wrapping_add(x as i32 * wv as i8 as i32);
                        a.copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            macs += ((ky1 - ky0) * (kx1 - kx0) * c_n) as u64;
            let at = (oy * ow + ox) * c_n;
            match tabled {
                Some((off, lv)) => {
                    let dst = output.get_mut(at..at + c_n).unwrap_or(&mut []);
                    for (c, (d, a)) in dst.iter_mut().zip(acc.chunks_exact(4)).enumerate() {
                        let v = i32::from_le_bytes([a[0], a[1], a[2], a[3]]);
                        if let Some(r) = super::gather::requantizer(table, c, off, lv) {
                            *d = r.apply(v);
                        }
                    }
                }
                None => {
                    for (c, a) in acc.chunks_exact(4).enumerate() {
                        let v = i32::from_le_bytes([a[0], a[1], a[2], a[3]]);
                        stage.store(output, at + c, c, v);
                    }
                }
            }
        }
    }
    ops.mac(macs);
    true
}

/// The most kernel positions [`depthwise_words`] takes (the positions' offsets, and a padded
/// window's valid offsets, kernel indices and weights, live on the stack: 234 bytes at this
/// bound).
pub const WORD_POSITIONS: usize = 18;

/// The taps of a window: each kernel position's byte offset from the window's start; checked
/// once for the assembly on the DSP (`kernels::dsp::Taps`), run by this model elsewhere.
#[derive(Clone, Copy)]
struct Taps4<'a> {
    offsets: &'a [u32],
    #[cfg(bitspike_dsp)]
    dsp: Option<super::dsp::Taps<'a>>,
}

impl<'a> Taps4<'a> {
    #[inline(always)]
    fn new(offsets: &'a [u32]) -> Self {
        Self {
            offsets,
            #[cfg(bitspike_dsp)]
            dsp: super::dsp::Taps::new(offsets),
        }
    }

    /// Four channels' sums over the taps from `acc`, the window starting at `window[0]`, with
    /// each position's four weights as four bytes of `weights`.
    #[inline(always)]
    fn run(&self, window: &[u8], weights: &[u8], acc: [i32; 4]) -> [i32; 4] {
        #[cfg(bitspike_dsp)]
        if let Some(a) = self.dsp.and_then(|t| t.run(window, weights, acc)) {
            return a;
        }
        let mut acc = acc;
        for (&o, w) in self.offsets.iter().zip(weights.chunks_exact(4)) {
            let x = word(window, o as usize).to_le_bytes();
            for ((a, &x), &w) in acc.iter_mut().zip(&x).zip(w) {
                *a = a.wrapping_add(x as i32 * w as i8 as i32);
            }
        }
        acc
    }
}

/// Depthwise convolution four channels at a time: per kernel position, one word of input codes
/// and one word of the four channels' weights (on the DSP: `UXTB16`, `SXTB16` and four
/// `SMLABB`/`SMLATT` per position, `kernels::dsp::Taps`). The weights are laid out once per
/// layer as `[channel / 4][kernel position][4]` in the scratch of [`depthwise`] (the same bytes
/// as its transposed weights); a pixel whose window hangs over the padding runs over its valid
/// positions only, with their weights gathered per group. Needs `C` a multiple of four and at
/// most [`WORD_POSITIONS`] kernel positions; `false`, having written nothing, otherwise or when
/// the scratch is short. The same contract as [`super::reference::conv2d`]; runs on every
/// target (the host tests it), and is the DSP's choice.
#[inline(never)]
pub fn depthwise_words(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    let c_n = g.input.c as usize;
    let win = g.window;
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let k_n = kh * kw;
    if g.groups as usize != c_n
        || g.output.c as usize != c_n
        || c_n == 0
        || !c_n.is_multiple_of(4)
        || k_n == 0
        || k_n > WORD_POSITIONS
    {
        return false;
    }
    let layout = bitspike_core::kernel::depthwise_layout(g);
    let Some(scratch) = super::words::aligned(scratch, layout.bytes) else {
        return false;
    };
    let (_, rest) = scratch.split_at_mut(layout.weights);
    let (wt, table) = rest.split_at_mut(layout.table - layout.weights);
    let tabled = super::gather::prepare(stage, table, c_n);
    let table = &*table;
    // Weight of channel c at position k: byte (c / 4 * k_n + k) * 4 + c % 4.
    for c in 0..c_n {
        for k in 0..k_n {
            if let Some(t) = wt.get_mut((c / 4 * k_n + k) * 4 + c % 4) {
                *t = unpack_one(w.packed, w.bits, c * k_n + k) as u8;
            }
        }
    }
    // Every channel's requantizer shifts right, all of one kind: the output step's kind.
    let mut uniform = None;
    if let Some((off, lv)) = tabled {
        for c in 0..c_n {
            match (super::gather::requantizer(table, c, off, lv), uniform) {
                (Some(r), None) if c == 0 && r.right_shift() => uniform = Some(r.high_word()),
                (Some(r), Some(h)) if r.right_shift() && r.high_word() == h => {}
                _ => {
                    uniform = None;
                    break;
                }
            }
        }
    }
    // A window over the padding: its valid positions' weights, one group at a time.
    let mut words = [0u8; 4 * WORD_POSITIONS];
    let (ih, iw) = (g.input.h as usize, g.input.w as usize);
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    // Each kernel position's input offset from the window's first position (channel 0).
    let mut offsets = [0u32; WORD_POSITIONS];
    for (k, o) in offsets.iter_mut().enumerate().take(k_n) {
        *o = (((k / kw) * iw + k % kw) * c_n) as u32;
    }
    let whole = Taps4::new(&offsets[..k_n]);
    // A window over the padding: its valid positions' offsets (from the first of them) and
    // kernel indices.
    let mut eo = [0u32; WORD_POSITIONS];
    let mut ek = [0u8; WORD_POSITIONS];
    let mut macs = 0u64;
    for oy in 0..oh {
        let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
        let (ky0, ky1) = valid(y0, kh, ih);
        for ox in 0..ow {
            let x0 = (ox * win.sw as usize) as isize - win.pw as isize;
            let (kx0, kx1) = valid(x0, kw, iw);
            let m = (ky1 - ky0) * (kx1 - kx0);
            macs += (m * c_n) as u64;
            let inner = m == k_n;
            let (taps, base) = if inner {
                (whole, (y0 as usize * iw + x0 as usize) * c_n)
            } else {
                let mut j = 0;
                for ky in ky0..ky1 {
                    for kx in kx0..kx1 {
                        if let (Some(o), Some(k)) = (eo.get_mut(j), ek.get_mut(j)) {
                            *o = (((ky - ky0) * iw + kx - kx0) * c_n) as u32;
                            *k = (ky * kw + kx) as u8;
                            j += 1;
                        }
                    }
                }
                let iy = (y0 + ky0 as isize).max(0) as usize;
                let ix = (x0 + kx0 as isize).max(0) as usize;
                (Taps4::new(&eo[..j]), (iy * iw + ix) * c_n)
            };
            let at = (oy * ow + ox) * c_n;
            for (q, wq) in wt.chunks_exact(4 * k_n).enumerate() {
                let c0 = 4 * q;
                let bias = [0, 1, 2, 3].map(|i| w.bias.map_or(0, |b| b.get(c0 + i)));
                let acc = if m == 0 {
                    bias
                } else {
                    let window = input.get(base + c0..).unwrap_or(&[]);
                    if inner {
                        taps.run(window, wq, bias)
                    } else {
                        // The valid positions' weights, gathered.
                        for (v, &k) in words.chunks_exact_mut(4).zip(&ek[..m.min(WORD_POSITIONS)]) {
                            let k = 4 * k as usize;
                            if let Some(b) = wq.get(k..k + 4) {
                                v.copy_from_slice(b);
                            }
                        }
                        taps.run(window, &words[..4 * m.min(WORD_POSITIONS)], bias)
                    }
                };
                match (uniform, tabled, output.get_mut(at + c0..at + c0 + 4)) {
                    (Some(high), Some((off, lv)), Some(d)) => {
                        for ((d, &a), c) in d.iter_mut().zip(&acc).zip(c0..) {
                            if let Some(r) = super::gather::requantizer(table, c, off, lv) {
                                *d = if high {
                                    r.apply_right_as::<true>(a)
                                } else {
                                    r.apply_right_as::<false>(a)
                                };
                            }
                        }
                    }
                    _ => {
                        for (i, &a) in acc.iter().enumerate() {
                            let c = c0 + i;
                            match tabled
                                .and_then(|(off, lv)| super::gather::requantizer(table, c, off, lv))
                            {
                                Some(r) => {
                                    if let Some(d) = output.get_mut(at + c) {
                                        *d = r.apply(a);
                                    }
                                }
                                None => stage.store(output, at + c, c, a),
                            }
                        }
                    }
                }
            }
        }
    }
    ops.mac(macs);
    true
}

/// Residual add, channel by channel (each channel's output step prepared once); the same
/// contract as [`super::reference::add`]. An add with a bias (its inputs' zero points) runs
/// apart, each channel's bias folded into its prepared requantizer, so that the loop of an add
/// without one compiles as it would alone.
#[inline(never)]
pub fn add(
    g: &Geometry,
    weights: [i16; 2],
    bias: Option<I32s<'_>>,
    stage: &Stage<'_>,
    a: &[u8],
    b: &[u8],
    output: &mut [u8],
) {
    match bias {
        Some(v) => add_biased(g, weights, v, stage, a, b, output),
        None => add_plain(g, weights, stage, a, b, output),
    }
}

/// [`add`] without a bias.
#[inline(always)]
fn add_plain(
    g: &Geometry,
    weights: [i16; 2],
    stage: &Stage<'_>,
    a: &[u8],
    b: &[u8],
    output: &mut [u8],
) {
    let c_n = (g.output.c as usize).max(1);
    let n = g.output.len().min(a.len()).min(b.len()).min(output.len());
    let (wa, wb) = (weights[0] as i32, weights[1] as i32);
    for c in 0..c_n.min(n) {
        let out = stage.channel(c);
        if let super::ChannelStage::Requantize(r) = out {
            if r.right_shift() {
                // The shift's kind decided once per channel, not per element.
                let (a, b, o) = (&a[..n], &b[..n], &mut output[..n]);
                // The common top codes make the clamp one saturation.
                match (r.high_word(), r.levels()) {
                    (true, 15) => add_channel::<true, 15>(r, a, b, o, c, c_n, wa, wb),
                    (false, 15) => add_channel::<false, 15>(r, a, b, o, c, c_n, wa, wb),
                    (true, 255) => add_channel::<true, 255>(r, a, b, o, c, c_n, wa, wb),
                    (false, 255) => add_channel::<false, 255>(r, a, b, o, c, c_n, wa, wb),
                    (true, _) => add_channel::<true, 0>(r, a, b, o, c, c_n, wa, wb),
                    (false, _) => add_channel::<false, 0>(r, a, b, o, c, c_n, wa, wb),
                }
                continue;
            }
        }
        let mut i = c;
        while i < n {
            let acc = (a[i] as i32 * wa).wrapping_add(b[i] as i32 * wb);
            out.store(output, i, acc);
            i += c_n;
        }
    }
}

/// [`add`] with a bias per channel: folded into the channel's requantizer for a right shift
/// (exact: the loader bounds bias plus terms), added to the accumulator otherwise.
#[inline(never)]
fn add_biased(
    g: &Geometry,
    weights: [i16; 2],
    bias: I32s<'_>,
    stage: &Stage<'_>,
    a: &[u8],
    b: &[u8],
    output: &mut [u8],
) {
    let c_n = (g.output.c as usize).max(1);
    let n = g.output.len().min(a.len()).min(b.len()).min(output.len());
    let (wa, wb) = (weights[0] as i32, weights[1] as i32);
    for c in 0..c_n.min(n) {
        let out = stage.channel(c);
        let bc = bias.get(c);
        if let super::ChannelStage::Requantize(r) = out {
            if r.right_shift() {
                let r = r.with_bias(bc);
                let (a, b, o) = (&a[..n], &b[..n], &mut output[..n]);
                if r.high_word() {
                    add_channel::<true, 0>(r, a, b, o, c, c_n, wa, wb);
                } else {
                    add_channel::<false, 0>(r, a, b, o, c, c_n, wa, wb);
                }
                continue;
            }
        }
        let mut i = c;
        while i < n {
            let acc = (a[i] as i32 * wa)
                .wrapping_add(b[i] as i32 * wb)
                .wrapping_add(bc);
            out.store(output, i, acc);
            i += c_n;
        }
    }
}

/// Channel `c` of a residual add (elements `c, c + step, ...`) through a prepared right-shift
/// requantizer whose top code is `LEVELS` (0: any).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn add_channel<const HIGH: bool, const LEVELS: u8>(
    r: bitspike_core::quant::Requantizer,
    a: &[u8],
    b: &[u8],
    output: &mut [u8],
    c: usize,
    step: usize,
    wa: i32,
    wb: i32,
) {
    let n = output.len().min(a.len()).min(b.len());
    let (a, b, output) = (&a[..n], &b[..n], &mut output[..n]);
    let mut i = c;
    while i < n {
        let acc = (a[i] as i32 * wa).wrapping_add(b[i] as i32 * wb);
        output[i] = if LEVELS == 0 {
            r.apply_right_as::<HIGH>(acc)
        } else {
            r.apply_right_levels::<HIGH, LEVELS>(acc)
        };
        i += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_clip_to_the_input() {
        assert_eq!(valid(-1, 3, 5), (1, 3));
        assert_eq!(valid(0, 3, 5), (0, 3));
        assert_eq!(valid(3, 3, 5), (0, 2));
        assert_eq!(valid(-2, 3, 1), (2, 3));
        assert_eq!(valid(6, 3, 5), (0, 0));
        assert_eq!(valid(-5, 3, 5), (3, 3));
    }
}

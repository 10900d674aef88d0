//! The packed depthwise convolution: three products per multiply for depthwise layers over
//! inputs of at most 16 levels.
//!
//! A depthwise output reads one input channel, so the products that can share a multiply are
//! those of neighbouring output pixels: the kernel runs channel by channel, and spreads each
//! input row of the channel once into words that hold the codes of three input columns `sw`
//! apart in 13-bit fields, `x0 | x1 << 13 | x2 << 26`
//! ([`PackedDepthwiseLayout::row_words`]). Output
//! pixels `3t .. 3t + 2` then read, at kernel position `(ky, kx)`, one word of row `ky`, and
//! one signed 32x32->64 multiply-accumulate (`SMLAL`) by the position's weight adds the three
//! products to three fields of a 64-bit accumulator at bits 0, 13 and 26.
//!
//! The accumulator starts at [`DW_FIELD_BIAS`] in every field, so that each field holds its
//! pixel's signed sum plus the bias, in `0..2^13` while the sum's magnitude stays below the bias
//! ([`depthwise_packable`], checked at load): no field borrows from the next, and the three
//! sums are two bit-field extractions and the top 38 bits. The bias and the layer's own bias are
//! folded into each channel's prepared requantizer (or spiking closed form) once per layer.
//!
//! The spread rows form a plane with the top and bottom padding as zero rows (and the left and
//! right padding as zero fields), so every window reads the same taps (each kernel position's
//! word offset and weight) from its first word on. On Armv7E-M the assembly (`kernels::dsp`)
//! spreads a channel's rows (stride 1) and sums all its windows in one call each; elsewhere
//! [`spread1`] and [`plane`] do, with the same words and sums. The sums of a channel's outputs
//! then go through its output step in one loop.

use bitspike_core::kernel::{
    depthwise_packable, packed_depthwise_layout, PackedDepthwiseLayout, DW_FIELD_BIAS,
    DW_FIELD_BITS,
};
use bitspike_core::layer::Geometry;
use bitspike_core::quant::Requantizer;

use super::gather::{closed, prepare, prepare_fire, requantizer};
use super::optimized::valid;
use super::{Stage, Weights};
use crate::ops::Ops;
use bitspike_core::pack::unpack_one;

/// Output pixels per packed word.
const TRIPLE: usize = 3;

/// The accumulator every window starts from: [`DW_FIELD_BIAS`] in each of the three fields.
pub const START: i64 =
    (DW_FIELD_BIAS as i64) * (1 + (1 << DW_FIELD_BITS) + (1 << (2 * DW_FIELD_BITS)));

/// The three sums (each plus [`DW_FIELD_BIAS`]) in a window's accumulator.
#[inline(always)]
pub const fn fields(acc: i64) -> [u32; 3] {
    const M: i64 = (1 << DW_FIELD_BITS) - 1;
    [
        (acc & M) as u32,
        ((acc >> DW_FIELD_BITS) & M) as u32,
        (acc >> (2 * DW_FIELD_BITS)) as u32,
    ]
}

/// One output row of one channel in portable Rust: for each of the `sums.len() / 3` triples
/// `t`, the window whose first word is word `base + t step` of `words`, summed over `taps`
/// (pairs of a byte offset and a weight) from [`START`], its three [`fields`] into `sums`.
/// Words past `words` read as 0.
pub fn row(words: &[u32], base: usize, taps: &[[u32; 2]], step: usize, sums: &mut [u32]) {
    let mut at = base;
    for s in sums.chunks_exact_mut(TRIPLE) {
        let mut acc = START;
        for &[o, w] in taps {
            let x = words.get(at + (o / 4) as usize).copied().unwrap_or(0);
            acc = acc.wrapping_add(w as i32 as i64 * x as i64);
        }
        s.copy_from_slice(&fields(acc));
        at += step;
    }
}

/// Spread channel `c` of the input rows whose plane rows are `inside` into `plane` (plane row
/// `p` is input row `p - ph`; its words start `2 sw` words into its slot of `layout.stride`):
/// word `j` of a row holds the codes of columns `j - pw`, `j - pw + sw` and `j - pw + 2 sw` (0
/// outside the row) in the three fields. Word `j + sw` is word `j` shifted down one field with
/// the next column in the top field, so each of the `sw` chains of words is rolled along with
/// one load per word.
#[inline(never)]
fn spread_plane(
    input: &[u8],
    g: &Geometry,
    c: usize,
    plane: &mut [u32],
    inside: core::ops::Range<usize>,
    layout: &PackedDepthwiseLayout,
) {
    let (iw, c_n) = (g.input.w as usize, g.input.c as usize);
    let (pw, sw, ph) = (
        g.window.pw as usize,
        g.window.sw as usize,
        g.window.ph as usize,
    );
    let (wp, stride) = (layout.row_words, layout.stride);
    let line = iw * c_n;
    if wp == 0 || line == 0 || inside.start < ph {
        return;
    }
    // Input row `p - ph`, column 0, channel `c`, for the first plane row `p` inside.
    let first = (inside.start - ph) * line + c;
    if sw == 1 {
        // The whole slot, rolled from two words before the row's: words whose top column lies
        // in the left padding, those that take a column of the row, the right padding's.
        let nl = pw.min(stride);
        let nm = iw.min(stride - nl);
        let runs = [nl, nm, stride - nl - nm];
        let at = inside.start * stride;
        let rows = inside.len();
        #[cfg(bitspike_dsp)]
        if super::dsp::spread1(input, first, line, c_n, rows, plane, at, stride, runs) {
            return;
        }
        spread1(input, first, line, c_n, rows, plane, at, stride, runs);
        return;
    }
    let lines = input.get(first..).unwrap_or(&[]).chunks(line);
    let slots = plane.chunks_exact_mut(stride).skip(inside.start);
    for (slot, row) in slots.zip(lines).take(inside.len()) {
        let Some(dst) = slot.get_mut(2 * sw..2 * sw + wp) else {
            continue;
        };
        // Column `col` of the row (0 outside it: a negative column wraps to a large one).
        let x = |col: usize| -> u32 {
            if col < iw {
                row.get(col * c_n).map_or(0, |&v| v as u32)
            } else {
                0
            }
        };
        for r in 0..sw.min(wp) {
            let col = r.wrapping_sub(pw);
            // The word's two lower fields, and the column entering its top field.
            let mut low = x(col) | x(col.wrapping_add(sw)) << DW_FIELD_BITS;
            let mut top = col.wrapping_add(2 * sw);
            let mut j = r;
            while let Some(d) = dst.get_mut(j) {
                let word = low | x(top) << (2 * DW_FIELD_BITS);
                *d = word;
                low = word >> DW_FIELD_BITS;
                top = top.wrapping_add(sw);
                j += sw;
            }
        }
    }
}

/// `rows` rows of a plane of stride 1, in portable Rust, the model of the assembly
/// (`kernels::dsp::spread1`): row `r`'s
/// slot, `stride` words from word `at + r stride` of `plane`, rolled from 0 over `runs[0]`
/// words that take no column, `runs[1]` that take the codes at `first + r line + m c_n` of
/// `input` (`m` from 0) into their top field, and `runs[2]` more that take none.
#[allow(clippy::too_many_arguments)]
pub fn spread1(
    input: &[u8],
    first: usize,
    line: usize,
    c_n: usize,
    rows: usize,
    plane: &mut [u32],
    at: usize,
    stride: usize,
    runs: [usize; 3],
) {
    for r in 0..rows {
        let Some(slot) = plane.get_mut(at + r * stride..at + (r + 1) * stride) else {
            return;
        };
        let mut low = 0u32;
        let mut src = first + r * line;
        for (j, d) in slot.iter_mut().enumerate() {
            let top = if (runs[0]..runs[0] + runs[1]).contains(&j) {
                let v = input.get(src).copied().unwrap_or(0) as u32;
                src += c_n;
                v
            } else {
                0
            };
            let word = low | top << (2 * DW_FIELD_BITS);
            *d = word;
            low = word >> DW_FIELD_BITS;
        }
    }
}

/// Every output row's sums of channel `c` into `sums` (row `oy` from sum `oy ow` on; a row's
/// last triple may write two sums past it, which the next row overwrites), from the plane's
/// `words` (row `p`'s from word `p stride` on), then its outputs.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn channel(
    taps: &Taps<'_>,
    plane: &[u32],
    g: &Geometry,
    stride: usize,
    sums: &mut [u32],
    out: Out,
    stage: &Stage<'_>,
    output: &mut [u8],
    c: usize,
) {
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let step = TRIPLE * g.window.sw as usize;
    let skip = g.window.sh as usize * stride;
    taps.plane(plane, oh, ow.div_ceil(TRIPLE), step, skip, ow, sums);
    let n = oh * ow;
    emit(
        out,
        stage,
        sums.get(..n).unwrap_or(&[]),
        output,
        c,
        g.output.c as usize,
    );
}

/// How a channel's sums become outputs: its prepared requantizer (bias folded), its closed
/// form (bias folded), or the stage's own step for channel `.0` with the bias `.1` added.
#[derive(Clone, Copy)]
enum Out {
    Right(Requantizer),
    Fire(bitspike_core::snn::Closed),
    Other(usize, i32),
}

/// Depthwise convolution through the packed kernel, for inputs with codes up to `levels`; the
/// same contract as [`super::reference::conv2d`]. Returns `false`, having written nothing, when
/// the layer is not [`depthwise_packable`] or `scratch` is shorter than
/// [`bitspike_core::kernel::scratch_bytes`] asks.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn conv2d(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    levels: u8,
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    if !depthwise_packable(g, w.bits, levels) {
        return false;
    }
    let layout = packed_depthwise_layout(g);
    let Some(scratch) = super::words::aligned(scratch, layout.bytes) else {
        return false;
    };
    let (area, table) = scratch.split_at_mut(layout.table);
    let (_, area) = super::words::words_mut(area);
    let (plane, rest) = area.split_at_mut(layout.taps / 4);
    let (taps, sums) = rest.split_at_mut((layout.sums - layout.taps) / 4);
    let taps = taps.as_chunks_mut::<2>().0;
    let c_n = g.input.c as usize;
    let win = g.window;
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let (ih, oh, ow) = (g.input.h as usize, g.output.h as usize, g.output.w as usize);
    let (Some(sums), Some(taps)) = (sums.get_mut(..oh * ow + 2), taps.get_mut(..kh * kw)) else {
        return false;
    };
    if plane.len() < layout.rows * layout.stride {
        return false;
    }
    // Each channel's sums carry the fields' bias: fold it, with the layer's bias, into the
    // channel's output step.
    let tabled = prepare(stage, table, c_n);
    let fire = tabled.is_none() && prepare_fire(stage, table, c_n);
    let table = &*table;
    // The taps' offsets, from the window's first word: row `ky`'s words start `ky` rows on.
    for (k, t) in taps.iter_mut().enumerate() {
        t[0] = (4 * ((k / kw) * layout.stride + k % kw)) as u32;
    }
    let mut taps = Taps::new(taps);
    let mut macs_x = 0;
    for ox in 0..ow {
        let x0 = (ox * win.sw as usize) as isize - win.pw as isize;
        let (a, b) = valid(x0, kw, g.input.w as usize);
        macs_x += b - a;
    }
    let mut macs_y = 0;
    for oy in 0..oh {
        let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
        let (a, b) = valid(y0, kh, ih);
        macs_y += b - a;
    }
    // Plane row `p` is input row `p - ph`: the rows outside the input stay zero.
    plane.fill(0);
    let ph = win.ph as usize;
    let inside = ph.min(layout.rows)..(ph + ih).min(layout.rows);
    for c in 0..c_n {
        let bias = w.bias.map_or(0, |b| b.get(c));
        let out = channel_out(table, tabled, fire, c, bias);
        for k in 0..kh * kw {
            taps.set_weight(k, unpack_one(w.packed, w.bits, c * kh * kw + k) as i32);
        }
        spread_plane(input, g, c, plane, inside.clone(), &layout);
        let words = plane.get(2 * win.sw as usize..).unwrap_or(&[]);
        channel(&taps, words, g, layout.stride, sums, out, stage, output, c);
    }
    ops.mac(macs_x as u64 * macs_y as u64 * c_n as u64);
    true
}

/// The layer's taps (see [`plane`]): on Armv7E-M checked once for the assembly
/// (`kernels::dsp::DwTaps`), which then sums each channel's windows; elsewhere, or when a
/// check fails, [`plane`] does.
struct Taps<'a> {
    #[cfg(bitspike_dsp)]
    dsp: Option<super::dsp::DwTaps<'a>>,
    plain: &'a mut [[u32; 2]],
}

impl<'a> Taps<'a> {
    #[inline(always)]
    fn new(taps: &'a mut [[u32; 2]]) -> Self {
        #[cfg(bitspike_dsp)]
        return match super::dsp::DwTaps::new(taps) {
            Ok(d) => Self {
                dsp: Some(d),
                plain: &mut [],
            },
            Err(plain) => Self { dsp: None, plain },
        };
        #[cfg(not(bitspike_dsp))]
        Self { plain: taps }
    }

    #[inline(always)]
    fn set_weight(&mut self, i: usize, w: i32) {
        #[cfg(bitspike_dsp)]
        if let Some(d) = self.dsp.as_mut() {
            d.set_weight(i, w);
            return;
        }
        if let Some(t) = self.plain.get_mut(i) {
            t[1] = w as u32;
        }
    }

    /// Every output row's sums of one channel (see [`plane`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn plane(
        &self,
        words: &[u32],
        rows: usize,
        triples: usize,
        step: usize,
        skip: usize,
        ow: usize,
        sums: &mut [u32],
    ) {
        #[cfg(bitspike_dsp)]
        if let Some(d) = self.dsp.as_ref() {
            if !d.plane(words, rows, triples, step, skip, ow, sums) {
                plane(d.get(), words, rows, triples, step, skip, ow, sums);
            }
            return;
        }
        plane(self.plain, words, rows, triples, step, skip, ow, sums)
    }
}

/// Every output row's sums of one channel in portable Rust, the model of the assembly
/// (`kernels::dsp::DwTaps::plane`): for
/// each of `rows` rows `r`, [`row`] over the `triples` windows from word `r skip` of `words`
/// on, into sums `r ow ..` (a row's last triple may write two sums past the row: the next row
/// overwrites them).
#[allow(clippy::too_many_arguments)]
pub fn plane(
    taps: &[[u32; 2]],
    words: &[u32],
    rows: usize,
    triples: usize,
    step: usize,
    skip: usize,
    ow: usize,
    sums: &mut [u32],
) {
    for r in 0..rows {
        if let Some(s) = sums.get_mut(r * ow..r * ow + TRIPLE * triples) {
            row(words, r * skip, taps, step, s);
        }
    }
}

/// Channel `c`'s output step with its bias and the fields' bias folded in where the stage
/// allows it.
#[inline(always)]
fn channel_out(table: &[u8], tabled: Option<(i32, u8)>, fire: bool, c: usize, bias: i32) -> Out {
    let Some(b) = bias.checked_sub(DW_FIELD_BIAS) else {
        return Out::Other(c, bias);
    };
    if let Some((off, lv)) = tabled {
        if let Some(r) = requantizer(table, c, off, lv).filter(|r| r.right_shift()) {
            return Out::Right(r.with_bias(b));
        }
    }
    if fire {
        if let Some(k) = closed(table, c) {
            return Out::Fire(k.with_bias(b));
        }
    }
    Out::Other(c, bias)
}

/// Channel `c`'s outputs from its sums: output `j` at element `j c_n + c` of `output`.
#[inline(never)]
fn emit(out: Out, stage: &Stage<'_>, sums: &[u32], output: &mut [u8], c: usize, c_n: usize) {
    match out {
        Out::Right(r) => {
            let dst = output.get_mut(c..).unwrap_or(&mut []);
            #[cfg(bitspike_dsp)]
            if super::dsp::store_strided(sums, &r, dst, c_n) {
                return;
            }
            match (r.high_word(), r.levels()) {
                (true, 255) => right::<true, 255>(&r, sums, dst, c_n),
                (false, 255) => right::<false, 255>(&r, sums, dst, c_n),
                (true, 15) => right::<true, 15>(&r, sums, dst, c_n),
                (false, 15) => right::<false, 15>(&r, sums, dst, c_n),
                (true, _) => right::<true, 0>(&r, sums, dst, c_n),
                (false, _) => right::<false, 0>(&r, sums, dst, c_n),
            }
        }
        Out::Fire(k) => {
            let mut i = c;
            for &s in sums {
                if let Some(d) = output.get_mut(i) {
                    *d = k.count(s as i32);
                }
                i += c_n;
            }
        }
        Out::Other(c, bias) => {
            let st = stage.channel(c);
            for (j, &s) in sums.iter().enumerate() {
                let acc = (s as i32).wrapping_sub(DW_FIELD_BIAS).wrapping_add(bias);
                st.store(output, j * c_n + c, acc);
            }
        }
    }
}

/// Outputs through a right-shifting requantizer whose kind is `HIGH` and whose top code is
/// `LEVELS` (0: any), decided once per channel: one per sum, `c_n` bytes apart from `dst[0]`.
#[inline(never)]
fn right<const HIGH: bool, const LEVELS: u8>(
    r: &Requantizer,
    sums: &[u32],
    dst: &mut [u8],
    c_n: usize,
) {
    for (d, &s) in dst.iter_mut().step_by(c_n).zip(sums) {
        *d = if LEVELS == 0 {
            r.apply_right_as::<HIGH>(s as i32)
        } else {
            r.apply_right_levels::<HIGH, LEVELS>(s as i32)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_hold_signed_sums_plus_the_bias() {
        for (a, b, c) in [
            (0, 0, 0),
            (-4095, 4095, -100_000),
            (17, -3, 5),
            (4095, -4095, 1 << 20),
        ] {
            let acc = START + a + (b << DW_FIELD_BITS) + (c << (2 * DW_FIELD_BITS));
            let bias = DW_FIELD_BIAS as i64;
            let want = [(a + bias) as u32, (b + bias) as u32, (c + bias) as u32];
            assert_eq!(fields(acc), want);
        }
    }
}

//! The packed convolution: three products per multiply for 4- and 2-bit weights over inputs of
//! at most 16 levels.
//!
//! A pass covers six output pixels, two words of three. For each input `k` of the window, word
//! `t` of the pass holds the codes of pixels `3t`, `3t + 1` and `3t + 2` in 14-bit fields:
//! `x0 | x1 << 14 | x2 << 28` (the top field has four bits: codes up to 15). One 32x32->64
//! multiply-accumulate of that word by a weight `w'` adds `x0 w'`, `x1 w'` and `x2 w'` to three
//! fields of a 64-bit accumulator at bits 0, 14 and 28, three products per instruction (`UMLAL`)
//! where `SMLAD` makes two, and each weight is read once for six pixels.
//!
//! Every product must be non-negative for the fields not to borrow from each other, so weights
//! are read in offset binary: flipping the sign bits of a word of 4-bit weights (`EOR
//! 0x8888_8888`) makes each field `w + 8`, 2-bit ones (`EOR 0xAAAA_AAAA`) `w + 2`; the kernel
//! subtracts `8 x` (or `2 x`) the sum of the pixel's codes once per output, exactly. A field
//! grows by at most `levels x (2^bits - 1)` per input, so the kernel flushes the fields into
//! 32-bit sums every [`packed_chunk`] words of weights, before any can pass
//! [`FIELD_MAX`](bitspike_core::kernel::FIELD_MAX); the loader's accumulator bound keeps the
//! true result inside i32, so the wrapping sums give it exactly.
//!
//! A pass runs the rows of a block of up to 16 output channels in one call of the micro-kernel,
//! which leaves each row's six sums less the pixels' corrections; the block's outputs are then
//! requantized (or turned into spike counts in closed form) in one more call, each channel's
//! bias having been folded into its prepared step once per layer.
//!
//! The scratch is the gather kernel's ([`bitspike_core::kernel::gather_layout`]): the pass's
//! words where the gather kernel keeps its lanes (8 bytes per input, half of them), the six
//! pixels' windows as bytes after them, the block's sums in the rest of the lanes and the
//! gather kernel's column and row, the prepared steps where the gather kernel has its table.
//! On Armv7E-M the micro-kernel and the output steps are assembly (`kernels::dsp`); elsewhere
//! [`row6`] runs the micro-kernel in portable Rust, with the same words and sums.

use bitspike_core::kernel::TABLE_ENTRY;
use bitspike_core::kernel::{
    gather_layout, packable, packed_chunk, packed_per_word, FIELD_BITS, PACKED_PASS,
};
use bitspike_core::layer::Geometry;
use bitspike_core::quant::Requantizer;
use bitspike_core::snn::Closed;

use super::gather::{
    closed, fire_n, prepare, prepare_fire, requantizer, store_other, store_right, window,
};
use super::words::word as rd;
use super::{Stage, Weights};
use crate::ops::Ops;

/// Pixels per packed word.
const TRIPLE: usize = 3;

/// Output channels whose rows run before their outputs are stored.
const BLOCK: usize = 16;

/// The sign bits of every field of a word of `bits`-bit weights: XOR gives offset binary.
#[inline(always)]
const fn flip(bits: u8) -> u32 {
    match bits {
        4 => 0x8888_8888,
        _ => 0xAAAA_AAAA,
    }
}

/// One output channel's row over a pass: the six pixels' sums (pixel words 0 and 1, three
/// pixels each), over `words` words of `bits`-bit weights (4 or 2), the fields flushed every
/// `chunk` words (at least 1). `lanes` holds two pixel words per input, `weights` one 32-bit
/// word per [`packed_per_word`] inputs. Portable Rust, the model of the assembly; missing bytes
/// read as 0.
pub fn row6(bits: u8, lanes: &[u8], weights: &[u8], words: usize, chunk: usize) -> [u32; 6] {
    const M: u64 = (1 << FIELD_BITS) - 1;
    let per = packed_per_word(bits);
    let mask = (1u32 << bits) - 1;
    let chunk = chunk.max(1);
    let mut sums = [0u32; 6];
    let mut first = 0;
    while first < words {
        let end = words.min(first + chunk);
        let (mut a0, mut a1) = (0u64, 0u64);
        for i in first..end {
            let w = super::rd_lenient(weights, 4 * i) ^ flip(bits);
            for j in 0..per {
                let wj = ((w >> (bits as usize * j)) & mask) as u64;
                let at = 8 * (i * per + j);
                a0 = a0.wrapping_add(rd(lanes, at) as u64 * wj);
                a1 = a1.wrapping_add(rd(lanes, at + 4) as u64 * wj);
            }
        }
        for (s, a) in sums.chunks_exact_mut(TRIPLE).zip([a0, a1]) {
            s[0] = s[0].wrapping_add((a & M) as u32);
            s[1] = s[1].wrapping_add(((a >> FIELD_BITS) & M) as u32);
            s[2] = s[2].wrapping_add((a >> (2 * FIELD_BITS)) as u32);
        }
        first = end;
    }
    sums
}

/// The micro-kernel for this target: assembly on Armv7E-M (the words checked once per pass),
/// the portable model elsewhere or when a check fails.
#[derive(Clone, Copy)]
struct Micro<'a> {
    bits: u8,
    lanes: &'a [u8],
    words: usize,
    #[cfg(bitspike_dsp)]
    dsp: Option<super::dsp::Packed<'a>>,
}

impl<'a> Micro<'a> {
    #[inline(always)]
    fn new(bits: u8, lanes: &'a [u8], words: usize) -> Self {
        Self {
            bits,
            lanes,
            words,
            #[cfg(bitspike_dsp)]
            dsp: super::dsp::Packed::new(bits, lanes, words),
        }
    }

    /// The six sums of consecutive rows less `corr` (wrapping), one row per entry of `out`,
    /// row `r` from byte `r x stride` of `weights`, flushed every `chunk` words; the first
    /// `fits` rows lie inside `weights` (see [`rows_inside`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(bitspike_dsp), allow(unused_variables))]
    fn rows(
        &self,
        weights: &[u8],
        stride: usize,
        chunk: usize,
        corr: &[i32; PACKED_PASS],
        out: &mut [[u32; PACKED_PASS]],
        fits: usize,
    ) {
        #[cfg(bitspike_dsp)]
        let out = match self.dsp {
            Some(d) => {
                // The rows whose words lie inside `weights` run in assembly.
                let (fast, rest) = out.split_at_mut(fits.min(out.len()));
                let fits = fast.len();
                if fits > 0 && !d.rows(weights, stride, chunk, corr, fast) {
                    return self.portable(weights, stride, chunk, corr, out, 0);
                }
                return self.portable(weights, stride, chunk, corr, rest, fits);
            }
            None => out,
        };
        self.portable(weights, stride, chunk, corr, out, 0)
    }

    /// [`Self::rows`] in portable Rust for rows `first..` (the entries of `out`).
    fn portable(
        &self,
        weights: &[u8],
        stride: usize,
        chunk: usize,
        corr: &[i32; PACKED_PASS],
        out: &mut [[u32; PACKED_PASS]],
        first: usize,
    ) {
        for (r, dots) in (first..).zip(out.iter_mut()) {
            let ws = weights.get(r * stride..).unwrap_or(&[]);
            let sums = row6(self.bits, self.lanes, ws, self.words, chunk);
            for ((d, s), c) in dots.iter_mut().zip(sums).zip(corr) {
                *d = s.wrapping_sub(*c as u32);
            }
        }
    }
}

/// Interleave six pixels' codes into a pass's words: `rows[i]` holds pixel `i`'s codes for
/// `4 * q` consecutive inputs (codes up to 15), `words` gets, per input, pixel word 0 (pixels
/// 0..3) and pixel word 1 (pixels 3..6); each pixel's codes are added to `sums`. One pixel word
/// at a time, so that a pass keeps its three rows, sums and pointers in registers.
#[inline(always)]
fn interleave6(rows: [&[u8]; 6], words: &mut [u8], sums: &mut [u32; PACKED_PASS]) {
    let [r0, r1, r2, r3, r4, r5] = rows;
    let (s0, s1) = sums.split_at_mut(TRIPLE);
    interleave3([r0, r1, r2], words, s0);
    interleave3([r3, r4, r5], words.get_mut(4..).unwrap_or(&mut []), s1);
}

/// One pixel word of [`interleave6`]: three pixels' rows into every other word of `words`
/// (assembly on Armv7E-M, the portable loop elsewhere or when its checks fail).
#[inline(always)]
fn interleave3(rows: [&[u8]; 3], words: &mut [u8], sums: &mut [u32]) {
    #[cfg(bitspike_dsp)]
    {
        let quads = rows.iter().map(|r| r.len() / 4).min().unwrap_or(0);
        let quads = quads.min((words.len() + 4) / 32);
        if let Some(t) = super::dsp::interleave3(rows, words, quads) {
            for (s, t) in sums.iter_mut().zip(t) {
                *s = s.wrapping_add(t);
            }
            return;
        }
    }
    interleave3_portable(rows, words, sums)
}

/// [`interleave3`] in portable Rust (every target; the model of the assembly).
#[inline(never)]
fn interleave3_portable(rows: [&[u8]; 3], words: &mut [u8], sums: &mut [u32]) {
    let [r0, r1, r2] = rows.map(|r| r.as_chunks::<4>().0);
    let (mut t0, mut t1, mut t2) = (0u32, 0u32, 0u32);
    // 32 bytes per four inputs; the last quad of the second pixel word is 4 bytes short of a
    // whole chunk, so it goes through `chunks_mut` (`put` skips what does not fit).
    let quads = words.chunks_mut(32).zip(r0).zip(r1).zip(r2);
    for (((out, a), b), c) in quads {
        let (a, b, c) = (
            u32::from_le_bytes(*a),
            u32::from_le_bytes(*b),
            u32::from_le_bytes(*c),
        );
        // Codes are at most 15: four bytes sum without carries into the top byte.
        t0 = t0.wrapping_add(a.wrapping_mul(0x0101_0101) >> 24);
        t1 = t1.wrapping_add(b.wrapping_mul(0x0101_0101) >> 24);
        t2 = t2.wrapping_add(c.wrapping_mul(0x0101_0101) >> 24);
        let word = |j: usize| {
            ((a >> (8 * j)) & 0xF)
                | (((b >> (8 * j)) & 0xF) << FIELD_BITS)
                | ((c >> (8 * j)) << (2 * FIELD_BITS))
        };
        if let Some(o) = out.get_mut(..28) {
            o[..4].copy_from_slice(&word(0).to_le_bytes());
            o[8..12].copy_from_slice(&word(1).to_le_bytes());
            o[16..20].copy_from_slice(&word(2).to_le_bytes());
            o[24..28].copy_from_slice(&word(3).to_le_bytes());
        }
    }
    if let [s0, s1, s2] = sums {
        *s0 = s0.wrapping_add(t0);
        *s1 = s1.wrapping_add(t1);
        *s2 = s2.wrapping_add(t2);
    }
}

/// Gather a pass's six pixels (`p0 .. p0 + n`) into its words. A pixel whose window lies inside
/// the input is read straight from it, row by row, when each kernel row's codes are whole words
/// (`C % 4 == 0`); any other pixel's window is copied into its column first (zeros in the
/// padding; pixels past the last, all zeros). Returns each pixel's sum of codes and the
/// products inside the input per output channel.
#[inline(never)]
fn gather6(
    g: &Geometry,
    input: &[u8],
    (p0, n): (usize, usize),
    cols: &mut [u8],
    padded: usize,
    words: &mut [u8],
) -> ([u32; PACKED_PASS], usize) {
    let w = g.window;
    let (ih, iw, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let (kh, kw) = (w.kh as usize, w.kw as usize);
    let ow = g.output.w as usize;
    let rows_direct = c.is_multiple_of(4);
    // Per pixel: the start of its window in the input, or None (its column).
    let mut direct = [None; PACKED_PASS];
    let mut macs = 0;
    for (p, (col, d)) in cols
        .chunks_exact_mut(padded)
        .zip(direct.iter_mut())
        .enumerate()
    {
        if p >= n {
            col.fill(0);
            continue;
        }
        let (oy, ox) = ((p0 + p) / ow, (p0 + p) % ow);
        let y0 = (oy * w.sh as usize) as isize - w.ph as isize;
        let x0 = (ox * w.sw as usize) as isize - w.pw as isize;
        let inner = y0 >= 0 && x0 >= 0 && y0 as usize + kh <= ih && x0 as usize + kw <= iw;
        if rows_direct && inner {
            *d = Some((y0 as usize * iw + x0 as usize) * c);
            macs += kh * kw * c;
        } else {
            macs += window(g, input, oy, ox, col, rows_direct);
        }
    }
    let mut sums = [0u32; PACKED_PASS];
    let cols = &*cols;
    let col = |p: usize| cols.get(p * padded..(p + 1) * padded).unwrap_or(&[]);
    if rows_direct {
        let run = kw * c;
        for (ky, out) in words.chunks_mut(8 * run).take(kh).enumerate() {
            let rows = [0, 1, 2, 3, 4, 5].map(|p| match direct[p] {
                Some(at) => {
                    let at = at + ky * iw * c;
                    input.get(at..at + run).unwrap_or(&[])
                }
                None => col(p).get(ky * run..(ky + 1) * run).unwrap_or(&[]),
            });
            interleave6(rows, out, &mut sums);
        }
    } else {
        interleave6([0, 1, 2, 3, 4, 5].map(col), words, &mut sums);
    }
    (sums, macs)
}

/// What every output channel of one pass shares.
struct Pass<'a> {
    micro: Micro<'a>,
    /// Words of weights between flushes.
    chunk: usize,
    /// `offset x (sum of codes)` per pixel.
    corr: [i32; PACKED_PASS],
    /// Pixels of the pass that exist.
    n: usize,
    /// Output index of the pass's first pixel, channel 0.
    at: usize,
    /// Output channels whose rows lie inside the weights ([`rows_inside`]).
    fits: usize,
}

/// How many of the `c_out` rows of `words` words of weights, row `o` from byte `o x stride`,
/// lie inside `weights` (a row reads `4 x words` bytes, running on into the next).
fn rows_inside(weights: &[u8], words: usize, stride: usize, c_out: usize) -> usize {
    weights
        .len()
        .checked_sub(4 * words)
        .map_or(0, |room| room / stride.max(1) + 1)
        .min(c_out)
}

/// Every output channel of one pass: the row, then the output step of its six outputs.
/// `tabled` holds the channels' prepared requantizers (with the layer's offset and levels),
/// `fired` their prepared closed-form spike counts (and whether every channel has one), both
/// with the biases folded in; `FIRE` selects which of the two this instance reads. Anything
/// else goes through [`store_other`].
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn channels<'a, const FIRE: bool>(
    pass: &Pass<'_>,
    w: &Weights<'_>,
    fan: usize,
    stage: &Stage<'_>,
    tabled: Option<(&'a [u8], i32, u8)>,
    fired: Option<(&'a [u8], bool)>,
    output: &mut [u8],
    c_out: usize,
    block: &mut [[u32; PACKED_PASS]],
) {
    let n = pass.n;
    // Row `o` starts `o x row` bytes into the weights and runs on into the next rows (their
    // weights meet the zero codes past the fan-in); the last row's missing bytes read as zero
    // weights.
    let row = fan * w.bits as usize / 8;
    let mut o0 = 0;
    while o0 < c_out {
        let rows = (c_out - o0).min(block.len());
        // The block's rows first, in one call of the micro-kernel...
        let ws = w.packed.get(o0 * row..).unwrap_or(&[]);
        let fits = pass.fits.saturating_sub(o0);
        pass.micro
            .rows(ws, row, pass.chunk, &pass.corr, &mut block[..rows], fits);
        // ...then their outputs: a full pass's in one call on Armv7E-M when every channel
        // takes the same kind of step...
        #[cfg(bitspike_dsp)]
        if n == PACKED_PASS {
            let dst = output.get_mut(pass.at + o0..).unwrap_or(&mut []);
            let entries = |t: &'a [u8]| t.get(o0 * TABLE_ENTRY..).unwrap_or(&[]);
            let done = match (tabled, fired) {
                (Some((t, zero, lv)), _) if !FIRE => {
                    super::dsp::store_rows(&block[..rows], entries(t), (zero, lv), dst, c_out)
                }
                (_, Some((t, true))) if FIRE => {
                    super::dsp::fire_rows(&block[..rows], entries(t), dst, c_out)
                }
                _ => false,
            };
            if done {
                o0 += rows;
                continue;
            }
        }
        // ...or one channel at a time.
        for (o, dots) in (o0..).zip(block.iter().take(rows)) {
            let dots = &dots.map(|d| d as i32);
            let at = pass.at + o;
            if !FIRE {
                if let Some(r) = tabled.and_then(|(t, zero, lv)| requantizer(t, o, zero, lv)) {
                    if store6(&r, dots, n, output.get_mut(at..).unwrap_or(&mut []), c_out) {
                        continue;
                    }
                }
            }
            let bias = w.bias.map_or(0, |b| b.get(o));
            if FIRE {
                if let Some(c) = fired.and_then(|(t, _)| closed(t, o)) {
                    let dst = output.get_mut(at..).unwrap_or(&mut []);
                    if fire6(&c, dots, n, dst, c_out) {
                        continue;
                    }
                }
            }
            let acc = dots.map(|d| bias.wrapping_add(d));
            store_other(stage, o, &acc, n, output, at, c_out);
        }
        o0 += rows;
    }
}

/// A partial pass's `n` outputs, `c` bytes apart in `dst`, output `p` as `code(acc[p])`
/// (nothing past the end); always `true`.
#[inline(always)]
fn each(
    acc: &[i32; PACKED_PASS],
    n: usize,
    dst: &mut [u8],
    c: usize,
    code: impl Fn(i32) -> u8,
) -> bool {
    for (p, &a) in acc.iter().enumerate().take(n) {
        if let Some(b) = dst.get_mut(p * c) {
            *b = code(a);
        }
    }
    true
}

/// A requantized channel's first `n` outputs of a pass, `c` bytes apart in `dst`, from the
/// products' sums `dots` through `r`, the channel's bias folded in ([`fold_bias`]): a full
/// pass in assembly on Armv7E-M, else one by one. `false`, having written nothing, for a full
/// pass whose `dst` is too short.
#[inline(always)]
fn store6(r: &Requantizer, dots: &[i32; PACKED_PASS], n: usize, dst: &mut [u8], c: usize) -> bool {
    if n < PACKED_PASS {
        return each(dots, n, dst, c, |d| r.apply_right(d));
    }
    #[cfg(bitspike_dsp)]
    if super::dsp::store6(dots, r, dst, c) {
        return true;
    }
    store_right(r, dst, c, dots)
}

/// A spiking channel's first `n` outputs of a pass, `c` bytes apart in `dst`, from the
/// accumulators `acc` through the closed form `closed`: a full pass in assembly on Armv7E-M,
/// else one by one. `false`, having written nothing, for a full pass whose `dst` is too
/// short.
#[inline(always)]
fn fire6(closed: &Closed, acc: &[i32; PACKED_PASS], n: usize, dst: &mut [u8], c: usize) -> bool {
    if n < PACKED_PASS {
        return each(acc, n, dst, c, |a| closed.count(a));
    }
    #[cfg(bitspike_dsp)]
    if super::dsp::fire6(acc, closed, dst, c) {
        return true;
    }
    fire_n(closed, dst, c, acc)
}

/// Fold each channel's bias into its requantizer in `table` (filled by [`prepare`] with the
/// layer's offset `zero` and `levels`), exact by [`Requantizer::with_bias`]; `false`, having
/// changed nothing, when a channel shifts left (its bias cannot fold).
fn fold_bias(table: &mut [u8], w: &Weights<'_>, c_out: usize, zero: i32, levels: u8) -> bool {
    let right = |o| requantizer(table, o, zero, levels).is_some_and(|r| r.right_shift());
    if !(0..c_out).all(right) {
        return false;
    }
    for (o, t) in table.chunks_exact_mut(TABLE_ENTRY).take(c_out).enumerate() {
        if let Ok(e) = <&[u8; TABLE_ENTRY]>::try_from(&*t) {
            let bias = w.bias.map_or(0, |b| b.get(o));
            let r = Requantizer::decode(e, zero, levels).with_bias(bias);
            t.copy_from_slice(&r.encode());
        }
    }
    true
}

/// Fold each spiking channel's bias into its closed form in `table` (filled by
/// [`prepare_fire`]), exact by [`Closed::with_bias`]; whether every channel has a closed form.
fn fold_fire(table: &mut [u8], w: &Weights<'_>, c_out: usize) -> bool {
    let mut all = true;
    for (o, t) in table.chunks_exact_mut(TABLE_ENTRY).take(c_out).enumerate() {
        match closed(t, 0) {
            Some(c) => {
                let bias = w.bias.map_or(0, |b| b.get(o));
                t.copy_from_slice(&c.with_bias(bias).encode());
            }
            None => all = false,
        }
    }
    all
}

/// 2-D convolution with one group through the packed kernel, for inputs with codes up to
/// `levels`; the same contract as [`super::reference::conv2d`]. Returns `false`, having written
/// nothing, when the layer is not [`packable`] (weights other than 4 or 2 bits read in place,
/// codes above 15, several groups) or `scratch` is shorter than
/// [`bitspike_core::kernel::scratch_bytes`] asks.
#[allow(clippy::too_many_arguments)]
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
    if !packable(g, w.bits, levels) {
        return false;
    }
    let c_in = g.input.c as usize;
    let c_out = g.output.c as usize;
    let fan = g.window.kh as usize * g.window.kw as usize * c_in;
    let layout = gather_layout(g, w.bits);
    let padded = layout.padded;
    let per = packed_per_word(w.bits);
    let words = padded / per;
    let chunk = packed_chunk(w.bits, levels);
    let Some(scratch) = super::words::aligned(scratch, layout.bytes) else {
        return false;
    };
    // The gather kernel's lanes hold `16 * padded` bytes: the pass's words take the first
    // half, the six windows (`6 * padded` bytes) the second; the rest of the lanes and the
    // gather kernel's column and row (`4 * padded` bytes up to the table) hold the sums of a
    // block of channels' rows (24 bytes each, at most `BLOCK`).
    let (words_area, rest) = scratch.split_at_mut(8 * padded);
    let (cols, rest) = rest.split_at_mut(PACKED_PASS * padded);
    let Some((block, rest)) = layout
        .table
        .checked_sub(14 * padded)
        .and_then(|b| rest.split_at_mut_checked(b))
    else {
        return false;
    };
    let table = &mut rest[..layout.unpacked - layout.table];
    let (_, block) = super::words::words_mut(block);
    let block = block.as_chunks_mut::<PACKED_PASS>().0;
    let len = block.len().min(BLOCK);
    let block = &mut block[..len];
    if block.is_empty() {
        return false;
    }
    let offset = 1i32 << (w.bits - 1);
    // With every channel's bias inside its requantizer, a requantized output needs only the
    // products' sums; a layer where that fold does not apply (a left shift) goes through
    // `store_other`.
    let tabled = prepare(stage, table, c_out).filter(|&(z, l)| fold_bias(table, w, c_out, z, l));
    let fire = tabled.is_none() && prepare_fire(stage, table, c_out);
    // Likewise every spiking channel's bias inside its closed form; whether every channel has
    // one (then whole blocks of channels fire in one call).
    let all_closed = fire && fold_fire(table, w, c_out);
    let table = &*table;
    let tabled = tabled.map(|(o, l)| (table, o, l));
    let fired = fire.then_some((table, all_closed));
    // Inputs past the fan-in stay zero (the direct rows never write them, the windows never
    // write their columns there).
    words_area.fill(0);
    cols.fill(0);
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let pixels = oh * ow;
    let mut macs = 0;
    let mut p0 = 0;
    let fits = rows_inside(w.packed, words, fan * w.bits as usize / 8, c_out);
    while p0 < pixels {
        let n = (pixels - p0).min(PACKED_PASS);
        let (sums, m) = gather6(g, input, (p0, n), cols, padded, words_area);
        macs += m;
        let corr = sums.map(|s| offset.wrapping_mul(s as i32));
        let micro = Micro::new(w.bits, words_area, words);
        let pass = Pass {
            micro,
            chunk,
            corr,
            n,
            at: p0 * c_out,
            fits,
        };
        if fire {
            channels::<true>(&pass, w, fan, stage, tabled, fired, output, c_out, block);
        } else {
            channels::<false>(&pass, w, fan, stage, tabled, fired, output, c_out, block);
        }
        p0 += n;
    }
    ops.mac(macs as u64 * c_out as u64);
    true
}

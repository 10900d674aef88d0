//! The pairs convolution, for cores without the DSP extension (Armv6-M: Cortex-M0/M0+; Armv7-M:
//! Cortex-M3): two products per 32x32->32 multiply, for 8-, 4- and 2-bit weights over inputs of
//! few levels.
//!
//! A pass covers eight output pixels. For each input `k` of the window, four words hold the
//! codes of pixel pairs `(0, 1)`, `(2, 3)`, `(4, 5)`, `(6, 7)` in 16-bit fields: `x0 | x1 << 16`.
//! One multiply of such a word by a signed weight `w` gives `x0 w + x1 w << 16` modulo 2^32: two
//! products, each field a signed 16-bit sum that borrows from the field above when negative, so
//! that the low field is the word's low half read as `i16` and the high field `(word - low) >>
//! 16`. A field grows by at most `levels x 128` per input, so the kernel flushes the fields into
//! 32-bit sums every [`pairs_chunk`] inputs, before either can leave `i16`; the loader's
//! accumulator bound keeps the true result inside i32, so the wrapping sums give it exactly.
//! Each weight is read once for the eight pixels, in place (rows that start on a byte). The row
//! loop is assembly on Armv6-M (`kernels::v6m`, Thumb-1) and Armv7-M (`kernels::v7m`, Thumb-2),
//! portable Rust elsewhere.
//!
//! The scratch is the gather kernel's ([`bitspike_core::kernel::gather_layout`]): the pass's
//! words where the gather kernel keeps its lanes (16 bytes per input), two pixels' windows in its
//! column and row.
//!
//! On Armv6-M, which builds the requantization's 64-bit product from four 16x16 multiplies, a
//! layer whose outputs have at most 15 levels requantizes by per-channel threshold tables
//! ([`bitspike_core::quant::thresholds`]) when its file gives it the room after that layout
//! ([`bitspike_core::kernel::thresholds_scratch_bytes`], which exporters reserve for Armv6-M
//! boards): the accumulators then start at the layer's bound below the bias instead of the
//! bias, and each output is four compares.

use bitspike_core::kernel::{gather_layout, pairable, pairs_chunk, pairs_thresholds};
use bitspike_core::layer::Geometry;
use bitspike_core::quant::{threshold_code, thresholds, THRESHOLD_ENTRIES};

use super::gather::{prepare, requantizer, store_other, store_right, window};
use super::{Stage, Weights};
use crate::ops::Ops;

/// Output pixels per pass: four words of two.
pub const PAIRS_PASS: usize = 8;

/// Whether [`conv2d`] requantizes by threshold tables where its scratch holds them: on
/// Armv6-M, where they replace a 64-bit product built from four multiplies; elsewhere one
/// `SMULL` is cheaper than the four compares.
pub const THRESHOLDS: bool = cfg!(bitspike_v6m);

/// Add the two signed 16-bit fields of `a` to `lo` and `hi`.
#[inline(always)]
fn flush(a: u32, lo: &mut i32, hi: &mut i32) {
    let f0 = a as u16 as i16 as i32;
    let f1 = (a.wrapping_sub(f0 as u32) as i32) >> 16;
    *lo = lo.wrapping_add(f0);
    *hi = hi.wrapping_add(f1);
}

/// One output channel's eight sums over a pass: `lanes` holds four words per input, `weights`
/// the channel's `fan` weights of `bits` bits (8, 4 or 2; a whole number of bytes, fields from
/// the low bits of each byte up); the fields are flushed every `chunk` inputs (a whole number of
/// bytes of weights, at least one).
#[inline(always)]
fn row8(lanes: &[u32], weights: &[u8], bits: u8, chunk: usize, acc: &mut [i32; PAIRS_PASS]) {
    #[cfg(bitspike_v6m)]
    if super::v6m::row8(lanes, weights, bits, chunk * bits as usize / 8, acc) {
        return;
    }
    #[cfg(bitspike_v7m)]
    if super::v7m::row8(lanes, weights, bits, chunk * bits as usize / 8, acc) {
        return;
    }
    row8_portable(lanes, weights, bits, chunk, acc)
}

/// [`row8`] in portable Rust (every target; the model of the Armv6-M and Armv7-M assembly).
#[inline(always)]
fn row8_portable(
    lanes: &[u32],
    weights: &[u8],
    bits: u8,
    chunk: usize,
    acc: &mut [i32; PAIRS_PASS],
) {
    match bits {
        8 => row8_bits::<8>(lanes, weights, chunk, acc),
        4 => row8_bits::<4>(lanes, weights, chunk, acc),
        _ => row8_bits::<2>(lanes, weights, chunk, acc),
    }
}

/// [`row8_portable`] for `BITS`-bit weights: a byte of weights at a time, `8 / BITS` inputs
/// (fields from the low bits up), the fields flushed every `chunk / (8 / BITS)` bytes.
#[inline(always)]
fn row8_bits<const BITS: usize>(
    lanes: &[u32],
    weights: &[u8],
    chunk: usize,
    acc: &mut [i32; PAIRS_PASS],
) {
    let per = 8 / BITS;
    let mut quads = lanes.chunks_exact(4 * per);
    for bytes in weights.chunks((chunk / per).max(1)) {
        let (mut a0, mut a1, mut a2, mut a3) = (0u32, 0u32, 0u32, 0u32);
        for (&b, q) in bytes.iter().zip(quads.by_ref()) {
            for (j, x) in q.chunks_exact(4).enumerate() {
                // Field j of the byte, sign-extended.
                let w = (((b as u32) << (32 - BITS - BITS * j)) as i32 >> (32 - BITS)) as u32;
                if let &[x0, x1, x2, x3] = x {
                    a0 = a0.wrapping_add(x0.wrapping_mul(w));
                    a1 = a1.wrapping_add(x1.wrapping_mul(w));
                    a2 = a2.wrapping_add(x2.wrapping_mul(w));
                    a3 = a3.wrapping_add(x3.wrapping_mul(w));
                }
            }
        }
        let [s0, s1, s2, s3, s4, s5, s6, s7] = acc;
        flush(a0, s0, s1);
        flush(a1, s2, s3);
        flush(a2, s4, s5);
        flush(a3, s6, s7);
    }
}

/// The codes of a pass's first `n` accumulators by the table `t`, `c` bytes apart in `dst`
/// (on Armv6-M in assembly).
#[inline(always)]
fn codes(
    t: &[u16; THRESHOLD_ENTRIES],
    acc: &[i32; PAIRS_PASS],
    n: usize,
    dst: &mut [u8],
    c: usize,
) {
    #[cfg(bitspike_v6m)]
    if super::v6m::codes8(t, acc, n, dst, c) {
        return;
    }
    for (p, &a) in acc.iter().enumerate().take(n) {
        if let Some(x) = dst.get_mut(p * c) {
            *x = threshold_code(t, a as u32);
        }
    }
}

/// Every channel's threshold table in `bytes` (as 16-bit halves), from the requantizers
/// [`prepare`] wrote to `table`; `None`, the tables unused, when `bytes` is too short or a
/// channel's requantizer has no table ([`thresholds`]).
#[allow(clippy::too_many_arguments)]
fn build_tables<'a>(
    table: &[u8],
    bytes: &'a mut [u8],
    w: &Weights<'_>,
    c_out: usize,
    offset: i32,
    levels: u8,
    below: u32,
    span: u32,
) -> Option<&'a [u16]> {
    let (head, halves) = super::words::halves_mut(bytes);
    let halves = halves
        .get_mut(..c_out * THRESHOLD_ENTRIES)
        .filter(|_| head == 0)?;
    for (o, t) in halves.chunks_exact_mut(THRESHOLD_ENTRIES).enumerate() {
        let r = requantizer(table, o, offset, levels)?;
        let bias = w.bias.map_or(0, |b| b.get(o));
        let t = <&mut [u16; THRESHOLD_ENTRIES]>::try_from(t).ok()?;
        if !thresholds(&r, bias as i64 - below as i64, span, t) {
            return None;
        }
    }
    Some(halves)
}

/// 2-D convolution with one group through the pairs kernel, for inputs with codes up to
/// `levels`; the same contract as [`super::reference::conv2d`]. Returns `false`, having written
/// nothing, when the layer is not [`pairable`] (weights other than 8, 4 or 2 bits read in
/// place, too many levels, several groups) or `scratch` is shorter than [`bitspike_core::kernel::scratch_bytes`] asks.
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
    conv2d_with(g, w, stage, input, levels, output, scratch, ops, THRESHOLDS)
}

/// [`conv2d`] with the use of threshold tables (where the layer and its scratch allow them)
/// decided by `tables` instead of by the target, so that both paths are tested on any target.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_with(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    levels: u8,
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
    tables: bool,
) -> bool {
    if !pairable(g, w.bits, levels) {
        return false;
    }
    let c_in = g.input.c as usize;
    let c_out = g.output.c as usize;
    let fan = g.window.kh as usize * g.window.kw as usize * c_in;
    let layout = gather_layout(g, w.bits);
    let chunk = pairs_chunk(w.bits, levels);
    // The threshold tables, after the layout, where the layer and the file allow them.
    let out_levels = match stage {
        Stage::Requantize { levels, .. } => *levels,
        _ => 0,
    };
    let start = layout.bytes.saturating_add(3) & !3;
    let with_tables = start.saturating_add(c_out * 2 * THRESHOLD_ENTRIES);
    let bound = if tables {
        pairs_thresholds(g, w.bits, levels, out_levels)
            .filter(|_| super::words::aligned(scratch, with_tables).is_some())
    } else {
        None
    };
    let len = if bound.is_some() {
        with_tables
    } else {
        layout.bytes
    };
    let Some(scratch) = super::words::aligned(scratch, len) else {
        return false;
    };
    let (scratch, table_bytes) = scratch.split_at_mut(start.min(len));
    let (lanes, rest) = scratch.split_at_mut(layout.column);
    let (cols, rest) = rest.split_at_mut(layout.table - layout.column);
    let table = &mut rest[..layout.unpacked - layout.table];
    // Two windows of `padded` bytes: the gather kernel's column and row.
    let (col_a, col_b) = cols.split_at_mut(layout.padded);
    let (head, lanes) = super::words::words_mut(lanes);
    let Some(lanes) = lanes.get_mut(..4 * fan).filter(|_| head == 0) else {
        return false;
    };
    let tabled = prepare(stage, table, c_out);
    let table = &*table;
    // Accumulators start at `below` instead of the bias when the tables are built: each is
    // then its distance above the channel's base `bias - below`.
    let tables = match (bound, tabled) {
        (Some((below, span)), Some((off, lv))) => {
            build_tables(table, table_bytes, w, c_out, off, lv, below, span).map(|t| (t, below))
        }
        _ => None,
    };
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let pixels = oh * ow;
    let c4 = c_in.is_multiple_of(4);
    let mut macs = 0;
    let mut p0 = 0;
    while p0 < pixels {
        let n = (pixels - p0).min(PAIRS_PASS);
        for pair in 0..PAIRS_PASS / 2 {
            for (i, col) in [&mut *col_a, &mut *col_b].into_iter().enumerate() {
                let p = 2 * pair + i;
                if p < n {
                    let (oy, ox) = ((p0 + p) / ow, (p0 + p) % ow);
                    macs += window(g, input, oy, ox, col, c4);
                } else {
                    col.fill(0);
                }
            }
            for (q, (&a, &b)) in lanes
                .chunks_exact_mut(4)
                .zip(col_a.iter().zip(col_b.iter()))
            {
                if let Some(x) = q.get_mut(pair) {
                    *x = a as u32 | (b as u32) << 16;
                }
            }
        }
        let at = p0 * c_out;
        for o in 0..c_out {
            let row = fan * w.bits as usize / 8;
            let ws = w.packed.get(o * row..(o + 1) * row).unwrap_or(&[]);
            let bias = w.bias.map_or(0, |b| b.get(o));
            if let Some((t, below)) = tables {
                let mut acc = [below as i32; PAIRS_PASS];
                row8(lanes, ws, w.bits, chunk, &mut acc);
                if let Some(t) = t
                    .get(o * THRESHOLD_ENTRIES..(o + 1) * THRESHOLD_ENTRIES)
                    .and_then(|c| <&[u16; THRESHOLD_ENTRIES]>::try_from(c).ok())
                {
                    codes(
                        t,
                        &acc,
                        n,
                        output.get_mut(at + o..).unwrap_or(&mut []),
                        c_out,
                    );
                }
                continue;
            }
            let mut acc = [bias; PAIRS_PASS];
            row8(lanes, ws, w.bits, chunk, &mut acc);
            let at = at + o;
            if let Some((off, lv)) = tabled {
                if let Some(r) = requantizer(table, o, off, lv) {
                    if n == PAIRS_PASS
                        && store_right(&r, output.get_mut(at..).unwrap_or(&mut []), c_out, &acc)
                    {
                        continue;
                    }
                }
            }
            store_other(stage, o, &acc, n, output, at, c_out);
        }
        p0 += n;
    }
    ops.mac(macs as u64 * c_out as u64);
    true
}

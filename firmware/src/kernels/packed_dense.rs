//! The packed dense kernel: two products per 32x32->32 multiply for dense layers with 4- or 2-bit
//! weights, on every core (portable code: `MLA` on Armv7-M, `MULS` and `ADDS` on Armv6-M).
//!
//! A dense layer at batch 1 uses each weight once, so the packing cannot share a weight among
//! output pixels as the convolution kernels do. It pairs two inputs of one row instead. With
//! `X = x_b + x_a << 16` and `W = f_a + f_b << 16`,
//!
//! ```text
//! X W = x_b f_a  +  (x_a f_a + x_b f_b) << 16  +  x_a f_b << 32
//! ```
//!
//! so modulo 2^32 the upper half holds the sum of the two products, the lower half a cross term
//! that is discarded, as long as neither half has overflowed.
//!
//! * Weights are read in place, a word at a time. A word of `b`-bit weights holds `P = 32 / b`
//!   of them, `f_0 .. f_(P-1)` from the low bits up, so `(u >> b j) & M`, with the mask `M` on
//!   bits `0..b` and `16..16 + b`, is `f_j + f_(j + P/2) << 16` for `j < P/2`. The sign bit of
//!   every field is inverted first (one `EOR`): each weight becomes `w + 2^(b-1)`, never
//!   negative, and the kernel subtracts `2^(b-1) x` (the sum of the codes) once per output.
//! * The input codes are spread once per layer into the scratch: `X_j = x_(j + P/2) + x_j << 16`
//!   for each of a word's `P/2` pairs, two bytes per input
//!   ([`bitspike_core::kernel::packed_dense_layout`]).
//! * The upper half is flushed into a 32-bit sum every two words, before it or the cross terms
//!   below it can reach 2^16: with codes up to 255 a word adds at most `P x 255 x (2^b - 1)` to
//!   the upper half (30 600 at 4 bits, 12 240 at 2) and half of that to the lower, so two words
//!   add at most 61 200, whatever the input holds. On the DSP one `SMLADX` per pair takes the two
//!   products from swapped halves into a 32-bit sum instead, with nothing to flush
//!   (`kernels::dsp::dot_pairs`).
//! * A row's last `n mod P` inputs, past its last whole word, are one product each.
//!
//! The sums are exact integers and are added with wrapping, so the output is the reference
//! kernel's, bit for bit.

use bitspike_core::kernel::{dense_packable, packed_dense_layout};
use bitspike_core::layer::Geometry;
use bitspike_core::pack::unpack_one;

use super::{Stage, Weights};
use crate::ops::Ops;

/// Fully connected layer with 4- or 2-bit weights; the same contract as
/// [`super::reference::dense`]. `false`, having written nothing, when the layer is not
/// [`dense_packable`] or the scratch is shorter than its layout. (Out of line: the runtime's
/// dispatch stays as small as before it.)
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
    let bits = w.bits;
    if !dense_packable(g, bits) {
        return false;
    }
    let n = g.input.len();
    let c_out = g.output.c as usize;
    // dense_packable: a row is a whole number of bytes, and at least one word.
    let row_bytes = n.saturating_mul(bits as usize) / 8;
    let (Some(input), Some(weights)) = (
        input.get(..n),
        w.packed.get(..c_out.saturating_mul(row_bytes)),
    ) else {
        return false;
    };
    let Some(lanes) = super::words::aligned(scratch, packed_dense_layout(g, bits)) else {
        return false;
    };
    let (_, lanes) = super::words::words_mut(lanes);
    let per = 32 / bits as usize;
    let full = n / per * per;
    let (codes, rest) = input.split_at(full.min(n));
    let sum = spread(codes, lanes, per / 2);
    let lanes = &*lanes;
    let offset = (sum as i32).wrapping_mul(1 << (bits - 1));
    let word_bytes = full.saturating_mul(bits as usize) / 8;
    // Slices are split, never indexed out of range: a kernel on the device path has no panic
    // paths (the word readers below index chunks whose length `chunks_exact` fixes).
    let mut rows = weights;
    for o in 0..c_out {
        let (row, next) = rows.split_at(row_bytes.min(rows.len()));
        rows = next;
        let (head, tail) = row.split_at(word_bytes.min(row.len()));
        let dot = if bits == 4 {
            row_sum::<4, 4>(head, lanes)
        } else {
            row_sum::<2, 8>(head, lanes)
        };
        let mut acc = w
            .bias
            .map_or(0, |b| b.get(o))
            .wrapping_sub(offset)
            .wrapping_add(dot);
        // `tail` starts on a byte: its weights are numbered from 0.
        for (i, &x) in rest.iter().enumerate() {
            acc = acc.wrapping_add(x as i32 * unpack_one(tail, bits, i) as i32);
        }
        ops.mac(n as u64);
        stage.store(output, o, o, acc);
    }
    true
}

/// Spread `input` into `lanes`, `h` words per `2 h` codes: `x_(j + h) + x_j << 16` for
/// `j < h`, and the sum of the codes. One loop for both widths
/// (`h` is 4 or 8): it runs once per layer, so it is kept small rather than unrolled.
#[inline(never)]
fn spread(input: &[u8], lanes: &mut [u32], h: usize) -> u32 {
    let mut sum = 0u32;
    let (mut x, mut l) = (input, lanes);
    while h > 0 && x.len() >= 2 * h && l.len() >= h {
        let (group, x_rest) = x.split_at(2 * h);
        let (lo, hi) = group.split_at(h);
        let (words, l_rest) = core::mem::take(&mut l).split_at_mut(h);
        for ((&a, &b), d) in lo.iter().zip(hi).zip(words.iter_mut()) {
            *d = b as u32 | (a as u32) << 16;
            sum = sum.wrapping_add(a as u32).wrapping_add(b as u32);
        }
        (x, l) = (x_rest, l_rest);
    }
    sum
}

/// `sum f_i x_i` over a row's whole words of `B`-bit weights `row` (offset binary after the
/// flip) and the spread codes `lanes` (`H = 16 / B` words per weight word).
#[inline(always)]
fn row_sum<const B: usize, const H: usize>(row: &[u8], lanes: &[u32]) -> i32 {
    #[cfg(bitspike_dsp)]
    if let Some(sum) = super::dsp::dot_pairs(row, lanes, B as u8) {
        return sum;
    }
    // Armv6-M has no unaligned loads: a row that starts on a word is read a word at a time.
    #[cfg(bitspike_v6m)]
    {
        let (head, words) = super::words::words(row);
        if head == 0 && words.len() * 4 == row.len() {
            return sum_words::<B, H, u32, 1>(words, lanes, |w| w[0]);
        }
    }
    sum_words::<B, H, u8, 4>(row, lanes, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// The loop of [`row_sum`] over the weight words of `row`, `N` elements of it per word read by
/// `word`: two words at a time into one 32-bit sum, whose upper half is then added to the total.
#[inline(always)]
fn sum_words<const B: usize, const H: usize, T, const N: usize>(
    row: &[T],
    lanes: &[u32],
    word: impl Fn(&[T]) -> u32,
) -> i32 {
    let mut total = 0i32;
    for (w, x) in row.chunks_exact(2 * N).zip(lanes.chunks_exact(2 * H)) {
        let (w0, w1) = w.split_at(N);
        let (x0, x1) = x.split_at(H);
        let t = pairs::<B>(word(w0), x0).wrapping_add(pairs::<B>(word(w1), x1));
        total = total.wrapping_add((t >> 16) as i32);
    }
    // An odd last word.
    let last = row.len() / N / 2 * 2;
    if let (Some(w), Some(x)) = (
        row.get(last * N..last * N + N),
        lanes.get(last * H..last * H + H),
    ) {
        total = total.wrapping_add((pairs::<B>(word(w), x) >> 16) as i32);
    }
    total
}

/// One word `w` of `B`-bit weights against its pairs `x`: `sum_j x_j ((u >> B j) & M)` modulo
/// 2^32, `u` the word with every field's sign bit inverted.
#[inline(always)]
fn pairs<const B: usize>(w: u32, x: &[u32]) -> u32 {
    let mask = ((1u32 << B) - 1) * 0x0001_0001;
    // The sign bit of every field.
    let u = w ^ if B == 4 { 0x8888_8888 } else { 0xAAAA_AAAA };
    let mut t = 0u32;
    for (j, &xj) in x.iter().enumerate() {
        t = t.wrapping_add(xj.wrapping_mul((u >> (B * j)) & mask));
    }
    t
}

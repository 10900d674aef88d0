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
//! The scratch is the gather kernel's ([`bitspike_core::kernel::gather_layout`]): the pass's
//! words where the gather kernel keeps its lanes (8 bytes per input, half of them), the six
//! pixels' windows as bytes after them, the requantization table where the gather kernel has
//! it. On Armv7E-M the micro-kernel is assembly (`kernels::dsp`); elsewhere [`micro6`] runs it
//! in portable Rust, with the same words and sums.

use bitspike_core::kernel::{
    gather_layout, packable, packed_chunk, packed_per_word, FIELD_BITS, PACKED_PASS,
};
use bitspike_core::layer::Geometry;

use super::gather::{prepare, requantizer, store_right, window};
use super::{ChannelStage, Stage, Weights};
use crate::ops::Ops;

/// Pixels per packed word.
const TRIPLE: usize = 3;

/// Little-endian u32 at byte `at` (0 past the end).
#[inline(always)]
fn rd(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// The sign bits of every field of a word of `bits`-bit weights: XOR gives offset binary.
#[inline(always)]
const fn flip(bits: u8) -> u32 {
    match bits {
        4 => 0x8888_8888,
        _ => 0xAAAA_AAAA,
    }
}

/// The two 64-bit field accumulators of a pass's words over `words` words of `bits`-bit
/// weights (4 or 2), from zero: `lanes` holds two words per input (pixel words 0 and 1),
/// `weights` one 32-bit word per [`packed_per_word`] inputs. Portable Rust, the model of the
/// assembly; missing bytes read as 0.
pub fn micro6(bits: u8, lanes: &[u8], weights: &[u8], words: usize) -> [u64; 2] {
    let per = packed_per_word(bits);
    let mask = (1u32 << bits) - 1;
    let (mut a0, mut a1) = (0u64, 0u64);
    for i in 0..words {
        let w = super::rd_lenient(weights, 4 * i) ^ flip(bits);
        for j in 0..per {
            let wj = ((w >> (bits as usize * j)) & mask) as u64;
            let at = 8 * (i * per + j);
            a0 = a0.wrapping_add(rd(lanes, at) as u64 * wj);
            a1 = a1.wrapping_add(rd(lanes, at + 4) as u64 * wj);
        }
    }
    [a0, a1]
}

/// Add the three fields of accumulator `a` to `sums`.
#[inline(always)]
fn flush(a: u64, sums: &mut [i32]) {
    const M: u64 = (1 << FIELD_BITS) - 1;
    if let [s0, s1, s2] = sums {
        *s0 = s0.wrapping_add((a & M) as i32);
        *s1 = s1.wrapping_add(((a >> FIELD_BITS) & M) as i32);
        *s2 = s2.wrapping_add((a >> (2 * FIELD_BITS)) as i32);
    }
}

/// The micro-kernel for this target: assembly on Armv7E-M (the lanes checked once per pass),
/// the portable model elsewhere or when a check fails.
#[derive(Clone, Copy)]
struct Micro<'a> {
    bits: u8,
    lanes: &'a [u8],
    #[cfg(bitspike_dsp)]
    dsp: Option<super::dsp::Packed<'a>>,
}

impl<'a> Micro<'a> {
    #[inline(always)]
    fn new(bits: u8, lanes: &'a [u8], words: usize) -> Self {
        #[cfg(not(bitspike_dsp))]
        let _ = words;
        Self {
            bits,
            lanes,
            #[cfg(bitspike_dsp)]
            dsp: super::dsp::Packed::new(bits, lanes, words),
        }
    }

    /// Words `first .. first + n` of the row `weights` (the whole row).
    #[inline(always)]
    fn run(&self, weights: &[u8], first: usize, n: usize) -> [u64; 2] {
        #[cfg(bitspike_dsp)]
        if let Some(acc) = self.dsp.and_then(|d| d.micro6(weights, first, n)) {
            return acc;
        }
        let per = packed_per_word(self.bits);
        let lanes = self.lanes.get(8 * per * first..).unwrap_or(&[]);
        micro6(
            self.bits,
            lanes,
            weights.get(4 * first..).unwrap_or(&[]),
            n,
        )
    }
}

/// Interleave three pixels' windows (`cols`, `padded` bytes each, codes up to 15) into pixel
/// word `t` of the lanes (`lanes[8k + 4t ..]`), and return each window's sum of codes.
#[inline(never)]
fn interleave(cols: [&[u8]; 3], lanes: &mut [u8], t: usize, padded: usize) -> [u32; 3] {
    let mut sums = [0u32; 3];
    for q in 0..padded / 4 {
        let [a, b, c] = cols.map(|col| rd(col, 4 * q));
        // Codes are at most 15: four bytes sum without carries in the top byte.
        for (s, v) in sums.iter_mut().zip([a, b, c]) {
            *s += v.wrapping_mul(0x0101_0101) >> 24;
        }
        for j in 0..4 {
            let word = ((a >> (8 * j)) & 0xF)
                | (((b >> (8 * j)) & 0xF) << FIELD_BITS)
                | ((c >> (8 * j)) << (2 * FIELD_BITS));
            let at = 8 * (4 * q + j) + 4 * t;
            if let Some(d) = lanes.get_mut(at..at + 4) {
                d.copy_from_slice(&word.to_le_bytes());
            }
        }
    }
    sums
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
    let align = (4 - scratch.as_ptr() as usize % 4) % 4;
    let Some(scratch) = scratch.get_mut(align..align + layout.bytes) else {
        return false;
    };
    // The gather kernel's lanes hold `16 * padded` bytes: the pass's words take the first
    // half, the six windows (`6 * padded` bytes) the second.
    let (lanes, rest) = scratch.split_at_mut(layout.column);
    let (words_area, cols) = lanes.split_at_mut(8 * padded);
    let (_, rest) = rest.split_at_mut(layout.table - layout.column);
    let table = &mut rest[..layout.unpacked - layout.table];
    let Some(cols) = cols.get_mut(..PACKED_PASS * padded) else {
        return false;
    };
    let offset = 1i32 << (w.bits - 1);
    let tabled = prepare(stage, table, c_out);
    let table = &*table;
    for b in cols.iter_mut() {
        *b = 0;
    }
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let pixels = oh * ow;
    let words_c4 = c_in.is_multiple_of(4);
    let mut macs = 0;
    let mut p0 = 0;
    while p0 < pixels {
        let n = (pixels - p0).min(PACKED_PASS);
        let mut corr = [0i32; PACKED_PASS];
        for (p, col) in cols.chunks_exact_mut(padded).enumerate() {
            if p < n {
                let (oy, ox) = ((p0 + p) / ow, (p0 + p) % ow);
                macs += window(g, input, oy, ox, col, words_c4);
            } else {
                // Pixels past the last (the last pass only): zero windows.
                for b in col.iter_mut() {
                    *b = 0;
                }
            }
        }
        for t in 0..PACKED_PASS / TRIPLE {
            let col = |i: usize| {
                let at = (TRIPLE * t + i) * padded;
                cols.get(at..at + padded).unwrap_or(&[])
            };
            let sums = interleave([col(0), col(1), col(2)], words_area, t, padded);
            for (i, s) in sums.iter().enumerate() {
                corr[TRIPLE * t + i] = offset.wrapping_mul(*s as i32);
            }
        }
        let micro = Micro::new(w.bits, words_area, words);
        let at = p0 * c_out;
        for o in 0..c_out {
            // Channel o's row in place, running on into the next rows (their weights meet the
            // zero codes past the fan-in); the last row's missing bytes read as zero weights.
            let start = o * fan * w.bits as usize / 8;
            let ws = w.packed.get(start..).unwrap_or(&[]);
            let bias = w.bias.map_or(0, |b| b.get(o));
            let mut acc = corr.map(|c| bias.wrapping_sub(c));
            let mut first = 0;
            while first < words {
                let k = chunk.min(words - first);
                let [a0, a1] = micro.run(ws, first, k);
                flush(a0, &mut acc[..TRIPLE]);
                flush(a1, &mut acc[TRIPLE..]);
                first += k;
            }
            if let Some((offset, lv)) = tabled {
                if let Some(r) = requantizer(table, o, offset, lv) {
                    if n == PACKED_PASS
                        && store_right(&r, output.get_mut(at + o..).unwrap_or(&mut []), c_out, &acc)
                    {
                        continue;
                    }
                    let out = ChannelStage::Requantize(r);
                    for (p, &a) in acc.iter().enumerate().take(n) {
                        out.store(output, at + o + p * c_out, a);
                    }
                    continue;
                }
            }
            match stage.channel(o) {
                ChannelStage::Fire(neuron) => {
                    for (p, &a) in acc.iter().enumerate().take(n) {
                        if let Some(d) = output.get_mut(at + o + p * c_out) {
                            *d = neuron.count(a);
                        }
                    }
                }
                out => {
                    for (p, &a) in acc.iter().enumerate().take(n) {
                        out.store(output, at + o + p * c_out, a);
                    }
                }
            }
        }
        p0 += n;
    }
    ops.mac(macs as u64 * c_out as u64);
    true
}

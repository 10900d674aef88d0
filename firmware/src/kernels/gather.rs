//! The gather convolution: eight output pixels per pass, their input windows as 16-bit lanes in
//! the layer's scratch, two products per multiply.
//!
//! For a pass over output pixels `p0 .. p0 + 8`, each pixel's window (`kh x kw x C` codes, zeros
//! where it hangs over the padding) is spread into 32-bit words of two 16-bit lanes: straight
//! from the input when each kernel position's `C` codes are whole lane blocks, else through a
//! byte column. Each output channel then runs a micro-kernel over each half of four pixels that
//! reads every weight once for the four pixels, and one output step for the eight outputs:
//!
//! * 8-bit weights: one 32-bit load gives weights `w0..w3`; `SXTB16` makes the lane pairs
//!   `(w0, w2)` and (rotated by 8) `(w1, w3)`, so the inputs are laid out as `(x0 | x2)`,
//!   `(x1 | x3)`;
//! * 4-bit weights: one load gives eight; flipping the sign bits (`EOR 0x8888_8888`) makes
//!   each field `w + 8`, unsigned, and `(word >> 4j) & 0x000F_000F` is the pair `(w_j, w_j+4)`;
//!   the kernel subtracts `8 x (sum of the pixel's codes)` once per output, exactly;
//! * 2-bit weights: sixteen per load, `EOR 0xAAAA_AAAA`, pairs `(w_j, w_j+8)`, minus `2 x sum`;
//! * other widths (and rows that start inside a byte) are unpacked to 8 bits per output
//!   channel first.
//!
//! A lane block is [`block`] inputs; within it, word `j` of pixel `p` holds inputs `j` and
//! `j + block / 2` and sits at word `j * 4 + p`, so that the micro-kernel streams through the
//! lanes with one load per two multiplies. `SMLAD` accumulates two 16x16 products into 32 bits;
//! the sums wrap like the device's adders, and the loader's accumulator bound keeps the true
//! result inside i32, so the offset trick's intermediate sums cannot change it.
//!
//! On Armv7E-M the micro-kernels are assembly (`kernels::dsp`); elsewhere [`lanes`] runs the
//! same layout in portable Rust, instruction by instruction, so the host tests the layout.

use bitspike_core::kernel::{block, gather_layout, in_place, PASS, PIXELS, TABLE_ENTRY};
use bitspike_core::layer::Geometry;
use bitspike_core::quant::Requantizer;
use bitspike_core::snn::Closed;

use super::words::word as rd;
use super::{unpack_row, ChannelStage, Stage, Weights};
use crate::ops::Ops;

/// Portable models of the DSP instructions the micro-kernels use, and the micro-kernels built
/// from them: bit-exact with the assembly, lane by lane.
pub mod lanes {
    use super::rd;

    /// `SXTB16`: sign-extend bytes 0 and 2 into the low and high 16-bit lanes.
    #[inline(always)]
    pub const fn sxtb16(v: u32) -> u32 {
        let lo = (v as u8 as i8 as i16) as u16 as u32;
        let hi = ((v >> 16) as u8 as i8 as i16) as u16 as u32;
        lo | (hi << 16)
    }

    /// `SMLAD`: `acc + lo(a) * lo(b) + hi(a) * hi(b)`, lanes signed 16-bit, wrapping.
    #[inline(always)]
    pub const fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let p0 = (a as u16 as i16 as i32) * (b as u16 as i16 as i32);
        let p1 = ((a >> 16) as u16 as i16 as i32) * ((b >> 16) as u16 as i16 as i32);
        acc.wrapping_add(p0).wrapping_add(p1)
    }

    /// The weight lane pairs one 32-bit word of `bits`-bit weights unpacks into, in the
    /// gather layout's order (see the module docs); `out` gets `block(bits) / 2` words.
    #[inline(always)]
    pub fn pairs(word: u32, bits: u8, out: &mut [u32; 8]) {
        match bits {
            4 => {
                let e = word ^ 0x8888_8888;
                for (j, o) in out.iter_mut().take(4).enumerate() {
                    *o = (e >> (4 * j)) & 0x000F_000F;
                }
            }
            2 => {
                let e = word ^ 0xAAAA_AAAA;
                for (j, o) in out.iter_mut().enumerate() {
                    *o = (e >> (2 * j)) & 0x0003_0003;
                }
            }
            _ => {
                out[0] = sxtb16(word);
                out[1] = sxtb16(word.rotate_right(8));
            }
        }
    }

    /// Four pixels' sums over `blocks` lane blocks, starting from `init`: `lanes` in the gather
    /// layout, `weights` one 32-bit word per block.
    pub fn micro4(
        bits: u8,
        lanes: &[u8],
        weights: &[u8],
        blocks: usize,
        init: [i32; 4],
    ) -> [i32; 4] {
        let half = super::block(bits) / 2;
        let mut acc = init;
        let mut w = [0u32; 8];
        for b in 0..blocks {
            pairs(rd(weights, 4 * b), bits, &mut w);
            for (j, &wj) in w.iter().enumerate().take(half) {
                let at = (b * half + j) * 16;
                for (p, a) in acc.iter_mut().enumerate() {
                    *a = smlad(rd(lanes, at + 4 * p), wj, *a);
                }
            }
        }
        acc
    }
}

/// The micro-kernel for this target: assembly on Armv7E-M (through the lanes checked once per
/// pass), the portable model elsewhere or when a check fails.
#[derive(Clone, Copy)]
struct Micro<'a> {
    bits: u8,
    lanes: &'a [u8],
    blocks: usize,
    #[cfg(bitspike_dsp)]
    dsp: Option<super::dsp::Lanes<'a>>,
}

impl<'a> Micro<'a> {
    #[inline(always)]
    fn new(bits: u8, lanes: &'a [u8], blocks: usize) -> Self {
        Self {
            bits,
            lanes,
            blocks,
            #[cfg(bitspike_dsp)]
            dsp: super::dsp::Lanes::new(bits, lanes, blocks),
        }
    }

    #[inline(always)]
    fn run(&self, weights: &[u8], init: [i32; 4]) -> [i32; 4] {
        #[cfg(bitspike_dsp)]
        if let Some(acc) = self.dsp.and_then(|l| l.micro4(weights, init)) {
            return acc;
        }
        lanes::micro4(self.bits, self.lanes, weights, self.blocks, init)
    }
}

/// Copy the window of output pixel `(oy, ox)` into `col` (`fan` codes in OHWI order, zeros in
/// the padding; `col` past `fan` is left as is). Returns how many positions lie inside the
/// input. With `words`, every run is a whole number of 32-bit words (`C % 4 == 0`) and moves a
/// word at a time.
#[inline(always)]
pub(crate) fn window(
    g: &Geometry,
    input: &[u8],
    oy: usize,
    ox: usize,
    col: &mut [u8],
    words: bool,
) -> usize {
    let w = g.window;
    let (ih, iw, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let (kh, kw) = (w.kh as usize, w.kw as usize);
    let y0 = (oy * w.sh as usize) as isize - w.ph as isize;
    let x0 = (ox * w.sw as usize) as isize - w.pw as isize;
    // Valid kx range, the same for every row.
    let kx0 = if x0 < 0 { (-x0) as usize } else { 0 }.min(kw);
    let kx1 = (iw as isize - x0).clamp(0, kw as isize) as usize;
    let kx1 = kx1.max(kx0);
    let row = kw * c;
    let run = (kx1 - kx0) * c;
    let mut valid = 0;
    for (ky, dst) in col.chunks_exact_mut(row).take(kh).enumerate() {
        let iy = y0 + ky as isize;
        if iy < 0 || iy >= ih as isize || run == 0 {
            zero(dst);
            continue;
        }
        let (before, rest) = dst.split_at_mut(kx0 * c);
        zero(before);
        let (mid, after) = rest.split_at_mut(run);
        // With a run, `x0 + kx0` is a column inside the input.
        let at = (iy as usize * iw + (x0 + kx0 as isize).max(0) as usize) * c;
        if let Some(src) = input.get(at..at + run) {
            if words {
                for (d, s) in mid.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                    d.copy_from_slice(s);
                }
            } else {
                for (d, &s) in mid.iter_mut().zip(src) {
                    *d = s;
                }
            }
            valid += run;
        }
        zero(after);
    }
    valid
}

/// Zero a short run of bytes.
#[inline(always)]
fn zero(b: &mut [u8]) {
    for x in b {
        *x = 0;
    }
}

/// Spread codes into one pixel slot of the lanes (see the module docs): `lanes` starts at the
/// slot's first word (`4 * p` bytes into the lane blocks), so every word of the slot sits at a
/// fixed offset in its block. Returns the sum of the codes when `sum` (the sub-byte kernels'
/// offset correction needs it).
#[inline(always)]
fn spread(codes: &[u8], bits: u8, lanes: &mut [u8], sum: bool) -> u32 {
    #[cfg(bitspike_dsp)]
    if let Some(total) = super::dsp::spread(codes, bits, lanes) {
        return total;
    }
    spread_portable(codes, bits, lanes, sum)
}

/// [`spread`] in portable Rust (every target; the reference for the assembly).
#[inline(always)]
fn spread_portable(codes: &[u8], bits: u8, lanes: &mut [u8], sum: bool) -> u32 {
    const M: u32 = 0x00FF_00FF;
    let rd = |c: &[u8]| match c.get(..4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    };
    let put = |l: &mut [u8], at: usize, v: u32| {
        if let Some(d) = l.get_mut(at..at + 4) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    };
    let mut total = 0u32;
    let mut quad = |va: u32, vb: u32, l: &mut [u8]| {
        let (ea, eb) = (va & M, vb & M);
        let (oa, ob) = ((va >> 8) & M, (vb >> 8) & M);
        put(l, 0, (ea & 0xFFFF) | (eb << 16));
        put(l, 16, (oa & 0xFFFF) | (ob << 16));
        put(l, 32, (ea >> 16) | (eb & 0xFFFF_0000));
        put(l, 48, (oa >> 16) | (ob & 0xFFFF_0000));
        if sum {
            let t = ea + eb + oa + ob;
            total += (t & 0xFFFF) + (t >> 16);
        }
    };
    match block(bits) {
        4 => {
            // Per block of four codes: (x0 | x2), (x1 | x3) straight from one word.
            for (c, l) in codes.chunks_exact(4).zip(lanes.chunks_mut(32)) {
                let v = rd(c);
                put(l, 0, v & M);
                put(l, 16, (v >> 8) & M);
                if sum {
                    let t = (v & M) + ((v >> 8) & M);
                    total += (t & 0xFFFF) + (t >> 16);
                }
            }
        }
        // Blocks of 8 or 16 codes: word j pairs code j with code j + b/2; code words q and
        // q + b/8 give lane words 4q .. 4q + 3.
        8 => {
            for (c, l) in codes.chunks_exact(8).zip(lanes.chunks_mut(64)) {
                quad(rd(c), rd(&c[4..]), l);
            }
        }
        _ => {
            for (c, l) in codes.chunks_exact(16).zip(lanes.chunks_mut(128)) {
                let (l0, l1) = l.split_at_mut(l.len().min(64));
                quad(rd(c), rd(&c[8..]), l0);
                quad(rd(&c[4..]), rd(&c[12..]), l1);
            }
        }
    }
    total
}

/// Zero one pixel slot of `lanes.len() / (b * 8)` lane blocks (`lanes` starts at the slot, as
/// for [`spread`]).
#[inline(always)]
fn zero_slot(lanes: &mut [u8], b: usize) {
    for l in lanes.chunks_mut(b * 8) {
        for j in 0..b / 2 {
            if let Some(d) = l.get_mut(16 * j..16 * j + 4) {
                d.copy_from_slice(&[0; 4]);
            }
        }
    }
}

/// Gather output pixel `(oy, ox)` into its slot of the lanes (`lanes` starts at the slot).
/// Straight from the input when every kernel position's `C` codes are whole lane blocks
/// (`direct`), else through the byte column `col`. Returns the sum of the codes (when `sum`)
/// and how many positions lie inside the input.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn gather_pixel(
    g: &Geometry,
    input: &[u8],
    (oy, ox): (usize, usize),
    (bits, direct, sum): (u8, bool, bool),
    offsets: &[u8],
    col: &mut [u8],
    lanes: &mut [u8],
) -> (u32, usize) {
    if !direct {
        let w = g.window;
        let fan = w.kh as usize * w.kw as usize * g.input.c as usize;
        let y0 = (oy * w.sh as usize) as isize - w.ph as isize;
        let x0 = (ox * w.sw as usize) as isize - w.pw as isize;
        let inner = y0 >= 0
            && x0 >= 0
            && y0 as usize + w.kh as usize <= g.input.h as usize
            && x0 as usize + w.kw as usize <= g.input.w as usize;
        let valid = if inner && offsets.len() == 4 * fan {
            // The whole window lies inside the input: one load per input, no padding tests.
            let base = (y0 as usize * g.input.w as usize + x0 as usize) * g.input.c as usize;
            for (d, o) in col.iter_mut().zip(offsets.chunks_exact(4)) {
                let o = u32::from_le_bytes([o[0], o[1], o[2], o[3]]) as usize;
                *d = input.get(base + o).copied().unwrap_or(0);
            }
            fan
        } else {
            window(g, input, oy, ox, col, g.input.c.is_multiple_of(4))
        };
        return (spread(col, bits, lanes, sum), valid);
    }
    let w = g.window;
    let (ih, iw, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let (kh, kw) = (w.kh as usize, w.kw as usize);
    let b = block(bits);
    let y0 = (oy * w.sh as usize) as isize - w.ph as isize;
    let x0 = (ox * w.sw as usize) as isize - w.pw as isize;
    let kx0 = if x0 < 0 { (-x0) as usize } else { 0 }.min(kw);
    let kx1 = ((iw as isize - x0).clamp(0, kw as isize) as usize).max(kx0);
    let run = (kx1 - kx0) * c;
    // Lane bytes per code: 4 pixels x 2 bytes.
    let row = kw * c * 8;
    let (mut total, mut valid) = (0, 0);
    for (ky, lrow) in lanes.chunks_mut(row).take(kh).enumerate() {
        let iy = y0 + ky as isize;
        if iy < 0 || iy >= ih as isize || run == 0 {
            zero_slot(lrow, b);
            continue;
        }
        let (before, rest) = lrow.split_at_mut((kx0 * c * 8).min(lrow.len()));
        zero_slot(before, b);
        let (mid, after) = rest.split_at_mut((run * 8).min(rest.len()));
        let at = (iy as usize * iw + (x0 + kx0 as isize).max(0) as usize) * c;
        if let Some(src) = input.get(at..at + run) {
            total += spread(src, bits, mid, sum);
            valid += run;
        }
        zero_slot(after, b);
    }
    (total, valid)
}

/// What every output channel of one pass shares.
struct Pass<'a> {
    /// The lanes of the pass's two halves of four pixels.
    lanes: [&'a [u8]; 2],
    /// Lane blocks per pixel.
    blocks: usize,
    /// Bits the micro-kernel reads.
    bits: u8,
    /// `offset x (sum of codes)` to subtract per pixel (sub-byte offset binary), else zeros.
    correction: [i32; PASS],
    /// Pixels of the pass that exist (the last pass may have fewer than eight).
    n: usize,
    /// Output index of the pass's first pixel, channel 0.
    at: usize,
}

/// Where the output channels' weights rows come from.
struct Rows<'a> {
    w: &'a Weights<'a>,
    /// Rows read in place (8, 4, 2 bits) or unpacked to 8 bits first.
    direct: bool,
    /// Every row unpacked once per layer (`padded` bytes each), when not read in place and
    /// small enough; empty otherwise.
    unpacked: &'a [u8],
    fan: usize,
    padded: usize,
    /// Bytes one row takes in place.
    row_bytes: usize,
}

impl Rows<'_> {
    /// Channel `o`'s row as the micro-kernel reads it (one word per lane block); `row` is
    /// scratch for a row that must be unpacked or copied.
    #[inline(always)]
    fn get<'r>(&'r self, o: usize, row: &'r mut [u8]) -> &'r [u8] {
        let (fan, padded, rb) = (self.fan, self.padded, self.row_bytes);
        if self.direct {
            let at = o * fan * self.w.bits as usize / 8;
            if let Some(ws) = self.w.packed.get(at..at + rb) {
                return ws;
            }
            // The last rows: copy what there is, zeros after it (they meet zero inputs in the
            // padding of the lanes).
            let dst = &mut row[..rb];
            zero(dst);
            let src = self.w.packed.get(at..).unwrap_or(&[]);
            let k = src.len().min(rb);
            dst[..k].copy_from_slice(&src[..k]);
            dst
        } else if let Some(r) = self.unpacked.get(o * padded..(o + 1) * padded) {
            r
        } else {
            unpack_row(self.w.packed, self.w.bits, o * fan, &mut row[..fan]);
            zero(&mut row[fan..padded]);
            &row[..padded]
        }
    }
}

/// Every output channel of one pass: the micro-kernel, then the output step of its eight
/// outputs. `tabled` holds the channels' prepared requantizers (with the layer's offset and
/// levels), `fired` their prepared closed-form spike counts; `FIRE` selects which of the two
/// this instance reads (one instance per kind of stage keeps each loop small). Channels neither
/// prepares, and partial passes of spiking channels, go through [`store_other`].
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn channels<const FIRE: bool>(
    pass: &Pass<'_>,
    rows: &Rows<'_>,
    stage: &Stage<'_>,
    tabled: Option<(&[u8], i32, u8)>,
    fired: Option<&[u8]>,
    row: &mut [u8],
    output: &mut [u8],
    c_out: usize,
) {
    let micro = [0, 1].map(|h| Micro::new(pass.bits, pass.lanes[h], pass.blocks));
    let two = pass.n > PIXELS;
    let corr = pass.correction;
    for o in 0..c_out {
        let ws = rows.get(o, row);
        let bias = rows.w.bias.map_or(0, |b| b.get(o));
        let init = |h: usize| [0, 1, 2, 3].map(|p| bias.wrapping_sub(corr[h * PIXELS + p]));
        let a = micro[0].run(ws, init(0));
        let b = if two {
            micro[1].run(ws, init(1))
        } else {
            [0; PIXELS]
        };
        let acc = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
        let at = pass.at + o;
        if FIRE {
            if let Some(c) = fired.and_then(|t| closed(t, o)) {
                if pass.n == PASS
                    && fire_n(&c, output.get_mut(at..).unwrap_or(&mut []), c_out, &acc)
                {
                    continue;
                }
            }
        } else if let Some((table, offset, levels)) = tabled {
            if let Some(&[b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15]) =
                table.get(o * TABLE_ENTRY..(o + 1) * TABLE_ENTRY)
            {
                let r = Requantizer::decode(
                    &[
                        b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
                    ],
                    offset,
                    levels,
                );
                if pass.n == PASS
                    && store_right(&r, output.get_mut(at..).unwrap_or(&mut []), c_out, &acc)
                {
                    continue;
                }
                let out = ChannelStage::Requantize(r);
                for (p, &a) in acc.iter().enumerate().take(pass.n) {
                    out.store(output, at + p * c_out, a);
                }
                continue;
            }
        }
        store_other(stage, o, &acc, pass.n, output, at, c_out);
    }
}

/// Channel `o`'s first `n` outputs of a pass (`c_out` bytes apart from `at`) through any
/// stage the caller did not store itself, one by one: out of line, so that the channel loops
/// stay small.
#[inline(never)]
pub(crate) fn store_other(
    stage: &Stage<'_>,
    o: usize,
    acc: &[i32],
    n: usize,
    output: &mut [u8],
    at: usize,
    c_out: usize,
) {
    let out = stage.channel(o);
    for (p, &a) in acc.iter().enumerate().take(n) {
        out.store(output, at + p * c_out, a);
    }
}

/// Channel `o`'s requantizer from a table [`prepare`] filled.
#[inline(always)]
pub(crate) fn requantizer(table: &[u8], o: usize, offset: i32, levels: u8) -> Option<Requantizer> {
    match table.get(o * TABLE_ENTRY..(o + 1) * TABLE_ENTRY) {
        Some(&[b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15]) => {
            Some(Requantizer::decode(
                &[
                    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
                ],
                offset,
                levels,
            ))
        }
        _ => None,
    }
}

/// A full pass's `N` outputs of one channel, `c` bytes apart in `dst`. `LEVELS` is the
/// requantizer's top code when the caller matched it (the clamp is then one saturation), 0 for
/// any other.
#[inline(always)]
pub(crate) fn store_n<const HIGH: bool, const LEVELS: u8, const N: usize>(
    r: &Requantizer,
    dst: &mut [u8],
    c: usize,
    v: &[i32; N],
) {
    let q = |a: i32| {
        if LEVELS == 0 {
            r.apply_right_as::<HIGH>(a)
        } else {
            r.apply_right_levels::<HIGH, LEVELS>(a)
        }
    };
    if let Some(d) = dst.get_mut(..=(N - 1) * c) {
        for (p, &a) in v.iter().enumerate() {
            d[p * c] = q(a);
        }
    }
}

/// One channel's `N` outputs through `r` when it shifts right, the shift's kind and the common
/// top codes decided once per channel, not per output; `false`, having written nothing, for a
/// left shift or a `dst` shorter than the outputs.
#[inline(always)]
pub(crate) fn store_right<const N: usize>(
    r: &Requantizer,
    dst: &mut [u8],
    c: usize,
    v: &[i32; N],
) -> bool {
    if !r.right_shift() || dst.len() <= (N - 1) * c {
        return false;
    }
    match (r.high_word(), r.levels()) {
        (true, 255) => store_n::<true, 255, N>(r, dst, c, v),
        (false, 255) => store_n::<false, 255, N>(r, dst, c, v),
        (true, 15) => store_n::<true, 15, N>(r, dst, c, v),
        (false, 15) => store_n::<false, 15, N>(r, dst, c, v),
        (true, _) => store_n::<true, 0, N>(r, dst, c, v),
        (false, _) => store_n::<false, 0, N>(r, dst, c, v),
    }
    true
}

/// One spiking channel's `N` outputs in closed form, `c` bytes apart in `dst`; `false`, having
/// written nothing, for a `dst` shorter than the outputs.
#[inline(always)]
pub(crate) fn fire_n<const N: usize>(
    closed: &Closed,
    dst: &mut [u8],
    c: usize,
    v: &[i32; N],
) -> bool {
    let Some(d) = dst.get_mut(..=(N - 1) * c) else {
        return false;
    };
    for (p, &a) in v.iter().enumerate() {
        d[p * c] = closed.count(a);
    }
    true
}

/// Prepare every spiking channel's closed form in `table` (an entry of zeros for a channel
/// whose count is not taken in closed form); `false`, having written nothing, for a stage that
/// does not fire.
pub(crate) fn prepare_fire(stage: &Stage<'_>, table: &mut [u8], c_out: usize) -> bool {
    if !matches!(stage, Stage::Fire { .. }) {
        return false;
    }
    for (o, t) in table.chunks_exact_mut(TABLE_ENTRY).take(c_out).enumerate() {
        match stage.channel(o) {
            ChannelStage::Fire(n) => match n.closed_form() {
                Some(c) => t.copy_from_slice(&c.encode()),
                None => t.fill(0),
            },
            _ => t.fill(0),
        }
    }
    true
}

/// Channel `o`'s closed form from a table [`prepare_fire`] filled; `None` for a channel whose
/// count is not taken in closed form.
#[inline(always)]
pub(crate) fn closed(table: &[u8], o: usize) -> Option<Closed> {
    match table.get(o * TABLE_ENTRY..(o + 1) * TABLE_ENTRY) {
        Some(&[b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15])
            if (b8, b9, b10, b11) != (0, 0, 0, 0) =>
        {
            Some(Closed::decode(&[
                b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
            ]))
        }
        _ => None,
    }
}

/// Prepare every channel's requantizer in `table`; the layer's offset and levels when the stage
/// requantizes and every channel's parameters are valid, else `None`.
pub(crate) fn prepare(stage: &Stage<'_>, table: &mut [u8], c_out: usize) -> Option<(i32, u8)> {
    let Stage::Requantize {
        multipliers,
        shifts,
        offset,
        levels,
    } = *stage
    else {
        return None;
    };
    for (o, t) in table.chunks_exact_mut(TABLE_ENTRY).take(c_out).enumerate() {
        let s = shifts.get(o).copied().unwrap_or(0) as i8;
        let r = Requantizer::new(multipliers.get(o), s, offset, levels)?;
        t.copy_from_slice(&r.encode());
    }
    Some((offset, levels))
}

/// 2-D convolution with one group through the gather kernel; the same contract as
/// [`super::reference::conv2d`]. Returns `false`, having written nothing, when `scratch` is
/// shorter than [`bitspike_core::kernel::scratch_bytes`] asks or the layer has several groups.
pub fn conv2d(
    g: &Geometry,
    w: &Weights<'_>,
    stage: &Stage<'_>,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    ops: &mut Ops,
) -> bool {
    if g.groups > 1 {
        return false;
    }
    let c_in = g.input.c as usize;
    let c_out = g.output.c as usize;
    let fan = g.window.kh as usize * g.window.kw as usize * c_in;
    let layout = gather_layout(g, w.bits);
    let Some(scratch) = super::words::aligned(scratch, layout.bytes) else {
        return false;
    };
    let (lanes, rest) = scratch.split_at_mut(layout.column);
    let (col, rest) = rest.split_at_mut(layout.padded);
    let (row, rest) = rest.split_at_mut(layout.padded);
    let (table, rest) = rest.split_at_mut(layout.unpacked - layout.table);
    let (unpacked, offsets) = rest.split_at_mut(layout.unpacked_bytes);
    let offsets = &mut offsets[..layout.offsets_bytes];
    // Input offsets of the window's inputs relative to its first, for inner pixels.
    // Kernel row `ky` holds `kw c_in` consecutive inputs from `ky iw c_in` on.
    let (iw, kw) = (g.input.w as usize, g.window.kw as usize);
    let span = kw * c_in;
    for (ky, row) in offsets.chunks_mut((4 * span).max(1)).enumerate() {
        let start = ky * iw * c_in;
        for (k, o) in row.chunks_exact_mut(4).enumerate() {
            o.copy_from_slice(&((start + k) as u32).to_le_bytes());
        }
    }
    let offsets = &*offsets;
    let padded = layout.padded;
    let direct = in_place(w.bits, fan);
    // Bits the micro-kernel reads: the layer's in place, 8 after unpacking.
    let bits = if direct { w.bits } else { 8 };
    let offset = match bits {
        4 => 8,
        2 => 2,
        _ => 0,
    };
    for (o, r) in unpacked.chunks_exact_mut(padded).enumerate() {
        unpack_row(w.packed, w.bits, o * fan, &mut r[..fan]);
        zero(&mut r[fan..]);
    }
    let rows = Rows {
        w,
        direct,
        unpacked,
        fan,
        padded,
        row_bytes: padded * bits as usize / 8,
    };
    let tabled = prepare(stage, table, c_out);
    let fire = tabled.is_none() && prepare_fire(stage, table, c_out);
    let tabled = tabled.map(|(off, lv)| (&*table, off, lv));
    let fired = fire.then_some(&*table);
    zero(col);
    // Each kernel position's codes are whole lane blocks: gather without the byte column.
    let direct_gather = c_in.is_multiple_of(block(bits));
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let pixels = oh * ow;
    let mut macs = 0;
    let mut p0 = 0;
    let half = PIXELS * padded * 2;
    while p0 < pixels {
        let n = (pixels - p0).min(PASS);
        let mut correction = [0i32; PASS];
        for (p, corr) in correction.iter_mut().enumerate() {
            // Pixel p's slot: word p % 4 of half p / 4.
            let (h, q) = (p / PIXELS, p % PIXELS);
            let slot = lanes
                .get_mut(h * half + 4 * q..(h + 1) * half)
                .unwrap_or(&mut []);
            if p < n {
                let q = ((p0 + p) / ow, (p0 + p) % ow);
                let (s, valid) = gather_pixel(
                    g,
                    input,
                    q,
                    (bits, direct_gather, offset != 0),
                    offsets,
                    col,
                    slot,
                );
                *corr = offset * s as i32;
                macs += valid;
            } else if p < PIXELS || n > PIXELS {
                zero_slot(slot, block(bits));
            }
        }
        let (l0, l1) = lanes.split_at(half.min(lanes.len()));
        let pass = Pass {
            lanes: [l0, l1],
            blocks: padded / block(bits),
            bits,
            correction,
            n,
            at: p0 * c_out,
        };
        if fire {
            channels::<true>(&pass, &rows, stage, tabled, fired, row, output, c_out);
        } else {
            channels::<false>(&pass, &rows, stage, tabled, fired, row, output, c_out);
        }
        p0 += n;
    }
    ops.mac(macs as u64 * c_out as u64);
    true
}

//! The narrow convolution: layers over few input channels (an image's first layer), where the
//! gather kernel would copy every window through its byte column.
//!
//! For each output row the kernel spreads the `kh` input rows it reads, once, into words of two
//! 16-bit lanes `x[b] | x[b + 1] << 16` (codes of the row padded with zeros), for both parities
//! of `b` (or one, when every window starts on an even code), interleaved by kernel row: word
//! `q x kh + ky` of parity `p` holds codes `2q + p` and `2q + p + 1` of kernel row `ky`. The window
//! of output pixel `ox` (its runs start at code `s = ox x sw x C`) is then the
//! [`NarrowLayout::words`] consecutive words from `(s / 2) x kh` on, in the order in which each
//! output channel's weights were laid out as lane pairs once per layer (zero past each kernel
//! row's run and past the window). One output is `SMLAD` over those words, two products each,
//! with nothing gathered per pixel; each channel's outputs are stored four pixels at a time
//! through the gather kernel's output steps.
//!
//! On Armv7E-M the window's loop is assembly (`kernels::dsp`); elsewhere [`dot`] runs the same
//! words in portable Rust, so the host tests the layout.

use bitspike_core::kernel::{narrow, narrow_layout, NarrowLayout, NARROW_PIXELS};
use bitspike_core::layer::Geometry;
use bitspike_core::quant::Requantizer;
use bitspike_core::snn::Closed;

use super::gather::{closed, lanes::smlad, prepare, prepare_fire, requantizer, store_other};
use super::{rd_lenient, unpack_row, Stage, Weights};
use crate::ops::Ops;

/// Pixels whose windows are summed, then stored, together.
const STEP: usize = NARROW_PIXELS;

/// Write a little-endian u32 at byte `at` (nothing past the end).
#[inline(always)]
fn put(b: &mut [u8], at: usize, v: u32) {
    if let Some(d) = b.get_mut(at..at + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// One window's sum in portable Rust (the model of the assembly): `init` plus `SMLAD` of word
/// `k` of `lanes` and of `weights` for `k < words` (missing bytes read as 0).
pub fn dot(lanes: &[u8], weights: &[u8], words: usize, init: i32) -> i32 {
    let mut acc = init;
    for k in 0..words {
        acc = smlad(rd_lenient(lanes, 4 * k), rd_lenient(weights, 4 * k), acc);
    }
    acc
}

/// Store `code(acc[p])` at `at + p x c_out` for the first `n` accumulators (nothing past the
/// end).
#[inline(always)]
fn each(
    output: &mut [u8],
    (at, c_out): (usize, usize),
    acc: &[i32],
    n: usize,
    code: impl Fn(i32) -> u8,
) {
    for (p, &a) in acc.iter().enumerate().take(n) {
        if let Some(d) = output.get_mut(at + p * c_out) {
            *d = code(a);
        }
    }
}

/// One channel's output step, decided once per channel and row.
#[derive(Clone, Copy)]
enum Step {
    /// A prepared requantizer.
    Requantize(Requantizer),
    /// A spike count in closed form.
    Fire(Closed),
    /// Anything else, through [`store_other`].
    Other,
}

/// Store channel `o`'s outputs `acc`, `c_out` bytes apart from `at`.
#[inline(never)]
fn store_seg(
    step: &Step,
    stage: &Stage<'_>,
    o: usize,
    acc: &[i32],
    output: &mut [u8],
    (at, c_out): (usize, usize),
) {
    let n = acc.len();
    let span = n.saturating_sub(1) * c_out;
    let dst = output.get_mut(at..).and_then(|d| d.get_mut(..=span));
    match (step, dst) {
        (Step::Requantize(r), Some(d)) => each(d, (0, c_out), acc, n, |a| r.apply(a)),
        (Step::Fire(c), Some(d)) => each(d, (0, c_out), acc, n, |a| c.count(a)),
        _ => store_other(stage, o, acc, n, output, at, c_out),
    }
}

/// Where a row's windows lie: pixel `ox` reads from byte `first[ox % 2] + (ox / 2) x pair` of
/// the rows; `ow` pixels.
#[derive(Clone, Copy)]
struct Walk {
    first: [usize; 2],
    pair: usize,
    ow: usize,
}

/// Channel `o`'s outputs of one output row (the first at `at` in `output`), from its weights
/// as lane pairs from byte `w` of `weights`, four pixels at a time (the rows hold the windows
/// of the last four even when the row ends inside them). On Armv7E-M the assembly sums the
/// windows of a requantized or spiking channel and each four outputs are stored as they come;
/// otherwise (or when its checks fail) [`dot`] sums them.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn channel_row(
    #[cfg(bitspike_dsp)] dsp: Option<super::dsp::Windows<'_>>,
    rows: &[u8],
    (weights, w, words): (&[u8], usize, usize),
    walk: Walk,
    (o, bias, step): (usize, i32, Step),
    stage: &Stage<'_>,
    output: &mut [u8],
    (at, c_out): (usize, usize),
) {
    let ow = walk.ow;
    let chunks = ow.div_ceil(STEP);
    // Chunk `k`'s outputs: where they go and how many exist.
    let place = |k: usize| (at + k * STEP * c_out, (ow - k * STEP).min(STEP));
    #[cfg(bitspike_dsp)]
    if let Some(d) = dsp {
        let done = match step {
            Step::Requantize(r) if r.right_shift() => {
                d.row4(walk.first, walk.pair, chunks, w, bias, |k, s| {
                    let (at, n) = place(k);
                    let dst = output.get_mut(at..).unwrap_or(&mut []);
                    if n < STEP || !super::gather::store_right(&r, dst, c_out, &s) {
                        each(output, (at, c_out), &s, n, |a| r.apply(a));
                    }
                })
            }
            Step::Fire(c) => d.row4(walk.first, walk.pair, chunks, w, bias, |k, s| {
                let (at, n) = place(k);
                let dst = output.get_mut(at..).unwrap_or(&mut []);
                if n < STEP || !super::gather::fire_n(&c, dst, c_out, &s) {
                    each(output, (at, c_out), &s, n, |a| c.count(a));
                }
            }),
            _ => false,
        };
        if done {
            return;
        }
    }
    let ws = weights.get(w..).unwrap_or(&[]);
    for k in 0..chunks {
        let off = 2 * k * walk.pair;
        let sums = [0, 1, 2, 3].map(|p| {
            let start = walk.first[p % 2] + off + p / 2 * walk.pair;
            dot(rows.get(start..).unwrap_or(&[]), ws, words, bias)
        });
        let (at, n) = place(k);
        store_seg(&step, stage, o, &sums[..n], output, (at, c_out));
    }
}

/// Channel `o`'s weights as lane pairs into `out` (`l.words` words): word `j x kh + ky` holds
/// weights `2j` and `2j + 1` of kernel row `ky` (0 past the run), words past `kh x per_row` 0.
/// `row` takes the channel's weights unpacked to bytes.
fn lay_weights(
    w: &Weights<'_>,
    o: usize,
    fan: usize,
    kh: usize,
    l: &NarrowLayout,
    row: &mut [u8],
    out: &mut [u8],
) {
    let Some(row) = row.get_mut(..fan) else {
        return;
    };
    unpack_row(w.packed, w.bits, o * fan, row);
    out.fill(0);
    let row = &*row;
    for ky in 0..kh {
        let run = row.get(ky * l.run..).unwrap_or(&[]);
        let lane = |k: usize| -> u32 {
            if k < l.run {
                run.get(k).map_or(0, |&v| v as i8 as i16 as u16 as u32)
            } else {
                0
            }
        };
        for j in 0..l.per_row {
            put(
                out,
                4 * (j * kh + ky),
                lane(2 * j) | (lane(2 * j + 1) << 16),
            );
        }
    }
}

/// Spread the `kh` input rows of output row `oy` into `rows` (see the module docs): `parities`
/// arrays of `stride` bytes (slots of `kh` words).
#[allow(clippy::too_many_arguments)]
fn spread_rows(
    g: &Geometry,
    input: &[u8],
    oy: usize,
    parities: usize,
    stride: usize,
    rows: &mut [u8],
) {
    let w = g.window;
    let (ih, iw, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
    let kh = w.kh as usize;
    let left = w.pw as usize * c;
    for ky in 0..kh {
        let iy = (oy * w.sh as usize + ky) as isize - w.ph as isize;
        let src: &[u8] = if iy >= 0 && (iy as usize) < ih {
            let at = iy as usize * iw * c;
            input.get(at..at + iw * c).unwrap_or(&[])
        } else {
            &[]
        };
        for p in 0..parities {
            let Some(arr) = rows.get_mut(p * stride..(p + 1) * stride) else {
                return;
            };
            // Slot `q` takes codes `2q + p` and `2q + p + 1` of the padded row: `src[i]` and
            // `src[i + 1]` for `i = 2q + p - left`, zero outside `src`.
            let put = |slot: &mut [u8], v: u32| {
                if let Some(d) = slot.get_mut(4 * ky..4 * ky + 4) {
                    d.copy_from_slice(&v.to_le_bytes());
                }
            };
            let mut slots = arr.chunks_exact_mut(4 * kh);
            let mut i = p as isize - left as isize;
            // In the left padding (the slot at -1 reaches the first code).
            while i < 0 {
                let Some(slot) = slots.next() else {
                    break;
                };
                let hi = if i == -1 {
                    src.first().copied().unwrap_or(0)
                } else {
                    0
                };
                put(slot, (hi as u32) << 16);
                i += 2;
            }
            // Inside the row, two codes a slot; an odd last code shares its slot with a zero.
            let mut pairs = src.get(i.max(0) as usize..).unwrap_or(&[]).chunks_exact(2);
            for (two, slot) in (&mut pairs).zip(&mut slots) {
                put(slot, two[0] as u32 | (two[1] as u32) << 16);
            }
            if let Some(&last) = pairs.remainder().first() {
                if let Some(slot) = slots.next() {
                    put(slot, last as u32);
                }
            }
            for slot in slots {
                put(slot, 0);
            }
        }
    }
}

/// 2-D convolution with one group through the narrow kernel; the same contract as
/// [`super::reference::conv2d`]. Returns `false`, having written nothing, when the layer is not
/// [`narrow`] or `scratch` is shorter than [`narrow_layout`] asks (plus 3 bytes to align it).
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
    if !narrow(g) {
        return false;
    }
    let l = narrow_layout(g);
    let Some(scratch) = super::words::aligned(scratch, l.bytes) else {
        return false;
    };
    let c_in = g.input.c as usize;
    let c_out = g.output.c as usize;
    let win = g.window;
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let fan = kh * kw * c_in;
    let (table, rest) = scratch.split_at_mut(l.weights);
    let (weights, rest) = rest.split_at_mut(l.row - l.weights);
    let (row, rows) = rest.split_at_mut(l.rows - l.row);
    let bytes = 4 * l.words;
    for (o, out) in weights.chunks_exact_mut(bytes).take(c_out).enumerate() {
        lay_weights(w, o, fan, kh, &l, row, out);
    }
    let tabled = prepare(stage, table, c_out);
    let fire = tabled.is_none() && prepare_fire(stage, table, c_out);
    let table = &*table;
    let weights = &*weights;
    // Windows start at code `ox x step`: on even codes only when the step is even.
    let step = win.sw as usize * c_in;
    let parities = if step.is_multiple_of(2) { 1 } else { 2 };
    let stride = 4 * l.slots * kh;
    let (oh, ow) = (g.output.h as usize, g.output.w as usize);
    let (ih, iw) = (g.input.h as usize, g.input.w as usize);
    // Kernel offsets inside the input from `start` on.
    let inside = |start: isize, k: usize, n: usize| {
        let (lo, hi) = super::optimized::valid(start, k, n);
        hi - lo
    };
    // Products inside the input per output row, over its columns (the same on every row).
    let cols: usize = (0..ow)
        .map(|ox| inside((ox * win.sw as usize) as isize - win.pw as isize, kw, iw))
        .sum();
    // Pixel `ox` reads from `first[ox % 2] + (ox / 2) x pair` in the rows (two pixels further
    // on, a window starts `2 x step` codes, `step` slots, further on, in the same parity).
    let walk = Walk {
        first: [0, step].map(|s| (s & 1) * stride + (s >> 1) * kh * 4),
        pair: step * kh * 4,
        ow,
    };
    let mut macs = 0;
    for oy in 0..oh {
        spread_rows(g, input, oy, parities, stride, rows);
        let y0 = (oy * win.sh as usize) as isize - win.ph as isize;
        macs += inside(y0, kh, ih) * cols * c_in;
        let rows = &*rows;
        #[cfg(bitspike_dsp)]
        let dsp = super::dsp::Windows::new(rows, weights, l.words);
        for o in 0..c_out {
            let bias = w.bias.map_or(0, |b| b.get(o));
            let step = match tabled.and_then(|(off, lv)| requantizer(table, o, off, lv)) {
                Some(r) => Step::Requantize(r),
                None => match fire.then(|| closed(table, o)).flatten() {
                    Some(c) => Step::Fire(c),
                    None => Step::Other,
                },
            };
            channel_row(
                #[cfg(bitspike_dsp)]
                dsp,
                rows,
                (weights, o * bytes, l.words),
                walk,
                (o, bias, step),
                stage,
                output,
                (oy * ow * c_out + o, c_out),
            );
        }
    }
    ops.mac(macs as u64 * c_out as u64);
    true
}

//! Row bands: a row-local layer (convolution, pools, residual add) computed a few output rows at
//! a time, and how far below its input its output must start so that it can overwrite the input
//! as it goes (in-place execution: planned by the exporter, checked by the reader, honoured by
//! the runtime).
//!
//! Output rows `y0..y1` of a layer with vertical window `kh`, stride `sh` and padding `ph` read
//! input rows `y0 sh - ph .. (y1 - 1) sh - ph + kh`, clipped to the input. The band is a layer of
//! its own: its input is those rows, its output those output rows, its top padding what the
//! clipping removed above. Rows clipped below lie past the band's input, where every kernel sees
//! padding as it does past the whole input, so each kernel computes the band's rows exactly as it
//! computes them in the whole layer (the test suite checks every kernel band by band).
//!
//! In place, the output starts `d` bytes before the input and the bands run top to bottom: band
//! `y0..y1` writes output bytes below `out + y1 R_out` and reads input bytes from
//! `in + a R_in` on (`a` its first input row), and later bands read no row above `a`. So the
//! output overwrites only rows no band reads again as long as `d >= y1 R_out - a R_in` for every
//! band ([`in_place_shift`]).

use crate::layer::{Geometry, LayerKind};

/// Whether each output row of `kind` depends on a window of input rows only (convolution,
/// windowed pools, residual add), so that the layer can run in bands and in place.
pub const fn row_local(kind: LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::Conv2d | LayerKind::MaxPool | LayerKind::AvgPool | LayerKind::Add
    )
}

/// Vertical window (height, stride, padding) of a row-local layer; an add reads its own row.
fn vertical(g: &Geometry) -> (i64, i64, i64) {
    if g.kind == LayerKind::Add {
        (1, 1, 0)
    } else {
        (g.window.kh as i64, g.window.sh as i64, g.window.ph as i64)
    }
}

/// Output rows `y0..y1` of a layer as a layer of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// The input rows the band reads (`first..end`, clipped to the input).
    pub input_rows: (u16, u16),
    /// The band's geometry: the input and output heights of the band, the top padding the band
    /// still has; everything else as in the layer.
    pub geometry: Geometry,
}

/// Output rows `y0..y1` of the row-local layer `g` as a layer of their own; `None` for a layer
/// that is not row-local, an empty band or rows past the output.
pub fn band(g: &Geometry, y0: u16, y1: u16) -> Option<Band> {
    if !row_local(g.kind) || y0 >= y1 || y1 > g.output.h {
        return None;
    }
    let (kh, sh, ph) = vertical(g);
    let h = g.input.h as i64;
    let top = y0 as i64 * sh - ph;
    let bottom = (y1 as i64 - 1) * sh - ph + kh;
    let first = top.clamp(0, h);
    let end = bottom.clamp(first, h);
    let pad = u8::try_from(first - top).ok()?;
    let mut geometry = *g;
    geometry.input.h = (end - first) as u16;
    geometry.output.h = y1 - y0;
    if g.kind != LayerKind::Add {
        geometry.window.ph = pad;
    }
    Some(Band {
        input_rows: (first as u16, end as u16),
        geometry,
    })
}

/// The smallest distance in bytes from the output's start down to the input's start (input
/// offset minus output offset) at which layer `g` can run in place, `rows` output rows per band,
/// with input rows of `in_row` bytes and output rows of `out_row` bytes; `None` when the layer
/// cannot run in place (not row-local, no rows per band, or a window whose padding reaches past
/// its height, so that an output row may read no input row at all).
pub fn in_place_shift(g: &Geometry, rows: u16, in_row: u64, out_row: u64) -> Option<u64> {
    let (kh, sh, ph) = vertical(g);
    if !row_local(g.kind) || rows == 0 || ph >= kh {
        return None;
    }
    let h = g.input.h as i64;
    let mut need = 0u64;
    for (y0, y1) in walk(g.output.h as u64, rows as u64) {
        let first = (y0 as i64 * sh - ph).clamp(0, h) as u64;
        let written = y1.checked_mul(out_row)?;
        need = need.max(written.saturating_sub(first.checked_mul(in_row)?));
    }
    Some(need)
}

/// Bytes of one row of a tensor of `bytes` bytes and `h` rows (all of it for a tensor of no
/// rows): what a layer run in place moves per output row.
pub const fn row_bytes(bytes: usize, h: u16) -> usize {
    if h == 0 {
        bytes
    } else {
        bytes / h as usize
    }
}

/// The bands of `rows` output rows (at least 1; the last may be shorter) of an output `h` rows
/// high, as (first row, end row).
fn walk(h: u64, rows: u64) -> impl Iterator<Item = (u64, u64)> {
    let rows = rows.max(1);
    (0..h.div_ceil(rows)).map(move |b| (b * rows, ((b + 1) * rows).min(h)))
}

/// Instructions estimated for running layer `g` at once: 1.2 per MAC and 4 per output element
/// (the order of the fast kernels on the Cortex-M4; only ratios against [`overhead`] matter).
pub fn cost(g: &Geometry) -> u64 {
    6 * crate::cost::macs(g) / 5 + 4 * g.output.len() as u64
}

/// Extra instructions estimated for running layer `g` (`bits`-bit weights over input codes up
/// to `levels`) in bands of `rows` output rows instead of at once, on the costliest kernel it
/// may run on: each band after the first repeats the kernel's set-up (per output channel: the
/// requantizer; for the packed kernel the weights' interleaving, for weights not read in place
/// their unpacking), and a band whose pixels do not fill the kernel's passes wastes part of one.
/// `u64::MAX` for a layer that is not row-local.
pub fn overhead(g: &Geometry, bits: u8, levels: u8, rows: u16) -> u64 {
    use crate::kernel::{
        depthwise, fan_in, in_place, narrow, narrow_layout, packable, NARROW_PIXELS, PACKED_PASS,
        PASS,
    };
    if !row_local(g.kind) {
        return u64::MAX;
    }
    let rows = rows.max(1) as u64;
    let (oh, ow, c_out) = (g.output.h as u64, g.output.w as u64, g.output.c as u64);
    let fan = fan_in(g) as u64;
    let (setup, pass) = match g.kind {
        LayerKind::Conv2d if g.groups == 1 && !depthwise(g) => {
            let (weights, pass) = if packable(g, bits, levels) {
                (7 * fan * c_out, PACKED_PASS)
            } else if narrow(g) {
                // Each channel's weights laid out as lane pairs; four pixels at a time.
                (10 * narrow_layout(g).words as u64 * c_out, NARROW_PIXELS)
            } else if !in_place(bits, fan as usize) {
                (5 * fan * c_out, PASS)
            } else {
                (0, PASS)
            };
            (300 + 100 * c_out + weights, pass as u64)
        }
        LayerKind::Conv2d => (300 + 150 * c_out, 0),
        _ => (200 + 100 * c_out, 0),
    };
    let bands = oh.div_ceil(rows);
    let waste = if pass == 0 {
        0
    } else {
        let passes: u64 = walk(oh, rows)
            .map(|(y0, y1)| ((y1 - y0) * ow).div_ceil(pass))
            .sum();
        let per_pass = 6 * pass * fan * c_out / 5;
        passes.saturating_sub((oh * ow).div_ceil(pass)) * per_pass
    };
    bands.saturating_sub(1) * setup + waste
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Shape, Window};

    fn conv(h: u16, oh: u16, k: u8, s: u8, p: u8) -> Geometry {
        Geometry {
            kind: LayerKind::Conv2d,
            window: Window::square(k, s, p),
            groups: 1,
            input: Shape::new(h, 4, 2),
            output: Shape::new(oh, 4, 3),
        }
    }

    #[test]
    fn bands_clip_the_input_and_keep_the_top_padding() {
        let g = conv(8, 8, 3, 1, 1);
        let top = band(&g, 0, 2).unwrap();
        assert_eq!(top.input_rows, (0, 3));
        assert_eq!(top.geometry.window.ph, 1);
        assert_eq!((top.geometry.input.h, top.geometry.output.h), (3, 2));
        let mid = band(&g, 3, 4).unwrap();
        assert_eq!(mid.input_rows, (2, 5));
        assert_eq!(mid.geometry.window.ph, 0);
        let last = band(&g, 7, 8).unwrap();
        assert_eq!(last.input_rows, (6, 8));
        assert_eq!(last.geometry.window.ph, 0);
        assert!(band(&g, 4, 4).is_none() && band(&g, 7, 9).is_none());
        let dense = Geometry {
            kind: LayerKind::Dense,
            ..g
        };
        assert!(band(&dense, 0, 1).is_none());
    }

    #[test]
    fn shifts_by_hand() {
        // 3x3, stride 1, padding 1, equal rows R: the first band writes R while reading from row
        // 0, each later band (y0 >= 1) writes (y0 + 1) R while reading from row y0 - 1: 2R.
        assert_eq!(in_place_shift(&conv(8, 8, 3, 1, 1), 1, 10, 10), Some(20));
        // Two rows per band: (y0 + 2) R - (y0 - 1) R = 3R.
        assert_eq!(in_place_shift(&conv(8, 8, 3, 1, 1), 2, 10, 10), Some(30));
        // Stride 2 halves the output rows: band y0 writes (y0 + 1) R from row 2 y0 - 1.
        assert_eq!(in_place_shift(&conv(8, 4, 3, 2, 1), 1, 10, 10), Some(10));
        // A 1x1 convolution doubling the channels writes ahead of what it reads: the last band
        // has written 8 rows of 20 bytes and reads from input row 7.
        assert_eq!(in_place_shift(&conv(8, 8, 1, 1, 0), 1, 10, 20), Some(90));
        // Padding at least the window: not in place.
        assert_eq!(in_place_shift(&conv(8, 10, 1, 1, 1), 1, 10, 10), None);
        let add = Geometry {
            kind: LayerKind::Add,
            window: Window::default(),
            ..conv(8, 8, 1, 1, 0)
        };
        // Overheads: none at once; set-up per extra band; a 4-wide band fills half a pass of
        // the gather kernel (four input channels).
        let mut g = conv(8, 8, 3, 1, 1);
        g.input.c = 4;
        assert_eq!(overhead(&g, 8, 255, 8), 0);
        assert_eq!(overhead(&g, 8, 255, 4), 300 + 300);
        let per_pass = 6 * 8 * 36 * 3 / 5;
        assert_eq!(overhead(&g, 8, 255, 1), 7 * 600 + (8 - 4) * per_pass);
        // Two input channels run on the narrow kernel: its weights laid out again per band (16
        // words a channel), four pixels at a time (a 4-wide band wastes none).
        let g = conv(8, 8, 3, 1, 1);
        assert_eq!(overhead(&g, 8, 255, 1), 7 * (600 + 10 * 16 * 3));
        assert_eq!(overhead(&add, 0, 255, 2), 3 * (200 + 300));
        assert_eq!(in_place_shift(&add, 1, 10, 10), Some(10));
        assert_eq!(band(&add, 2, 3).unwrap().input_rows, (2, 3));
    }
}

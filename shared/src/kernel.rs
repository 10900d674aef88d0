//! Which kernel runs each layer, and the scratch it needs: one decision that the exporter (to
//! size and place the scratch), the runtime (to run the layer) and `inspect` (to report it) share.
//!
//! On cores with the DSP extension (Cortex-M4, M7) the gather kernel runs convolutions: it copies
//! the input window of four output pixels into the layer's scratch as 16-bit lanes (see the
//! runtime's `kernels::gather`), then multiplies them two at a time (`SMLAD`). Elsewhere the row
//! kernel runs them. The scratch depends only on the layer's geometry and weight width, so the
//! model file can carry it and the arena planner can place it (live during the layer only).
//!
//! A layer runs on a slower path, never with a wrong result, when its file gives it less scratch
//! than [`scratch_bytes`] (for example a file written before this kernel existed).

use crate::layer::{Geometry, LayerKind};

/// The instruction-set features the runtime was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Isa {
    /// Armv7E-M (Cortex-M4, M7): the DSP extension's `SMLAD` and `SXTB16`, in hand-written
    /// assembly.
    Dsp,
    /// Everything else (Cortex-M0+/M3, the host): the same kernels in portable Rust.
    Portable,
}

impl Isa {
    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dsp => "dsp",
            Self::Portable => "portable",
        }
    }
}

/// The kernel a layer runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kernel {
    /// The reference kernel (one product at a time), or the only kernel of a layer kind without
    /// a faster one.
    Reference,
    /// The row kernel: weights unpacked per output channel into scratch, a dot product per
    /// kernel row (convolutions with groups, dense layers).
    Row,
    /// The gather kernel: four output pixels per pass, inputs as 16-bit lanes in scratch, two
    /// products per multiply (`SMLAD` on [`Isa::Dsp`]).
    Gather,
    /// The packed kernel, for 4- and 2-bit weights over inputs of at most 16 levels: three
    /// output pixels' codes in 14-bit fields of one word, three products per 32x32->64
    /// multiply-accumulate (`UMLAL`), the fields flushed before they can overflow
    /// ([`packed_chunk`]); six pixels per pass, in the gather kernel's scratch.
    Packed,
    /// The pairs kernel, for cores without the DSP extension (Cortex-M0/M0+, M3): 8-, 4- and
    /// 2-bit weights over input codes up to [`PAIRS_MAX_LEVELS`], two output pixels' codes in the 16-bit
    /// fields of a word, two products per 32x32->32 multiply, the fields flushed before they
    /// can overflow ([`pairs_chunk`]); eight pixels per pass, in the gather kernel's scratch.
    Pairs,
    /// An element-wise kernel with per-channel parameters read once per channel (residual add).
    Elementwise,
    /// The pooling kernels: the window's valid range computed once per output pixel, each
    /// channel's output step prepared once; average pooling sums four channels per input word
    /// when `C` is a multiple of four and the window has at most 257 positions.
    Pool,
    /// The depthwise kernel: one input channel per group, the weights transposed once per layer
    /// in scratch; four channels per input word on [`Isa::Dsp`] when `C` is a multiple of four
    /// and the kernel has at most 18 positions, otherwise all channels of a pixel at once, one
    /// product at a time.
    Depthwise,
    /// The packed depthwise kernel, on [`Isa::Dsp`] for depthwise layers over inputs of at most
    /// 16 levels whose products stay inside its fields ([`depthwise_packable`]): three output
    /// pixels' codes in 13-bit fields of one word, three products per signed 32x32->64
    /// multiply-accumulate (`SMLAL`), channel by channel over the input spread once
    /// ([`packed_depthwise_layout`]).
    PackedDepthwise,
    /// Event-driven accumulation over spike counts (the runtime's `event-driven` feature).
    Events,
    /// The narrow kernel, for convolutions over few input channels (an image's first layer) on
    /// [`Isa::Dsp`]: each input row spread once into 16-bit lane pairs, so that every output
    /// pixel's window is a run of consecutive words, two MACs per `SMLAD` without gathering
    /// ([`narrow_layout`]).
    Narrow,
    /// The packed dense kernel, for dense layers with 4- or 2-bit weights
    /// ([`dense_packable`]), on every core: the input's codes once per layer in pairs, the 16-bit
    /// fields of a word, so that one 32x32->32 multiply by two offset-binary weights of a row
    /// gives the sum of two products in its upper half ([`packed_dense_layout`]).
    PackedDense,
}

impl Kernel {
    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::Row => "row",
            Self::Gather => "gather",
            Self::Packed => "packed",
            Self::Pairs => "pairs",
            Self::Elementwise => "elementwise",
            Self::Pool => "pool",
            Self::Depthwise => "depthwise",
            Self::PackedDepthwise => "packed-depthwise",
            Self::Events => "events",
            Self::Narrow => "narrow",
            Self::PackedDense => "packed-dense",
        }
    }
}

/// Why a layer got its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reason {
    /// The fastest kernel for this layer kind and width.
    Fastest,
    /// The runtime was built with `reference-kernels`.
    ReferenceBuild,
    /// The model file gives the layer less scratch than the fast kernel needs.
    ScratchShort {
        /// Bytes the fast kernel needs.
        needed: u32,
        /// Bytes the file gives.
        given: u32,
    },
    /// The layer kind has no faster kernel.
    NoFastKernel,
    /// Spiking input with event-driven accumulation selected.
    EventDriven,
}

/// Scratch bytes the event-driven kernels (`bitspike_rt::kernels::scatter`) need for layer `g`
/// with `bits`-bit weights (any width: they are unpacked), including 3 bytes for aligning the
/// start to 4: a convolution's row of i32 accumulators (`out_w x C_out`), a dense layer's
/// `C_out`, the weights as bytes transposed (`fan x C_out`) and one row of them unpacked
/// (`fan`). 0 for other kinds.
pub const fn events_scratch_bytes(g: &Geometry, bits: u8) -> u32 {
    let _ = bits;
    let acc = match g.kind {
        LayerKind::Conv2d => g.output.w as u64 * g.output.c as u64,
        LayerKind::Dense => g.output.c as u64,
        _ => return 0,
    };
    let fan = fan_in(g) as u64;
    let n = 3 + 4 * acc + fan * g.output.c as u64 + fan;
    if n > u32::MAX as u64 {
        u32::MAX
    } else {
        n as u32
    }
}

/// Whether, without the DSP extension, convolution `g` (`bits`-bit weights over input codes up
/// to `levels`) runs faster on the scatter kernels than on the row kernel even on dense inputs:
/// a convolution with one group that the pairs kernel cannot take (too many input levels, as an
/// 8-bit image). Measured on ResNet-8's first layer (32x32x3, 8-bit image, 16 channels): 7.2 M
/// instructions as Armv6-M code against 9.5 M on the row kernel, 4.7 M against 6.4 M on the
/// Cortex-M3, over uniformly random images. The writer gives such a layer the scatter kernels'
/// scratch.
pub const fn scatter_beats_row(g: &Geometry, bits: u8, levels: u8) -> bool {
    matches!(g.kind, LayerKind::Conv2d)
        && g.groups == 1
        && matches!(fast_kernel(g, Isa::Portable), Some(Kernel::Row))
        && !pairable(g, bits, levels)
}

/// The input density byte of a layer ([`crate::format::LayerView::input_density`]): `nonzero`
/// of `total` input codes were nonzero, as `1 + round(254 x fraction)` (1: none, 255: all);
/// 0 when nothing was measured.
pub const fn density(nonzero: u64, total: u64) -> u8 {
    if total == 0 || nonzero > total {
        return 0;
    }
    1 + ((254 * nonzero as u128 + total as u128 / 2) / total as u128) as u8
}

/// The largest input density byte at which a weighted layer is cheaper event by event (each
/// nonzero input adds its weights) than through the dense kernels of `isa`: the measured
/// break-even of the two on that target (see docs/kernels.md); 0 for never.
pub const fn events_below(isa: Isa) -> u8 {
    match isa {
        Isa::Dsp => EVENTS_BELOW_DSP,
        Isa::Portable => EVENTS_BELOW_PORTABLE,
    }
}

/// [`events_below`] on the DSP kernels: 10 % nonzero inputs. Measured on the Cortex-M4 with
/// the random-weight QAC network (`bitspike model --arch snn --bits 4 --seed 2`, its two 4-bit
/// spiking convolutions forced event by event): at the densities of the golden vectors the
/// scatter took 3.7x (62.7 % nonzero) and 4.0x (35.9 %) the packed kernel's instructions, so
/// the break-even lies at 17 % and 9 % nonzero; the lower one, rounded.
const EVENTS_BELOW_DSP: u8 = 1 + 25;
/// [`events_below`] on the portable kernels: 16 % nonzero inputs. The same measurement on the
/// Cortex-M3 (`qemu-lm3s6965`) and as Armv6-M code (`qemu-an386-v6m`) against the pairs
/// kernel: break-even at 32 % and 19 % (M3), 31 % and 16 % (Armv6-M); the lowest, rounded.
const EVENTS_BELOW_PORTABLE: u8 = 1 + 41;

/// Whether a layer whose input density byte is `density` runs event by event on `isa`.
pub const fn events_pay(isa: Isa, density: u8) -> bool {
    density != 0 && density <= events_below(isa)
}

/// The kernel a layer runs on and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Choice {
    /// The kernel.
    pub kernel: Kernel,
    /// Why.
    pub reason: Reason,
}

/// Output pixels the gather kernel's micro-kernel computes per call.
pub const PIXELS: usize = 4;

/// Output pixels the gather kernel computes per pass (two micro-kernel calls per output channel,
/// which share the channel's weights row, bias and output step).
pub const PASS: usize = 8;

/// Inputs per lane block for `bits`-bit weights: the gather kernel pairs input `j` with input
/// `j + block / 2` of each block, the order in which one 32-bit word of weights unpacks into
/// 16-bit lanes (`SXTB16` on bytes; a mask on 4-bit and 2-bit fields).
pub const fn block(bits: u8) -> usize {
    match bits {
        4 => 8,
        2 => 16,
        _ => 4,
    }
}

/// Whether `bits`-bit weights with `fan` weights per output channel are read in place (every
/// channel's row starts on a byte and the width unpacks in registers): 8, 4 and 2 bits. Other
/// widths, and rows that start inside a byte, are unpacked to 8 bits per output channel first.
pub const fn in_place(bits: u8, fan: usize) -> bool {
    matches!(bits, 8 | 4 | 2) && (fan * bits as usize).is_multiple_of(8)
}

/// Per output channel, the number of inputs (its fan-in) of a convolution or dense layer.
pub const fn fan_in(g: &Geometry) -> usize {
    match g.kind {
        LayerKind::Dense => g.input.len(),
        _ => {
            let groups = if g.groups == 0 { 1 } else { g.groups as usize };
            g.window.kh as usize * g.window.kw as usize * (g.input.c as usize / groups)
        }
    }
}

/// Whether a convolution is depthwise: one input channel per group.
pub const fn depthwise(g: &Geometry) -> bool {
    matches!(g.kind, LayerKind::Conv2d) && g.groups > 1 && g.input.c == g.groups
}

/// Layout of the gather kernel's scratch for one layer (byte offsets from a 4-aligned start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherLayout {
    /// The fan-in rounded up to a whole number of lane blocks.
    pub padded: usize,
    /// Offset of the lanes: `PASS * padded` 16-bit values (words of two lanes), two halves of
    /// `PIXELS` pixels.
    pub lanes: usize,
    /// Offset of one pixel's window as bytes, `padded` long.
    pub column: usize,
    /// Offset of one output channel's weights unpacked to 8 bits (or copied, at the end of the
    /// weights), `padded` long.
    pub row: usize,
    /// Offset of the output channels' requantization, prepared once per layer:
    /// [`TABLE_ENTRY`] bytes per channel.
    pub table: usize,
    /// Offset of every output channel's weights unpacked to 8 bits once per layer (`channels *
    /// padded` bytes), for weights not read in place when that takes at most [`UNPACKED_MAX`]
    /// bytes; otherwise empty, and each pass unpacks each row again into `row`.
    pub unpacked: usize,
    /// Bytes of `unpacked` (0 when rows are read in place or unpacked per pass).
    pub unpacked_bytes: usize,
    /// Offset of the window's input offsets (one u32 per input of the fan-in, relative to the
    /// window's first input), with which pixels whose window lies inside the input are gathered
    /// without bounds arithmetic; present when the gather goes through the byte column (`C` not
    /// a multiple of the lane block).
    pub offsets: usize,
    /// Bytes of `offsets` (0 when absent).
    pub offsets_bytes: usize,
    /// Bytes in all (without the up to 3 bytes that align the start).
    pub bytes: usize,
}

/// Bytes of one output channel's prepared requantization in the gather kernel's scratch
/// (`bitspike_core::quant::Requantizer::encode`).
pub const TABLE_ENTRY: usize = 16;

/// The gather kernel's scratch layout for convolution `g` (one group) at `bits`-bit weights.
pub const fn gather_layout(g: &Geometry, bits: u8) -> GatherLayout {
    let fan = fan_in(g);
    let channels = g.output.c as usize;
    let b = block(bits);
    let padded = fan.div_ceil(b) * b;
    let lanes = 0;
    let column = lanes + PASS * padded * 2;
    let row = column + padded;
    let table = row + padded;
    let unpacked = table + TABLE_ENTRY * channels;
    let unpacked_bytes = if !in_place(bits, fan) && channels * padded <= UNPACKED_MAX {
        channels * padded
    } else {
        0
    };
    let offsets = unpacked + unpacked_bytes;
    let offsets_bytes = if (g.input.c as usize).is_multiple_of(b) {
        0
    } else {
        4 * fan
    };
    GatherLayout {
        padded,
        lanes,
        column,
        row,
        table,
        unpacked,
        unpacked_bytes,
        offsets,
        offsets_bytes,
        bytes: offsets + offsets_bytes,
    }
}

/// Layout of the depthwise kernel's scratch (byte offsets from a 4-aligned start): one i32
/// accumulator per channel, the weights transposed to `[kernel position][channel]` at 8 bits,
/// and each channel's prepared requantization ([`TABLE_ENTRY`] bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseLayout {
    /// Offset of the weights, `[kh * kw][C]` bytes.
    pub weights: usize,
    /// Offset of the requantization table.
    pub table: usize,
    /// Bytes in all (without the up to 3 bytes that align the start).
    pub bytes: usize,
}

/// The depthwise kernel's scratch layout for layer `g`.
pub const fn depthwise_layout(g: &Geometry) -> DepthwiseLayout {
    let c = g.output.c as usize;
    let k = g.window.kh as usize * g.window.kw as usize;
    let weights = 4 * c;
    let table = weights + (k * c).div_ceil(4) * 4;
    DepthwiseLayout {
        weights,
        table,
        bytes: table + TABLE_ENTRY * c,
    }
}

/// Layout of the packed depthwise kernel's scratch (byte offsets from a 4-aligned start): one
/// channel's input spread into a plane of words, the taps, the channel's sums, and each
/// channel's prepared output step ([`TABLE_ENTRY`] bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedDepthwiseLayout {
    /// Rows of the plane, at offset 0: one per input row a window reads, padding rows included
    /// (`(oh - 1) sh + kh`, the first `ph` of them above the input); rows outside the input
    /// are zero.
    pub rows: usize,
    /// Words of one plane row: word `j` holds the codes of input columns `j - pw`,
    /// `j - pw + sw` and `j - pw + 2 sw` in fields at bits 0, [`DW_FIELD_BITS`] and twice that
    /// (0 outside the input), so the three output pixels `3 t .. 3 t + 2` read, at kernel
    /// column `kx`, word `3 t sw + kx` of the window's row.
    pub row_words: usize,
    /// Words from one plane row's start to the next's: the row's words after `2 sw` words
    /// that the spreading may write (it rolls each word from the one `sw` before, starting
    /// `2 sw` words early so that the first words need no special case).
    pub stride: usize,
    /// Offset of the taps: per kernel position, the byte offset of its word from the window's
    /// first word, and its weight (two u32).
    pub taps: usize,
    /// Offset of one channel's sums: one u32 per output pixel, and two more (an output row's
    /// last triple may run two pixels past the row, into the next row's first sums).
    pub sums: usize,
    /// Offset of the output steps.
    pub table: usize,
    /// Bytes in all (without the up to 3 bytes that align the start).
    pub bytes: usize,
}

/// The packed depthwise kernel's scratch layout for layer `g`.
pub const fn packed_depthwise_layout(g: &Geometry) -> PackedDepthwiseLayout {
    let c = g.output.c as usize;
    let (kh, kw) = (g.window.kh as usize, g.window.kw as usize);
    let triples = (g.output.w as usize).div_ceil(3);
    let (rows, row_words) = if triples == 0 || g.output.h == 0 {
        (0, 0)
    } else {
        (
            (g.output.h as usize - 1) * g.window.sh as usize + kh,
            3 * g.window.sw as usize * (triples - 1) + kw,
        )
    };
    let stride = row_words + 2 * g.window.sw as usize;
    // Saturating from here: on a 32-bit core a large layer's plane or sums overflow, and its
    // `bytes` then exceed any scratch a file can give (the kernel is never chosen).
    let taps = (4 * rows).saturating_mul(stride);
    let sums = taps.saturating_add(8 * kh * kw);
    let pixels = (g.output.h as usize).saturating_mul(g.output.w as usize);
    let table = sums.saturating_add(pixels.saturating_add(2).saturating_mul(4));
    PackedDepthwiseLayout {
        rows,
        row_words,
        stride,
        taps,
        sums,
        table,
        bytes: table.saturating_add(TABLE_ENTRY * c),
    }
}

/// Bits between the packed depthwise kernel's fields: the three pixels of a word sit at bits 0,
/// 13 and 26 (codes up to 15 keep the word below 2^30, positive for a signed multiply).
pub const DW_FIELD_BITS: u32 = 13;

/// What the packed depthwise kernel adds to each field before the products: a field then holds
/// its pixel's signed sum plus this, in `0..2^13`, as long as the sum's magnitude stays below it
/// ([`depthwise_packable`]), and no field borrows from the next.
pub const DW_FIELD_BIAS: i32 = 1 << (DW_FIELD_BITS - 1);

/// Whether the packed depthwise kernel can run layer `g` with `bits`-bit weights over inputs
/// with codes up to `levels`: a depthwise convolution (one output per input channel) over codes
/// up to [`PACKED_MAX_CODE`], whose largest sum, `kh x kw x 2^(bits-1) x levels` in magnitude,
/// stays below [`DW_FIELD_BIAS`], at most 64 kernel positions.
pub const fn depthwise_packable(g: &Geometry, bits: u8, levels: u8) -> bool {
    let k = g.window.kh as usize * g.window.kw as usize;
    depthwise(g)
        && g.output.c == g.input.c
        && bits >= 1
        && bits <= 8
        && levels <= PACKED_MAX_CODE
        && k >= 1
        && k <= 64
        && k * (1usize << (bits - 1)) * (levels as usize) < DW_FIELD_BIAS as usize
}

/// The most scratch the gather kernel spends on keeping a layer's weights unpacked to 8 bits
/// (weights not read in place: 3, 5, 6, 7 bits, or rows that start inside a byte). Larger layers
/// unpack each row once per pass of four pixels instead.
pub const UNPACKED_MAX: usize = 2048;

/// Bits between the packed kernel's fields: the three pixels of a word sit at bits 0, 14 and 28,
/// so the top one holds codes up to 15 and each lower field sums products up to [`FIELD_MAX`].
pub const FIELD_BITS: u32 = 14;

/// The largest sum a packed field may reach before it is flushed (the next field starts above).
pub const FIELD_MAX: u32 = (1 << FIELD_BITS) - 1;

/// Output pixels the packed kernel computes per pass: two words of three.
pub const PACKED_PASS: usize = 6;

/// The largest input code the packed kernel reads: the top field of a word has four bits.
pub const PACKED_MAX_CODE: u8 = 15;

/// Weights one 32-bit word of `bits`-bit weights holds (8 at 4 bits, 16 at 2 bits; 0 for widths
/// the packed kernel does not read).
pub const fn packed_per_word(bits: u8) -> usize {
    match bits {
        4 => 8,
        2 => 16,
        _ => 0,
    }
}

/// How many words of `bits`-bit weights the packed kernel may accumulate over inputs with codes
/// up to `levels` before it flushes its fields: each product of a code and an offset-binary
/// weight (`w + 2^(bits-1)`, at most `2^bits - 1`) adds at most `levels x (2^bits - 1)` to a
/// field, which must stay at most [`FIELD_MAX`]. 0 when the kernel cannot run these widths:
/// weights other than 4 or 2 bits, or codes above [`PACKED_MAX_CODE`].
pub const fn packed_chunk(bits: u8, levels: u8) -> usize {
    let per = packed_per_word(bits);
    if per == 0 || levels > PACKED_MAX_CODE {
        return 0;
    }
    let product = levels as usize * ((1usize << bits) - 1);
    if product == 0 {
        // Codes are all 0: any chunk is safe; one that covers every fan-in here.
        return usize::MAX / 2;
    }
    FIELD_MAX as usize / product / per
}

/// Whether the packed kernel can run convolution `g` (one group) with `bits`-bit weights over
/// inputs with codes up to `levels`: 4- or 2-bit weights read in place (every row starts on a
/// byte), codes up to [`PACKED_MAX_CODE`], and a flush interval of at least one word.
pub const fn packable(g: &Geometry, bits: u8, levels: u8) -> bool {
    matches!(g.kind, LayerKind::Conv2d)
        && g.groups <= 1
        && in_place(bits, fan_in(g))
        && packed_chunk(bits, levels) >= 1
}

/// The most words of lane pairs the narrow kernel's window may take (kernel rows x words per
/// kernel row, rounded up to [`NARROW_STEP`]).
pub const NARROW_MAX_WORDS: usize = 16;

/// The narrow kernel's window words are a whole number of this many (its loop's step).
pub const NARROW_STEP: usize = 8;

/// Output pixels the narrow kernel sums, then stores, together.
pub const NARROW_PIXELS: usize = 4;

/// The most scratch the narrow kernel spends on its weights as 16-bit lane pairs.
pub const NARROW_MAX_WEIGHTS: usize = 2048;

/// Layout of the narrow kernel's scratch for one layer (byte offsets from a 4-aligned start).
///
/// Kernel row `ky` of an output pixel's window is the run of `kw x C` codes that starts at code
/// `s = ox x sw x C` of the input row (the row padded with `pw x C` zero codes on each side). The
/// kernel keeps, for the `kh` input rows of one output row and each parity `p` of `s`, the
/// words `x[2q + p] | x[2q + p + 1] << 16` at word `q x kh + ky`: the window of a pixel is then
/// the consecutive words from `(s / 2) x kh` on, in the order (word of the run `j`, kernel row
/// `ky`), which is how each output channel's weights are laid out as lane pairs once per layer
/// (zero past the run and past the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NarrowLayout {
    /// Codes in a kernel row's run (`kw x C`).
    pub run: usize,
    /// Words of lane pairs per kernel row (`run / 2`, rounded up).
    pub per_row: usize,
    /// Words of a window and of a channel's weights: `kh x per_row` rounded up to
    /// [`NARROW_STEP`].
    pub words: usize,
    /// Slots `q` of each parity's rows (`kh` words each).
    pub slots: usize,
    /// Offset of the output channels' requantization ([`TABLE_ENTRY`] bytes per channel).
    pub table: usize,
    /// Offset of the weights as lane pairs, `words` words per output channel.
    pub weights: usize,
    /// Offset of one output channel's weights unpacked to bytes (the fan-in, rounded up to 4).
    pub row: usize,
    /// Offset of the rows of parity 0; those of parity 1 follow at `rows + slots x kh x 4`.
    pub rows: usize,
    /// Bytes in all (without the up to 3 bytes that align the start).
    pub bytes: usize,
}

/// The narrow kernel's scratch layout for convolution `g` (see [`NarrowLayout`]).
pub const fn narrow_layout(g: &Geometry) -> NarrowLayout {
    let c = g.input.c as usize;
    let (kh, kw) = (g.window.kh as usize, g.window.kw as usize);
    let run = kw * c;
    let per_row = run.div_ceil(2);
    let words = (kh * per_row).div_ceil(NARROW_STEP) * NARROW_STEP;
    // A padded row holds `(iw + 2 pw) C` codes; the kernel computes pixels four at a time, so
    // the last window starts at code `s` of pixel `ow` rounded up to 4, minus 1, and reads
    // `words` words (`words / kh` slots, rounded up) from slot `s / 2` on.
    let codes = (g.input.w as usize + 2 * g.window.pw as usize) * c;
    let last = (g.output.w as usize).div_ceil(NARROW_PIXELS) * NARROW_PIXELS;
    let last = last.saturating_sub(1) * g.window.sw as usize * c / 2;
    let start = if last > codes.div_ceil(2) {
        last
    } else {
        codes.div_ceil(2)
    };
    let slots = start + 1 + words.div_ceil(if kh == 0 { 1 } else { kh });
    let table = 0;
    let weights = table + TABLE_ENTRY * g.output.c as usize;
    let row = weights + 4 * words * g.output.c as usize;
    let rows = row + fan_in(g).div_ceil(4) * 4;
    NarrowLayout {
        run,
        per_row,
        words,
        slots,
        table,
        weights,
        row,
        rows,
        bytes: rows + 2 * 4 * slots * kh,
    }
}

/// Whether the narrow kernel runs convolution `g` on [`Isa::Dsp`]: one group, input channels
/// that the gather kernel would copy through its byte column (`C` not a multiple of 4), a
/// window of at most [`NARROW_MAX_WORDS`] words of lane pairs, and every channel's weights as
/// lane pairs in at most [`NARROW_MAX_WEIGHTS`] bytes.
pub const fn narrow(g: &Geometry) -> bool {
    if !matches!(g.kind, LayerKind::Conv2d) || g.groups > 1 || g.input.c.is_multiple_of(4) {
        return false;
    }
    let l = narrow_layout(g);
    l.words > 0
        && l.words <= NARROW_MAX_WORDS
        && l.words * 4 * (g.output.c as usize) <= NARROW_MAX_WEIGHTS
}

/// The largest input code (a tensor's `levels`) the pairs kernel takes: a field then grows by
/// at most `31 x 128` per input and is flushed at least every 8 inputs.
pub const PAIRS_MAX_LEVELS: u8 = 31;

/// How many inputs the pairs kernel may accumulate over inputs with codes up to `levels` and
/// `bits`-bit weights before it flushes its fields: each product adds at most `levels x
/// 2^(bits-1)` in magnitude to a signed 16-bit field; a whole number of weight bytes (the
/// kernel reads weights a byte at a time). 0 when the kernel does not run these layers: weights
/// other than 8, 4 or 2 bits, or more than [`PAIRS_MAX_LEVELS`] levels.
pub const fn pairs_chunk(bits: u8, levels: u8) -> usize {
    if !matches!(bits, 8 | 4 | 2) || levels > PAIRS_MAX_LEVELS {
        return 0;
    }
    let per_byte = 8 / bits as usize;
    let product = levels as usize * (1 << (bits - 1));
    if product == 0 {
        return usize::MAX / 16 * per_byte;
    }
    i16::MAX as usize / product / per_byte * per_byte
}

/// Whether the pairs kernel can run convolution `g` (one group) with `bits`-bit weights over
/// inputs with codes up to `levels`: 8-, 4- or 2-bit weights read in place (every channel's row
/// starts on a byte), codes up to [`PAIRS_MAX_LEVELS`].
pub const fn pairable(g: &Geometry, bits: u8, levels: u8) -> bool {
    matches!(g.kind, LayerKind::Conv2d)
        && g.groups <= 1
        && in_place(bits, fan_in(g))
        && pairs_chunk(bits, levels) >= 1
}

/// Output pixels per channel from which the pairs kernel's threshold tables pay on Armv6-M:
/// building a channel's table (a binary search, then one requantization per code) costs
/// about as much as requantizing a few dozen outputs by multiplies, and each output then saves
/// part of its requantization (four compares instead of a 64-bit product from four
/// multiplies).
pub const THRESHOLD_MIN_PIXELS: usize = 128;

/// Where the pairs kernel may requantize layer `g` (`bits`-bit weights, inputs with codes up
/// to `levels`, outputs with codes up to `out_levels`) by threshold tables: the accumulators'
/// distance above `bias - below` spans `0..=span` with `span` at most
/// [`crate::quant::THRESHOLD_MAX_SPAN`] (`below = fan x 2^(bits-1) x levels`, `span = fan x
/// (2^bits - 1) x levels`), the outputs have at most [`crate::quant::THRESHOLD_MAX_LEVELS`]
/// levels, and each channel has at least [`THRESHOLD_MIN_PIXELS`] outputs. `(below, span)`.
pub const fn pairs_thresholds(
    g: &Geometry,
    bits: u8,
    levels: u8,
    out_levels: u8,
) -> Option<(u32, u32)> {
    if !pairable(g, bits, levels)
        || out_levels == 0
        || out_levels > crate::quant::THRESHOLD_MAX_LEVELS
        || (g.output.h as usize) * (g.output.w as usize) < THRESHOLD_MIN_PIXELS
    {
        return None;
    }
    // pairable: bits is 8, 4 or 2, and levels at most 31.
    let fan = fan_in(g) as u64;
    let below = fan * (1u64 << (bits - 1)) * levels as u64;
    let span = fan * ((1u64 << bits) - 1) * levels as u64;
    if span > crate::quant::THRESHOLD_MAX_SPAN as u64 {
        return None;
    }
    Some((below as u32, span as u32))
}

/// Scratch bytes of the pairs kernel with threshold tables ([`pairs_thresholds`]): the gather
/// layout rounded up to a word, then [`crate::quant::THRESHOLD_ENTRIES`] 16-bit thresholds per
/// output channel, and the 3 aligning bytes; 0 where the tables do not apply. An exporter
/// reserves it for boards with Armv6-M cores; the kernel uses the tables when the file gives
/// it this much.
pub const fn thresholds_scratch_bytes(g: &Geometry, bits: u8, levels: u8, out_levels: u8) -> u32 {
    if pairs_thresholds(g, bits, levels, out_levels).is_none() {
        return 0;
    }
    let start = gather_layout(g, bits).bytes.saturating_add(3) & !3;
    let table = (g.output.c as usize).saturating_mul(2 * crate::quant::THRESHOLD_ENTRIES);
    with_align(start.saturating_add(table))
}

/// The fast kernel of a layer kind on `isa`, if it has one. Without the DSP extension the
/// gather kernel's lanes cost more to multiply than they save (each 16-bit lane is extracted
/// before its multiply), so convolutions run on the row kernel there.
const fn fast_kernel(g: &Geometry, isa: Isa) -> Option<Kernel> {
    match g.kind {
        LayerKind::Conv2d if depthwise(g) && g.output.c == g.input.c => Some(Kernel::Depthwise),
        LayerKind::Conv2d if g.groups > 1 => Some(Kernel::Row),
        LayerKind::Conv2d if matches!(isa, Isa::Portable) => Some(Kernel::Row),
        LayerKind::Conv2d => Some(Kernel::Gather),
        LayerKind::Dense => Some(Kernel::Row),
        LayerKind::Add => Some(Kernel::Elementwise),
        LayerKind::MaxPool | LayerKind::AvgPool => Some(Kernel::Pool),
        _ => None,
    }
}

/// Whether the packed dense kernel can run layer `g` with `bits`-bit weights: a dense layer with
/// 4- or 2-bit weights whose rows start on a byte (`fan-in x bits` a whole number of bytes) and
/// hold at least one whole word of weights.
pub const fn dense_packable(g: &Geometry, bits: u8) -> bool {
    let n = g.input.len();
    matches!(g.kind, LayerKind::Dense)
        && (bits == 4 || bits == 2)
        && (n * bits as usize).is_multiple_of(8)
        && n >= 32 / bits as usize
}

/// Scratch bytes of the packed dense kernel's layout (without the 3 aligning bytes): one word
/// per two inputs of each row's whole words of weights (the `n - n mod (32 / bits)` first
/// inputs), that is two bytes per input; 0 where the layer is not [`dense_packable`].
pub const fn packed_dense_layout(g: &Geometry, bits: u8) -> usize {
    if !dense_packable(g, bits) {
        return 0;
    }
    let per = 32 / bits as usize;
    g.input.len() / per * per * 2
}

/// The longest run of a dense layer's weights the row kernel unpacks at once.
pub const ROW_CHUNK: usize = 1024;

/// The kernel layer `g` (weights at `bits`, inputs with codes up to `levels`, `given` scratch
/// bytes in its file) runs on, on `isa`.
///
/// `reference` is the runtime's `reference-kernels` build; `events` says the layer reads spike
/// counts and the runtime accumulates them event by event. On [`Isa::Dsp`] a convolution that
/// is [`packable`] runs on [`Kernel::Packed`], on [`Isa::Portable`] one that is [`pairable`] on
/// [`Kernel::Pairs`] (both in the gather kernel's scratch); on [`Isa::Dsp`] a depthwise layer
/// that is [`depthwise_packable`] runs on [`Kernel::PackedDepthwise`] when its file gives it
/// the [`packed_depthwise_layout`].
pub const fn choose(
    g: &Geometry,
    bits: u8,
    levels: u8,
    given: u32,
    isa: Isa,
    reference: bool,
    events: bool,
) -> Choice {
    let Some(fast) = fast_kernel(g, isa) else {
        return Choice {
            kernel: Kernel::Reference,
            reason: Reason::NoFastKernel,
        };
    };
    if reference {
        return Choice {
            kernel: Kernel::Reference,
            reason: Reason::ReferenceBuild,
        };
    }
    if events && g.kind.has_weights() {
        return Choice {
            kernel: Kernel::Events,
            reason: Reason::EventDriven,
        };
    }
    // The gather kernel's layout is enough for a convolution, the depthwise kernel's for a
    // depthwise layer, the row kernel's for a dense layer: the narrow, packed depthwise and
    // packed dense kernels run only where the file gives them their layouts (a file written
    // before they existed keeps the other kernel).
    // Without the DSP extension a convolution with one group runs on the pairs or row kernel
    // in the gather kernel's layout.
    let needed = match fast {
        Kernel::Gather => with_align(gather_layout(g, bits).bytes),
        Kernel::Row if matches!(g.kind, LayerKind::Conv2d) && g.groups <= 1 => {
            with_align(gather_layout(g, bits).bytes)
        }
        Kernel::Depthwise => with_align(depthwise_layout(g).bytes),
        Kernel::Row => with_align(row_layout(g)),
        _ => scratch_bytes(g, bits),
    };
    if given < needed {
        // A convolution whose file gives it one channel of weights at 8 bits runs on the row
        // kernel ([`granted_scratch`]).
        let row = matches!(g.kind, LayerKind::Conv2d) && given >= with_align(row_layout(g));
        return Choice {
            kernel: if row { Kernel::Row } else { Kernel::Reference },
            reason: Reason::ScratchShort { needed, given },
        };
    }
    let kernel = match fast {
        Kernel::Gather if packable(g, bits, levels) => Kernel::Packed,
        Kernel::Depthwise
            if matches!(isa, Isa::Dsp)
                && depthwise_packable(g, bits, levels)
                && given >= with_align(packed_depthwise_layout(g).bytes) =>
        {
            Kernel::PackedDepthwise
        }
        Kernel::Gather if narrow(g) && given >= with_align(narrow_layout(g).bytes) => {
            Kernel::Narrow
        }
        Kernel::Row if matches!(isa, Isa::Portable) && pairable(g, bits, levels) => Kernel::Pairs,
        Kernel::Row
            if dense_packable(g, bits) && given >= with_align(packed_dense_layout(g, bits)) =>
        {
            Kernel::PackedDense
        }
        Kernel::Row
            if matches!(isa, Isa::Portable)
                && scatter_beats_row(g, bits, levels)
                && given >= events_scratch_bytes(g, bits) =>
        {
            Kernel::Events
        }
        k => k,
    };
    Choice {
        kernel,
        reason: Reason::Fastest,
    }
}

mod scratch;
pub use scratch::{granted_scratch, scratch_bytes, scratch_cap, SCRATCH_FREE, SCRATCH_MAX_SHARE};
use scratch::{row_layout, with_align};

#[cfg(test)]
mod tests;

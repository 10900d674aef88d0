//! The runtime's Armv7E-M assembly (`SXTB16`, `UXTB16`, `SMLAD`, `SMLABB`/`SMLATT`,
//! `PKHBT`/`PKHTB`, `USADA8`, `USUB8`/`SEL`): the only `unsafe` code of the runtime, compiled
//! only on `thumbv7em` (`cfg(bitspike_dsp)`, set by `build.rs`).
//!
//! * [`Lanes::micro4`], the gather kernel's micro-kernels: `blocks` lane blocks of four pixels
//!   (see [`super::gather`]) against one 32-bit word of packed 8-, 4- or 2-bit weights per block,
//!   the four pixels' sums. [`Lanes::new`] checks the lanes once per pass, `micro4` the weights at
//!   each call:
//!   * `blocks >= 1` (the loop runs at least once);
//!   * `lanes` holds at least `blocks * block / 2 * 16` bytes and starts on a 4-byte boundary
//!     (`LDRD` needs word alignment on Armv7-M);
//!   * `weights` holds at least `4 * blocks` bytes (read with `LDR`, which Armv7-M allows
//!     unaligned);
//!   * the width is 8, 4 or 2 bits (other widths are unpacked to 8 bits by the caller);
//! * [`Packed::row`], the packed kernel's micro-kernels (see `super::packed`): two words of
//!   three pixels' 14-bit fields per input against a row of 4- or 2-bit weights, one `UMLAL`
//!   per word and weight, fields flushed every `chunk` words inside the loop. [`Packed::new`]
//!   checks the pass's words once, `row` the weights at each call:
//!   * at least one word of weights per row, and `1 <= chunk`;
//!   * the words hold at least `8 * per_word * total` bytes and start on a 4-byte boundary
//!     (`LDM`);
//!   * `weights` holds at least `4 * total` bytes;
//!   * the width is 4 or 2 bits;
//! * [`interleave3`]: three pixels' codes into the packed kernel's pixel words, with their
//!   sums;
//! * [`spread`]: a pixel's codes into its slot of the lanes, with their sum;
//! * [`Windows::row4`]: the narrow kernel's sums over the windows of lane pairs of one output
//!   row, four at a time (see `super::narrow`); [`Windows::new`] checks the words (8 or 16)
//!   and the alignment of the rows and weights once per layer, `row4` the offsets and
//!   that the row's last window and the weights lie inside their slices;
//! * [`max_bytes`]: the byte-wise maximum of two rows (max pooling);
//! * [`dot_u8_i8`]: a dot product of codes and 8-bit weights (dense rows);
//! * [`Taps::run`]: the depthwise kernel's four channels over a window's kernel positions
//!   (offsets checked once by [`Taps::new`], the window's and weights' lengths at each call).
//!
//! Each safe wrapper checks the lengths, alignment and widths its assembly relies on and returns
//! `None` (having written nothing) when one fails; the caller then runs the portable code. The
//! assembly reads and writes only the ranges checked, changes only the registers it lists, and
//! does not touch the stack (except [`Packed::row`], which keeps four sums in 24 bytes below the
//! stack pointer and restores it). Tested bit-exact against the portable code and the reference
//! kernels under QEMU on the Cortex-M4 (`cargo xtask conformance`, `cargo xtask bench`).
#![allow(unsafe_code)]

use core::arch::asm;

use bitspike_core::kernel::block;

/// One lane word `j` of a block against weight pair register `$w`: the four pixels' words
/// are consecutive, two `LDRD`s and four `SMLAD`s.
macro_rules! pairs4 {
    ($w:literal) => {
        concat!(
            "ldrd {xa}, {xb}, [{xp}], #8\n",
            "smlad {a0}, {xa}, ",
            $w,
            ", {a0}\n",
            "smlad {a1}, {xb}, ",
            $w,
            ", {a1}\n",
            "ldrd {xa}, {xb}, [{xp}], #8\n",
            "smlad {a2}, {xa}, ",
            $w,
            ", {a2}\n",
            "smlad {a3}, {xb}, ",
            $w,
            ", {a3}\n",
        )
    };
}

/// Extract the lane pair of 4-bit fields `j` and `j + 4` from the offset-binary word `{w}`.
macro_rules! nib {
    (0) => {
        "and {wa}, {w}, #0x000F000F\n"
    };
    ($s:literal) => {
        concat!(
            "lsr {wa}, {w}, #",
            $s,
            "\n",
            "and {wa}, {wa}, #0x000F000F\n"
        )
    };
}

/// Extract the lane pair of 2-bit fields `j` and `j + 8`.
macro_rules! crumb {
    (0) => {
        "and {wa}, {w}, #0x00030003\n"
    };
    ($s:literal) => {
        concat!(
            "lsr {wa}, {w}, #",
            $s,
            "\n",
            "and {wa}, {wa}, #0x00030003\n"
        )
    };
}

/// Four lane words from code words `{va}` (codes j .. j+3) and `{vb}` (codes j + b/2 ..): the
/// pairs (0, 0'), (1, 1'), (2, 2'), (3, 3') stored at `$o`, `$o + 16`, `$o + 32`, `$o + 48`
/// bytes from `{dst}`; both words' bytes added to `{s}`.
macro_rules! quad {
    ($o:literal) => {
        concat!(
            "usada8 {s}, {va}, {zero}, {s}\n",
            "usada8 {s}, {vb}, {zero}, {s}\n",
            "uxtb16 {ea}, {va}\n",
            "uxtb16 {eb}, {vb}\n",
            "pkhbt {t}, {ea}, {eb}, lsl #16\n",
            "str {t}, [{dst}, #",
            $o,
            "]\n",
            "pkhtb {t}, {eb}, {ea}, asr #16\n",
            "str {t}, [{dst}, #",
            $o,
            " + 32]\n",
            "uxtb16 {ea}, {va}, ror #8\n",
            "uxtb16 {eb}, {vb}, ror #8\n",
            "pkhbt {t}, {ea}, {eb}, lsl #16\n",
            "str {t}, [{dst}, #",
            $o,
            " + 16]\n",
            "pkhtb {t}, {eb}, {ea}, asr #16\n",
            "str {t}, [{dst}, #",
            $o,
            " + 48]\n",
        )
    };
}

/// The micro-kernel loop around a block body (one weight word loaded into `{w}` first, the
/// block count in `{n}`), with the operands every width shares.
macro_rules! micro_loop {
    ($wp:ident, $xp:ident, $n:ident, $a0:ident, $a1:ident, $a2:ident, $a3:ident; $($body:expr),* $(,)?) => {
        asm!(
            "2:",
            "ldr {w}, [{wp}], #4",
            $($body,)*
            "subs {n}, {n}, #1",
            "bne 2b",
            wp = inout(reg) $wp => _,
            xp = inout(reg) $xp => _,
            n = inout(reg) $n => _,
            a0 = inout(reg) $a0,
            a1 = inout(reg) $a1,
            a2 = inout(reg) $a2,
            a3 = inout(reg) $a3,
            w = out(reg) _,
            wa = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            options(nostack, readonly),
        )
    };
}

/// Two inputs of the packed micro-kernel: `LDM` brings input `k`'s two pixel words into
/// `r2`, `r3` and input `k + 1`'s into `r4`, `r5` (explicit registers: `LDM` fills its list in
/// register order); fields `$a` and `$b` of the offset-binary weight word `{w}` multiply them
/// into the two 64-bit field accumulators.
macro_rules! pair {
    ($bits:tt, $a:tt, $b:tt) => {
        concat!(
            "ldm {xp}!, {{r2, r3, r4, r5}}\n",
            field!($bits, $a),
            "umlal {l0}, {h0}, r2, {wa}\n",
            "umlal {l1}, {h1}, r3, {wa}\n",
            field!($bits, $b),
            "umlal {l0}, {h0}, r4, {wa}\n",
            "umlal {l1}, {h1}, r5, {wa}\n",
        )
    };
}

/// Field `$s` (a bit offset) of `$b` bits of `{w}` into `{wa}`: a mask for the lowest, a shift
/// for the highest, `UBFX` between.
macro_rules! field {
    ($b:literal, "0") => {
        concat!("and {wa}, {w}, #((1 << ", $b, ") - 1)\n")
    };
    ("4", "28") => {
        "lsr {wa}, {w}, #28\n"
    };
    ("2", "30") => {
        "lsr {wa}, {w}, #30\n"
    };
    ($b:literal, $s:literal) => {
        concat!("ubfx {wa}, {w}, #", $s, ", #", $b, "\n")
    };
}

/// The packed kernel's row loop around a word body: chunks of at most `{n}` (in: the flush
/// interval) words until `{w}` (in: the row's words) are done; per word, one weight word
/// loaded into `{w}` and flipped to offset binary by `$flip`. After each chunk, fields 0 and 1
/// of both accumulators are added to four running sums on the stack (24 bytes, restored) and
/// cleared; field 2 stays in place (36 bits, it cannot overflow). Out: the four sums in
/// `r2..r5`, the accumulators with field 2.
macro_rules! packed_row {
    ($wp:ident, $xp:ident, $chunk:ident, $total:ident, $l0:ident, $h0:ident, $l1:ident, $h1:ident,
     $s:ident, $flip:literal; $($body:expr),* $(,)?) => {
        asm!(
            "sub sp, sp, #24",
            "movs {wa}, #0",
            "strd {wa}, {wa}, [sp]",
            "strd {wa}, {wa}, [sp, #8]",
            "strd {w}, {n}, [sp, #16]",
            "1:",
            "ldrd {w}, {n}, [sp, #16]",
            "cmp {n}, {w}",
            "it hi",
            "movhi {n}, {w}",
            "sub {w}, {w}, {n}",
            "str {w}, [sp, #16]",
            "2:",
            "ldr {w}, [{wp}], #4",
            concat!("eor {w}, {w}, #", $flip),
            $($body,)*
            "subs {n}, {n}, #1",
            "bne 2b",
            "ubfx r2, {l0}, #0, #14",
            "ubfx r3, {l0}, #14, #14",
            "ubfx r4, {l1}, #0, #14",
            "ubfx r5, {l1}, #14, #14",
            "bfc {l0}, #0, #28",
            "bfc {l1}, #0, #28",
            "ldrd {w}, {wa}, [sp]",
            "add {w}, {w}, r2",
            "add {wa}, {wa}, r3",
            "strd {w}, {wa}, [sp]",
            "ldrd {w}, {wa}, [sp, #8]",
            "add {w}, {w}, r4",
            "add {wa}, {wa}, r5",
            "strd {w}, {wa}, [sp, #8]",
            "ldr {w}, [sp, #16]",
            "cmp {w}, #0",
            "bne 1b",
            "ldrd r2, r3, [sp]",
            "ldrd r4, r5, [sp, #8]",
            "add sp, sp, #24",
            wp = inout(reg) $wp => _,
            xp = inout(reg) $xp => _,
            n = inout(reg) $chunk => _,
            w = inout(reg) $total => _,
            wa = out(reg) _,
            l0 = inout(reg) 0u32 => $l0,
            h0 = inout(reg) 0u32 => $h0,
            l1 = inout(reg) 0u32 => $l1,
            h1 = inout(reg) 0u32 => $h1,
            out("r2") $s[0],
            out("r3") $s[1],
            out("r4") $s[2],
            out("r5") $s[3],
        )
    };
}

/// The packed kernel's words of one pass, checked once for every row of the pass: a width of 4
/// or 2 bits, at least one word of weights, `words` long enough for `total` words of weights
/// and word-aligned. The fields are private: only [`Packed::new`] makes one.
#[derive(Clone, Copy)]
pub struct Packed<'a> {
    words: &'a [u8],
    total: usize,
    bits: u8,
}

impl<'a> Packed<'a> {
    /// Check the pass's preconditions; `None` when one fails (the caller then runs the portable
    /// model).
    #[inline]
    pub fn new(bits: u8, words: &'a [u8], total: usize) -> Option<Self> {
        let per = match bits {
            4 => 8,
            2 => 16,
            _ => return None,
        };
        let bytes = total.checked_mul(8 * per)?;
        if total == 0
            || total > u32::MAX as usize
            || words.len() < bytes
            || !(words.as_ptr() as usize).is_multiple_of(4)
        {
            return None;
        }
        Some(Self { words, total, bits })
    }

    /// One output channel's row over the pass: the six pixels' field sums (fields 0, 1, 2 of
    /// the first word's accumulator, then of the second's), flushed every `chunk` words;
    /// `None` when `chunk` is 0 or `weights` is shorter than the pass's `4 * total` bytes.
    #[inline(always)]
    pub fn row(&self, weights: &[u8], chunk: usize) -> Option<[u32; 6]> {
        if chunk == 0 || weights.len() < self.total.checked_mul(4)? {
            return None;
        }
        let chunk = chunk.min(self.total) as u32;
        let total = self.total as u32;
        let xp = self.words.as_ptr();
        let wp = weights.as_ptr();
        let (l0, h0, l1, h1): (u32, u32, u32, u32);
        let mut s = [0u32; 4];
        // SAFETY: checked above and by `Packed::new`: `total >= 1` and `1 <= chunk <= total`,
        // so every chunk runs at least one word and the words sum to `total`; the loop reads
        // `4 * total` bytes from `wp` (inside `weights`; LDR allows unaligned addresses) and
        // `8 * per * total` bytes from `xp` (inside the pass's words, word-aligned for LDM and
        // LDRD). It writes only the listed registers, the flags and 24 bytes of stack below
        // `sp`, which it restores (8-byte aligned throughout).
        unsafe {
            if self.bits == 4 {
                packed_row!(
                    wp, xp, chunk, total, l0, h0, l1, h1, s, "0x88888888";
                    pair!("4", "0", "4"), pair!("4", "8", "12"),
                    pair!("4", "16", "20"), pair!("4", "24", "28"),
                );
            } else {
                packed_row!(
                    wp, xp, chunk, total, l0, h0, l1, h1, s, "0xAAAAAAAA";
                    pair!("2", "0", "2"), pair!("2", "4", "6"),
                    pair!("2", "8", "10"), pair!("2", "12", "14"),
                    pair!("2", "16", "18"), pair!("2", "20", "22"),
                    pair!("2", "24", "26"), pair!("2", "28", "30"),
                );
            }
        }
        let top = |l: u32, h: u32| (l >> 28) | (h << 4);
        Some([s[0], s[1], top(l0, h0), s[2], s[3], top(l1, h1)])
    }
}

/// One input word `$j` (of four) of [`interleave3`]: the fields of codes `j` of the three rows'
/// words `{va}`, `{vb}`, `{vc}` at bits 0, 14 and 28, stored at `8 j` bytes from `{dst}`.
macro_rules! triple_word {
    (0) => {
        concat!(
            "and {x}, {va}, #15\n",
            "and {y}, {vb}, #15\n",
            "orr {x}, {x}, {y}, lsl #14\n",
            "orr {x}, {x}, {vc}, lsl #28\n",
            "str {x}, [{dst}]\n",
        )
    };
    ($s:literal, $o:literal) => {
        concat!(
            "ubfx {x}, {va}, #",
            $s,
            ", #4\n",
            "ubfx {y}, {vb}, #",
            $s,
            ", #4\n",
            "orr {x}, {x}, {y}, lsl #14\n",
            "lsr {y}, {vc}, #",
            $s,
            "\n",
            "orr {x}, {x}, {y}, lsl #28\n",
            "str {x}, [{dst}, #",
            $o,
            "]\n",
        )
    };
}

/// Interleave three rows of codes (each at most 15) into every other word of `words`: for
/// input `k`, the word at `8 k` gets `a[k] | b[k] << 14 | c[k] << 28` (the packed kernel's
/// pixel word; see `super::packed`); returns each row's sum of codes (`USADA8`). Reads `4 *
/// quads` codes of each row. `None`, having written nothing, when `quads` is 0, a row is
/// shorter than `4 * quads` bytes, or `words` shorter than the last word's end (`32 * quads -
/// 4` bytes).
#[inline]
pub fn interleave3(rows: [&[u8]; 3], words: &mut [u8], quads: usize) -> Option<[u32; 3]> {
    let need = quads.checked_mul(4)?;
    if quads == 0 || rows.iter().any(|r| r.len() < need) || words.len() < quads.checked_mul(32)? - 4
    {
        return None;
    }
    let [pa, pb, pc] = rows.map(|r| r.as_ptr());
    let dst = words.as_mut_ptr();
    let (mut sa, mut sb, mut sc) = (0u32, 0u32, 0u32);
    // SAFETY: checked above: `quads >= 1`; the loop reads `4 * quads` bytes from each row
    // (LDR, unaligned allowed on Armv7-M) and writes the words at `32 q + 8 j` (j < 4) bytes
    // from `dst`, the last ending at `32 * quads - 4`, inside `words` (STR, unaligned allowed).
    // Only the listed registers and the flags change; the stack is not used.
    unsafe {
        asm!(
            "2:",
            "ldr {va}, [{pa}], #4",
            "ldr {vb}, [{pb}], #4",
            "ldr {vc}, [{pc}], #4",
            "movs {y}, #0",
            "usada8 {sa}, {va}, {y}, {sa}",
            "usada8 {sb}, {vb}, {y}, {sb}",
            "usada8 {sc}, {vc}, {y}, {sc}",
            triple_word!(0),
            triple_word!("8", "8"),
            triple_word!("16", "16"),
            triple_word!("24", "24"),
            "add {dst}, {dst}, #32",
            "subs {n}, {n}, #1",
            "bne 2b",
            pa = inout(reg) pa => _,
            pb = inout(reg) pb => _,
            pc = inout(reg) pc => _,
            dst = inout(reg) dst => _,
            n = inout(reg) quads => _,
            sa = inout(reg) sa,
            sb = inout(reg) sb,
            sc = inout(reg) sc,
            va = out(reg) _,
            vb = out(reg) _,
            vc = out(reg) _,
            x = out(reg) _,
            y = out(reg) _,
            options(nostack),
        );
    }
    Some([sa, sb, sc])
}

/// The lanes of one pass, checked once for every micro-kernel call of the pass: `blocks >= 1`,
/// a width of 8, 4 or 2 bits, `lanes` long enough for `blocks` blocks and word-aligned (`LDRD`).
/// The fields are private: only [`Lanes::new`] makes one.
#[derive(Clone, Copy)]
pub struct Lanes<'a> {
    lanes: &'a [u8],
    blocks: usize,
    bits: u8,
}

impl<'a> Lanes<'a> {
    /// Check the pass's preconditions; `None` when one fails (the caller then runs the portable
    /// model).
    #[inline]
    pub fn new(bits: u8, lanes: &'a [u8], blocks: usize) -> Option<Self> {
        let lane_bytes = blocks.checked_mul(block(bits) / 2 * 16)?;
        if blocks == 0
            || !matches!(bits, 8 | 4 | 2)
            || lanes.len() < lane_bytes
            || !(lanes.as_ptr() as usize).is_multiple_of(4)
        {
            return None;
        }
        Some(Self {
            lanes,
            blocks,
            bits,
        })
    }

    /// Four pixels' sums over the pass's blocks, starting from `init`, with one 32-bit word of
    /// weights per block; `None` when `weights` is shorter than that.
    #[inline(always)]
    pub fn micro4(&self, weights: &[u8], init: [i32; 4]) -> Option<[i32; 4]> {
        if weights.len() < self.blocks.checked_mul(4)? {
            return None;
        }
        Some(micro4(self.bits, self.lanes, weights, self.blocks, init))
    }
}

/// The assembly loops; the caller ([`Lanes::micro4`]) has checked every precondition listed in
/// the module docs.
#[inline(always)]
fn micro4(bits: u8, lanes: &[u8], weights: &[u8], blocks: usize, init: [i32; 4]) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = init;
    let xp = lanes.as_ptr();
    let wp = weights.as_ptr();
    // SAFETY: checked by `Lanes::new` and `Lanes::micro4`: `blocks >= 1`; the loop reads
    // `4 * blocks` bytes from `wp` (in `weights`) and `blocks * block(bits) / 2 * 16` bytes from
    // `xp` (in `lanes`, word-aligned for LDRD). The assembly writes only the listed registers
    // and the flags, and does not use the stack.
    unsafe {
        match bits {
            8 => micro_loop!(
                wp, xp, blocks, a0, a1, a2, a3;
                "sxtb16 {wa}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                pairs4!("{wa}"),
                pairs4!("{w}"),
            ),
            4 => micro_loop!(
                wp, xp, blocks, a0, a1, a2, a3;
                "eor {w}, {w}, #0x88888888",
                nib!(0),
                pairs4!("{wa}"),
                nib!(4),
                pairs4!("{wa}"),
                nib!(8),
                pairs4!("{wa}"),
                nib!(12),
                pairs4!("{wa}"),
            ),
            _ => micro_loop!(
                wp, xp, blocks, a0, a1, a2, a3;
                "eor {w}, {w}, #0xAAAAAAAA",
                crumb!(0),
                pairs4!("{wa}"),
                crumb!(2),
                pairs4!("{wa}"),
                crumb!(4),
                pairs4!("{wa}"),
                crumb!(6),
                pairs4!("{wa}"),
                crumb!(8),
                pairs4!("{wa}"),
                crumb!(10),
                pairs4!("{wa}"),
                crumb!(12),
                pairs4!("{wa}"),
                crumb!(14),
                pairs4!("{wa}"),
            ),
        }
    }
    [a0, a1, a2, a3]
}

/// The narrow kernel's windows of one layer (see `super::narrow`): the spread rows and the
/// weights as lane pairs, checked once for every window ([`Windows::new`]); the fields are
/// private, so only `new` makes one.
#[derive(Clone, Copy)]
pub struct Windows<'a> {
    rows: &'a [u8],
    weights: &'a [u8],
    words: usize,
}

impl<'a> Windows<'a> {
    /// Check the layer's preconditions: `words` 8 or 16, both slices starting on a
    /// 4-byte boundary (`LDM` needs word alignment); `None` when one fails.
    #[inline]
    pub fn new(rows: &'a [u8], weights: &'a [u8], words: usize) -> Option<Self> {
        if !matches!(words, 8 | 16)
            || !(rows.as_ptr() as usize).is_multiple_of(4)
            || !(weights.as_ptr() as usize).is_multiple_of(4)
        {
            return None;
        }
        Some(Self {
            rows,
            weights,
            words,
        })
    }

    /// One output row of one channel, four pixels at a time: for chunk `k < chunks`, the sums
    /// (from `init`) of the four windows whose rows start at bytes `first[0] + 2 k pair`,
    /// `first[1] + 2 k pair`, and `pair` bytes after each, each against the weights from byte
    /// `w`, handed to `f(k, sums)`. `false`, having called nothing, when an offset is not a
    /// multiple of 4 or a window or the weights would run past the end.
    #[inline(always)]
    pub fn row4<F: FnMut(usize, [i32; 4])>(
        &self,
        first: [usize; 2],
        pair: usize,
        chunks: usize,
        w: usize,
        init: i32,
        mut f: F,
    ) -> bool {
        let bytes = 4 * self.words;
        let fits = |end: Option<usize>, len: usize| end.is_some_and(|e| e <= len);
        let last = chunks
            .checked_mul(2)
            .and_then(|c| c.checked_sub(1))
            .and_then(|c| c.checked_mul(pair))
            .and_then(|o| o.checked_add(first[0].max(first[1])))
            .and_then(|o| o.checked_add(bytes));
        if chunks == 0
            || !(w | first[0] | first[1] | pair).is_multiple_of(4)
            || !fits(w.checked_add(bytes), self.weights.len())
            || !fits(last, self.rows.len())
        {
            return false;
        }
        let base = self.rows.as_ptr();
        let wp = self.weights.as_ptr().wrapping_add(w);
        let mut off = 0;
        for k in 0..chunks {
            let (a0, a1) = (first[0] + off, first[1] + off);
            let (s0, s1) = windows2(
                self.words,
                base.wrapping_add(a0),
                base.wrapping_add(a1),
                wp,
                init,
            );
            let (s2, s3) = windows2(
                self.words,
                base.wrapping_add(a0 + pair),
                base.wrapping_add(a1 + pair),
                wp,
                init,
            );
            f(k, [s0, s1, s2, s3]);
            off += 2 * pair;
        }
        true
    }
}

/// One group of four words of two windows: the weights into `r8, r10, r12, lr`, each window's
/// words into `r2..r5`, four `SMLAD` per window.
macro_rules! group2 {
    () => {
        concat!(
            "ldm {wp}!, {{r8, r10, r12, lr}}\n",
            "ldm {xa}!, {{r2, r3, r4, r5}}\n",
            "smlad {a}, r2, r8, {a}\n",
            "smlad {a}, r3, r10, {a}\n",
            "smlad {a}, r4, r12, {a}\n",
            "smlad {a}, r5, lr, {a}\n",
            "ldm {xb}!, {{r2, r3, r4, r5}}\n",
            "smlad {b}, r2, r8, {b}\n",
            "smlad {b}, r3, r10, {b}\n",
            "smlad {b}, r4, r12, {b}\n",
            "smlad {b}, r5, lr, {b}\n",
        )
    };
}

/// Two windows' sums over the groups listed (one `_` per group of four words), unrolled.
macro_rules! windows2 {
    ($xa:expr, $xb:expr, $wp:expr, $a:ident, $b:ident; $($g:tt)*) => {
        asm!(
            $(windows2!(@ $g),)*
            xa = inout(reg) $xa => _,
            xb = inout(reg) $xb => _,
            wp = inout(reg) $wp => _,
            a = inout(reg) $a,
            b = inout(reg) $b,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r10") _,
            out("r12") _,
            out("lr") _,
            options(nostack, readonly),
        )
    };
    (@ $g:tt) => {
        group2!()
    };
}

/// Two windows' sums (from `init`) over `words` words (8 or 16) from `xa` and `xb`
/// (rows) against the same words from `wp` (weights); the caller ([`Windows::row4`]) has
/// checked that `words` is one of those, and that each pointer holds `4 words` bytes from a
/// word-aligned start inside its slice.
#[inline(always)]
fn windows2(words: usize, xa: *const u8, xb: *const u8, wp: *const u8, init: i32) -> (i32, i32) {
    let (mut a, mut b) = (init, init);
    // SAFETY: checked by `Windows::new` and `Windows::row4`: the assembly reads `4 * words`
    // bytes from each of `xa`, `xb` and `wp`, word-aligned and inside the checked slices. It
    // writes only the listed registers and the flags (`SMLAD` sets Q on overflow; the sums wrap
    // by design), and does not use the stack.
    unsafe {
        match words {
            8 => windows2!(xa, xb, wp, a, b; _ _),
            _ => windows2!(xa, xb, wp, a, b; _ _ _ _),
        }
    }
    (a, b)
}

/// Spread `codes` into one pixel slot of the gather lanes (the assembly twin of the portable
/// `gather::spread`: same words at the same offsets), and return the sum of the codes
/// (`USADA8`). `lanes` starts at the slot's first word. `None`, having written nothing, when
/// `codes` is not a whole number of lane blocks of [`block`]`(bits)` codes or `lanes` is
/// shorter than the last block's last word.
#[inline]
pub fn spread(codes: &[u8], bits: u8, lanes: &mut [u8]) -> Option<u32> {
    let b = block(bits);
    if !codes.len().is_multiple_of(b) {
        return None;
    }
    let n = codes.len() / b;
    if n == 0 {
        return Some(0);
    }
    // The last word a block writes ends 12 bytes before the block's end (slot 0 of 4).
    let need = (n - 1).checked_mul(b * 8)?.checked_add(b * 8 - 12)?;
    if lanes.len() < need {
        return None;
    }
    let mut sum = 0u32;
    let src = codes.as_ptr();
    let dst = lanes.as_mut_ptr();
    // SAFETY: checked above: `n >= 1` blocks; the loop reads `n * b` bytes from `src` (all of
    // `codes`) with LDR, and writes words at offsets below `need` from `dst` (inside `lanes`)
    // with STR; both allow unaligned addresses on Armv7-M. Only the listed registers and the
    // flags change; the stack is not used.
    unsafe {
        match b {
            4 => asm!(
                "2:",
                "ldr {v}, [{src}], #4",
                "usada8 {s}, {v}, {zero}, {s}",
                "uxtb16 {a}, {v}",
                "uxtb16 {v}, {v}, ror #8",
                "str {a}, [{dst}]",
                "str {v}, [{dst}, #16]",
                "add {dst}, {dst}, #32",
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = inout(reg) n => _,
                s = inout(reg) sum,
                zero = in(reg) 0u32,
                v = out(reg) _,
                a = out(reg) _,
                options(nostack),
            ),
            8 => asm!(
                "2:",
                "ldr {va}, [{src}], #4",
                "ldr {vb}, [{src}], #4",
                quad!(0),
                "add {dst}, {dst}, #64",
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = inout(reg) n => _,
                s = inout(reg) sum,
                zero = in(reg) 0u32,
                va = out(reg) _,
                vb = out(reg) _,
                ea = out(reg) _,
                eb = out(reg) _,
                t = out(reg) _,
                options(nostack),
            ),
            _ => asm!(
                "2:",
                "ldr {va}, [{src}]",
                "ldr {vb}, [{src}, #8]",
                quad!(0),
                "ldr {va}, [{src}, #4]",
                "ldr {vb}, [{src}, #12]",
                quad!(64),
                "add {src}, {src}, #16",
                "add {dst}, {dst}, #128",
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = inout(reg) n => _,
                s = inout(reg) sum,
                zero = in(reg) 0u32,
                va = out(reg) _,
                vb = out(reg) _,
                ea = out(reg) _,
                eb = out(reg) _,
                t = out(reg) _,
                options(nostack),
            ),
        }
    }
    Some(sum)
}

/// `dst[i] = max(dst[i], src[i])` over whole 32-bit words of unsigned bytes (`USUB8` sets a
/// flag per byte where `dst >= src`, `SEL` keeps those bytes of `dst` and takes `src`'s
/// elsewhere); `None`, having written nothing, unless both slices have one length, a multiple of
/// four.
#[inline]
pub fn max_bytes(dst: &mut [u8], src: &[u8]) -> Option<()> {
    if dst.len() != src.len() || !dst.len().is_multiple_of(4) {
        return None;
    }
    let n = dst.len() / 4;
    if n == 0 {
        return Some(());
    }
    let d = dst.as_mut_ptr();
    let s = src.as_ptr();
    // SAFETY: checked above: `n >= 1` words; the loop reads and writes `4 * n` bytes at `d`
    // (all of `dst`) and reads `4 * n` bytes at `s` (all of `src`), with LDR/STR, which allow
    // unaligned addresses on Armv7-M. Only the listed registers and the flags (GE included)
    // change; the stack is not used.
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{d}]",
            "ldr {b}, [{s}], #4",
            "usub8 {t}, {a}, {b}",
            "sel {a}, {a}, {b}",
            "str {a}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            d = inout(reg) d => _,
            s = inout(reg) s => _,
            n = inout(reg) n => _,
            a = out(reg) _,
            b = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
    Some(())
}

/// The taps of the depthwise kernel: each kernel position's byte offset from the window's
/// start. The fields are private: only [`Taps::new`] makes one, having checked that there is at
/// least one and computed `span`, the bytes every window must hold.
#[derive(Clone, Copy)]
pub struct Taps<'a> {
    offsets: &'a [u32],
    span: usize,
}

impl<'a> Taps<'a> {
    /// Check the taps; `None` when there are none.
    #[inline]
    pub fn new(offsets: &'a [u32]) -> Option<Self> {
        let max = offsets.iter().copied().max()? as usize;
        Some(Self {
            offsets,
            span: max.checked_add(4)?,
        })
    }

    /// Four channels' sums over the taps, from `acc`, with the window starting at `window[0]`
    /// and `weights` holding each position's four 8-bit weights (one word): per position one
    /// word of codes (`UXTB16` into even and odd channels) and one of weights (`SXTB16`), four
    /// `SMLABB`/`SMLATT`. `None` when `window` is shorter than the taps reach or `weights` has
    /// fewer than four bytes per tap.
    #[inline(always)]
    pub fn run(&self, window: &[u8], weights: &[u8], acc: [i32; 4]) -> Option<[i32; 4]> {
        let n = self.offsets.len();
        if window.len() < self.span || weights.len() / 4 < n {
            return None;
        }
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        let xp = window.as_ptr();
        let op = self.offsets.as_ptr();
        let wp = weights.as_ptr();
        // SAFETY: `n >= 1` (checked by `new`); the loop reads `n` words from `op` (`offsets`,
        // aligned), `n` words from `wp` (`weights`, at least `4 * n` bytes), and one word at
        // `xp + offsets[i]` for each `i`, inside `window` because every offset plus 4 is at most
        // `span <= window.len()`. The last two may be unaligned: LDR allows that on Armv7-M
        // (unaligned traps off, the reset default, as for the other routines here). Only the
        // listed registers and the flags change; the stack is not used.
        unsafe {
            asm!(
                "2:",
                "ldr {x}, [{op}], #4",
                "ldr {x}, [{xp}, {x}]",
                "ldr {w}, [{wp}], #4",
                "uxtb16 {e}, {x}",
                "uxtb16 {x}, {x}, ror #8",
                "sxtb16 {t}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlabb {a0}, {e}, {t}, {a0}",
                "smlatt {a2}, {e}, {t}, {a2}",
                "smlabb {a1}, {x}, {w}, {a1}",
                "smlatt {a3}, {x}, {w}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                xp = in(reg) xp,
                op = inout(reg) op => _,
                wp = inout(reg) wp => _,
                n = inout(reg) n => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x = out(reg) _,
                e = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
        Some([a0, a1, a2, a3])
    }
}

/// `sum x[i] * w[i]` over codes `x` (u8) and 8-bit weights `w` (i8 bytes), four products per
/// loop: `UXTB16` and `SXTB16` widen two pairs of each word, two `SMLAD`s add them. Only the
/// whole words: returns the sum over the first `4 * (len / 4)` elements (the caller adds the
/// rest), or `None` when the slices differ in length.
#[inline]
pub fn dot_u8_i8(x: &[u8], w: &[u8]) -> Option<i32> {
    if x.len() != w.len() {
        return None;
    }
    let n = x.len() / 4;
    let mut acc = 0i32;
    if n == 0 {
        return Some(acc);
    }
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    // SAFETY: `n >= 1` words; the loop reads `4 * n <= len` bytes from each slice with LDR
    // (unaligned allowed on Armv7-M). Only the listed registers and the flags change; the stack
    // is not used.
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{xp}], #4",
            "ldr {b}, [{wp}], #4",
            "uxtb16 {c}, {a}",
            "uxtb16 {a}, {a}, ror #8",
            "sxtb16 {d}, {b}",
            "sxtb16 {b}, {b}, ror #8",
            "smlad {acc}, {c}, {d}, {acc}",
            "smlad {acc}, {a}, {b}, {acc}",
            "subs {n}, {n}, #1",
            "bne 2b",
            xp = inout(reg) xp => _,
            wp = inout(reg) wp => _,
            n = inout(reg) n => _,
            acc = inout(reg) acc,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            d = out(reg) _,
            options(nostack, readonly),
        );
    }
    Some(acc)
}

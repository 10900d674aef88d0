//! The packed kernel's assembly (see `super::super::packed`): [`Packed::rows`], the rows of
//! a pass's output channels over its pixel words, and [`interleave3`], the pixel words
//! themselves. The preconditions are listed in the parent module's docs.

use core::arch::asm;

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

/// The packed kernel's loop over rows around a word body. Per row: chunks of at most the
/// flush interval words until the row's `total` words are done; per word, one weight word
/// loaded into `{w}` and flipped to offset binary by `$flip`. After each chunk, fields 0 and 1
/// of both accumulators are added to four running sums on the stack and cleared; field 2 stays
/// in place (36 bits, it cannot overflow). At the row's end its six sums go to `{out}` (24
/// bytes, then advanced) and the weights pointer skips to the next row. The frame (48 bytes,
/// restored) holds the sums (0..16), the words left in the row (16), the flush interval (20),
/// the pass's words (24), `total` (28), the output pointer (32), the rows left (36) and the
/// skip from a row's end to the next row's start (40).
macro_rules! packed_rows {
    ($wp:ident, $xp:ident, $chunk:ident, $total:ident, $out:ident, $rows:ident, $skip:ident,
     $flip:literal; $($body:expr),* $(,)?) => {
        asm!(
            "sub sp, sp, #48",
            "str {n}, [sp, #20]",
            "str {xp}, [sp, #24]",
            "str {w}, [sp, #28]",
            "str {wa}, [sp, #32]",
            "str {h0}, [sp, #36]",
            "str {l1}, [sp, #40]",
            "3:",
            "ldr {xp}, [sp, #24]",
            "ldr {w}, [sp, #28]",
            "movs {wa}, #0",
            "strd {wa}, {wa}, [sp]",
            "strd {wa}, {wa}, [sp, #8]",
            "str {w}, [sp, #16]",
            "movs {l0}, #0",
            "movs {h0}, #0",
            "movs {l1}, #0",
            "movs {h1}, #0",
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
            "add r2, r2, {w}",
            "add r3, r3, {wa}",
            "strd r2, r3, [sp]",
            "ldrd {w}, {wa}, [sp, #8]",
            "add r4, r4, {w}",
            "add r5, r5, {wa}",
            "strd r4, r5, [sp, #8]",
            "ldr {w}, [sp, #16]",
            "cmp {w}, #0",
            "bne 1b",
            "lsrs {l0}, {l0}, #28",
            "orr {l0}, {l0}, {h0}, lsl #4",
            "lsrs {l1}, {l1}, #28",
            "orr {l1}, {l1}, {h1}, lsl #4",
            "ldr {wa}, [sp, #32]",
            "strd r2, r3, [{wa}]",
            "str {l0}, [{wa}, #8]",
            "strd r4, r5, [{wa}, #12]",
            "str {l1}, [{wa}, #20]",
            "add {wa}, {wa}, #24",
            "str {wa}, [sp, #32]",
            "ldr {n}, [sp, #40]",
            "add {wp}, {wp}, {n}",
            "ldr {n}, [sp, #36]",
            "subs {n}, {n}, #1",
            "str {n}, [sp, #36]",
            "bne 3b",
            "add sp, sp, #48",
            wp = inout(reg) $wp => _,
            xp = inout(reg) $xp => _,
            n = inout(reg) $chunk => _,
            w = inout(reg) $total => _,
            wa = inout(reg) $out => _,
            h0 = inout(reg) $rows => _,
            l1 = inout(reg) $skip => _,
            l0 = out(reg) _,
            h1 = out(reg) _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
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

    /// The rows of consecutive output channels over the pass, one per entry of `out`: row `r`
    /// starts at byte `r x stride` of `weights` and takes the pass's `total` words of weights;
    /// its six pixels' field sums (fields 0, 1, 2 of the first word's accumulator, then of the
    /// second's), flushed every `chunk` words, go to `out[r]`. `false`, having written
    /// nothing, when `chunk` or `out` is empty or the last row would read past `weights`.
    #[inline]
    pub fn rows(&self, weights: &[u8], stride: usize, chunk: usize, out: &mut [[u32; 6]]) -> bool {
        let end = out
            .len()
            .checked_sub(1)
            .and_then(|r| r.checked_mul(stride))
            .and_then(|s| s.checked_add(self.total.checked_mul(4)?));
        if chunk == 0
            || out.is_empty()
            || out.len() > u32::MAX as usize
            || stride > u32::MAX as usize
            || end.is_none_or(|e| e > weights.len())
        {
            return false;
        }
        let chunk = chunk.min(self.total) as u32;
        let total = self.total as u32;
        let rows = out.len() as u32;
        // From a row's last word to the next row's first (wrapping: `stride` may be shorter
        // than the `4 x total` bytes a row reads).
        let skip = (stride as u32).wrapping_sub(4 * total);
        let xp = self.words.as_ptr();
        let wp = weights.as_ptr();
        let op = out.as_mut_ptr();
        // SAFETY: checked above and by `Packed::new`: `rows >= 1`, `total >= 1` and
        // `1 <= chunk <= total`, so every chunk runs at least one word and a row's chunks sum
        // to `total`. Row `r` reads `4 * total` bytes from `wp + r * stride`, the last ending
        // at `end <= weights.len()` (LDR allows unaligned addresses), and `8 * per * total`
        // bytes from the pass's words (word-aligned for LDM and LDRD, long enough by
        // `Packed::new`); it writes the 24 bytes of `out[r]` (word-aligned). The assembly
        // writes only the listed registers, the flags and 48 bytes of stack below `sp`, which
        // it restores (8-byte aligned throughout).
        unsafe {
            if self.bits == 4 {
                packed_rows!(
                    wp, xp, chunk, total, op, rows, skip, "0x88888888";
                    pair!("4", "0", "4"), pair!("4", "8", "12"),
                    pair!("4", "16", "20"), pair!("4", "24", "28"),
                );
            } else {
                packed_rows!(
                    wp, xp, chunk, total, op, rows, skip, "0xAAAAAAAA";
                    pair!("2", "0", "2"), pair!("2", "4", "6"),
                    pair!("2", "8", "10"), pair!("2", "12", "14"),
                    pair!("2", "16", "18"), pair!("2", "20", "22"),
                    pair!("2", "24", "26"), pair!("2", "28", "30"),
                );
            }
        }
        true
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

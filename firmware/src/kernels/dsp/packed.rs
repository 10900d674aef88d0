//! The packed kernel's assembly (see `super::super::packed`): [`Packed::rows`], the rows of
//! a pass's output channels over its pixel words, and [`interleave3`], the pixel words
//! themselves. The preconditions are listed in the parent module's docs.

use core::arch::asm;

use bitspike_core::quant::Requantizer;
use bitspike_core::snn::Closed;

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

/// The end of a row of `packed_rows!`, with its sums in `r2..r5` (fields 0 and 1) and the
/// accumulators' top fields in place: the six sums less the corrections to the output
/// pointer, the weights pointer on to the next row, and back to `$next` while rows are left.
macro_rules! row_end {
    ($next:literal) => {
        concat!(
            "lsrs {l0}, {l0}, #28\n",
            "orr {l0}, {l0}, {h0}, lsl #4\n",
            "lsrs {l1}, {l1}, #28\n",
            "orr {l1}, {l1}, {h1}, lsl #4\n",
            "ldr {wa}, [sp, #44]\n",
            "ldrd {w}, {n}, [{wa}]\n",
            "sub r2, r2, {w}\n",
            "sub r3, r3, {n}\n",
            "ldrd {w}, {n}, [{wa}, #8]\n",
            "sub {l0}, {l0}, {w}\n",
            "sub r4, r4, {n}\n",
            "ldrd {w}, {n}, [{wa}, #16]\n",
            "sub r5, r5, {w}\n",
            "sub {l1}, {l1}, {n}\n",
            "ldr {wa}, [sp, #32]\n",
            "strd r2, r3, [{wa}]\n",
            "str {l0}, [{wa}, #8]\n",
            "strd r4, r5, [{wa}, #12]\n",
            "str {l1}, [{wa}, #20]\n",
            "add {wa}, {wa}, #24\n",
            "str {wa}, [sp, #32]\n",
            "ldr {n}, [sp, #40]\n",
            "add {wp}, {wp}, {n}\n",
            "ldr {n}, [sp, #36]\n",
            "subs {n}, {n}, #1\n",
            "str {n}, [sp, #36]\n",
            "bne ",
            $next,
            "\n",
        )
    };
}

/// The packed kernel's loop over rows around a word body (per word, one weight word loaded
/// into `{w}` and flipped to offset binary by `$flip`). When the flush interval covers a whole
/// row (`chunk >= total`), each row is one run of its words and its fields are read at its
/// end. Otherwise a row runs in chunks of at most the flush interval; after each chunk, fields
/// 0 and 1 of both accumulators are added to four running sums on the stack and cleared, and
/// field 2 stays in place (36 bits, it cannot overflow). At the row's end its six sums, less the
/// pass's six corrections, go to `{out}` (24 bytes, then advanced) and the weights pointer
/// skips to the next row (`row_end!`). The frame (48 bytes, restored) holds the sums (0..16),
/// the words left in the row (16), the flush interval (20), the pass's words (24), `total`
/// (28), the output pointer (32), the rows left (36), the skip from a row's end to the next
/// row's start (40) and the corrections' address (44).
macro_rules! packed_rows {
    ($wp:ident, $xp:ident, $chunk:ident, $total:ident, $out:ident, $rows:ident, $skip:ident,
     $corr:ident, $flip:literal; $($body:expr),* $(,)?) => {
        asm!(
            "sub sp, sp, #48",
            "str {n}, [sp, #20]",
            "str {xp}, [sp, #24]",
            "str {w}, [sp, #28]",
            "str {wa}, [sp, #32]",
            "str {h0}, [sp, #36]",
            "str {l1}, [sp, #40]",
            "str {l0}, [sp, #44]",
            "cmp {n}, {w}",
            "bhs 5f",
            // Rows in chunks.
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
            row_end!("3b"),
            "b 6f",
            // Rows in one run.
            "5:",
            "ldr {xp}, [sp, #24]",
            "ldr {n}, [sp, #28]",
            "movs {l0}, #0",
            "movs {h0}, #0",
            "movs {l1}, #0",
            "movs {h1}, #0",
            "4:",
            "ldr {w}, [{wp}], #4",
            concat!("eor {w}, {w}, #", $flip),
            $($body,)*
            "subs {n}, {n}, #1",
            "bne 4b",
            "ubfx r2, {l0}, #0, #14",
            "ubfx r3, {l0}, #14, #14",
            "ubfx r4, {l1}, #0, #14",
            "ubfx r5, {l1}, #14, #14",
            row_end!("5b"),
            "6:",
            "add sp, sp, #48",
            wp = inout(reg) $wp => _,
            xp = inout(reg) $xp => _,
            n = inout(reg) $chunk => _,
            w = inout(reg) $total => _,
            wa = inout(reg) $out => _,
            h0 = inout(reg) $rows => _,
            l1 = inout(reg) $skip => _,
            l0 = inout(reg) $corr => _,
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
    /// second's), flushed every `chunk` words, less `corr` (wrapping), go to `out[r]`.
    /// `false`, having written nothing, when `chunk` or `out` is empty or the last row would
    /// read past `weights`.
    #[inline]
    pub fn rows(
        &self,
        weights: &[u8],
        stride: usize,
        chunk: usize,
        corr: &[i32; 6],
        out: &mut [[u32; 6]],
    ) -> bool {
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
        let cp = corr.as_ptr();
        // SAFETY: checked above and by `Packed::new`: `rows >= 1`, `total >= 1` and
        // `1 <= chunk <= total`, so every chunk runs at least one word and a row's chunks sum
        // to `total`. Row `r` reads `4 * total` bytes from `wp + r * stride`, the last ending
        // at `end <= weights.len()` (LDR allows unaligned addresses), and `8 * per * total`
        // bytes from the pass's words (word-aligned for LDM and LDRD, long enough by
        // `Packed::new`) and the 24 bytes of `corr` (word-aligned for LDRD); it writes the 24
        // bytes of `out[r]` (word-aligned). The assembly
        // writes only the listed registers, the flags and 48 bytes of stack below `sp`, which
        // it restores (8-byte aligned throughout).
        unsafe {
            if self.bits == 4 {
                packed_rows!(
                    wp, xp, chunk, total, op, rows, skip, cp, "0x88888888";
                    pair!("4", "0", "4"), pair!("4", "8", "12"),
                    pair!("4", "16", "20"), pair!("4", "24", "28"),
                );
            } else {
                packed_rows!(
                    wp, xp, chunk, total, op, rows, skip, cp, "0xAAAAAAAA";
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

/// One requantized output: accumulator `$at` (a byte offset) of `{d}` through the terms in
/// registers `$m` (multiplier), `$al`/`$ah` (added term, low and high word), `$shift` the
/// instructions that leave the scaled value in `{hi}`; the code is stored at `{o}`, which then
/// moves on by `{c}`. [`store6`] names its terms as operands, [`store_rows`] as `r2..r4`.
macro_rules! requant_one {
    ($at:literal, [$m:literal, $al:literal, $ah:literal], $($shift:literal),*) => {
        concat!(
            "ldr {a}, [{d}, #", $at, "]\n",
            "mov {lo}, ", $al, "\n",
            "mov {hi}, ", $ah, "\n",
            "smlal {lo}, {hi}, {a}, ", $m, "\n",
            $($shift, "\n",)*
            "qadd {hi}, {hi}, {off}\n",
            "usat {hi}, #8, {hi}\n",
            "cmp {hi}, {lv}\n",
            "it hi\n",
            "movhi {hi}, {lv}\n",
            "strb {hi}, [{o}]\n",
            "add {o}, {o}, {c}\n",
        )
    };
}

/// A full pass's six requantized outputs ([`requant_one`] at offsets 0..24), the terms in
/// registers `$regs`.
macro_rules! requant_pass {
    ($regs:tt, $($shift:literal),*) => {
        concat!(
            requant_one!("0", $regs, $($shift),*),
            requant_one!("4", $regs, $($shift),*),
            requant_one!("8", $regs, $($shift),*),
            requant_one!("12", $regs, $($shift),*),
            requant_one!("16", $regs, $($shift),*),
            requant_one!("20", $regs, $($shift),*),
        )
    };
}

/// [`store6`]'s six outputs with the shift instructions `$shift`; `$($sh)?` passes the
/// shift register when they use it.
macro_rules! requant6 {
    ($d:ident, $o:ident, $c:ident, $m:ident, $al:ident, $ah:ident, $off:ident, $lv:ident
     $(, $sh:ident)?; $($shift:literal),*) => {
        asm!(
            requant_pass!(["{m}", "{al}", "{ah}"], $($shift),*),
            d = in(reg) $d,
            o = inout(reg) $o => _,
            c = in(reg) $c,
            m = in(reg) $m,
            al = in(reg) $al,
            ah = in(reg) $ah,
            $(sh = in(reg) $sh,)?
            off = in(reg) $off,
            lv = in(reg) $lv,
            a = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            options(nostack),
        )
    };
}

/// One channel's six outputs of a pass, `c` bytes apart from the start of `dst`: accumulator
/// `acc[p]` through `r` (the same codes as [`Requantizer::apply_right`]), assembly with the
/// terms in registers. `false`, having written nothing, when `r` shifts left or `dst` is
/// shorter than `5 c + 1` bytes.
#[inline(always)]
pub fn store6(acc: &[i32; 6], r: &Requantizer, dst: &mut [u8], c: usize) -> bool {
    if !r.right_shift() || c > u32::MAX as usize / 8 || dst.len() <= 5 * c {
        return false;
    }
    let (m, add, sh, off) = r.terms();
    let (al, ah) = (add as u32, (add >> 32) as u32);
    let lv = r.levels() as u32;
    let d = acc.as_ptr();
    let o = dst.as_mut_ptr();
    // SAFETY: checked above: the assembly reads the 24 bytes of `acc` (word-aligned) and
    // writes one byte at each of `o + p c` for `p < 6`, the last at `5 c < dst.len()`. It
    // writes only the listed registers and the flags (`QADD` may set Q), and does not use the
    // stack.
    unsafe {
        if r.high_word() {
            requant6!(d, o, c, m, al, ah, off, lv, sh; "asr {hi}, {hi}, {sh}");
        } else {
            requant6!(
                d, o, c, m, al, ah, off, lv;
                "lsr {lo}, {lo}, #31", "orr {hi}, {lo}, {hi}, lsl #1"
            );
        }
    }
    true
}

/// One spike count: accumulator `$at` (a byte offset) of `{d}` through the closed form's
/// terms in registers `$g` (gain), `$b` (base), `$dv` (divisor), `$top`; the count is stored
/// at `{o}`, which then moves on by `{c}`. [`fire6`] names its terms as operands, [`fire_rows`]
/// as `r2..r5`.
macro_rules! fire_one {
    ($at:literal, [$g:literal, $b:literal, $dv:literal, $top:literal]) => {
        concat!(
            "ldr {a}, [{d}, #",
            $at,
            "]\n",
            "mla {a}, {a}, ",
            $g,
            ", ",
            $b,
            "\n",
            "bic {a}, {a}, {a}, asr #31\n",
            "udiv {a}, {a}, ",
            $dv,
            "\n",
            "cmp {a}, ",
            $top,
            "\n",
            "it hi\n",
            "movhi {a}, ",
            $top,
            "\n",
            "strb {a}, [{o}]\n",
            "add {o}, {o}, {c}\n",
        )
    };
}

/// A full pass's six spike counts ([`fire_one`] at offsets 0..24), the terms in registers
/// `$regs`.
macro_rules! fire_pass {
    ($regs:tt) => {
        concat!(
            fire_one!("0", $regs),
            fire_one!("4", $regs),
            fire_one!("8", $regs),
            fire_one!("12", $regs),
            fire_one!("16", $regs),
            fire_one!("20", $regs),
        )
    };
}

/// One spiking channel's six outputs of a pass, `c` bytes apart from the start of `dst`: the
/// spike count of accumulator `acc[p]` in closed form (the same counts as [`Closed::count`]),
/// assembly with the terms in registers. `false`, having written nothing, when `dst` is
/// shorter than `5 c + 1` bytes.
#[inline(always)]
pub fn fire6(acc: &[i32; 6], closed: &Closed, dst: &mut [u8], c: usize) -> bool {
    if c > u32::MAX as usize / 8 || dst.len() <= 5 * c {
        return false;
    }
    let (g, b, dv, top) = closed.terms();
    let d = acc.as_ptr();
    let o = dst.as_mut_ptr();
    // SAFETY: checked above: the assembly reads the 24 bytes of `acc` (word-aligned) and
    // writes one byte at each of `o + p c` for `p < 6`, the last at `5 c < dst.len()`; the
    // divisor is not zero (`Closed` keeps it nonzero). It writes only the listed registers and
    // the flags, and does not use the stack.
    unsafe {
        asm!(
            fire_pass!(["{g}", "{b}", "{dv}", "{top}"]),
            d = in(reg) d,
            o = inout(reg) o => _,
            c = in(reg) c,
            g = in(reg) g,
            b = in(reg) b,
            dv = in(reg) dv,
            top = in(reg) top,
            a = out(reg) _,
            options(nostack),
        );
    }
    true
}

/// The preconditions [`store_rows`] and [`fire_rows`] share: at least one row (and a count a
/// register holds), `table` holding the rows' 16-byte entries from a word boundary (`LDM`), and
/// `dst` reaching the last row's last output, `5 c + rows - 1`.
#[inline(always)]
fn block_fits(rows: usize, table: &[u8], dst: &[u8], c: usize) -> bool {
    let last = c
        .checked_mul(5)
        .and_then(|x| x.checked_add(rows.checked_sub(1)?));
    rows > 0
        && rows <= u32::MAX as usize
        && c <= u32::MAX as usize / 8
        && table.len() >= rows.saturating_mul(16)
        && (table.as_ptr() as usize).is_multiple_of(4)
        && last.is_some_and(|l| l < dst.len())
}

/// The requantized outputs of consecutive channels over a full pass: row `r`'s six
/// accumulators `acc[r]` through the requantizer prepared at byte `16 r` of `table` (the layout
/// of [`Requantizer::encode`], without a left shift), with the layer's `offset` and `levels`,
/// stored `c` bytes apart from byte `r` of `dst`. Each row's shift kind is read from its entry.
/// `false`, having written nothing, when `acc` is empty, `table` is shorter than its entries or
/// not word-aligned (`LDM`), or `dst` shorter than the last row's last output.
///
/// The caller guarantees what memory safety does not need: no entry shifts left (their codes
/// would differ from [`Requantizer::apply`]).
#[inline]
pub fn store_rows(
    acc: &[[u32; 6]],
    table: &[u8],
    (offset, levels): (i32, u8),
    dst: &mut [u8],
    c: usize,
) -> bool {
    let rows = acc.len();
    if !block_fits(rows, table, dst, c) {
        return false;
    }
    let back = (6 * c - 1) as u32;
    let d = acc.as_ptr();
    let o = dst.as_mut_ptr();
    let t = table.as_ptr();
    let lv = levels as u32;
    // SAFETY: checked above: `rows >= 1`; row `r` reads its 24 bytes of `acc` (word-aligned)
    // and the 16 bytes at `16 r` of `table` (inside it, word-aligned for LDM), and writes one
    // byte at each of `r + p c` (`p < 6`) from `dst`'s start, the last at `5 c + rows - 1 <
    // dst.len()`. It writes only the listed registers, the flags (`QADD` may set Q) and a
    // 16-byte frame below `sp`, which it restores (8-byte aligned).
    unsafe {
        asm!(
            "sub sp, sp, #16",
            "str {a}, [sp]",
            "str {lo}, [sp, #4]",
            "str {hi}, [sp, #8]",
            "1:",
            "ldr {a}, [sp]",
            "ldm {a}!, {{r2, r3, r4, r5}}",
            "str {a}, [sp]",
            "tst r5, #0x100",
            "and r5, r5, #31",
            "beq 2f",
            requant_pass!(["r2", "r3", "r4"], "asr {hi}, {hi}, r5"),
            "b 3f",
            "2:",
            requant_pass!(
                ["r2", "r3", "r4"],
                "lsr {lo}, {lo}, #31",
                "orr {hi}, {lo}, {hi}, lsl #1"
            ),
            "3:",
            "add {d}, {d}, #24",
            "ldr {a}, [sp, #8]",
            "sub {o}, {o}, {a}",
            "ldr {a}, [sp, #4]",
            "subs {a}, {a}, #1",
            "str {a}, [sp, #4]",
            "bne 1b",
            "add sp, sp, #16",
            d = inout(reg) d => _,
            o = inout(reg) o => _,
            c = in(reg) c,
            off = in(reg) offset,
            lv = in(reg) lv,
            a = inout(reg) t => _,
            lo = inout(reg) rows as u32 => _,
            hi = inout(reg) back => _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
        );
    }
    true
}

/// The spike counts of consecutive channels over a full pass: row `r`'s six accumulators
/// `acc[r]` through the closed form at byte `16 r` of `table` (the layout of
/// [`Closed::encode`]), stored `c` bytes apart from byte `r` of `dst`. `false`, having written
/// nothing, when `acc` is empty, `table` is shorter than its entries or not word-aligned
/// (`LDM`), an entry's divisor is 0, or `dst` is shorter than the last row's last output.
#[inline]
pub fn fire_rows(acc: &[[u32; 6]], table: &[u8], dst: &mut [u8], c: usize) -> bool {
    let rows = acc.len();
    if !block_fits(rows, table, dst, c)
        || table
            .chunks_exact(16)
            .take(rows)
            .any(|e| e[8..12] == [0, 0, 0, 0])
    {
        return false;
    }
    let back = (6 * c - 1) as u32;
    let d = acc.as_ptr();
    let o = dst.as_mut_ptr();
    let t = table.as_ptr();
    // SAFETY: checked above: `rows >= 1`, no divisor is 0; row `r` reads its 24 bytes of `acc`
    // (word-aligned) and the 16 bytes at `16 r` of `table` (inside it, word-aligned for LDM),
    // and writes one byte at each of `r + p c` (`p < 6`) from `dst`'s start, the last at
    // `5 c + rows - 1 < dst.len()`. It writes only the listed registers, the flags and a
    // 16-byte frame below `sp`, which it restores (8-byte aligned).
    unsafe {
        asm!(
            "sub sp, sp, #16",
            "str {t}, [sp]",
            "str {n}, [sp, #4]",
            "str {back}, [sp, #8]",
            "1:",
            "ldr {t}, [sp]",
            "ldm {t}!, {{r2, r3, r4, r5}}",
            "str {t}, [sp]",
            fire_pass!(["r2", "r3", "r4", "r5"]),
            "add {d}, {d}, #24",
            "ldr {t}, [sp, #8]",
            "sub {o}, {o}, {t}",
            "ldr {t}, [sp, #4]",
            "subs {t}, {t}, #1",
            "str {t}, [sp, #4]",
            "bne 1b",
            "add sp, sp, #16",
            d = inout(reg) d => _,
            o = inout(reg) o => _,
            c = in(reg) c,
            t = inout(reg) t => _,
            n = in(reg) rows as u32,
            back = in(reg) back,
            a = out(reg) _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
        );
    }
    true
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

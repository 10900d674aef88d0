//! The packed depthwise kernel's assembly (see `super::super::packed_depthwise`):
//! [`DwTaps::plane`], every output row of one channel. The preconditions are listed in the parent
//! module's docs.

use core::arch::asm;

use bitspike_core::kernel::{DW_FIELD_BIAS, DW_FIELD_BITS};
use bitspike_core::quant::Requantizer;

/// The low word of the accumulator every window starts from (the fields at bits 0 and 13);
/// the third field's bias, at bit 38, is bit 6 of the high word.
const START_LO: u32 = (DW_FIELD_BIAS as u32) | (DW_FIELD_BIAS as u32) << DW_FIELD_BITS;
const START_HI: u32 = (DW_FIELD_BIAS as u32) >> (32 - 2 * DW_FIELD_BITS);

/// One tap of a window in `dw_plane!`: the tap at byte `$at` of the taps (`{t0}`), its word of
/// the plane (`{bp}` plus its offset) times its weight into the accumulator `r5:r4`.
macro_rules! tap {
    ($at:literal) => {
        concat!(
            "ldrd r2, r3, [{t0}, #",
            $at,
            "]\n",
            "ldr r2, [{bp}, r2]\n",
            "smlal r5, r4, r3, r2\n",
        )
    };
}

/// [`DwTaps::plane`]'s assembly around a window's taps `$taps` (a loop, or nine taps unrolled,
/// with their own operands `$ops`): per row, per triple, the accumulator from the fields' bias,
/// the taps, the three fields to the output (`STM`); a 16-byte frame below the stack pointer
/// holds the rows left, the skip to the next row's first window, the output's rewind and the
/// triples per row.
macro_rules! dw_plane {
    ($taps:expr; $bp:ident, $step:ident, $out:ident, $rows:ident, $skip:ident, $rewind:ident,
     $triples:ident; $($ops:tt)*) => {
        asm!(
            "sub sp, sp, #16",
            "strd r2, r3, [sp]",
            "strd r4, r5, [sp, #8]",
            "1:",
            "ldr {n}, [sp, #12]",
            "2:",
            "mov r5, {slo}",
            "mov r4, #{shi}",
            $taps,
            "ubfx r2, r5, #0, #13",
            "ubfx r3, r5, #13, #13",
            "lsls r4, r4, #6",
            "orr r4, r4, r5, lsr #26",
            "stm {out}!, {{r2, r3, r4}}",
            "add {bp}, {bp}, {step}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "ldrd r2, r3, [sp, #4]",
            "add {bp}, {bp}, r2",
            "sub {out}, {out}, r3",
            "ldr r2, [sp]",
            "subs r2, r2, #1",
            "str r2, [sp]",
            "bne 1b",
            "add sp, sp, #16",
            slo = in(reg) START_LO,
            shi = const START_HI,
            bp = inout(reg) $bp => _,
            step = in(reg) $step,
            out = inout(reg) $out => _,
            n = out(reg) _,
            inout("r2") $rows => _,
            inout("r3") $skip => _,
            inout("r4") $rewind => _,
            inout("r5") $triples => _,
            $($ops)*
        )
    };
}

/// The packed depthwise kernel's taps (per kernel position, the byte offset of its word from
/// the window's first word, and its weight), checked once: at least one, offsets multiples of 4
/// that do not decrease. The taps are private: only [`DwTaps::new`] makes one, and
/// [`DwTaps::set_weight`] changes weights only, so the first and last taps of any run bound
/// every tap between.
pub struct DwTaps<'a> {
    taps: &'a mut [[u32; 2]],
}

impl<'a> DwTaps<'a> {
    /// Check the taps; the taps back when there are none or an offset breaks the order.
    #[inline]
    pub fn new(taps: &'a mut [[u32; 2]]) -> Result<Self, &'a mut [[u32; 2]]> {
        let ok = !taps.is_empty()
            && taps.iter().all(|t| t[0].is_multiple_of(4))
            && taps.windows(2).all(|p| p[0][0] <= p[1][0]);
        if ok {
            Ok(Self { taps })
        } else {
            Err(taps)
        }
    }

    /// Set tap `i`'s weight (nothing for a tap that does not exist).
    #[inline(always)]
    pub fn set_weight(&mut self, i: usize, w: i32) {
        if let Some(t) = self.taps.get_mut(i) {
            t[1] = w as u32;
        }
    }

    /// The taps, as pairs of offset and weight.
    #[inline(always)]
    pub fn get(&self) -> &[[u32; 2]] {
        self.taps
    }

    /// The sums of one channel: for each of `rows` output rows `r` and `triples` triples `t`
    /// per row, the window whose first word is word `r skip + t step` of `plane`, summed over
    /// the taps from the fields' bias, its three fields to `sums` from sum `r ow + 3 t` on
    /// (`SMLAL` per tap, `UBFX` and a 64-bit shift per triple, `STM`; a row's frame of four
    /// words on the stack). `false`, having written nothing, when there is no row or no
    /// triple, the last window's last tap reads outside `plane`, or the last row's sums end
    /// past `sums`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn plane(
        &self,
        plane: &[u32],
        rows: usize,
        triples: usize,
        step: usize,
        skip: usize,
        ow: usize,
        sums: &mut [u32],
    ) -> bool {
        let Some(last) = self.taps.last() else {
            return false;
        };
        let reach = (rows.wrapping_sub(1))
            .checked_mul(skip)
            .zip(triples.wrapping_sub(1).checked_mul(step))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|a| a.checked_add((last[0] / 4) as usize));
        let end = (rows.wrapping_sub(1))
            .checked_mul(ow)
            .and_then(|a| a.checked_add(3 * triples));
        let bytes = |n: usize| n.checked_mul(4).filter(|&b| b <= i32::MAX as usize);
        let frame = (
            bytes(skip.wrapping_sub(triples * step)),
            bytes((3 * triples).wrapping_sub(ow)),
            bytes(step),
        );
        let (Some(row_skip), Some(rewind), Some(step4)) = frame else {
            return false;
        };
        if rows == 0
            || triples == 0
            || 3 * triples > ow + 2
            || triples * step > skip
            || reach.is_none_or(|r| r >= plane.len())
            || end.is_none_or(|e| e > sums.len())
        {
            return false;
        }
        let bp = plane.as_ptr() as *const u8;
        let tp = self.taps.as_ptr() as *const u32;
        let te = tp.wrapping_add(2 * self.taps.len());
        let out = sums.as_mut_ptr();
        // SAFETY: checked here and by `new`: at least one tap, row and triple; the taps'
        // offsets are multiples of 4 that do not decrease (`set_weight` changes no offset), and
        // the windows' first words, `r skip + t step`, grow with `r` and `t` (`triples step <=
        // skip`), so every word read lies between word 0 and the last row's last window's last
        // tap (`reach < plane.len()`): inside `plane`. Row `r` writes sums `r ow .. r ow + 3
        // triples` (the rewind at a row's end moves the output from `(r + 1) ow + 3 triples -
        // ow` back to `(r + 1) ow`), the last ending at `end <= sums.len()`, aligned (`STM`).
        // The taps are read as `2 * taps.len()` words (`LDRD`, word-aligned: `[u32; 2]`). The
        // frame's 16 bytes below the stack pointer are restored before the end; only the
        // listed registers and the flags change.
        unsafe {
            if self.taps.len() == 9 {
                dw_plane!(
                    concat!(tap!(0), tap!(8), tap!(16), tap!(24), tap!(32), tap!(40), tap!(48),
                        tap!(56), tap!(64));
                    bp, step4, out, rows, row_skip, rewind, triples;
                    t0 = in(reg) tp,
                );
            } else {
                dw_plane!(
                    concat!(
                        "mov {tp}, {t0}\n",
                        "3:\n",
                        "ldrd r2, r3, [{tp}], #8\n",
                        "ldr r2, [{bp}, r2]\n",
                        "smlal r5, r4, r3, r2\n",
                        "cmp {tp}, {te}\n",
                        "bne 3b\n",
                    );
                    bp, step4, out, rows, row_skip, rewind, triples;
                    t0 = in(reg) tp,
                    te = in(reg) te,
                    tp = out(reg) _,
                );
            }
        }
        true
    }
}

// The assembly's start is the portable model's.
const _: () = assert!(
    START_LO as u64 | (START_HI as u64) << 32 == super::super::packed_depthwise::START as u64
);

/// One channel's rows of the packed depthwise kernel's plane for a stride of 1 (see
/// `super::super::packed_depthwise::spread1`, the portable model): for each of `rows` rows
/// `r`, the `stride` words from word `at + r stride` of `plane`, rolled from 0 (each word the
/// previous one shifted down a field, with a code in the top field or none) over `runs[0]`
/// words without a code, `runs[1]` with the codes at `first + r line + m c_n` of `input`, and
/// `runs[2]` without. `false`, having written nothing, when there is no row, the runs do not
/// add up to `stride`, a row's words end past `plane` or the last code read lies past `input`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn spread1(
    input: &[u8],
    first: usize,
    line: usize,
    c_n: usize,
    rows: usize,
    plane: &mut [u32],
    at: usize,
    stride: usize,
    runs: [usize; 3],
) -> bool {
    let [nl, nm, nr] = runs;
    let fits = |n: usize| n <= i32::MAX as usize / 4;
    let words_end = rows.checked_mul(stride).and_then(|n| n.checked_add(at));
    let last_code = (rows.wrapping_sub(1))
        .checked_mul(line)
        .zip(nm.wrapping_sub(1).checked_mul(c_n))
        .and_then(|(a, b)| a.checked_add(b))
        .and_then(|a| a.checked_add(first));
    if rows == 0
        || nl.checked_add(nm).and_then(|n| n.checked_add(nr)) != Some(stride)
        || ![line, c_n, stride, rows, nl, nm, nr]
            .iter()
            .all(|&n| fits(n))
        || words_end.is_none_or(|e| e > plane.len())
        || (nm > 0 && last_code.is_none_or(|l| l >= input.len()))
    {
        return false;
    }
    let srow = input.as_ptr().wrapping_add(first);
    let drow = plane.as_mut_ptr().wrapping_add(at) as *mut u8;
    // SAFETY: checked above: at least one row; row `r` writes its `stride` words (`nl + nm + nr
    // == stride`) from word `at + r stride`, the last row's ending at `words_end <=
    // plane.len()` (word-aligned `STR`); it reads `nm` bytes at `first + r line + m c_n` (`m <
    // nm`), the last at `last_code < input.len()` when `nm > 0` (none otherwise). Every count
    // and stride fits an i32. The frame's 16 bytes below the stack pointer are restored before
    // the end; only the listed registers and the flags change.
    unsafe {
        asm!(
            "sub sp, sp, #16",
            "strd r2, r3, [sp]",
            "strd r4, r5, [sp, #8]",
            "1:",
            "movs r2, #0",
            "mov r3, {drow}",
            "ldr r4, [sp, #4]",
            "cmp r4, #0",
            "beq 3f",
            "2:",
            "str r2, [r3], #4",
            "lsrs r2, r2, #13",
            "subs r4, r4, #1",
            "bne 2b",
            "3:",
            "ldr r4, [sp, #8]",
            "cmp r4, #0",
            "beq 5f",
            "mov r5, {srow}",
            "4:",
            "ldrb {v}, [r5]",
            "add r5, r5, {cn}",
            "orr {v}, r2, {v}, lsl #26",
            "str {v}, [r3], #4",
            "lsr r2, {v}, #13",
            "subs r4, r4, #1",
            "bne 4b",
            "5:",
            "ldr r4, [sp, #12]",
            "cmp r4, #0",
            "beq 7f",
            "6:",
            "str r2, [r3], #4",
            "lsrs r2, r2, #13",
            "subs r4, r4, #1",
            "bne 6b",
            "7:",
            "add {srow}, {srow}, {line}",
            "add {drow}, {drow}, {l4}",
            "ldr r4, [sp]",
            "subs r4, r4, #1",
            "str r4, [sp]",
            "bne 1b",
            "add sp, sp, #16",
            v = out(reg) _,
            srow = inout(reg) srow => _,
            drow = inout(reg) drow => _,
            cn = in(reg) c_n,
            line = in(reg) line,
            l4 = in(reg) 4 * stride,
            inout("r2") rows => _,
            inout("r3") nl => _,
            inout("r4") nm => _,
            inout("r5") nr => _,
        );
    }
    true
}

/// [`store_strided`]'s loop: per sum, the prepared requantizer's multiply-accumulate, the shift
/// `$shift`, the offset and the clamp `$clamp` (its own operands `$ops`), one byte stored and the
/// output moved on by `{c}`.
macro_rules! strided {
    ($d:ident, $o:ident, $c:ident, $n:ident, $m:ident, $al:ident, $ah:ident, $off:ident;
     $shift:expr, $clamp:expr; $($ops:tt)*) => {
        asm!(
            "2:",
            "ldr {a}, [{d}], #4",
            "mov {lo}, {al}",
            "mov {hi}, {ah}",
            "smlal {lo}, {hi}, {a}, {m}",
            $shift,
            "qadd {hi}, {hi}, {off}",
            $clamp,
            "strb {hi}, [{o}]",
            "add {o}, {o}, {c}",
            "subs {n}, {n}, #1",
            "bne 2b",
            d = inout(reg) $d => _,
            o = inout(reg) $o => _,
            c = in(reg) $c,
            n = inout(reg) $n => _,
            m = in(reg) $m,
            al = in(reg) $al,
            ah = in(reg) $ah,
            off = in(reg) $off,
            a = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            $($ops)*
            options(nostack),
        )
    };
}

/// One output per sum through `r`, `c` bytes apart from `dst[0]` (the same codes as
/// [`Requantizer::apply_right`]): a loop of eleven instructions per output with the terms in
/// registers. `false`, having written nothing, when there is no sum, `r` shifts left, its
/// high-word shift comes with a top code other than 15 or 255 (one register too many), `c` is 0
/// or too large, or `dst` is shorter than the outputs.
#[inline(always)]
pub fn store_strided(sums: &[u32], r: &Requantizer, dst: &mut [u8], c: usize) -> bool {
    let n = sums.len();
    let lv = r.levels() as u32;
    let high = r.high_word();
    if n == 0
        || !r.right_shift()
        || (high && lv != 15 && lv != 255)
        || c == 0
        || c > u32::MAX as usize / 8
        || (n - 1).checked_mul(c).is_none_or(|last| last >= dst.len())
    {
        return false;
    }
    let (m, add, sh, off) = r.terms();
    let (al, ah) = (add as u32, (add >> 32) as u32);
    let d = sums.as_ptr();
    let o = dst.as_mut_ptr();
    // SAFETY: checked above: the loop runs `n >= 1` times, reads the `n` words of `sums`
    // (aligned) and writes one byte at `o + p c` for each `p < n`, the last at `(n - 1) c <
    // dst.len()`. It writes only the listed registers and the flags (`QADD` may set Q), and does
    // not use the stack.
    unsafe {
        match (high, lv) {
            (true, 15) => strided!(d, o, c, n, m, al, ah, off;
                "asr {hi}, {hi}, {sh}", "usat {hi}, #4, {hi}"; sh = in(reg) sh,),
            (true, _) => strided!(d, o, c, n, m, al, ah, off;
                "asr {hi}, {hi}, {sh}", "usat {hi}, #8, {hi}"; sh = in(reg) sh,),
            (false, _) => strided!(d, o, c, n, m, al, ah, off;
                concat!("lsr {lo}, {lo}, #31\n", "orr {hi}, {lo}, {hi}, lsl #1"),
                concat!("usat {hi}, #8, {hi}\n", "cmp {hi}, {lv}\n", "it hi\n",
                    "movhi {hi}, {lv}");
                lv = in(reg) lv,),
        }
    }
    true
}

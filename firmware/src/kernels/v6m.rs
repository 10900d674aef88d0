//! The runtime's Armv6-M assembly (Cortex-M0/M0+: Thumb-1, eight low registers for most
//! instructions, `MULS` 32x32->32): the pairs kernel's row loop, compiled only on `thumbv6m`
//! (`cfg(bitspike_v6m)`, set by `build.rs`). With every other operand spilled the compiler's
//! loop takes about twice the instructions; here the four field accumulators live in the high
//! registers `r8`-`r11` (which Thumb-1 can only add into) and the loop keeps its operands in
//! `r0`-`r5`.
//!
//! [`row8`] checks what its assembly relies on and returns `false`, having written nothing,
//! when a check fails (the caller then runs the portable loop). Tested bit-exact against the
//! portable loop and the reference kernels under QEMU (`cargo xtask conformance` on
//! `qemu-an386-v6m`).
#![allow(unsafe_code)]

use core::arch::asm;

use super::row_plan::{row_plan, RowPlan};

/// Flush accumulator `$acc` (a high register) into the sums at byte offsets `$lo` and `$hi`
/// from `r5`: its low 16-bit field read as `i16`, then `(acc - low) >> 16`.
macro_rules! flush {
    ($acc:literal, $lo:literal, $hi:literal) => {
        concat!(
            "mov r0, ",
            $acc,
            "\n",
            "sxth r2, r0\n",
            "subs r0, r0, r2\n",
            "asrs r0, r0, #16\n",
            "ldr r3, [r5, #",
            $lo,
            "]\n",
            "adds r3, r3, r2\n",
            "str r3, [r5, #",
            $lo,
            "]\n",
            "ldr r3, [r5, #",
            $hi,
            "]\n",
            "adds r3, r3, r0\n",
            "str r3, [r5, #",
            $hi,
            "]\n",
        )
    };
}

/// Four pixel words of one input times the weight in `r0`, into the accumulators `r8`-`r11`.
macro_rules! four {
    () => {
        concat!(
            "ldm r4!, {{r2, r3}}\n",
            "muls r2, r0, r2\n",
            "add r8, r2\n",
            "muls r3, r0, r3\n",
            "add r9, r3\n",
            "ldm r4!, {{r2, r3}}\n",
            "muls r2, r0, r2\n",
            "add r10, r2\n",
            "muls r3, r0, r3\n",
            "add r11, r3\n",
        )
    };
}

/// Field `$b` bits wide at bit `$s` of the weight byte at `r1`, sign-extended into `r0`.
macro_rules! field {
    ($b:literal, $s:literal) => {
        concat!(
            "ldrb r0, [r1]\n",
            "lsls r0, r0, #(32 - ",
            $b,
            " - ",
            $s,
            ")\n",
            "asrs r0, r0, #(32 - ",
            $b,
            ")\n",
        )
    };
}

/// The row loop around a body that consumes `$step` weight bytes (then `r1` advances past
/// them): chunks of `mem[8]` bytes until `r1` reaches `r0`'s value at entry, each followed by a
/// flush. The caller makes the row and the chunk whole multiples of `$step` bytes.
macro_rules! row_loop {
    ($step:literal, $wp:expr, $end:expr, $lanes:expr, $mem:expr; $($body:expr),* $(,)?) => {
        asm!(
            "mov lr, r0",
            "1:",
            "ldr r0, [r5, #32]",
            "adds r0, r1, r0",
            "mov r2, lr",
            "cmp r0, r2",
            "bls 3f",
            "mov r0, r2",
            "3:",
            "mov r12, r0",
            "movs r0, #0",
            "mov r8, r0",
            "mov r9, r0",
            "mov r10, r0",
            "mov r11, r0",
            "2:",
            $($body,)*
            concat!("adds r1, #", $step),
            "cmp r1, r12",
            "bne 2b",
            flush!("r8", "0", "4"),
            flush!("r9", "8", "12"),
            flush!("r10", "16", "20"),
            flush!("r11", "24", "28"),
            "mov r0, lr",
            "cmp r1, r0",
            "bne 1b",
            inout("r0") $end => _,
            inout("r1") $wp => _,
            out("r2") _,
            out("r3") _,
            inout("r4") $lanes => _,
            in("r5") $mem,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        )
    };
}

/// One output channel's row over a pass of the pairs kernel: `lanes` four words per input (the
/// pixel pairs' 16-bit fields), `weights` the row's weights of `bits` bits (8, 4 or 2; fields
/// from the low bits of each byte up); the eight field sums are added to `sums[0..8]` (pair
/// `j`'s low field at `2 j`, its high field at `2 j + 1`), the fields flushed every
/// `chunk_bytes` bytes of weights. `false`, having written nothing, when there are no weights,
/// `chunk_bytes` is 0, the width is another, or `lanes` holds fewer than four words per input.
///
/// Out of line: the pairs kernel calls it from two places (with and without threshold tables),
/// and with its four assembly loops inlined in both the kernel grows by 2 KB and, with fewer
/// registers free around it, runs slower.
#[inline(never)]
pub fn row8(
    lanes: &[u32],
    weights: &[u8],
    bits: u8,
    chunk_bytes: usize,
    sums: &mut [i32; 8],
) -> bool {
    let Some(RowPlan { mut mem, two }) = row_plan(lanes, weights, bits, chunk_bytes, sums) else {
        return false;
    };
    let n = weights.len();
    let (wp, end, xp, m) = (
        weights.as_ptr(),
        weights.as_ptr().wrapping_add(n),
        lanes.as_ptr(),
        mem.as_mut_ptr(),
    );
    // SAFETY: `row_plan` checked the row (its docs): `n >= 1` bytes of weights, four words of
    // lanes per input, and an interval `mem[8]` that is a whole number of passes of `step`
    // bytes (2 when `two`, else 1) and at most the row, which is itself a whole number of
    // passes. The loop runs until `r1` (the weight pointer) reaches `wp + n`; each chunk ends at
    // `min(r1 + mem[8], wp + n)`, so it ends exactly on its end pointer, reads at least one pass
    // and none past the end; per byte it reads `4 * per` words of `lanes` (LDM, word-aligned: a
    // `u32` slice). It reads and writes `mem` (36 bytes, word-aligned) through `r5`, changes
    // only the listed registers and the flags, and does not use the stack.
    unsafe {
        match bits {
            // Two bytes per pass of the loop when the row and the chunk allow.
            8 if two => row_loop!(
                2, wp, end, xp, m;
                "ldrb r0, [r1]", "sxtb r0, r0", four!(),
                "ldrb r0, [r1, #1]", "sxtb r0, r0", four!(),
            ),
            8 => row_loop!(1, wp, end, xp, m; "ldrb r0, [r1]", "sxtb r0, r0", four!()),
            4 => row_loop!(
                1, wp, end, xp, m;
                field!("4", "0"), four!(),
                field!("4", "4"), four!(),
            ),
            _ => row_loop!(
                1, wp, end, xp, m;
                field!("2", "0"), four!(),
                field!("2", "2"), four!(),
                field!("2", "4"), four!(),
                field!("2", "6"), four!(),
            ),
        }
    }
    for (s, m) in sums.iter_mut().zip(mem) {
        *s = m as i32;
    }
    true
}

/// The codes of the first `n` of a pass's accumulators `acc` (each its distance above the
/// channel's base) by the threshold table `t` ([`bitspike_core::quant::threshold_code`]'s
/// binary search, the table walked by a pointer), stored `stride` bytes apart from `dst[0]`.
/// `false`, having written nothing, when `n` is 0 or above 8, `stride` is 0, or `dst` is too
/// short.
#[inline]
pub fn codes8(t: &[u16; 16], acc: &[i32; 8], n: usize, dst: &mut [u8], stride: usize) -> bool {
    if n == 0 || n > 8 || stride == 0 || dst.len() <= (n - 1).saturating_mul(stride) {
        return false;
    }
    let (ap, end, tp, dp) = (
        acc.as_ptr(),
        acc.as_ptr().wrapping_add(n),
        t.as_ptr(),
        dst.as_mut_ptr(),
    );
    // SAFETY: checked above: `n` (1..=8) accumulators read from `acc` (LDM, word-aligned: an
    // `i32` array) until `r0` reaches `acc + n`; one byte written per accumulator at `dst + k *
    // stride` for `k < n`, inside `dst`. The table pointer `r1` starts at `t` and each step
    // adds at most the step's width after reading at most its half: the reads reach `t[7]`,
    // `t[11]`, `t[13]` and `t[14]` at most, inside the 16 halves (LDRH, 2-byte aligned: a
    // `u16` array). It changes only the listed registers and the flags, and does not use the
    // stack.
    unsafe {
        asm!(
            "mov r12, r1",
            "mov lr, r3",
            "2:",
            "ldm r0!, {{r4}}",
            "mov r1, r5",
            "ldrh r3, [r1, #14]",
            "cmp r4, r3",
            "blo 3f",
            "adds r1, #16",
            "3:",
            "ldrh r3, [r1, #6]",
            "cmp r4, r3",
            "blo 4f",
            "adds r1, #8",
            "4:",
            "ldrh r3, [r1, #2]",
            "cmp r4, r3",
            "blo 5f",
            "adds r1, #4",
            "5:",
            "ldrh r3, [r1]",
            "cmp r4, r3",
            "blo 6f",
            "adds r1, #2",
            "6:",
            "subs r1, r1, r5",
            "lsrs r1, r1, #1",
            "strb r1, [r2]",
            "add r2, r12",
            "cmp r0, lr",
            "bne 2b",
            inout("r0") ap => _,
            inout("r1") stride => _,
            inout("r2") dp => _,
            inout("r3") end => _,
            out("r4") _,
            in("r5") tp,
            out("r12") _,
            out("lr") _,
            options(nostack),
        )
    }
    true
}

//! The runtime's Armv7-M assembly without the DSP extension (Cortex-M3: Thumb-2, `MLA`
//! 32x32+32->32): the pairs kernel's row loop, compiled only on `thumbv7m`
//! (`cfg(bitspike_v7m)`, set by `build.rs`). The compiler's loop keeps two loop counters and, as
//! its surroundings change, unrolls and spills differently (its cost moved by 10 % between builds
//! of unrelated code); here the four field accumulators live in `r8`-`r11`, one `LDM` loads two
//! pixel words and one `MLA` adds each product, about 8 instructions per input and pass of
//! eight pixels.
//!
//! [`row8`] checks what its assembly relies on and returns `false`, having written nothing,
//! when a check fails (the caller then runs the portable loop). Tested bit-exact against the
//! portable loop and the reference kernels under QEMU (`cargo xtask conformance` on
//! `qemu-lm3s6965`).
#![allow(unsafe_code)]

use core::arch::asm;

use super::row_plan::{row_plan, RowPlan};

/// Flush accumulator `$acc` into the sums at byte offsets `$lo` and `$hi` from `r5`: its low
/// 16-bit field read as `i16`, then `(acc - low) >> 16`.
macro_rules! flush {
    ($acc:literal, $lo:literal, $hi:literal) => {
        concat!(
            "sxth r2, ",
            $acc,
            "\n",
            "sub r0, ",
            $acc,
            ", r2\n",
            "asr r0, r0, #16\n",
            "ldr r3, [r5, #",
            $lo,
            "]\n",
            "add r3, r3, r2\n",
            "str r3, [r5, #",
            $lo,
            "]\n",
            "ldr r3, [r5, #",
            $hi,
            "]\n",
            "add r3, r3, r0\n",
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
            "mla r8, r2, r0, r8\n",
            "mla r9, r3, r0, r9\n",
            "ldm r4!, {{r2, r3}}\n",
            "mla r10, r2, r0, r10\n",
            "mla r11, r3, r0, r11\n",
        )
    };
}

/// Field `$b` bits wide at bit `$s` of the weight byte at `r1`, sign-extended into `r0`.
macro_rules! field {
    ($b:literal, $s:literal) => {
        concat!("ldrb r0, [r1]\n", "sbfx r0, r0, #", $s, ", #", $b, "\n")
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
            "add r0, r1, r0",
            "cmp r0, lr",
            "it hi",
            "movhi r0, lr",
            "mov r12, r0",
            "mov r8, #0",
            "mov r9, #0",
            "mov r10, #0",
            "mov r11, #0",
            "2:",
            $($body,)*
            concat!("add r1, r1, #", $step),
            "cmp r1, r12",
            "bne 2b",
            flush!("r8", "0", "4"),
            flush!("r9", "8", "12"),
            flush!("r10", "16", "20"),
            flush!("r11", "24", "28"),
            "cmp r1, lr",
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
/// Out of line, like the Armv6-M loop: the pairs kernel calls it from two places.
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
                "ldrsb r0, [r1]", four!(),
                "ldrsb r0, [r1, #1]", four!(),
            ),
            8 => row_loop!(1, wp, end, xp, m; "ldrsb r0, [r1]", four!()),
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

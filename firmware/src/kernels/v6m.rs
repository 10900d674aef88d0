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

/// Flush accumulator `$acc` (a high register) into the sums at byte offsets `$lo` and `$hi`
/// from `r5`: its low 16-bit field read as `i16`, then `(acc - low) >> 16`.
macro_rules! flush {
    ($acc:literal, $lo:literal, $hi:literal) => {
        concat!(
            "mov r0, ", $acc, "\n",
            "sxth r2, r0\n",
            "subs r0, r0, r2\n",
            "asrs r0, r0, #16\n",
            "ldr r3, [r5, #", $lo, "]\n",
            "adds r3, r3, r2\n",
            "str r3, [r5, #", $lo, "]\n",
            "ldr r3, [r5, #", $hi, "]\n",
            "adds r3, r3, r0\n",
            "str r3, [r5, #", $hi, "]\n",
        )
    };
}

/// One output channel's row over a pass of the pairs kernel: `lanes` four words per input (the
/// pixel pairs' 16-bit fields), `weights` one signed byte per input; the eight field sums are
/// added to `sums[0..8]` (pair `j`'s low field at `2 j`, its high field at `2 j + 1`), the fields
/// flushed every `chunk` inputs. `false`, having written nothing, when there are no inputs,
/// `chunk` is 0, or `lanes` holds fewer than four words per weight.
#[inline]
pub fn row8(lanes: &[u32], weights: &[u8], chunk: usize, sums: &mut [i32; 8]) -> bool {
    let n = weights.len();
    if n == 0 || chunk == 0 || lanes.len() / 4 < n || chunk > u32::MAX as usize {
        return false;
    }
    // The sums, then the flush interval, where the assembly reads them through one pointer.
    let mut mem = [0u32; 9];
    for (m, s) in mem.iter_mut().zip(sums.iter()) {
        *m = *s as u32;
    }
    mem[8] = chunk as u32;
    let wp = weights.as_ptr();
    // SAFETY: checked above: `n >= 1` weights and at least `4 n` words of lanes. The loop runs
    // until `r1` (the weight pointer, one byte per input) reaches `wp + n`; each chunk ends at
    // `min(r1 + chunk, wp + n)` with `chunk >= 1`, so every chunk reads at least one weight and
    // none past the end; per weight it reads four words of `lanes` (LDM, word-aligned: a `u32`
    // slice). It reads and writes `mem` (36 bytes, word-aligned) through `r5`, changes only the
    // listed registers and the flags, and does not use the stack.
    unsafe {
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
            "ldrb r0, [r1]",
            "sxtb r0, r0",
            "adds r1, #1",
            "ldm r4!, {{r2, r3}}",
            "muls r2, r0, r2",
            "add r8, r2",
            "muls r3, r0, r3",
            "add r9, r3",
            "ldm r4!, {{r2, r3}}",
            "muls r2, r0, r2",
            "add r10, r2",
            "muls r3, r0, r3",
            "add r11, r3",
            "cmp r1, r12",
            "bne 2b",
            flush!("r8", "0", "4"),
            flush!("r9", "8", "12"),
            flush!("r10", "16", "20"),
            flush!("r11", "24", "28"),
            "mov r0, lr",
            "cmp r1, r0",
            "bne 1b",
            inout("r0") wp.wrapping_add(n) => _,
            inout("r1") wp => _,
            out("r2") _,
            out("r3") _,
            inout("r4") lanes.as_ptr() => _,
            in("r5") mem.as_mut_ptr(),
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
    }
    for (s, m) in sums.iter_mut().zip(mem) {
        *s = m as i32;
    }
    true
}

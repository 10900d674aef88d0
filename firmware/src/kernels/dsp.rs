//! The gather kernel's micro-kernels in Armv7E-M assembly (`SXTB16`, `SMLAD`): the only
//! `unsafe` code of the runtime.
//!
//! Each micro-kernel reads `blocks` lane blocks of four pixels (see [`super::gather`]) and one
//! 32-bit word of packed weights per block, and returns the four pixels' sums. The safe wrapper
//! [`micro4`] checks every precondition the assembly relies on before it runs:
//!
//! * `blocks >= 1` (the loop runs at least once);
//! * `lanes` holds at least `blocks * block / 2 * 16` bytes and starts on a 4-byte boundary
//!   (`LDRD` needs word alignment on Armv7-M);
//! * `weights` holds at least `4 * blocks` bytes (read with `LDR`, which Armv7-M allows
//!   unaligned);
//! * the width is 8, 4 or 2 bits (other widths are unpacked to 8 bits by the caller).
//!
//! The assembly only reads those ranges, writes only its own registers, and does not touch the
//! stack. Tested bit-exact against [`super::gather::lanes`] (the portable model) and the
//! reference kernels under QEMU on the Cortex-M4 (`cargo xtask conformance`).
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

/// Four pixels' sums over `blocks` blocks of `bits`-bit weights (8, 4 or 2), or `None` when a
/// precondition fails (the caller then runs the portable model).
#[inline]
pub fn micro4(bits: u8, lanes: &[u8], weights: &[u8], blocks: usize) -> Option<[i32; 4]> {
    let lane_bytes = blocks.checked_mul(block(bits) / 2 * 16)?;
    if blocks == 0
        || !matches!(bits, 8 | 4 | 2)
        || lanes.len() < lane_bytes
        || weights.len() < blocks.checked_mul(4)?
        || !(lanes.as_ptr() as usize).is_multiple_of(4)
    {
        return None;
    }
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let xp = lanes.as_ptr();
    let wp = weights.as_ptr();
    // SAFETY: checked above: `blocks >= 1`; the loop reads `4 * blocks` bytes from `wp` (in
    // `weights`) and `lane_bytes` bytes from `xp` (in `lanes`, word-aligned for LDRD). The
    // assembly writes only the listed registers and the flags, and does not use the stack.
    unsafe {
        match bits {
            8 => asm!(
                "2:",
                "ldr {w}, [{wp}], #4",
                "sxtb16 {wa}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                pairs4!("{wa}"),
                pairs4!("{w}"),
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) wp => _,
                xp = inout(reg) xp => _,
                n = inout(reg) blocks => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                w = out(reg) _,
                wa = out(reg) _,
                xa = out(reg) _,
                xb = out(reg) _,
                options(nostack, readonly),
            ),
            4 => asm!(
                "2:",
                "ldr {w}, [{wp}], #4",
                "eor {w}, {w}, #0x88888888",
                nib!(0),
                pairs4!("{wa}"),
                nib!(4),
                pairs4!("{wa}"),
                nib!(8),
                pairs4!("{wa}"),
                nib!(12),
                pairs4!("{wa}"),
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) wp => _,
                xp = inout(reg) xp => _,
                n = inout(reg) blocks => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                w = out(reg) _,
                wa = out(reg) _,
                xa = out(reg) _,
                xb = out(reg) _,
                options(nostack, readonly),
            ),
            _ => asm!(
                "2:",
                "ldr {w}, [{wp}], #4",
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
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) wp => _,
                xp = inout(reg) xp => _,
                n = inout(reg) blocks => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                w = out(reg) _,
                wa = out(reg) _,
                xa = out(reg) _,
                xb = out(reg) _,
                options(nostack, readonly),
            ),
        }
    }
    Some([a0, a1, a2, a3])
}

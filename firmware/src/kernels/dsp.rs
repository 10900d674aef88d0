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
//! * [`Packed::rows`], the packed kernel's micro-kernels (see `super::packed`; assembly in
//!   `dsp/packed.rs`): the rows of consecutive output channels, each two words of three
//!   pixels' 14-bit fields per input against a row of 4- or 2-bit weights, one `UMLAL` per
//!   word and weight, fields flushed every `chunk` words inside the loop, six sums per row
//!   written out. [`Packed::new`] checks the pass's words once, `rows` the weights and the
//!   output at each call:
//!   * at least one word of weights per row, at least one row, and `1 <= chunk`;
//!   * the words hold at least `8 * per_word * total` bytes and start on a 4-byte boundary
//!     (`LDM`);
//!   * `weights` holds the last row's `4 * total` bytes from its start, `(rows - 1) * stride`;
//!   * the width is 4 or 2 bits;
//! * [`store_rows`] and [`fire_rows`] (`dsp/packed.rs`): a block of channels' outputs over a
//!   full pass of the packed kernel, each row's prepared requantizer or closed form read from
//!   the table (`LDM`), six outputs per row; [`store6`] and [`fire6`]: one channel's six, the
//!   terms in registers. The wrappers check the table's length and alignment, the output's
//!   length, and that no divisor is 0; `store6` checks the right shift, `store_rows` leaves it
//!   to its caller (a left shift gives wrong codes, not a memory error);
//! * [`interleave3`]: three pixels' codes into the packed kernel's pixel words, with their
//!   sums (`dsp/packed.rs`);
//! * [`spread`]: a pixel's codes into its slot of the lanes, with their sum;
//! * [`Windows::row4`] (`dsp/windows.rs`): the narrow kernel's sums over the windows of lane
//!   pairs of one output row, four at a time (see `super::narrow`); [`Windows::new`] checks the
//!   words (8 or 16) and the alignment of the rows and weights once per layer, `row4` the
//!   offsets and that the row's last window and the weights lie inside their slices;
//! * [`max_bytes`]: the byte-wise maximum of two rows (max pooling);
//! * [`dot_u8_i8`]: a dot product of codes and 8-bit weights (dense rows);
//! * [`dot_pairs`]: a row of 4- or 2-bit weights against the packed dense kernel's code pairs
//!   (see `super::packed_dense`), one `SMLADX` per two products; the wrapper checks that the
//!   row is whole words, that the pairs cover it and start on a word (`LDRD`), and the width;
//! * [`DwTaps::plane`] (`dsp/depthwise.rs`): every output row of one channel of the packed
//!   depthwise kernel (see `super::packed_depthwise`), a window's taps (offset and weight,
//!   `LDRD`) per triple of pixels, one `SMLAL` per tap. [`DwTaps::new`] checks once that there
//!   is a tap and that the offsets are word multiples in order (only weights change after),
//!   `plane` that there is a row and a triple, that the windows advance, that the last row's
//!   last window's last tap lies inside the plane (so every tap before does) and that the last
//!   row's sums fit; [`spread1`]: one channel's rows of that kernel's plane at stride 1, each
//!   word rolled from the previous one with a code in its top field; the wrapper checks that
//!   the runs add up to a row, that the last row ends inside the plane and that the last code
//!   read lies inside the input; [`store_strided`]: a channel's outputs from its sums, one
//!   requantized byte per sum a stride apart (the wrapper checks the right shift, the top code
//!   where the high-word shift leaves no register for it, and the output's length);
//! * [`Taps::run`]: the depthwise kernel's four channels over a window's kernel positions
//!   (offsets checked once by [`Taps::new`], the window's and weights' lengths at each call).
//!
//! Each safe wrapper checks the lengths, alignment and widths its assembly relies on and returns
//! `None` or `false` (having written nothing) when one fails; the caller then runs the portable code. The
//! assembly reads and writes only the ranges checked, changes only the registers it lists, and
//! does not touch the stack (except [`Packed::rows`], [`DwTaps::plane`] and [`spread1`], which keep
//! their frames of 48, 16 and 16 bytes below the stack pointer and restore it). Tested bit-exact against the portable code and the reference
//! kernels under QEMU on the Cortex-M4 (`cargo xtask conformance`, `cargo xtask bench`).
#![allow(unsafe_code)]

use core::arch::asm;

use bitspike_core::kernel::block;

mod depthwise;
mod packed;
mod windows;

pub use depthwise::{spread1, store_strided, DwTaps};
pub use packed::{fire6, fire_rows, interleave3, store6, store_rows, Packed};
pub use windows::Windows;

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

/// `sum u_i x_i` over a row of `bits`-bit weights `row` (whole words, each weight read as
/// `u_i = w_i + 2^(bits-1)`: the sign bit of every field inverted by one `EOR`) and the packed
/// dense kernel's pairs `lanes` (`x_(j+h) | x_j << 16`, `h = 16 / bits` words per weight word):
/// `(u >> bits j) & M` is `u_j | u_(j+h) << 16`, and `SMLADX` adds `x_(j+h) u_(j+h) + x_j u_j`.
/// Lanes and fields are non-negative 16-bit values (codes up to 255, fields up to 15), so every
/// product is exact and the 32-bit sum wraps like the reference's. `None` when the row is not
/// whole words, the lanes are short or not on a word (`LDRD`), or the width is not 4 or 2.
#[inline]
pub fn dot_pairs(row: &[u8], lanes: &[u32], bits: u8) -> Option<i32> {
    let words = row.len() / 4;
    let h = match bits {
        4 => 4,
        2 => 8,
        _ => return None,
    };
    if !row.len().is_multiple_of(4)
        || lanes.len() < words.checked_mul(h)?
        || !(lanes.as_ptr() as usize).is_multiple_of(4)
    {
        return None;
    }
    let mut acc = 0i32;
    if words == 0 {
        return Some(acc);
    }
    let wp = row.as_ptr();
    let xp = lanes.as_ptr();
    // SAFETY: `words >= 1`; the loop reads `4 * words` bytes of `row` with LDR (unaligned allowed
    // on Armv7-M) and `4 * h * words` bytes of `lanes` with word-aligned LDRD, all checked above.
    // Only the listed registers and the flags change; the stack is not used.
    unsafe {
        if bits == 4 {
            asm!(
                "2:",
                "ldr {u}, [{wp}], #4",
                "eor {u}, {u}, #0x88888888",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "and {t}, {u}, #0x000F000F",
                "smladx {acc}, {x0}, {t}, {acc}",
                "and {t}, {m}, {u}, lsr #4",
                "smladx {acc}, {x1}, {t}, {acc}",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "and {t}, {m}, {u}, lsr #8",
                "smladx {acc}, {x0}, {t}, {acc}",
                "and {t}, {m}, {u}, lsr #12",
                "smladx {acc}, {x1}, {t}, {acc}",
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) wp => _,
                xp = inout(reg) xp => _,
                n = inout(reg) words => _,
                acc = inout(reg) acc,
                m = in(reg) 0x000F_000Fu32,
                u = out(reg) _,
                t = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                options(nostack, readonly),
            );
        } else {
            asm!(
                "2:",
                "ldr {u}, [{wp}], #4",
                "eor {u}, {u}, #0xAAAAAAAA",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "and {t}, {u}, #0x00030003",
                "smladx {acc}, {x0}, {t}, {acc}",
                "and {t}, {m}, {u}, lsr #2",
                "smladx {acc}, {x1}, {t}, {acc}",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "and {t}, {m}, {u}, lsr #4",
                "smladx {acc}, {x0}, {t}, {acc}",
                "and {t}, {m}, {u}, lsr #6",
                "smladx {acc}, {x1}, {t}, {acc}",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "and {t}, {m}, {u}, lsr #8",
                "smladx {acc}, {x0}, {t}, {acc}",
                "and {t}, {m}, {u}, lsr #10",
                "smladx {acc}, {x1}, {t}, {acc}",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "and {t}, {m}, {u}, lsr #12",
                "smladx {acc}, {x0}, {t}, {acc}",
                "and {t}, {m}, {u}, lsr #14",
                "smladx {acc}, {x1}, {t}, {acc}",
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) wp => _,
                xp = inout(reg) xp => _,
                n = inout(reg) words => _,
                acc = inout(reg) acc,
                m = in(reg) 0x0003_0003u32,
                u = out(reg) _,
                t = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                options(nostack, readonly),
            );
        }
    }
    Some(acc)
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

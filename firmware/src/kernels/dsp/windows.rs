//! The narrow kernel's assembly (see `super::super::narrow`): [`Windows::row4`], the sums of
//! an output row's windows of lane pairs, four at a time. The preconditions are listed in the
//! parent module's docs.

use core::arch::asm;

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

//! Byte scratch seen as 32-bit words: the one `unsafe` line outside `kernels::dsp`.
//!
//! Cores without unaligned word access (Armv6-M: Cortex-M0/M0+) load a `u32` built from bytes
//! one byte at a time; the pairs kernel's lanes are words it loads and stores by the thousand,
//! so it keeps them in a word slice of its (byte) scratch.
#![allow(unsafe_code)]

/// The word-aligned middle of `b` as words, and how many bytes of `b` precede it.
#[inline]
pub fn words_mut(b: &mut [u8]) -> (usize, &mut [u32]) {
    // SAFETY: every bit pattern of four bytes is a valid `u32`, and `align_to_mut` returns a
    // middle part that is correctly aligned for `u32` and lies inside `b`, borrowed from it.
    let (head, mid, _) = unsafe { b.align_to_mut::<u32>() };
    (head.len(), mid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_middle_is_aligned_and_inside() {
        let mut buf = [0u8; 23];
        for off in 0..4 {
            let b = &mut buf[off..];
            let n = b.len();
            let start = b.as_ptr() as usize;
            let (head, w) = words_mut(b);
            assert!(head < 4);
            assert_eq!((start + head) % 4, 0);
            assert!(head + 4 * w.len() <= n && n - head - 4 * w.len() < 4);
            w.fill(0x0102_0304);
        }
    }
}

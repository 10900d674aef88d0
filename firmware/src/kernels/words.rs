//! Byte scratch seen as 32-bit words or 16-bit halves: the only `unsafe` lines outside the
//! assembly modules (`kernels::dsp`, `kernels::v6m`, `kernels::v7m`).
//!
//! Cores without unaligned word access (Armv6-M: Cortex-M0/M0+) load a `u32` built from bytes
//! one byte at a time; the pairs kernel's lanes are words it loads and stores by the thousand,
//! so it keeps them in a word slice of its (byte) scratch, and its threshold tables in a slice
//! of halves; the packed dense kernel reads a row's weights as words where the row starts on
//! one.
#![allow(unsafe_code)]

/// The word-aligned middle of `b` as words, and how many bytes of `b` precede it.
#[inline]
pub fn words_mut(b: &mut [u8]) -> (usize, &mut [u32]) {
    // SAFETY: every bit pattern of four bytes is a valid `u32`, and `align_to_mut` returns a
    // middle part that is correctly aligned for `u32` and lies inside `b`, borrowed from it.
    let (head, mid, _) = unsafe { b.align_to_mut::<u32>() };
    (head.len(), mid)
}

/// The word-aligned middle of `b` as words, and how many bytes of `b` precede it.
#[cfg(any(bitspike_v6m, test))]
#[inline]
pub fn words(b: &[u8]) -> (usize, &[u32]) {
    // SAFETY: every bit pattern of four bytes is a valid `u32`, and `align_to` returns a middle
    // part that is correctly aligned for `u32` and lies inside `b`, borrowed from it.
    let (head, mid, _) = unsafe { b.align_to::<u32>() };
    (head.len(), mid)
}

/// The 2-byte-aligned middle of `b` as halves, and how many bytes of `b` precede it.
#[inline]
pub fn halves_mut(b: &mut [u8]) -> (usize, &mut [u16]) {
    // SAFETY: every bit pattern of two bytes is a valid `u16`, and `align_to_mut` returns a
    // middle part that is correctly aligned for `u16` and lies inside `b`, borrowed from it.
    let (head, mid, _) = unsafe { b.align_to_mut::<u16>() };
    (head.len(), mid)
}

/// The `len` bytes of `scratch` from its first 4-byte boundary on, where every kernel's scratch
/// layout starts (the model file gives 3 bytes more for it); `None` when the scratch is shorter.
#[inline]
pub fn aligned(scratch: &mut [u8], len: usize) -> Option<&mut [u8]> {
    let align = (4 - scratch.as_ptr() as usize % 4) % 4;
    scratch.get_mut(align..align.checked_add(len)?)
}

/// Little-endian word at byte `at` of `b` (0 past the end).
#[inline(always)]
pub fn word(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[x0, x1, x2, x3]) => u32::from_le_bytes([x0, x1, x2, x3]),
        _ => 0,
    }
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

    #[test]
    fn the_shared_middle_is_aligned_and_inside() {
        let buf = [7u8; 23];
        for off in 0..4 {
            let b = &buf[off..];
            let (n, start) = (b.len(), b.as_ptr() as usize);
            let (head, w) = words(b);
            assert!(head < 4);
            assert_eq!((start + head) % 4, 0);
            assert!(head + 4 * w.len() <= n && n - head - 4 * w.len() < 4);
            assert!(w.iter().all(|&x| x == 0x0707_0707));
        }
    }

    #[test]
    fn the_halves_are_aligned_and_inside() {
        let mut buf = [0u8; 11];
        for off in 0..2 {
            let b = &mut buf[off..];
            let n = b.len();
            let start = b.as_ptr() as usize;
            let (head, h) = halves_mut(b);
            assert!(head < 2);
            assert_eq!((start + head) % 2, 0);
            assert!(head + 2 * h.len() <= n && n - head - 2 * h.len() < 2);
            h.fill(0x0102);
        }
    }

    #[test]
    fn aligned_scratch_starts_on_a_word() {
        let mut buf = [0u8; 20];
        for off in 0..4 {
            let b = &mut buf[off..];
            let a = aligned(b, 12).map(|a| (a.as_ptr() as usize % 4, a.len()));
            assert_eq!(a, Some((0, 12)), "room for 12 bytes after aligning");
        }
        assert!(aligned(&mut buf[1..], 17).is_none());
        assert!(aligned(&mut buf[..], usize::MAX).is_none());
    }
}

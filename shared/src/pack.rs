//! Bit packing of signed weights at 2..=8 bits.
//!
//! A weight tensor of `n` values at `b` bits is stored as a little-endian bit stream of
//! `ceil(n * b / 8)` bytes: value `i` occupies stream bits `i*b .. i*b + b`, least significant bit
//! first, and stream bit `k` is bit `k % 8` (LSB = bit 0) of byte `k / 8`. Each value is a `b`-bit
//! two's complement integer, so it lies in `-2^(b-1) ..= 2^(b-1) - 1` (the trainer's symmetric
//! quantizers use `-(2^(b-1) - 1) ..= 2^(b-1) - 1`). Unused high bits of the last byte are zero.
//!
//! ```text
//! b = 3, v0 = 1 (001), v1 = -1 (111), v2 = 2 (010):
//!
//!   stream bit   15 .. 9   8     7     6   |  5    4    3   |  2    1    0
//!   holds        zero      v2.2  v2.1  v2.0|  v1.2 v1.1 v1.0|  v0.2 v0.1 v0.0
//!   bytes        byte 1 = 0b0000_0000      byte 0 = 0b10_111_001
//! ```

/// The smallest weight bit width the format supports.
pub const MIN_BITS: u8 = 2;
/// The largest weight bit width the format supports.
pub const MAX_BITS: u8 = 8;

/// Why a packing request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackError {
    /// The bit width is outside `2..=8`.
    Bits(u8),
    /// Value at this index does not fit in the bit width.
    Range(usize),
    /// The output buffer is shorter than [`packed_len`].
    Short,
}

/// Whether `bits` is a supported weight bit width (2..=8).
#[inline]
pub const fn valid_bits(bits: u8) -> bool {
    bits >= MIN_BITS && bits <= MAX_BITS
}

/// Number of bytes `n` values take at `bits` bits: `ceil(n * bits / 8)`, or `None` on overflow.
#[inline]
pub const fn packed_len(n: usize, bits: u8) -> Option<usize> {
    match n.checked_mul(bits as usize) {
        Some(total) => Some(total.div_ceil(8)),
        None => None,
    }
}

/// The inclusive range of a `bits`-bit two's complement value.
#[inline]
pub const fn value_range(bits: u8) -> (i8, i8) {
    let half = 1i16 << (bits - 1);
    ((-half) as i8, (half - 1) as i8)
}

/// Pack `values` at `bits` bits into the front of `out` (see the module docs for the layout).
/// Bytes of `out` past [`packed_len`] are left untouched.
pub fn pack(values: &[i8], bits: u8, out: &mut [u8]) -> Result<(), PackError> {
    if !valid_bits(bits) {
        return Err(PackError::Bits(bits));
    }
    let len = packed_len(values.len(), bits).ok_or(PackError::Short)?;
    let out = out.get_mut(..len).ok_or(PackError::Short)?;
    let (lo, hi) = value_range(bits);
    out.fill(0);
    let mask = (1u16 << bits) - 1;
    for (i, &v) in values.iter().enumerate() {
        if v < lo || v > hi {
            return Err(PackError::Range(i));
        }
        let field = (v as u8 as u16) & mask;
        let bit = i * bits as usize;
        let byte = bit / 8;
        let shifted = field << (bit % 8);
        out[byte] |= shifted as u8;
        if shifted > 0xff {
            out[byte + 1] |= (shifted >> 8) as u8;
        }
    }
    Ok(())
}

/// Read value `index` of a packed stream at `bits` bits, sign-extended.
///
/// Total: an index past the end of `data` reads missing bytes as zero, and an invalid bit width
/// is treated as 8. Validated models never do either; the kernels rely on the loader's checks.
#[inline]
pub fn unpack_one(data: &[u8], bits: u8, index: usize) -> i8 {
    let bits = if valid_bits(bits) { bits } else { 8 };
    let bit = index.wrapping_mul(bits as usize);
    let byte = bit / 8;
    let lo = data.get(byte).copied().unwrap_or(0) as u16;
    let hi = data.get(byte.wrapping_add(1)).copied().unwrap_or(0) as u16;
    let word = (lo | (hi << 8)) >> (bit % 8);
    let field = (word & ((1u16 << bits) - 1)) as u8;
    // Sign-extend from `bits` bits.
    let shift = 8 - bits as u32;
    ((field << shift) as i8) >> shift
}

/// Unpack the first `out.len()` values of a packed stream at `bits` bits.
pub fn unpack(data: &[u8], bits: u8, out: &mut [i8]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = unpack_one(data, bits, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_bit_layout_is_lsb_first() {
        // v0 = 1 (001), v1 = -1 (111), v2 = 2 (010): stream 001 111 010 -> bits 0..9
        // byte0 = v0 | v1 << 3 | (v2 & 0b11) << 6 = 0b10_111_001, byte1 = v2 >> 2 = 0.
        let mut out = [0u8; 2];
        pack(&[1, -1, 2], 3, &mut out).unwrap();
        assert_eq!(out, [0b1011_1001, 0]);
        assert_eq!(unpack_one(&out, 3, 0), 1);
        assert_eq!(unpack_one(&out, 3, 1), -1);
        assert_eq!(unpack_one(&out, 3, 2), 2);
    }

    #[test]
    fn refuses_bad_requests() {
        let mut out = [0u8; 4];
        assert_eq!(pack(&[0], 1, &mut out), Err(PackError::Bits(1)));
        assert_eq!(pack(&[0], 9, &mut out), Err(PackError::Bits(9)));
        assert_eq!(pack(&[2], 2, &mut out), Err(PackError::Range(0)));
        assert_eq!(pack(&[0; 9], 4, &mut out), Err(PackError::Short));
        assert_eq!(value_range(2), (-2, 1));
        assert_eq!(value_range(8), (-128, 127));
    }
}

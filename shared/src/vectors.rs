//! Golden vector files: input codes and the outputs the host executor produced for them.
//!
//! Board apps embed one beside a model and compare what the device computes with what the host
//! computed, bit for bit (docs/design.md, the golden rule). Read in place (`no_std`, zero-copy);
//! written by [`write()`] behind `std`. All integers little-endian.
//!
//! ```text
//! offset  size               field
//!      0     8               magic "BSVECTOR"
//!      8     2               version (u16) = 1
//!     10     2               reserved, 0
//!     12     4               vector count n (u32)
//!     16     4               input length i (u32, codes per vector)
//!     20     4               output length o (u32, i32 elements per vector)
//!     24     n*i             inputs, one u8 code per element, vector after vector
//!      .     n*o*4           expected outputs, i32 each
//!      .     4               CRC-32 (IEEE) of every byte before it
//! ```

use crate::format::crc32;

/// The first eight bytes of a stream file.
pub const STREAM_MAGIC: [u8; 8] = *b"BSSTREAM";
/// Length of a stream file's header.
pub const STREAM_HEADER_LEN: usize = 24;

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"BSVECTOR";
/// The version this crate reads and writes.
pub const VERSION: u16 = 1;
const HEADER: usize = 24;

/// Why a vector file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum VectorError {
    /// Not a vector file.
    BadMagic,
    /// An unsupported version.
    Version(u16),
    /// The sizes in the header do not match the file's length.
    Length,
    /// The CRC does not match.
    Crc,
}

impl core::fmt::Display for VectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic => f.write_str("not a bitspike vector file (magic is not BSVECTOR)"),
            Self::Version(v) => write!(f, "vector file version {v} is not supported (reads 1)"),
            Self::Length => f.write_str("vector file length does not match its header"),
            Self::Crc => f.write_str("vector file CRC mismatch: the file is corrupt"),
        }
    }
}

impl core::error::Error for VectorError {}

/// The header of a stream file: labelled golden vectors laid out record by record, for a board
/// to read in one sequential pass (through semihosting, say) when they do not fit its flash.
///
/// ```text
/// offset  size                 field
///      0     8                 magic "BSSTREAM"
///      8     2                 version (u16) = 1
///     10     2                 reserved, 0
///     12     4                 record count n (u32)
///     16     4                 input length i (u32)
///     20     4                 output length o (u32)
///     24     n * (i + 4o + 1)  records: i input codes, o expected i32 outputs, one label byte
///      .     4                 CRC-32 of every byte before it
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamHeader {
    /// Records.
    pub count: usize,
    /// Codes per input.
    pub input_len: usize,
    /// Elements per output.
    pub output_len: usize,
}

impl StreamHeader {
    /// Parse the first [`STREAM_HEADER_LEN`] bytes of a stream file.
    pub fn parse(bytes: &[u8]) -> Result<Self, VectorError> {
        if bytes.len() < STREAM_HEADER_LEN {
            return Err(VectorError::Length);
        }
        if bytes[..8] != STREAM_MAGIC {
            return Err(VectorError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION || bytes[10] != 0 || bytes[11] != 0 {
            return Err(VectorError::Version(version));
        }
        let h = Self {
            count: u32_at(bytes, 12),
            input_len: u32_at(bytes, 16),
            output_len: u32_at(bytes, 20),
        };
        h.record_len().ok_or(VectorError::Length)?;
        Ok(h)
    }

    /// Bytes of one record, or `None` if it overflows.
    pub fn record_len(&self) -> Option<usize> {
        self.output_len
            .checked_mul(4)?
            .checked_add(self.input_len)?
            .checked_add(1)
    }
}

/// Serialize labelled vectors as a stream file (see [`StreamHeader`]). `None` when lengths differ.
#[cfg(feature = "std")]
pub fn write_stream(inputs: &[Vec<u8>], outputs: &[Vec<i32>], labels: &[u8]) -> Option<Vec<u8>> {
    let input_len = inputs.first().map_or(0, Vec::len);
    let output_len = outputs.first().map_or(0, Vec::len);
    if inputs.len() != outputs.len()
        || inputs.len() != labels.len()
        || inputs.iter().any(|v| v.len() != input_len)
        || outputs.iter().any(|v| v.len() != output_len)
    {
        return None;
    }
    let mut b = Vec::new();
    b.extend_from_slice(&STREAM_MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    for n in [inputs.len(), input_len, output_len] {
        b.extend_from_slice(&u32::try_from(n).ok()?.to_le_bytes());
    }
    for ((i, o), l) in inputs.iter().zip(outputs).zip(labels) {
        b.extend_from_slice(i);
        for v in o {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(*l);
    }
    let crc = crc32(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    Some(b)
}

/// A validated vector file, borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Vectors<'a> {
    count: usize,
    input_len: usize,
    output_len: usize,
    inputs: &'a [u8],
    outputs: &'a [u8],
}

fn u32_at(b: &[u8], o: usize) -> usize {
    match b.get(o..o + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize,
        None => 0,
    }
}

impl<'a> Vectors<'a> {
    /// Parse and validate a vector file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, VectorError> {
        if bytes.len() < HEADER + 4 {
            return Err(VectorError::Length);
        }
        if bytes[..8] != MAGIC {
            return Err(VectorError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION || bytes[10] != 0 || bytes[11] != 0 {
            return Err(VectorError::Version(version));
        }
        let (count, input_len, output_len) =
            (u32_at(bytes, 12), u32_at(bytes, 16), u32_at(bytes, 20));
        let ins = count.checked_mul(input_len).ok_or(VectorError::Length)?;
        let outs = count
            .checked_mul(output_len)
            .and_then(|n| n.checked_mul(4))
            .ok_or(VectorError::Length)?;
        let total = HEADER
            .checked_add(ins)
            .and_then(|n| n.checked_add(outs))
            .and_then(|n| n.checked_add(4))
            .ok_or(VectorError::Length)?;
        if total != bytes.len() {
            return Err(VectorError::Length);
        }
        let body = total - 4;
        if crc32(&bytes[..body]) != u32_at(bytes, body) as u32 {
            return Err(VectorError::Crc);
        }
        Ok(Self {
            count,
            input_len,
            output_len,
            inputs: &bytes[HEADER..HEADER + ins],
            outputs: &bytes[HEADER + ins..body],
        })
    }

    /// Number of vectors.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no vectors.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Codes per input.
    pub const fn input_len(&self) -> usize {
        self.input_len
    }

    /// Elements per output.
    pub const fn output_len(&self) -> usize {
        self.output_len
    }

    /// Input `k` (empty past the end).
    pub fn input(&self, k: usize) -> &'a [u8] {
        let at = k.saturating_mul(self.input_len);
        self.inputs
            .get(at..at.saturating_add(self.input_len))
            .unwrap_or(&[])
    }

    /// Element `j` of expected output `k` (0 past the end).
    pub fn expected(&self, k: usize, j: usize) -> i32 {
        let at = k
            .saturating_mul(self.output_len)
            .saturating_add(j)
            .saturating_mul(4);
        match self.outputs.get(at..at.saturating_add(4)) {
            Some(s) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            None => 0,
        }
    }
}

/// Serialize vectors: `inputs[k]` with `outputs[k]`. Every input must have `input_len` codes and
/// every output `output_len` elements; returns `None` otherwise.
#[cfg(feature = "std")]
pub fn write(inputs: &[Vec<u8>], outputs: &[Vec<i32>]) -> Option<Vec<u8>> {
    let input_len = inputs.first().map_or(0, Vec::len);
    let output_len = outputs.first().map_or(0, Vec::len);
    if inputs.len() != outputs.len()
        || inputs.iter().any(|v| v.len() != input_len)
        || outputs.iter().any(|v| v.len() != output_len)
    {
        return None;
    }
    let mut b = Vec::new();
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    for n in [inputs.len(), input_len, output_len] {
        b.extend_from_slice(&u32::try_from(n).ok()?.to_le_bytes());
    }
    for v in inputs {
        b.extend_from_slice(v);
    }
    for v in outputs.iter().flatten() {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    Some(b)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let inputs = vec![vec![1u8, 2, 3], vec![4, 5, 6]];
        let outputs = vec![vec![-1i32, 7], vec![i32::MAX, i32::MIN]];
        let b = write(&inputs, &outputs).unwrap();
        let v = Vectors::parse(&b).unwrap();
        assert_eq!((v.len(), v.input_len(), v.output_len()), (2, 3, 2));
        assert_eq!(v.input(1), &[4, 5, 6]);
        assert_eq!(v.expected(1, 1), i32::MIN);
        assert_eq!(v.expected(0, 0), -1);
        assert_eq!(v.input(2), &[] as &[u8]);
        for n in 0..b.len() {
            assert!(Vectors::parse(&b[..n]).is_err());
        }
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Vectors::parse(&c).is_err(), "bit {bit}");
        }
        assert!(write(&inputs, &outputs[..1]).is_none());
    }

    #[test]
    fn stream_round_trip() {
        let inputs = vec![vec![1u8, 2], vec![3, 4]];
        let outputs = vec![vec![-7i32], vec![9]];
        let b = write_stream(&inputs, &outputs, &[5, 6]).unwrap();
        let h = StreamHeader::parse(&b).unwrap();
        assert_eq!((h.count, h.input_len, h.output_len), (2, 2, 1));
        assert_eq!(h.record_len(), Some(7));
        assert_eq!(b.len(), STREAM_HEADER_LEN + 2 * 7 + 4);
        let rec = &b[STREAM_HEADER_LEN + 7..STREAM_HEADER_LEN + 14];
        assert_eq!(rec, &[3, 4, 9, 0, 0, 0, 6]);
        let mut crc = crate::format::Crc32::new();
        crc.update(&b[..10]);
        crc.update(&b[10..b.len() - 4]);
        assert_eq!(crc.finish().to_le_bytes(), b[b.len() - 4..]);
        assert!(StreamHeader::parse(&b[..20]).is_err());
        assert!(write_stream(&inputs, &outputs, &[1]).is_none());
    }
}

//! Where each field of the model file's fixed records lies: the one table the reader and the
//! writer both use (the byte layout drawn in the [module docs](super)).
//!
//! Each record's fields are listed in order with their sizes; a compile-time check proves that
//! they follow each other without a gap or an overlap and fill the record exactly, so that a
//! field moved or resized in one place cannot silently disagree with its neighbours.

use super::{HEADER_LEN, LAYER_RECORD_LEN, TENSOR_RECORD_LEN};

/// A field of a fixed record: its name (as the module docs call it), byte offset and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// What the field holds.
    pub name: &'static str,
    /// Byte offset from the record's start.
    pub at: usize,
    /// Size in bytes.
    pub len: usize,
}

const fn f(name: &'static str, at: usize, len: usize) -> Field {
    Field { name, at, len }
}

/// Whether `fields` follow each other from offset 0 without gaps or overlaps and end at `len`.
const fn tiles(fields: &[Field], len: usize) -> bool {
    let mut end = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].at != end || fields[i].len == 0 {
            return false;
        }
        end = fields[i].at + fields[i].len;
        i += 1;
    }
    end == len
}

/// The file header's fields.
pub mod header {
    /// "BITSPIKE", 8 bytes.
    pub const MAGIC: usize = 0;
    /// Format version, u16.
    pub const VERSION: usize = 8;
    /// Header length, u16.
    pub const HEADER_LEN: usize = 10;
    /// Producer version, u32.
    pub const PRODUCER: usize = 12;
    /// Flags, u32.
    pub const FLAGS: usize = 16;
    /// Payload length, u32.
    pub const PAYLOAD_LEN: usize = 20;
    /// Payload CRC-32, u32.
    pub const PAYLOAD_CRC: usize = 24;
    /// Arena bytes, u32.
    pub const ARENA_BYTES: usize = 28;
    /// Tensor count, u16.
    pub const TENSORS: usize = 32;
    /// Layer count, u16.
    pub const LAYERS: usize = 34;
    /// Tensor table offset, u32.
    pub const TENSOR_TABLE: usize = 36;
    /// Layer table offset, u32.
    pub const LAYER_TABLE: usize = 40;
    /// Data offset, u32.
    pub const DATA: usize = 44;
    /// Peak live bytes, u32.
    pub const PEAK_LIVE: usize = 48;
    /// Peak scratch bytes, u32.
    pub const PEAK_SCRATCH: usize = 52;
    /// Reserved, u32 (0).
    pub const RESERVED: usize = 56;
    /// Header CRC-32 of the bytes before it, u32.
    pub const CRC: usize = 60;
}

/// The header's fields in order, checked to fill [`HEADER_LEN`] bytes.
pub const HEADER: [Field; 17] = [
    f("magic", header::MAGIC, 8),
    f("format version", header::VERSION, 2),
    f("header length", header::HEADER_LEN, 2),
    f("producer version", header::PRODUCER, 4),
    f("flags", header::FLAGS, 4),
    f("payload length", header::PAYLOAD_LEN, 4),
    f("payload CRC-32", header::PAYLOAD_CRC, 4),
    f("arena bytes", header::ARENA_BYTES, 4),
    f("tensor count", header::TENSORS, 2),
    f("layer count", header::LAYERS, 2),
    f("tensor table offset", header::TENSOR_TABLE, 4),
    f("layer table offset", header::LAYER_TABLE, 4),
    f("data offset", header::DATA, 4),
    f("peak live bytes", header::PEAK_LIVE, 4),
    f("peak scratch bytes", header::PEAK_SCRATCH, 4),
    f("reserved", header::RESERVED, 4),
    f("header CRC-32", header::CRC, 4),
];

/// A tensor record's fields.
pub mod tensor {
    /// Height, u16.
    pub const H: usize = 0;
    /// Width, u16.
    pub const W: usize = 2;
    /// Channels, u16.
    pub const C: usize = 4;
    /// Element type, u8.
    pub const DTYPE: usize = 6;
    /// Levels, u8.
    pub const LEVELS: usize = 7;
    /// Arena offset, u32.
    pub const ARENA_OFFSET: usize = 8;
    /// Scale, f32 bits.
    pub const SCALE: usize = 12;
}

/// A tensor record's fields in order, checked to fill [`TENSOR_RECORD_LEN`] bytes.
pub const TENSOR: [Field; 7] = [
    f("h", tensor::H, 2),
    f("w", tensor::W, 2),
    f("c", tensor::C, 2),
    f("dtype", tensor::DTYPE, 1),
    f("levels", tensor::LEVELS, 1),
    f("arena offset", tensor::ARENA_OFFSET, 4),
    f("scale", tensor::SCALE, 4),
];

/// A layer record's fields.
pub mod layer {
    /// Kind, u8.
    pub const KIND: usize = 0;
    /// Flags, u8.
    pub const FLAGS: usize = 1;
    /// Weight bits, u8.
    pub const WEIGHT_BITS: usize = 2;
    /// Temporal alignment of the input, u8.
    pub const ALIGN: usize = 3;
    /// Input tensor, u16.
    pub const INPUT: usize = 4;
    /// Second input tensor, u16.
    pub const INPUT2: usize = 6;
    /// Window: kh, kw, sh, sw, ph, pw, a u8 each.
    pub const WINDOW: usize = 8;
    /// Groups, u16.
    pub const GROUPS: usize = 14;
    /// Timesteps, u16.
    pub const TIMESTEPS: usize = 16;
    /// Membrane shift, u8.
    pub const MEMBRANE_SHIFT: usize = 18;
    /// In-place rows, u8.
    pub const IN_PLACE_ROWS: usize = 19;
    /// Output offset, i32.
    pub const OFFSET: usize = 20;
    /// Add weights wa, wb, an i16 each.
    pub const ADD_WEIGHTS: usize = 24;
    /// The six array offsets, a u32 each, in the order of [`ARRAYS`].
    pub const ARRAYS: usize = 28;
    /// Scratch bytes, u32.
    pub const SCRATCH_BYTES: usize = 52;
    /// Scratch arena offset, u32.
    pub const SCRATCH_OFFSET: usize = 56;
    /// Input density, u8.
    pub const INPUT_DENSITY: usize = 60;
    /// Reserved, 3 bytes (0).
    pub const RESERVED: usize = 61;

    /// Index of the weights' offset among the array offsets.
    pub const WEIGHTS: usize = 0;
    /// Index of the bias' offset.
    pub const BIAS: usize = 1;
    /// Index of the multipliers' offset.
    pub const MULTIPLIERS: usize = 2;
    /// Index of the shifts' offset.
    pub const SHIFTS: usize = 3;
    /// Index of the thresholds' offset.
    pub const THRESHOLDS: usize = 4;
    /// Index of the initial potentials' offset.
    pub const V0: usize = 5;
    /// How many array offsets a layer record holds.
    pub const ARRAY_COUNT: usize = 6;

    /// Byte offset of array offset `k` ([`WEIGHTS`] .. [`V0`]).
    pub const fn array(k: usize) -> usize {
        ARRAYS + 4 * k
    }
}

/// A layer record's fields in order, checked to fill [`LAYER_RECORD_LEN`] bytes.
pub const LAYER: [Field; 23] = [
    f("kind", layer::KIND, 1),
    f("flags", layer::FLAGS, 1),
    f("weight bits", layer::WEIGHT_BITS, 1),
    f("temporal alignment", layer::ALIGN, 1),
    f("input tensor", layer::INPUT, 2),
    f("second input tensor", layer::INPUT2, 2),
    f("window", layer::WINDOW, 6),
    f("groups", layer::GROUPS, 2),
    f("timesteps", layer::TIMESTEPS, 2),
    f("membrane shift", layer::MEMBRANE_SHIFT, 1),
    f("in-place rows", layer::IN_PLACE_ROWS, 1),
    f("output offset", layer::OFFSET, 4),
    f("add weights", layer::ADD_WEIGHTS, 4),
    f("weights offset", layer::array(layer::WEIGHTS), 4),
    f("bias offset", layer::array(layer::BIAS), 4),
    f("multiplier offset", layer::array(layer::MULTIPLIERS), 4),
    f("shift offset", layer::array(layer::SHIFTS), 4),
    f("threshold offset", layer::array(layer::THRESHOLDS), 4),
    f("initial potential offset", layer::array(layer::V0), 4),
    f("scratch bytes", layer::SCRATCH_BYTES, 4),
    f("scratch arena offset", layer::SCRATCH_OFFSET, 4),
    f("input density", layer::INPUT_DENSITY, 1),
    f("reserved", layer::RESERVED, 3),
];

const _: () = assert!(tiles(&HEADER, HEADER_LEN), "header fields");
const _: () = assert!(tiles(&TENSOR, TENSOR_RECORD_LEN), "tensor fields");
const _: () = assert!(tiles(&LAYER, LAYER_RECORD_LEN), "layer fields");
const _: () = assert!(
    layer::array(layer::ARRAY_COUNT) == layer::SCRATCH_BYTES,
    "array offsets"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_an_overlap_or_a_short_record_is_refused() {
        assert!(tiles(&[f("a", 0, 2), f("b", 2, 2)], 4));
        assert!(!tiles(&[f("a", 0, 2), f("b", 3, 1)], 4), "gap");
        assert!(!tiles(&[f("a", 0, 2), f("b", 1, 3)], 4), "overlap");
        assert!(!tiles(&[f("a", 0, 2), f("b", 2, 1)], 4), "short");
        assert!(!tiles(&[f("a", 0, 0), f("b", 0, 4)], 4), "empty field");
    }
}

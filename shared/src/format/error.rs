//! Why a model file is refused: [`FormatError`], naming the record and the field.

use core::fmt;

use super::MAX_LAYERS;
use crate::layer::ShapeError;

/// A field of a tensor record, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TensorField {
    /// A dimension is zero or the tensor has more than [`MAX_TENSOR_ELEMS`](super::MAX_TENSOR_ELEMS) elements.
    Shape,
    /// The dtype byte is unknown, or i32 where codes are required.
    Dtype,
    /// The level count is 0 for codes, or not 0 for i32.
    Levels,
    /// The arena offset is out of the arena, or not where the layer requires it.
    ArenaOffset,
    /// The scale is not a positive finite number.
    Scale,
}

/// A field of a layer record, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayerField {
    /// Unknown kind byte.
    Kind,
    /// Unknown flag bits, or a flag the kind does not allow.
    Flags,
    /// Weight bit width outside 2..=8 for a layer with weights, or not 0 for one without.
    WeightBits,
    /// Unknown temporal alignment.
    Align,
    /// An input tensor index that is not an earlier tensor.
    Input,
    /// A second input where none belongs, or none where an add needs one.
    SecondInput,
    /// Window fields set on a kind without a window.
    Window,
    /// Groups not 1 on a kind without groups.
    Groups,
    /// Timesteps of 0, or a spiking layer whose output levels differ from its timesteps.
    Timesteps,
    /// A reserved field that is not 0.
    Reserved,
    /// Add weights on a layer that is not an add, or an output offset on a layer that does not
    /// requantize (pass-through kinds and raw output).
    Constants,
    /// The accumulator could leave the i32 range for some input (too large a fan-in, window,
    /// bias or add weight for the input levels and weight width).
    Accumulator,
    /// Weights missing, present where none belong, out of bounds.
    Weights,
    /// Bias array out of bounds, misaligned, or present where none belongs.
    Bias,
    /// Multiplier array missing, out of bounds, misaligned, or a negative multiplier.
    Multiplier,
    /// Shift array missing, out of bounds, or a shift outside `MIN_SHIFT..=MAX_SHIFT`.
    Shift,
    /// Threshold array missing, out of bounds, misaligned, or a threshold <= 0.
    Threshold,
    /// A membrane shift on a layer that does not spike, or above
    /// [`crate::snn::MAX_MEMBRANE_SHIFT`].
    MembraneShift,
    /// The membrane potential of a spiking layer could leave the i32 range for some input.
    Membrane,
    /// Initial potential array missing, out of bounds or misaligned.
    InitialPotential,
    /// Scratch outside the arena, or overlapping a tensor live during the layer.
    Scratch,
    /// An input density on a layer without weights.
    InputDensity,
    /// In-place rows on a layer that cannot run in place (not row-local, an input read later or
    /// twice, or not in the arena), or an output that does not start far enough below its input.
    InPlace,
    /// Output dtype or levels inconsistent with the layer (raw output only on the last layer,
    /// pass-through kinds keep their input's levels and scale).
    Output,
}

/// Why a model file was refused. Small and `Copy`, so that it can cross any boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FormatError {
    /// The file is shorter than the header or than the payload length it declares.
    Truncated {
        /// Bytes available.
        len: u32,
        /// Bytes needed.
        needed: u32,
    },
    /// The first eight bytes are not `BITSPIKE`.
    BadMagic,
    /// The format version is not the one this reader supports.
    Version {
        /// Version in the file.
        found: u16,
        /// Version this reader supports.
        supported: u16,
    },
    /// The header length field is not 64.
    HeaderLength(u16),
    /// The header CRC does not match its bytes.
    HeaderCrc,
    /// The payload CRC does not match its bytes.
    PayloadCrc,
    /// Unknown header flag bits, or the spiking flag disagrees with the layers.
    HeaderFlags,
    /// A reserved header field is not 0.
    HeaderReserved,
    /// Layer count 0 or above [`MAX_LAYERS`], or tensor count not layer count + 1.
    Counts,
    /// A table offset is not where version 1 puts it, or the tables do not fit the payload.
    Tables,
    /// A tensor record is invalid.
    Tensor {
        /// Tensor index.
        index: u16,
        /// What is wrong.
        field: TensorField,
    },
    /// A layer record is invalid.
    Layer {
        /// Layer index.
        index: u16,
        /// What is wrong.
        field: LayerField,
    },
    /// A layer's shapes do not chain.
    Shape {
        /// Layer index.
        index: u16,
        /// What is wrong.
        error: ShapeError,
    },
    /// Two tensors that are live at the same time overlap in the arena.
    ArenaOverlap {
        /// First tensor.
        a: u16,
        /// Second tensor.
        b: u16,
    },
    /// The header's peak live bytes or peak scratch disagree with the layers.
    ArenaSummary,
    /// The declared arena is larger than the plan needs (the end of the last tensor or scratch
    /// in it), or than [`MAX_ARENA_BYTES`](super::MAX_ARENA_BYTES).
    ArenaSize {
        /// Bytes the header declares.
        declared: u32,
        /// Bytes the plan needs (at most the limit).
        needed: u32,
    },
}

impl fmt::Display for TensorField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "shape (each dimension >= 1, at most 16777216 elements)",
            Self::Dtype => "dtype (0 = u8 codes, 1 = i32 on the network output only)",
            Self::Levels => "levels (1..=255 for codes, 0 for i32)",
            Self::ArenaOffset => "arena offset (inside the arena, where the layer requires it)",
            Self::Scale => "scale (a positive finite f32)",
        })
    }
}

impl fmt::Display for LayerField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kind => "kind (1..=7)",
            Self::Flags => "flags (bias, spiking, raw output, as the kind allows)",
            Self::WeightBits => "weight bits (2..=8 for conv and dense, 0 otherwise)",
            Self::Align => "temporal alignment (0..=2)",
            Self::Input => "input tensor (an earlier tensor holding u8 codes)",
            Self::SecondInput => "second input tensor (add only)",
            Self::Window => "window (kernel, stride, padding; 0 for kinds without a window)",
            Self::Groups => "groups (1 unless conv2d)",
            Self::Timesteps => "timesteps (>= 1; a spiking layer's output levels equal them)",
            Self::Reserved => "reserved field (must be 0)",
            Self::Constants => "output offset / add weights (only where the kind uses them)",
            Self::Weights => "weights (present for conv and dense, inside the data section)",
            Self::Bias => "bias (i32 per output channel, 4-aligned, inside the data section)",
            Self::Multiplier => "multipliers (i32 >= 0 per channel, 4-aligned, inside the data)",
            Self::Shift => "shifts (i8 in -31..=31 per channel, inside the data section)",
            Self::Threshold => "thresholds (i32 > 0 per channel, spiking layers only)",
            Self::MembraneShift => "membrane shift (0..=24, spiking layers only)",
            Self::Membrane => "membrane range (v0 + timesteps x current + threshold < 2^31)",
            Self::InitialPotential => "initial potentials (i32 per channel, spiking only)",
            Self::Scratch => "scratch (inside the arena, clear of live tensors)",
            Self::InputDensity => "input density (conv and dense layers only)",
            Self::InPlace => "in-place rows (a row-local layer over an input it alone reads, its output far enough below)",
            Self::Accumulator => "accumulator range (the largest |acc| must stay below 2^31)",
            Self::Output => "output tensor (dtype, levels and scale as the kind requires)",
        })
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { len, needed } => {
                write!(f, "model file truncated: {len} bytes, needs {needed}")
            }
            Self::BadMagic => f.write_str("not a bitspike model file (magic is not BITSPIKE)"),
            Self::Version { found, supported } if found > supported => write!(
                f,
                "model format version {found} is newer than this runtime supports \
                 (version {supported}); update bitspike to read it"
            ),
            Self::Version { found, supported } => write!(
                f,
                "model format version {found} is not supported (this runtime reads version \
                 {supported}); re-export the model"
            ),
            Self::HeaderLength(n) => write!(f, "header length is {n}, expected 64"),
            Self::HeaderCrc => f.write_str("header CRC mismatch: the file is corrupt"),
            Self::PayloadCrc => f.write_str("payload CRC mismatch: the file is corrupt"),
            Self::HeaderFlags => f.write_str("header flags are invalid"),
            Self::HeaderReserved => f.write_str("a reserved header field is not 0"),
            Self::Counts => write!(
                f,
                "layer count must be 1..={MAX_LAYERS} and tensor count one more"
            ),
            Self::Tables => f.write_str("table offsets are not where format version 1 puts them"),
            Self::Tensor { index, field } => write!(f, "tensor {index}: invalid {field}"),
            Self::Layer { index, field } => write!(f, "layer {index}: invalid {field}"),
            Self::Shape { index, error } => {
                write!(f, "layer {index}: shapes do not chain ({error:?})")
            }
            Self::ArenaOverlap { a, b } => write!(
                f,
                "tensors {a} and {b} are live at the same time but overlap in the arena"
            ),
            Self::ArenaSummary => {
                f.write_str("header peak live bytes or peak scratch disagree with the layers")
            }
            Self::ArenaSize { declared, needed } => write!(
                f,
                "the header declares an arena of {declared} bytes, the plan needs {needed} \
                 (at most {} are allowed)",
                super::MAX_ARENA_BYTES
            ),
        }
    }
}

impl core::error::Error for FormatError {}

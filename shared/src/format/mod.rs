//! The bitspike model file, format version 1.
//!
//! One binary file, written by the host and read in place (zero-copy) from flash by the device.
//! All integers are **little-endian**. The reader ([`ModelFile::parse`]) validates everything once:
//! sizes before anything is read further, the version, both CRCs, every table entry, that shapes
//! chain, that every array lies inside the file and is aligned, and that the arena plan is sound
//! (every tensor inside the arena, no two live tensors overlapping except an in-place layer's
//! output over its input, far enough below it). After a successful parse,
//! reading any record cannot fail and inference cannot fail.
//!
//! ```text
//! offset  size  field                                   (file header, 64 bytes)
//! ------  ----  ------------------------------------------------------------------
//!      0     8  magic "BITSPIKE"
//!      8     2  format version (u16) = 1
//!     10     2  header length (u16) = 64
//!     12     4  producer version (u32) = major << 16 | minor << 8 | patch
//!     16     4  flags (u32): bit 0 = model has spiking layers; other bits 0
//!     20     4  payload length (u32): bytes after the header
//!     24     4  payload CRC-32 (IEEE / ISO-HDLC) of those bytes
//!     28     4  arena bytes (u32): the caller's arena must be at least this long
//!     32     2  tensor count (u16) = layer count + 1
//!     34     2  layer count (u16), 1..=MAX_LAYERS
//!     36     4  tensor table offset (u32) = 64
//!     40     4  layer table offset (u32) = 64 + 16 * tensor count
//!     44     4  data offset (u32) = layer table end rounded up to 4
//!     48     4  peak live bytes (u32): the largest sum of live tensor and scratch bytes at any
//!               layer, the liveness lower bound of the arena
//!     52     4  peak scratch bytes (u32): the largest scratch any layer needs
//!     56     4  reserved, 0
//!     60     4  header CRC-32 of bytes 0..60
//!
//!  tensor record (16 bytes, tensor 0 is the network input, tensor i+1 the output of layer i)
//!      0     2  h          2  2  w          4  2  c
//!      6     1  dtype: 0 = u8 codes, 1 = i32 accumulators (network output only)
//!      7     1  levels L (codes 0..=L; 1..=255 for codes, 0 for i32)
//!      8     4  arena offset (u32); 0xFFFF_FFFF = the caller's input buffer (tensor 0 and
//!               flattens of it); a flatten's output has its input's offset (it moves no data)
//!     12     4  scale (f32 bits): real value = code * scale; informative, never used by the device
//!
//!  layer record (64 bytes)
//!      0     1  kind (LayerKind)           1  1  flags: bit 0 bias, bit 1 spiking, bit 2 raw i32 output
//!      2     1  weight bits (2..=8 for conv and dense, 0 otherwise)
//!      3     1  temporal alignment of the input (Align)
//!      4     2  input tensor               6  2  second input tensor (add), 0xFFFF otherwise
//!      8     6  kh kw sh sw ph pw (u8 each; 0 for kinds without a window)
//!     14     2  groups (conv; 1 otherwise)
//!     16     2  timesteps T >= 1           18  1  membrane shift (spiking; 0 otherwise)
//!     19     1  in-place rows: 0, or the layer overwrites its input as it goes, this many output
//!               rows at a time (row-local kinds over an input no later layer reads; the
//!               output starts at least crate::band::in_place_shift bytes before the input)
//!     20     4  output offset (i32), added after scaling
//!     24     4  add weights wa, wb (i16 each; add only, 0 otherwise)
//!     28     4  weights offset    packed at `weight bits`, see crate::pack
//!     32     4  bias offset       i32[out_c], 4-aligned (flag bit 0)
//!     36     4  multiplier offset i32[out_c], 4-aligned, each >= 0 (Q31)
//!     40     4  shift offset      i8[out_c], each in MIN_SHIFT..=MAX_SHIFT
//!     44     4  threshold offset  i32[out_c] > 0, 4-aligned (spiking)
//!     48     4  initial potential offset i32[out_c], 4-aligned (spiking)
//!               a spiking layer (conv or dense) has no multipliers, shifts or output offset:
//!               its output codes are spike counts 0..=T (levels = T), its bias, threshold and
//!               initial potential are in membrane units (accumulator << membrane shift), see
//!               crate::snn
//!     52     4  scratch bytes     56  4  scratch arena offset (0xFFFF_FFFF when no scratch)
//!     60     1  input density (conv and dense; 0 otherwise): nonzero input codes measured at
//!               export, 1 + round(254 x fraction), 0 = not measured (crate::kernel::density)
//!     61     3  reserved, 0
//!
//!  data section: arrays referenced above by absolute file offset; an absent array has offset
//!  0xFFFF_FFFF. Arrays lie inside the data section, i32 arrays on 4-byte boundaries of the file
//!  (so they are aligned in memory when the file is placed 4-aligned; the reader itself reads
//!  every integer byte by byte and works at any alignment).
//! ```
//!
//! Beyond the layout, the reader refuses any layer whose accumulator could leave the i32 range
//! for some input (bias + fan-in x largest code x largest weight, window sums, add terms), so
//! the kernels' i32 arithmetic never wraps on a model that loads.
//!
//! A file may be followed by other bytes (a flash partition, say); the reader looks only at the
//! header and the payload length it declares.

mod error;
pub mod layout;
mod validate;
#[cfg(feature = "std")]
pub mod writer;

pub use error::{FormatError, LayerField, TensorField};
pub use validate::{accumulator_bound, membrane_bound, weight_bytes};

use crate::layer::{Align, Dtype, Geometry, LayerKind, Shape, Window};
use crate::pack;
use crate::quant::{MAX_SHIFT, MIN_SHIFT};
use crate::snn::MAX_MEMBRANE_SHIFT;
use layout::{header as hf, layer as lf, tensor as tf};

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"BITSPIKE";
/// The format version this crate reads and writes.
pub const VERSION: u16 = 1;
/// Length of the file header.
pub const HEADER_LEN: usize = 64;
/// Length of one tensor record.
pub const TENSOR_RECORD_LEN: usize = 16;
/// Length of one layer record.
pub const LAYER_RECORD_LEN: usize = 64;
/// The most layers a model may have.
pub const MAX_LAYERS: usize = 128;
/// The most tensors a model may have.
pub const MAX_TENSORS: usize = MAX_LAYERS + 1;
/// The most elements one tensor may have (16 Mi: far beyond any MCU, small enough that every size
/// computation fits in u32).
pub const MAX_TENSOR_ELEMS: usize = 1 << 24;
/// The largest arena a model may declare: 64 MiB, beyond the SRAM of any microcontroller, small
/// enough that a host tool can allocate it. A file must also declare exactly the arena its plan
/// needs (the end of its last tensor or scratch), no more.
pub const MAX_ARENA_BYTES: u32 = 1 << 26;
/// An absent offset.
pub const NONE: u32 = u32::MAX;
/// An absent tensor index.
pub const NO_TENSOR: u16 = u16::MAX;

/// Header flag: the model has spiking layers.
pub const HEADER_FLAG_SPIKING: u32 = 1;
/// Layer flag: the layer has an i32 bias per output channel.
pub const LAYER_FLAG_BIAS: u8 = 1;
/// Layer flag: the layer is a spiking (integrate-and-fire) layer.
pub const LAYER_FLAG_SPIKING: u8 = 2;
/// Layer flag: the layer writes its raw i32 accumulators instead of requantized codes.
pub const LAYER_FLAG_RAW_OUTPUT: u8 = 4;
const LAYER_FLAGS_KNOWN: u8 = LAYER_FLAG_BIAS | LAYER_FLAG_SPIKING | LAYER_FLAG_RAW_OUTPUT;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 (IEEE 802.3 / ISO-HDLC, the zlib one) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    CRC.checksum(data)
}

/// An incremental [`crc32`], for data that arrives in pieces (a streamed test set).
pub struct Crc32(crc::Digest<'static, u32>);

impl Crc32 {
    /// A CRC over nothing yet.
    pub fn new() -> Self {
        Self(CRC.digest())
    }

    /// Add `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The CRC of everything added.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn rd_u8(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Little-endian u16 at `off`; bytes past the end read as 0.
#[inline]
fn rd_u16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.wrapping_add(2)) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => u16::from_le_bytes([rd_u8(b, off), rd_u8(b, off.wrapping_add(1))]),
    }
}

/// Little-endian u32 at `off` (one bounds check in the usual case); bytes past the end read as 0.
#[inline]
fn rd_u32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.wrapping_add(4)) {
        Some(&[x, y, z, w]) => u32::from_le_bytes([x, y, z, w]),
        _ => u32::from_le_bytes([
            rd_u8(b, off),
            rd_u8(b, off.wrapping_add(1)),
            rd_u8(b, off.wrapping_add(2)),
            rd_u8(b, off.wrapping_add(3)),
        ]),
    }
}

#[inline]
fn rd_i32(b: &[u8], off: usize) -> i32 {
    rd_u32(b, off) as i32
}

/// A little-endian i32 array inside the model file, read in place.
#[derive(Clone, Copy, Debug, Default)]
pub struct I32s<'a>(&'a [u8]);

impl<'a> I32s<'a> {
    /// Wrap raw little-endian bytes (four per element).
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Whether the array is empty.
    pub const fn is_empty(&self) -> bool {
        self.0.len() < 4
    }

    /// Element `i`, or 0 past the end (a validated model never reads past the end).
    #[inline]
    pub fn get(&self, i: usize) -> i32 {
        // One bounds check and one (unaligned) word load.
        let at = i.wrapping_mul(4);
        match self.0.get(at..at.wrapping_add(4)) {
            Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    /// Iterate over the elements.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// The parsed file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Format version (always [`VERSION`] after a successful parse).
    pub version: u16,
    /// Version of the bitspike that wrote the file, `major << 16 | minor << 8 | patch`.
    pub producer: u32,
    /// Header flags.
    pub flags: u32,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Payload CRC-32.
    pub payload_crc: u32,
    /// Bytes of arena the model needs.
    pub arena_bytes: u32,
    /// Number of tensors.
    pub tensors: u16,
    /// Number of layers.
    pub layers: u16,
    /// Largest sum of live activation and scratch bytes at any layer (the arena's lower bound).
    pub peak_live_bytes: u32,
    /// Largest scratch any one layer needs.
    pub peak_scratch_bytes: u32,
}

impl Header {
    /// Total file length the header declares.
    pub const fn file_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }
}

/// A tensor record.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorInfo {
    /// Shape, HWC.
    pub shape: Shape,
    /// Element storage.
    pub dtype: Dtype,
    /// Level count L (codes `0..=L`), 0 for i32.
    pub levels: u8,
    /// Arena offset, or [`NONE`] for the caller's input buffer.
    pub arena_offset: u32,
    /// Real value of one code step (informative).
    pub scale: f32,
}

impl TensorInfo {
    /// Bytes the tensor takes.
    pub const fn bytes(&self) -> usize {
        self.shape.len() * self.dtype.size()
    }

    /// Bytes of one row (all of it for a tensor of no rows): what a layer run in place moves
    /// per output row.
    pub const fn row_bytes(&self) -> usize {
        crate::band::row_bytes(self.bytes(), self.shape.h)
    }
}

/// Spiking parameters of a layer, read in place (units: [`crate::snn`]).
#[derive(Clone, Copy, Debug)]
pub struct SpikingView<'a> {
    /// Firing threshold per output channel, in membrane units (QAC eq. 3).
    pub threshold: I32s<'a>,
    /// Initial membrane potential per output channel, in membrane units.
    pub v0: I32s<'a>,
    /// Membrane shift: the accumulator enters the membrane scaled by `2^shift`.
    pub shift: u8,
}

/// A layer record with its arrays, read in place.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a> {
    /// Layer kind.
    pub kind: LayerKind,
    /// Flags (`LAYER_FLAG_*`).
    pub flags: u8,
    /// Weight bit width (0 for layers without weights).
    pub weight_bits: u8,
    /// Temporal alignment of the input.
    pub align: Align,
    /// Input tensor.
    pub input: u16,
    /// Second input tensor (add), or [`NO_TENSOR`].
    pub input2: u16,
    /// Window.
    pub window: Window,
    /// Groups.
    pub groups: u16,
    /// Timesteps.
    pub timesteps: u16,
    /// Output offset added after scaling.
    pub offset: i32,
    /// Add weights (wa, wb).
    pub add_weights: [i16; 2],
    /// Packed weights (empty for layers without weights).
    pub weights: &'a [u8],
    /// Bias per output channel, if any.
    pub bias: Option<I32s<'a>>,
    /// Q31 multipliers per output channel (empty when the layer does not requantize).
    pub multipliers: I32s<'a>,
    /// Shifts per output channel, as raw i8 bytes (empty when the layer does not requantize).
    pub shifts: &'a [u8],
    /// Spiking parameters, for spiking layers.
    pub spiking: Option<SpikingView<'a>>,
    /// Scratch bytes the layer needs.
    pub scratch_bytes: u32,
    /// Scratch offset in the arena ([`NONE`] when no scratch).
    pub scratch_offset: u32,
    /// Output rows per band when the layer runs in place over its input, 0 when it does not.
    pub in_place_rows: u8,
    /// Nonzero input codes measured at export (`1 + round(254 x fraction)`), 0 when not
    /// measured ([`crate::kernel::density`]).
    pub input_density: u8,
}

impl LayerView<'_> {
    /// What [`ModelFile::layer`] returns past the last layer: a flatten of tensor 0 with no
    /// arrays (a validated model never asks for it).
    pub const EMPTY: LayerView<'static> = LayerView {
        kind: LayerKind::Flatten,
        flags: 0,
        weight_bits: 0,
        align: Align::Average,
        input: 0,
        input2: NO_TENSOR,
        window: Window {
            kh: 0,
            kw: 0,
            sh: 0,
            sw: 0,
            ph: 0,
            pw: 0,
        },
        groups: 1,
        timesteps: 1,
        offset: 0,
        add_weights: [0, 0],
        weights: &[],
        bias: None,
        multipliers: I32s(&[]),
        shifts: &[],
        spiking: None,
        scratch_bytes: 0,
        scratch_offset: NONE,
        in_place_rows: 0,
        input_density: 0,
    };

    /// Whether the layer writes raw i32 accumulators.
    pub const fn raw_output(&self) -> bool {
        self.flags & LAYER_FLAG_RAW_OUTPUT != 0
    }
}

/// A validated model file, borrowed from the bytes it was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct ModelFile<'a> {
    bytes: &'a [u8],
    header: Header,
}

fn tensor_at(bytes: &[u8], i: usize) -> TensorInfo {
    let o = HEADER_LEN + i * TENSOR_RECORD_LEN;
    TensorInfo {
        shape: Shape::new(
            rd_u16(bytes, o + tf::H),
            rd_u16(bytes, o + tf::W),
            rd_u16(bytes, o + tf::C),
        ),
        dtype: Dtype::from_u8(rd_u8(bytes, o + tf::DTYPE)).unwrap_or(Dtype::Code),
        levels: rd_u8(bytes, o + tf::LEVELS),
        arena_offset: rd_u32(bytes, o + tf::ARENA_OFFSET),
        scale: f32::from_bits(rd_u32(bytes, o + tf::SCALE)),
    }
}

/// A slice of `bytes` at `off`, `len` long, inside `lo..` and 4-aligned when `align4`; `None`
/// otherwise (and for [`NONE`]).
fn array(bytes: &[u8], lo: usize, off: u32, len: usize, align4: bool) -> Option<&[u8]> {
    if off == NONE {
        return None;
    }
    let off = off as usize;
    if off < lo || (align4 && !off.is_multiple_of(4)) {
        return None;
    }
    bytes.get(off..off.checked_add(len)?)
}

impl<'a> ModelFile<'a> {
    /// Parse and validate a model file. Never panics; every problem is an `Err`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let header = parse_header(bytes)?;
        let bytes = &bytes[..header.file_len()];
        let model = Self { bytes, header };
        model.validate()?;
        Ok(model)
    }

    /// The header.
    pub const fn header(&self) -> &Header {
        &self.header
    }

    /// The file's bytes (exactly the header and payload).
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of layers.
    pub const fn layer_count(&self) -> usize {
        self.header.layers as usize
    }

    /// Tensor `i` (0 = input, `layer_count()` = output). Past the end gives a zero-sized tensor.
    pub fn tensor(&self, i: usize) -> TensorInfo {
        if i >= self.header.tensors as usize {
            return TensorInfo {
                shape: Shape::default(),
                dtype: Dtype::Code,
                levels: 0,
                arena_offset: NONE,
                scale: 0.0,
            };
        }
        tensor_at(self.bytes, i)
    }

    /// The network input tensor.
    pub fn input(&self) -> TensorInfo {
        self.tensor(0)
    }

    /// The network output tensor.
    pub fn output(&self) -> TensorInfo {
        self.tensor(self.layer_count())
    }

    /// Layer `i`'s geometry (input and output shapes with the window and groups).
    pub fn geometry(&self, i: usize) -> Geometry {
        self.geometry_of(&self.layer_fields(i), i)
    }

    /// The geometry of layer `i` whose record is `l` (saves re-reading the record).
    pub fn geometry_of(&self, l: &LayerView<'_>, i: usize) -> Geometry {
        Geometry {
            kind: l.kind,
            window: l.window,
            groups: l.groups,
            input: self.tensor(l.input as usize).shape,
            output: self.tensor(i.saturating_add(1)).shape,
        }
    }

    /// The fixed fields of layer `i`'s record, without its arrays.
    fn layer_fields(&self, i: usize) -> LayerView<'a> {
        if i >= self.layer_count() {
            return LayerView::EMPTY;
        }
        raw_layer(self.bytes, self.layer_table() + i * LAYER_RECORD_LEN)
    }

    /// Layer `i`, with its arrays. Past the end gives [`LayerView::EMPTY`].
    pub fn layer(&self, i: usize) -> LayerView<'a> {
        let b = self.bytes;
        if i >= self.layer_count() {
            return LayerView::EMPTY;
        }
        let o = self.layer_table() + i * LAYER_RECORD_LEN;
        let mut l = raw_layer(b, o);
        let out = self.tensor(i + 1);
        let c = out.shape.c as usize;
        let data = self.data_start();
        let wlen = weight_bytes(&self.geometry_of(&l, i), l.weight_bits);
        l.weights = wlen
            .and_then(|n| array(b, data, rd_u32(b, o + lf::array(lf::WEIGHTS)), n, false))
            .unwrap_or(&[]);
        let bias = rd_u32(b, o + lf::array(lf::BIAS));
        l.bias = array(b, data, bias, c * 4, true).map(I32s);
        let m = rd_u32(b, o + lf::array(lf::MULTIPLIERS));
        l.multipliers = I32s(array(b, data, m, c * 4, true).unwrap_or(&[]));
        let shifts = rd_u32(b, o + lf::array(lf::SHIFTS));
        l.shifts = array(b, data, shifts, c, false).unwrap_or(&[]);
        let th = array(
            b,
            data,
            rd_u32(b, o + lf::array(lf::THRESHOLDS)),
            c * 4,
            true,
        );
        let v0 = array(b, data, rd_u32(b, o + lf::array(lf::V0)), c * 4, true);
        l.spiking = match (th, v0) {
            (Some(t), Some(v)) if l.flags & LAYER_FLAG_SPIKING != 0 => Some(SpikingView {
                threshold: I32s(t),
                v0: I32s(v),
                shift: rd_u8(b, o + lf::MEMBRANE_SHIFT),
            }),
            _ => None,
        };
        l
    }

    fn layer_table(&self) -> usize {
        HEADER_LEN + self.header.tensors as usize * TENSOR_RECORD_LEN
    }

    fn data_start(&self) -> usize {
        (self.layer_table() + self.header.layers as usize * LAYER_RECORD_LEN).next_multiple_of(4)
    }
}

/// The fixed fields of a layer record, with no arrays attached.
fn raw_layer(b: &[u8], o: usize) -> LayerView<'_> {
    LayerView {
        kind: LayerKind::from_u8(rd_u8(b, o + lf::KIND)).unwrap_or(LayerKind::Flatten),
        flags: rd_u8(b, o + lf::FLAGS),
        weight_bits: rd_u8(b, o + lf::WEIGHT_BITS),
        align: Align::from_u8(rd_u8(b, o + lf::ALIGN)).unwrap_or(Align::Average),
        input: rd_u16(b, o + lf::INPUT),
        input2: rd_u16(b, o + lf::INPUT2),
        window: Window {
            kh: rd_u8(b, o + lf::WINDOW),
            kw: rd_u8(b, o + lf::WINDOW + 1),
            sh: rd_u8(b, o + lf::WINDOW + 2),
            sw: rd_u8(b, o + lf::WINDOW + 3),
            ph: rd_u8(b, o + lf::WINDOW + 4),
            pw: rd_u8(b, o + lf::WINDOW + 5),
        },
        groups: rd_u16(b, o + lf::GROUPS),
        timesteps: rd_u16(b, o + lf::TIMESTEPS),
        offset: rd_i32(b, o + lf::OFFSET),
        add_weights: [
            rd_u16(b, o + lf::ADD_WEIGHTS) as i16,
            rd_u16(b, o + lf::ADD_WEIGHTS + 2) as i16,
        ],
        weights: &[],
        bias: None,
        multipliers: I32s(&[]),
        shifts: &[],
        spiking: None,
        scratch_bytes: rd_u32(b, o + lf::SCRATCH_BYTES),
        scratch_offset: rd_u32(b, o + lf::SCRATCH_OFFSET),
        in_place_rows: rd_u8(b, o + lf::IN_PLACE_ROWS),
        input_density: rd_u8(b, o + lf::INPUT_DENSITY),
    }
}

/// Parse the header, checking in this order: length, magic, version (before anything else, so a
/// newer file is reported as newer), header length, header CRC, the declared payload length
/// against the bytes available, the payload CRC, flags and reserved fields.
pub fn parse_header(bytes: &[u8]) -> Result<Header, FormatError> {
    let len = bytes.len().min(u32::MAX as usize) as u32;
    // The magic and the version come first: a newer file is reported as newer.
    if bytes.len() < hf::HEADER_LEN {
        return Err(FormatError::Truncated {
            len,
            needed: HEADER_LEN as u32,
        });
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = rd_u16(bytes, hf::VERSION);
    if version != VERSION {
        return Err(FormatError::Version {
            found: version,
            supported: VERSION,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated {
            len,
            needed: HEADER_LEN as u32,
        });
    }
    let header_len = rd_u16(bytes, hf::HEADER_LEN);
    if header_len as usize != HEADER_LEN {
        return Err(FormatError::HeaderLength(header_len));
    }
    if crc32(&bytes[..hf::CRC]) != rd_u32(bytes, hf::CRC) {
        return Err(FormatError::HeaderCrc);
    }
    let h = Header {
        version,
        producer: rd_u32(bytes, hf::PRODUCER),
        flags: rd_u32(bytes, hf::FLAGS),
        payload_len: rd_u32(bytes, hf::PAYLOAD_LEN),
        payload_crc: rd_u32(bytes, hf::PAYLOAD_CRC),
        arena_bytes: rd_u32(bytes, hf::ARENA_BYTES),
        tensors: rd_u16(bytes, hf::TENSORS),
        layers: rd_u16(bytes, hf::LAYERS),
        peak_live_bytes: rd_u32(bytes, hf::PEAK_LIVE),
        peak_scratch_bytes: rd_u32(bytes, hf::PEAK_SCRATCH),
    };
    let needed = HEADER_LEN as u64 + h.payload_len as u64;
    if (bytes.len() as u64) < needed {
        return Err(FormatError::Truncated {
            len,
            needed: needed.min(u32::MAX as u64) as u32,
        });
    }
    if crc32(&bytes[HEADER_LEN..needed as usize]) != h.payload_crc {
        return Err(FormatError::PayloadCrc);
    }
    if h.flags & !HEADER_FLAG_SPIKING != 0 {
        return Err(FormatError::HeaderFlags);
    }
    if rd_u32(bytes, hf::RESERVED) != 0 {
        return Err(FormatError::HeaderReserved);
    }
    Ok(h)
}

//! The model file writer (`std`).
//!
//! [`write()`] serializes a [`ModelDef`] into the version-1 layout drawn in [`crate::format`],
//! plans the arena ([`crate::plan`]; row-local layers run in place where that makes the arena
//! smaller, adding at most 1 % to the estimated instructions), and then parses its own output with the same reader the
//! device uses, so that a file it returns is one every runtime accepts.

use core::fmt;

use super::*;
use crate::band;
use crate::def::{LayerDef, ModelDef};
use crate::kernel;
use crate::layer::ShapeError;
use crate::pack::{self, PackError};
use crate::plan::{plan, PlanLayer};

/// Why a model definition could not be written.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteError {
    /// Layer `layer`'s shapes do not chain.
    Shape {
        /// Layer index.
        layer: usize,
        /// What is wrong.
        error: ShapeError,
    },
    /// Layer `layer`'s array `array` has `found` elements where `expected` are needed.
    ArrayLength {
        /// Layer index.
        layer: usize,
        /// Which array.
        array: &'static str,
        /// Elements given.
        found: usize,
        /// Elements needed.
        expected: usize,
    },
    /// Layer `layer`'s weights could not be packed.
    Pack {
        /// Layer index.
        layer: usize,
        /// What is wrong.
        error: PackError,
    },
    /// The model has more layers than the format allows, or is larger than 4 GiB.
    TooLarge,
    /// The written file does not pass the reader's validation.
    Invalid(FormatError),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape { layer, error } => {
                write!(f, "layer {layer}: shapes do not chain ({error:?})")
            }
            Self::ArrayLength {
                layer,
                array,
                found,
                expected,
            } => write!(
                f,
                "layer {layer}: {array} has {found} elements, expected {expected}"
            ),
            Self::Pack { layer, error } => match error {
                PackError::Bits(b) => write!(f, "layer {layer}: weight bits {b} not in 2..=8"),
                PackError::Range(i) => {
                    write!(f, "layer {layer}: weight {i} does not fit the bit width")
                }
                PackError::Short => write!(f, "layer {layer}: weights too large to pack"),
            },
            Self::TooLarge => write!(
                f,
                "model has more than {MAX_LAYERS} layers or does not fit in 4 GiB"
            ),
            Self::Invalid(e) => write!(f, "written model is invalid: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// This crate's version as the header's producer field: `major << 16 | minor << 8 | patch`.
pub fn producer_version() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0) & 0xff;
    part(env!("CARGO_PKG_VERSION_MAJOR")) << 16
        | part(env!("CARGO_PKG_VERSION_MINOR")) << 8
        | part(env!("CARGO_PKG_VERSION_PATCH"))
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn check_len(
    layer: usize,
    array: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), WriteError> {
    if found != expected {
        return Err(WriteError::ArrayLength {
            layer,
            array,
            found,
            expected,
        });
    }
    Ok(())
}

/// The in-place layers may add at most `1 / IN_PLACE_SHARE` of the network's estimated
/// instructions ([`band::cost`], [`band::overhead`]).
pub const IN_PLACE_SHARE: u64 = 100;

/// Serialize `def` into a version-1 model file, with in-place layers where they make the arena
/// smaller (within [`IN_PLACE_SHARE`]).
pub fn write(def: &ModelDef) -> Result<Vec<u8>, WriteError> {
    write_planned(def, Budget::Share(IN_PLACE_SHARE))
}

/// How many extra instructions in-place layers may cost ([`write_planned`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// No in-place layers: every intermediate tensor survives its layer (for debugging).
    None,
    /// At most `1 / n` of the network's estimated instructions.
    Share(u64),
    /// At most this many estimated instructions.
    Instructions(u64),
}

/// Serialize `def` into a version-1 model file, with in-place layers within `budget`.
pub fn write_planned(def: &ModelDef, budget: Budget) -> Result<Vec<u8>, WriteError> {
    let layers = def.layers.len();
    if layers == 0 || layers > MAX_LAYERS {
        return Err(WriteError::TooLarge);
    }
    let tensors = def
        .tensors()
        .map_err(|(layer, error)| WriteError::Shape { layer, error })?;
    let geoms = def.geometries_of(&tensors);
    // Each layer gets at least the scratch of the kernels the runtime may choose for it (the
    // event-driven ones where its measured input density makes them pay on some target, or
    // where they beat the row kernel on dense inputs too), within a few times its own bytes
    // ([`kernel::granted_scratch`]).
    let scratch: Vec<u32> = def
        .layers
        .iter()
        .enumerate()
        .zip(&geoms)
        .map(|((i, l), g)| {
            let levels = tensors[l.input as usize].levels;
            let own = (l.weights.len() as u64 * l.weight_bits as u64).div_ceil(8)
                + [Some(l.input), l.input2]
                    .iter()
                    .flatten()
                    .map(|&t| tensors[t as usize].bytes() as u64)
                    .sum::<u64>()
                + tensors[i + 1].bytes() as u64;
            let events = [kernel::Isa::Dsp, kernel::Isa::Portable]
                .iter()
                .any(|&isa| kernel::events_pay(isa, l.input_density))
                || kernel::scatter_beats_row(g, l.weight_bits, levels);
            let events = if events && l.kind.has_weights() {
                kernel::events_scratch_bytes(g, l.weight_bits)
            } else {
                0
            };
            let events = if events as u64 <= kernel::scratch_cap(own) {
                events
            } else {
                0
            };
            l.scratch_bytes
                .max(kernel::granted_scratch(g, l.weight_bits, own))
                .max(events)
        })
        .collect();

    let plan = plan(
        &def.layers
            .iter()
            .enumerate()
            .map(|(i, l)| PlanLayer {
                kind: l.kind,
                inputs: [Some(l.input), l.input2],
                output_bytes: tensors[i + 1].bytes(),
                scratch_bytes: scratch[i] as usize,
                in_place_shifts: core::array::from_fn(|k| {
                    let row =
                        |t: usize| band::row_bytes(tensors[t].bytes(), tensors[t].shape.h) as u64;
                    let (inp, out) = (row(l.input as usize), row(i + 1));
                    band::in_place_shift(&geoms[i], 1 << k, inp, out)
                        .and_then(|d| usize::try_from(d).ok())
                }),
                band_overheads: core::array::from_fn(|k| {
                    let levels = tensors[l.input as usize].levels;
                    band::overhead(&geoms[i], l.weight_bits, levels, 1 << k)
                }),
            })
            .collect::<Vec<_>>(),
        match budget {
            Budget::None => None,
            Budget::Share(n) => Some(geoms.iter().map(band::cost).sum::<u64>() / n.max(1)),
            Budget::Instructions(n) => Some(n),
        },
    );

    let n_tensors = layers + 1;
    let layer_table = HEADER_LEN + n_tensors * TENSOR_RECORD_LEN;
    let data_start = (layer_table + layers * LAYER_RECORD_LEN).next_multiple_of(4);
    let mut out = vec![0u8; data_start];

    // Tensor table.
    for (t, info) in tensors.iter().enumerate() {
        let o = HEADER_LEN + t * TENSOR_RECORD_LEN;
        put_u16(&mut out, o + tf::H, info.shape.h);
        put_u16(&mut out, o + tf::W, info.shape.w);
        put_u16(&mut out, o + tf::C, info.shape.c);
        out[o + tf::DTYPE] = info.dtype as u8;
        out[o + tf::LEVELS] = info.levels;
        put_u32(&mut out, o + tf::ARENA_OFFSET, plan.tensor_offsets[t]);
        put_u32(&mut out, o + tf::SCALE, info.scale.to_bits());
    }

    // Layer table and data.
    let mut spiking_model = false;
    for (i, (l, g)) in def.layers.iter().zip(&geoms).enumerate() {
        let o = layer_table + i * LAYER_RECORD_LEN;
        let mut offs = [NONE; lf::ARRAY_COUNT];
        write_arrays(&mut out, i, l, g, &mut offs)?;
        let mut flags = 0u8;
        if l.bias.is_some() {
            flags |= LAYER_FLAG_BIAS;
        }
        if l.spiking.is_some() {
            flags |= LAYER_FLAG_SPIKING;
            spiking_model = true;
        }
        if l.raw_output {
            flags |= LAYER_FLAG_RAW_OUTPUT;
        }
        out[o + lf::KIND] = l.kind as u8;
        out[o + lf::FLAGS] = flags;
        out[o + lf::WEIGHT_BITS] = l.weight_bits;
        out[o + lf::ALIGN] = l.align as u8;
        put_u16(&mut out, o + lf::INPUT, l.input);
        put_u16(&mut out, o + lf::INPUT2, l.input2.unwrap_or(NO_TENSOR));
        let w = l.window;
        out[o + lf::WINDOW..o + lf::WINDOW + 6]
            .copy_from_slice(&[w.kh, w.kw, w.sh, w.sw, w.ph, w.pw]);
        put_u16(&mut out, o + lf::GROUPS, l.groups);
        put_u16(&mut out, o + lf::TIMESTEPS, l.timesteps);
        out[o + lf::MEMBRANE_SHIFT] = l.spiking.as_ref().map_or(0, |s| s.shift);
        out[o + lf::IN_PLACE_ROWS] = plan.in_place[i];
        out[o + lf::INPUT_DENSITY] = if l.kind.has_weights() {
            l.input_density
        } else {
            0
        };
        put_u32(&mut out, o + lf::OFFSET, l.offset as u32);
        put_u16(&mut out, o + lf::ADD_WEIGHTS, l.add_weights[0] as u16);
        put_u16(&mut out, o + lf::ADD_WEIGHTS + 2, l.add_weights[1] as u16);
        for (k, off) in offs.iter().enumerate() {
            put_u32(&mut out, o + lf::array(k), *off);
        }
        put_u32(&mut out, o + lf::SCRATCH_BYTES, scratch[i]);
        put_u32(&mut out, o + lf::SCRATCH_OFFSET, plan.scratch_offsets[i]);
    }
    if out.len() > u32::MAX as usize {
        return Err(WriteError::TooLarge);
    }

    // Header last: it carries the payload length and both CRCs.
    let peak_scratch = scratch.iter().copied().max().unwrap_or(0);
    let payload_len = (out.len() - HEADER_LEN) as u32;
    let payload_crc = crc32(&out[HEADER_LEN..]);
    out[hf::MAGIC..hf::MAGIC + MAGIC.len()].copy_from_slice(&MAGIC);
    put_u16(&mut out, hf::VERSION, VERSION);
    put_u16(&mut out, hf::HEADER_LEN, HEADER_LEN as u16);
    put_u32(&mut out, hf::PRODUCER, producer_version());
    put_u32(
        &mut out,
        hf::FLAGS,
        if spiking_model {
            HEADER_FLAG_SPIKING
        } else {
            0
        },
    );
    put_u32(&mut out, hf::PAYLOAD_LEN, payload_len);
    put_u32(&mut out, hf::PAYLOAD_CRC, payload_crc);
    put_u32(&mut out, hf::ARENA_BYTES, plan.arena_bytes as u32);
    put_u16(&mut out, hf::TENSORS, n_tensors as u16);
    put_u16(&mut out, hf::LAYERS, layers as u16);
    put_u32(&mut out, hf::TENSOR_TABLE, HEADER_LEN as u32);
    put_u32(&mut out, hf::LAYER_TABLE, layer_table as u32);
    put_u32(&mut out, hf::DATA, data_start as u32);
    put_u32(&mut out, hf::PEAK_LIVE, plan.peak_live_bytes as u32);
    put_u32(&mut out, hf::PEAK_SCRATCH, peak_scratch);
    let header_crc = crc32(&out[..hf::CRC]);
    put_u32(&mut out, hf::CRC, header_crc);

    ModelFile::parse(&out).map_err(WriteError::Invalid)?;
    Ok(out)
}

/// Append layer `i`'s arrays to `out` and record their offsets in `offs` (weights, bias,
/// multipliers, shifts, thresholds, initial potentials).
fn write_arrays(
    out: &mut Vec<u8>,
    i: usize,
    l: &LayerDef,
    g: &Geometry,
    offs: &mut [u32; lf::ARRAY_COUNT],
) -> Result<(), WriteError> {
    let c = g.channels();
    fn align4(out: &mut Vec<u8>) -> u32 {
        out.resize(out.len().next_multiple_of(4), 0);
        out.len() as u32
    }
    fn put_i32s(out: &mut Vec<u8>, v: &[i32]) -> u32 {
        let at = align4(out);
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
        at
    }
    if l.kind.has_weights() {
        let n = g.weight_count() as usize;
        check_len(i, "weights", l.weights.len(), n)?;
        let len = pack::packed_len(n, l.weight_bits).ok_or(WriteError::TooLarge)?;
        let at = out.len();
        out.resize(at + len, 0);
        pack::pack(&l.weights, l.weight_bits, &mut out[at..])
            .map_err(|error| WriteError::Pack { layer: i, error })?;
        offs[lf::WEIGHTS] = at as u32;
    } else {
        check_len(i, "weights", l.weights.len(), 0)?;
    }
    if let Some(bias) = &l.bias {
        check_len(i, "bias", bias.len(), c)?;
        offs[lf::BIAS] = put_i32s(out, bias);
    }
    if !l.requant.is_empty() {
        check_len(i, "requant", l.requant.len(), c)?;
        let m: Vec<i32> = l.requant.iter().map(|r| r.multiplier).collect();
        offs[lf::MULTIPLIERS] = put_i32s(out, &m);
    }
    if let Some(s) = &l.spiking {
        check_len(i, "threshold", s.threshold.len(), c)?;
        check_len(i, "v0", s.v0.len(), c)?;
        offs[lf::THRESHOLDS] = put_i32s(out, &s.threshold);
        offs[lf::V0] = put_i32s(out, &s.v0);
    }
    if !l.requant.is_empty() {
        offs[lf::SHIFTS] = out.len() as u32;
        out.extend(l.requant.iter().map(|r| r.shift as u8));
    }
    if out.len() > u32::MAX as usize {
        return Err(WriteError::TooLarge);
    }
    Ok(())
}

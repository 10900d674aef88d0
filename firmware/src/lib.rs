//! bitspike-rt: the `no_std`, allocation-free runtime that executes bitspike models.
//!
//! ```no_run
//! # fn demo(model_bytes: &[u8], input: &[u8]) -> Result<usize, bitspike_rt::Error> {
//! use bitspike_rt::Model;
//! let model = Model::load(model_bytes)?; // validates everything once
//! let mut arena = [0u8; 4096]; // the caller owns the memory; `model.arena_bytes()` says how much
//! let mut interp = model.bind(&mut arena)?; // a too-small arena is refused here
//! let mut logits = [0i32; 10];
//! interp.run(input, &mut logits)?; // fails only on wrong slice lengths, checked first
//! Ok(bitspike_rt::argmax(&logits))
//! # }
//! ```
//!
//! The host's integer executor is this crate compiled for the host (docs/design.md, golden rule):
//! a model and an input give the same output on the host and on every MCU target.
//!
//! Invariants: after [`Model::load`] succeeds, [`Interpreter::run`] cannot fail except for the
//! caller's slice lengths and input codes above the input levels, which it checks before
//! touching anything; nothing on the inference path
//! allocates, panics or loops without a bound.
#![no_std]

pub mod kernels;
pub mod ops;
pub mod scores;

use core::fmt;

#[cfg(feature = "counters")]
use bitspike_core::format::MAX_LAYERS;
use bitspike_core::format::{FormatError, ModelFile, TensorInfo, NONE};
use bitspike_core::layer::{Align, Dtype, Geometry, LayerKind};

pub use bitspike_core;
use bitspike_core::band;
use bitspike_core::kernel::{self, Choice, Isa, Kernel};
use kernels::{
    gather, narrow, optimized, packed, packed_dense, packed_depthwise, pairs, pool, reference,
    scatter, Stage, Weights,
};

pub use ops::{LayerOps, Ops};

/// The instruction set this build's kernels use: [`Isa::Dsp`] on Armv7E-M (Cortex-M4, M7),
/// [`Isa::Portable`] elsewhere.
pub const ISA: Isa = if cfg!(bitspike_dsp) {
    Isa::Dsp
} else {
    Isa::Portable
};

/// A feature of a valid model file that this runtime does not execute yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Unsupported {
    /// A spiking layer whose input is aligned by replication or truncation: the runtime
    /// executes averaging alignment (the default: docs/design.md); the other two exist in the host's
    /// simulator for the ablation.
    Alignment,
    /// A layer that does not spike but has more than one timestep.
    Timesteps,
}

/// Why the runtime refused a model, an arena or a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The model file is invalid.
    Format(FormatError),
    /// Layer `layer` uses a feature this runtime does not execute.
    Unsupported {
        /// Layer index.
        layer: u16,
        /// What it needs.
        feature: Unsupported,
    },
    /// The arena is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes the model needs.
        needed: u32,
        /// Bytes given.
        given: u32,
    },
    /// The input slice does not have the model's input length.
    InputLength {
        /// Elements the model takes.
        expected: u32,
        /// Elements given.
        given: u32,
    },
    /// An input code above the model's input level count (the arithmetic bounds checked at load
    /// assume codes `0..=levels`).
    InputCode {
        /// Index of the first such code.
        index: u32,
        /// Its value.
        value: u8,
        /// The model's input level count.
        levels: u8,
    },
    /// The output slice does not have the model's output length.
    OutputLength {
        /// Elements the model produces.
        expected: u32,
        /// Elements given.
        given: u32,
    },
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

fn clamp_u32(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Format(e) => e.fmt(f),
            Self::Unsupported { layer, feature } => match feature {
                Unsupported::Alignment => write!(
                    f,
                    "layer {layer} aligns its input by replication or truncation; this runtime \
                     executes averaging alignment only"
                ),
                Unsupported::Timesteps => write!(
                    f,
                    "layer {layer} has several timesteps but does not spike, which this runtime \
                     does not execute"
                ),
            },
            Self::ArenaTooSmall { needed, given } => {
                write!(
                    f,
                    "arena of {given} bytes is too small: the model needs {needed}"
                )
            }
            Self::InputLength { expected, given } => {
                write!(f, "input has {given} elements, the model takes {expected}")
            }
            Self::InputCode {
                index,
                value,
                levels,
            } => write!(
                f,
                "input code {value} at index {index} is above the model's input levels 0..={levels}"
            ),
            Self::OutputLength { expected, given } => {
                write!(
                    f,
                    "output has {given} elements, the model produces {expected}"
                )
            }
        }
    }
}

impl core::error::Error for Error {}

/// A validated model, borrowed from its bytes (in flash on a device).
#[derive(Clone, Copy, Debug)]
pub struct Model<'m> {
    file: ModelFile<'m>,
}

impl<'m> Model<'m> {
    /// Validate `bytes` as a model this runtime can execute. Everything is checked here, once.
    pub fn load(bytes: &'m [u8]) -> Result<Self, Error> {
        let file = ModelFile::parse(bytes)?;
        for i in 0..file.layer_count() {
            let l = file.layer(i);
            let feature = match l.spiking {
                Some(_) if l.align != Align::Average => Unsupported::Alignment,
                None if l.timesteps != 1 => Unsupported::Timesteps,
                _ => continue,
            };
            return Err(Error::Unsupported {
                layer: i as u16,
                feature,
            });
        }
        Ok(Self { file })
    }

    /// The parsed file, for reports.
    pub const fn file(&self) -> &ModelFile<'m> {
        &self.file
    }

    /// The kernel layer `i` runs on in this build, and why (see [`bitspike_core::kernel`]).
    pub fn kernel(&self, i: usize) -> Choice {
        let l = self.file.layer(i);
        let g = self.file.geometry_of(&l, i);
        choice(&self.file, &l, &g)
    }

    /// Bytes of arena the model needs.
    pub const fn arena_bytes(&self) -> usize {
        self.file.header().arena_bytes as usize
    }

    /// Number of input codes the model takes.
    pub fn input_len(&self) -> usize {
        self.file.input().shape.len()
    }

    /// Number of output elements the model produces.
    pub fn output_len(&self) -> usize {
        self.file.output().shape.len()
    }

    /// The real value of one output code, as the model file records it (informative: the
    /// integer outputs never use it; [`scores`] does).
    pub fn output_scale(&self) -> f32 {
        self.file.output().scale
    }

    /// Bind the model to a caller-provided arena. Refuses an arena smaller than the header says.
    pub fn bind<'a>(&self, arena: &'a mut [u8]) -> Result<Interpreter<'m, 'a>, Error> {
        if arena.len() < self.arena_bytes() {
            return Err(Error::ArenaTooSmall {
                needed: self.file.header().arena_bytes,
                given: clamp_u32(arena.len()),
            });
        }
        Ok(Interpreter {
            model: *self,
            arena,
            #[cfg(feature = "counters")]
            counts: heapless::Vec::new(),
        })
    }
}

/// A model bound to its arena, ready to run.
pub struct Interpreter<'m, 'a> {
    model: Model<'m>,
    arena: &'a mut [u8],
    #[cfg(feature = "counters")]
    /// Per layer, what the last run counted (layers that ran, in order).
    counts: heapless::Vec<LayerOps, MAX_LAYERS>,
}

/// Where a tensor (or rows of one) lives.
#[derive(Clone, Copy)]
enum Loc {
    /// Bytes `offset .. offset + len` of the caller's input buffer.
    Input(usize, usize),
    /// Arena bytes `offset .. offset + len`.
    Arena(usize, usize),
}

impl Loc {
    /// `len` bytes from `offset` on inside this range.
    fn part(self, offset: usize, len: usize) -> Self {
        match self {
            Self::Input(o, _) => Self::Input(o.saturating_add(offset), len),
            Self::Arena(o, _) => Self::Arena(o.saturating_add(offset), len),
        }
    }
}

fn loc(t: &TensorInfo) -> Loc {
    if t.arena_offset == NONE {
        Loc::Input(0, t.bytes())
    } else {
        Loc::Arena(t.arena_offset as usize, t.bytes())
    }
}

/// The views one layer works on: its inputs (read-only), its output and its scratch.
struct Views<'x> {
    a: &'x [u8],
    b: &'x [u8],
    out: &'x mut [u8],
    scratch: &'x mut [u8],
}

/// Split the arena into the output and scratch ranges (mutable) and the two input views
/// (immutable). The loader has checked that live tensors and scratch do not overlap; a view that
/// would overlap is `None`. An empty scratch range gives an empty slice.
fn views<'x>(
    arena: &'x mut [u8],
    input: &'x [u8],
    a: Loc,
    b: Option<Loc>,
    out: (usize, usize),
    scratch: (usize, usize),
) -> Option<Views<'x>> {
    // The two mutable ranges in address order; an empty scratch sits right after the output.
    let scratch = if scratch.1 == 0 {
        (out.0.checked_add(out.1)?, 0)
    } else {
        scratch
    };
    let out_first = out.0 <= scratch.0;
    let (first, second) = if out_first {
        (out, scratch)
    } else {
        (scratch, out)
    };
    let first_end = first.0.checked_add(first.1)?;
    let second_end = second.0.checked_add(second.1)?;
    let (head, rest) = arena.split_at_mut_checked(first.0)?;
    let (m1, rest) = rest.split_at_mut_checked(first.1)?;
    let (mid, rest) = rest.split_at_mut_checked(second.0.checked_sub(first_end)?)?;
    let (m2, tail) = rest.split_at_mut_checked(second.1)?;
    let (head, mid, tail): (&'x [u8], &'x [u8], &'x [u8]) = (head, mid, tail);
    let view = |l: Loc| -> Option<&'x [u8]> {
        match l {
            Loc::Input(o, n) => input.get(o..o.checked_add(n)?),
            Loc::Arena(o, n) if o + n <= first.0 => head.get(o..o + n),
            Loc::Arena(o, n) if o >= first_end && o + n <= second.0 => {
                mid.get(o - first_end..o - first_end + n)
            }
            Loc::Arena(o, n) if o >= second_end => tail.get(o - second_end..o - second_end + n),
            Loc::Arena(..) => None,
        }
    };
    let a = view(a)?;
    let b = match b {
        Some(b) => view(b)?,
        None => &[],
    };
    let (out, scratch) = if out_first { (m1, m2) } else { (m2, m1) };
    Some(Views { a, b, out, scratch })
}

impl Interpreter<'_, '_> {
    /// The model this interpreter runs.
    pub fn model(&self) -> &Model<'_> {
        &self.model
    }

    /// Run one inference: `input` holds the input codes (HWC, each at most the input tensor's
    /// level count), `output` receives the network output (codes widened to i32, or the raw
    /// accumulators of a raw-output last layer).
    ///
    /// Fails only when a slice length differs from the model's or an input code is above the
    /// input levels, both checked before anything runs.
    pub fn run(&mut self, input: &[u8], output: &mut [i32]) -> Result<(), Error> {
        self.run_observed(input, output, |_| {})
    }

    /// [`run`](Self::run), calling `after_layer(i)` after each layer `i` (for per-layer
    /// profiles: a board calls a marker function the instruction counter watches).
    pub fn run_observed(
        &mut self,
        input: &[u8],
        output: &mut [i32],
        mut after_layer: impl FnMut(usize),
    ) -> Result<(), Error> {
        self.run_traced(input, output, |i, _| after_layer(i))
    }

    /// [`run`](Self::run), calling `after_layer(i, tensor)` after each layer `i` with the bytes
    /// of the tensor it produced (codes, or little-endian i32 accumulators on a raw output), as
    /// they are before any later layer runs (an in-place layer overwrites its input).
    pub fn run_traced(
        &mut self,
        input: &[u8],
        output: &mut [i32],
        mut after_layer: impl FnMut(usize, &[u8]),
    ) -> Result<(), Error> {
        let file = *self.model.file();
        if input.len() != self.model.input_len() {
            return Err(Error::InputLength {
                expected: clamp_u32(self.model.input_len()),
                given: clamp_u32(input.len()),
            });
        }
        if output.len() != self.model.output_len() {
            return Err(Error::OutputLength {
                expected: clamp_u32(self.model.output_len()),
                given: clamp_u32(output.len()),
            });
        }
        let levels = file.input().levels;
        if let Some((i, &v)) = input.iter().enumerate().find(|(_, &v)| v > levels) {
            return Err(Error::InputCode {
                index: clamp_u32(i),
                value: v,
                levels,
            });
        }
        #[cfg(feature = "counters")]
        self.counts.clear();
        for i in 0..file.layer_count() {
            let counts = self.run_layer(&file, i, input);
            // The loader bounds the layer count by the capacity: the push cannot fail.
            #[cfg(feature = "counters")]
            let _ = self.counts.push(counts);
            #[cfg(not(feature = "counters"))]
            let _ = counts;
            let produced: &[u8] = match loc(&file.tensor(i + 1)) {
                Loc::Input(o, n) => input.get(o..o + n).unwrap_or(&[]),
                Loc::Arena(o, n) => self.arena.get(o..o + n).unwrap_or(&[]),
            };
            after_layer(i, produced);
        }
        // Copy the network output out.
        let out_t = file.output();
        let src: &[u8] = match loc(&out_t) {
            Loc::Input(o, n) => input.get(o..o + n).unwrap_or(&[]),
            Loc::Arena(o, n) => self.arena.get(o..o + n).unwrap_or(&[]),
        };
        match out_t.dtype {
            Dtype::Code => {
                for (o, &v) in output.iter_mut().zip(src) {
                    *o = v as i32;
                }
            }
            Dtype::Acc32 => {
                for (o, c) in output.iter_mut().zip(src.chunks_exact(4)) {
                    *o = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
        Ok(())
    }

    fn run_layer(&mut self, file: &ModelFile<'_>, i: usize, input: &[u8]) -> LayerOps {
        let mut ops = Ops::new();
        let l = file.layer(i);
        let g = file.geometry_of(&l, i);
        let out_t = file.tensor(i + 1);
        let in_a = file.tensor(l.input as usize);
        if l.kind == LayerKind::Flatten {
            return ops.counts(); // shares its input's memory: nothing to move
        }
        let in_b = (l.kind == LayerKind::Add).then(|| loc(&file.tensor(l.input2 as usize)));
        // The loader guarantees every check below; a failed one would be a loader bug, which
        // debug builds (the tests, the fuzzer) report and release builds survive by skipping.
        let Loc::Arena(oo, on) = loc(&out_t) else {
            debug_assert!(false, "layer {i}: output outside the arena");
            return ops.counts();
        };
        let scratch = if l.scratch_offset == NONE {
            (0, 0)
        } else {
            (l.scratch_offset as usize, l.scratch_bytes as usize)
        };
        let stage = if let Some(s) = l.spiking {
            Stage::Fire {
                threshold: s.threshold,
                v0: s.v0,
                bias: l.bias,
                shift: s.shift,
                timesteps: l.timesteps,
            }
        } else if l.raw_output() {
            Stage::Raw
        } else {
            Stage::Requantize {
                multipliers: l.multipliers,
                shifts: l.shifts,
                offset: l.offset,
                levels: out_t.levels,
            }
        };
        let weights = Weights {
            packed: l.weights,
            bits: l.weight_bits,
            // A spiking layer's bias enters the membrane, in its units (the `Fire` stage).
            bias: if l.spiking.is_some() { None } else { l.bias },
        };
        let layer = Layer {
            kind: l.kind,
            kernel: choice(file, &l, &g).kernel,
            weights,
            stage,
            levels: in_a.levels,
            add_weights: l.add_weights,
        };
        #[cfg(feature = "counters")]
        let spikes = l.kind.has_weights() && spike_input(file, l.input as usize);
        #[cfg(feature = "counters")]
        let mut events = Ops::new();
        // One band of every output row, or the in-place layer's bands top to bottom: each band
        // reads input rows its output does not overlap (the loader checked the placement).
        let rows = match l.in_place_rows {
            0 => g.output.h,
            n => n as u16,
        };
        let (in_row, out_row) = (in_a.row_bytes(), out_t.row_bytes());
        let mut y0 = 0u16;
        while y0 < g.output.h {
            let y1 = y0.saturating_add(rows).min(g.output.h);
            let (bg, first, end) = if l.in_place_rows == 0 {
                (g, 0, g.input.h as usize)
            } else if let Some(b) = band::band(&g, y0, y1) {
                (b.geometry, b.input_rows.0 as usize, b.input_rows.1 as usize)
            } else {
                debug_assert!(false, "layer {i}: in place but not row-local");
                break;
            };
            let ins = (first * in_row, (end - first) * in_row);
            let out = (oo + y0 as usize * out_row, (y1 - y0) as usize * out_row);
            let (a, b) = (
                loc(&in_a).part(ins.0, ins.1),
                in_b.map(|b| b.part(ins.0, ins.1)),
            );
            let Some(v) = views(self.arena, input, a, b, out, scratch) else {
                debug_assert!(false, "layer {i}: overlapping or out-of-range buffers");
                break;
            };
            // Checking the lengths here keeps every kernel's indexing in bounds.
            if v.a.len() != bg.input.len()
                || v.out.len() != bg.output.len() * layer.stage.elem_size()
                || (in_b.is_some() && v.b.len() != bg.input.len())
                || y1 == g.output.h && out.0 + out.1 != oo + on
            {
                debug_assert!(false, "layer {i}: buffer lengths differ from the geometry");
                break;
            }
            // On spike counts, a weighted layer's work is synaptic events: each spike adds its
            // weight once per synapse (docs/design.md, event-driven), however the kernel got it.
            #[cfg(feature = "counters")]
            if spikes {
                events.accumulate(ops::synaptic_events(&bg, v.a));
            }
            compute(&layer, &bg, v, &mut ops);
            y0 = y1;
        }
        #[cfg(feature = "counters")]
        if spikes {
            return events.counts();
        }
        ops.counts()
    }

    /// Operations each layer executed in the last [`run`](Self::run) (one entry per layer, in
    /// order).
    #[cfg(feature = "counters")]
    pub fn layer_ops(&self) -> &[LayerOps] {
        &self.counts
    }

    /// Operations of the last run, summed over layers.
    #[cfg(feature = "counters")]
    pub fn total_ops(&self) -> LayerOps {
        self.layer_ops()
            .iter()
            .fold(LayerOps::default(), |a, b| LayerOps {
                macs: a.macs + b.macs,
                accumulates: a.accumulates + b.accumulates,
            })
    }
}

/// What a layer's computation needs besides its geometry and buffers.
struct Layer<'l> {
    kind: LayerKind,
    kernel: Kernel,
    weights: Weights<'l>,
    stage: Stage<'l>,
    /// The (first) input's levels.
    levels: u8,
    add_weights: [i16; 2],
}

/// Run `layer` over geometry `g` (the whole layer, or a band of its output rows) on the views
/// `v`. A fast kernel that finds its preconditions unmet (it checks them again) writes nothing
/// and returns false: the reference kernel then runs the layer.
fn compute(layer: &Layer<'_>, g: &Geometry, v: Views<'_>, ops: &mut Ops) {
    let Views {
        a,
        b,
        out: dst,
        scratch: sc,
    } = v;
    let (w, st) = (&layer.weights, &layer.stage);
    let levels = layer.levels;
    // `choose` gives the gather and packed kernels only to DSP builds and the pairs kernel only
    // to the others: the guards on the constant `ISA` keep each build's code to the kernels it
    // can choose.
    let dsp = matches!(ISA, Isa::Dsp);
    let done = match (layer.kind, layer.kernel) {
        (LayerKind::Conv2d, Kernel::Gather) if dsp => gather::conv2d(g, w, st, a, dst, sc, ops),
        (LayerKind::Conv2d, Kernel::Packed) if dsp => {
            packed::conv2d(g, w, st, a, levels, dst, sc, ops)
                || gather::conv2d(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Conv2d, Kernel::Narrow) if dsp => {
            narrow::conv2d(g, w, st, a, dst, sc, ops) || gather::conv2d(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Conv2d, Kernel::Row) => optimized::conv2d(g, w, st, a, dst, sc, ops),
        (LayerKind::Conv2d, Kernel::Pairs) if !dsp => {
            pairs::conv2d(g, w, st, a, levels, dst, sc, ops)
                || optimized::conv2d(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Conv2d, Kernel::Events) => {
            scatter::conv2d(g, w, st, a, dst, sc, ops)
                || optimized::conv2d_events(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Dense, Kernel::Row) => optimized::dense(g, w, st, a, dst, sc, ops),
        (LayerKind::Dense, Kernel::PackedDense) => {
            packed_dense::dense(g, w, st, a, dst, sc, ops)
                || optimized::dense(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Dense, Kernel::Events) => {
            scatter::dense(g, w, st, a, dst, sc, ops)
                || optimized::dense_events(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Conv2d, Kernel::Depthwise) => optimized::depthwise(g, w, st, a, dst, sc, ops),
        (LayerKind::Conv2d, Kernel::PackedDepthwise) if dsp => {
            packed_depthwise::conv2d(g, w, st, a, levels, dst, sc, ops)
                || optimized::depthwise(g, w, st, a, dst, sc, ops)
        }
        (LayerKind::Add, Kernel::Elementwise) => {
            optimized::add(g, layer.add_weights, w.bias, st, a, b, dst);
            true
        }
        (LayerKind::MaxPool, Kernel::Pool) => {
            pool::max_pool(g, a, dst);
            true
        }
        (LayerKind::AvgPool, Kernel::Pool) => {
            pool::avg_pool(g, st, a, levels, dst);
            true
        }
        _ => false,
    };
    if !done {
        match layer.kind {
            LayerKind::Conv2d => reference::conv2d(g, w, st, a, dst, ops),
            LayerKind::Dense => reference::dense(g, w, st, a, dst, ops),
            LayerKind::AvgPool => reference::avg_pool(g, st, a, dst),
            LayerKind::MaxPool => reference::max_pool(g, a, dst),
            LayerKind::GlobalAvgPool => reference::global_avg_pool(g, st, a, dst),
            LayerKind::Add => reference::add(g, layer.add_weights, w.bias, st, a, b, dst),
            LayerKind::Flatten => {}
        }
    }
}

/// Whether tensor `t` carries spike counts: the output of a spiking layer, or of pooling or
/// flattening one. (Residual adds do not spike here: a spiking model has none.)
#[cfg(any(feature = "counters", feature = "event-driven"))]
fn spike_input(file: &ModelFile<'_>, mut t: usize) -> bool {
    // Walk pass-through layers back to a producer; inputs are earlier tensors, so this ends.
    for _ in 0..file.layer_count() {
        if t == 0 {
            return false;
        }
        let l = file.layer(t - 1);
        match l.kind {
            LayerKind::Conv2d | LayerKind::Dense | LayerKind::Add => return l.spiking.is_some(),
            _ => t = l.input as usize,
        }
    }
    false
}

/// The kernel layer `l` (geometry `g`) of `file` runs on in this build.
#[inline]
fn choice(file: &ModelFile<'_>, l: &bitspike_core::format::LayerView<'_>, g: &Geometry) -> Choice {
    // Event by event where the exporter measured an input sparse enough for this target; the
    // `event-driven` feature forces it on every spiking layer that reads spike counts.
    #[cfg(feature = "event-driven")]
    let forced = l.spiking.is_some() && spike_input(file, l.input as usize);
    #[cfg(not(feature = "event-driven"))]
    let (forced, _) = (false, file);
    let events = forced || kernel::events_pay(ISA, l.input_density);
    kernel::choose(
        g,
        l.weight_bits,
        file.tensor(l.input as usize).levels,
        l.scratch_bytes,
        ISA,
        cfg!(feature = "reference-kernels"),
        events,
    )
}

/// Index of the largest element (the first on ties); 0 for an empty slice.
pub fn argmax(values: &[i32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values.get(best).copied().unwrap_or(i32::MIN) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[3, 7, 7, -1]), 1);
        assert_eq!(argmax(&[i32::MIN, i32::MIN]), 0);
        assert_eq!(argmax(&[-5, -2, -9]), 1);
    }

    #[test]
    fn views_split_around_the_output() {
        let mut arena = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let input = [42u8; 3];
        let v = views(
            &mut arena,
            &input,
            Loc::Arena(0, 2),
            Some(Loc::Arena(7, 3)),
            (3, 4),
            (0, 0),
        )
        .unwrap();
        assert_eq!(
            (v.a, v.b, &*v.out, &*v.scratch),
            (
                &[0u8, 1][..],
                &[7u8, 8, 9][..],
                &[3u8, 4, 5, 6][..],
                &[][..]
            )
        );
        let v = views(&mut arena, &input, Loc::Input(0, 3), None, (0, 10), (0, 0)).unwrap();
        assert_eq!((v.a, v.b), (&input[..], &[][..]));
        // Scratch before the output, an input between them and one after both.
        let v = views(
            &mut arena,
            &input,
            Loc::Arena(3, 2),
            Some(Loc::Arena(8, 2)),
            (5, 3),
            (0, 3),
        )
        .unwrap();
        assert_eq!(
            (v.a, v.b, &*v.out, &*v.scratch),
            (
                &[3u8, 4][..],
                &[8u8, 9][..],
                &[5u8, 6, 7][..],
                &[0u8, 1, 2][..]
            )
        );
        // Scratch after the output, an input before both.
        let v = views(&mut arena, &input, Loc::Arena(0, 1), None, (1, 2), (6, 4)).unwrap();
        assert_eq!(
            (v.a, &*v.out, &*v.scratch),
            (&[0u8][..], &[1u8, 2][..], &[6u8, 7, 8, 9][..])
        );
        // An input overlapping the output or the scratch is refused, not aliased.
        assert!(views(&mut arena, &input, Loc::Arena(2, 2), None, (3, 4), (0, 0)).is_none());
        assert!(views(&mut arena, &input, Loc::Arena(6, 2), None, (3, 4), (0, 0)).is_none());
        assert!(views(&mut arena, &input, Loc::Arena(0, 2), None, (3, 2), (1, 2)).is_none());
        // Output and scratch overlapping each other are refused.
        assert!(views(&mut arena, &input, Loc::Input(0, 3), None, (3, 4), (5, 2)).is_none());
        assert!(views(&mut arena, &input, Loc::Input(0, 3), None, (5, 2), (3, 4)).is_none());
        // Ranges past the arena are refused.
        assert!(views(&mut arena, &input, Loc::Input(0, 3), None, (8, 4), (0, 0)).is_none());
        assert!(views(&mut arena, &input, Loc::Arena(8, 4), None, (0, 2), (0, 0)).is_none());
        assert!(views(&mut arena, &input, Loc::Input(0, 3), None, (0, 2), (8, 4)).is_none());
    }

    #[test]
    fn stages_store_codes_and_raw_accumulators() {
        let m = 1i32 << 30; // 0.5
        let mult = m.to_le_bytes();
        let stage = Stage::Requantize {
            multipliers: bitspike_core::format::I32s::new(&mult),
            shifts: &[1],
            offset: 2,
            levels: 15,
        };
        let mut out = [0u8; 2];
        stage.store(&mut out, 1, 0, 20); // 20 * 0.5 / 2 + 2 = 7
        assert_eq!(out, [0, 7]);
        stage.store(&mut out, 0, 0, 1000); // clamps to 15
        assert_eq!(out, [15, 7]);
        stage.store(&mut out, 5, 0, 1); // past the end: ignored, no panic
        let mut raw = [0u8; 8];
        Stage::Raw.store(&mut raw, 1, 0, -2);
        assert_eq!(raw, [0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(Stage::Raw.elem_size(), 4);
    }
}

//! Every kernel set on every layer of a model, against the oracle.
//!
//! The runtime picks one kernel per layer for the target it was built for; this module runs
//! each implementation the runtime has on the same layer instead (the reference kernels, the
//! row kernels, the gather, narrow and packed convolutions with the host's portable model of
//! their DSP lanes, the pairs kernel of the cores without DSP, the depthwise kernels, the packed
//! dense kernel, the event-driven row and scatter kernels, and the pool and add kernels), fed
//! the layer's input from the oracle's trace, and compares every output that a kernel produces
//! with the oracle's tensor, bit for bit. A kernel may decline a layer (outside its
//! preconditions, or too little scratch) but must then write nothing; the MACs every
//! non-event kernel counts equal the reference's.
//!
//! Given the scratch the model file gives each layer, the kernel the runtime would choose for it
//! on either instruction set ([`bitspike_core::kernel::choose`]) must also run with that scratch
//! rather than decline: a decline falls back to the reference kernel silently, several times
//! slower (a convolution whose fan-in outgrew a fixed buffer once cost 9x its instructions).
//!
//! The fuzz target `generated` (firmware/fuzz) and the property tests of `tests/tests` call
//! [`check_model`] on the models of [`crate::generate`].

use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::format::I32s;
use bitspike_core::kernel::{choose, scratch_bytes, Isa, Kernel as Choice};
use bitspike_core::layer::{Geometry, LayerKind};
use bitspike_core::pack::{pack, packed_len};
use bitspike_rt::kernels::{
    optimized, packed, packed_depthwise, pairs, pool, reference, Depthwise, DepthwiseChannels,
    DepthwiseWords, Events, Gather, Narrow, PackedDense, Reference, Row, Scatter, Stage,
    WeightedKernel, Weights,
};
use bitspike_rt::Ops;

use crate::oracle::{Tensor, Trace};

/// Little-endian bytes of i32 values (how the model file stores them).
fn le(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The bytes a tensor holds in the arena: codes, or raw i32 accumulators.
pub fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    if t.raw {
        le(&t.values)
    } else {
        t.values.iter().map(|&v| v as u8).collect()
    }
}

/// A layer's arrays as the model file holds them.
struct Arrays {
    packed: Vec<u8>,
    bias: Option<Vec<u8>>,
    mult: Vec<u8>,
    shifts: Vec<u8>,
    theta: Vec<u8>,
    v0: Vec<u8>,
}

impl Arrays {
    fn of(l: &LayerDef) -> Self {
        let mut packed = vec![0u8; packed_len(l.weights.len(), l.weight_bits).unwrap_or(0)];
        if !l.weights.is_empty() && pack(&l.weights, l.weight_bits, &mut packed).is_err() {
            packed.clear();
        }
        let (theta, v0) = l
            .spiking
            .as_ref()
            .map_or((Vec::new(), Vec::new()), |s| (le(&s.threshold), le(&s.v0)));
        Self {
            packed,
            bias: l.bias.as_deref().map(le),
            mult: le(&l.requant.iter().map(|r| r.multiplier).collect::<Vec<_>>()),
            shifts: l.requant.iter().map(|r| r.shift as u8).collect(),
            theta,
            v0,
        }
    }

    fn weights(&self, l: &LayerDef) -> Weights<'_> {
        Weights {
            packed: &self.packed,
            bits: l.weight_bits,
            // A spiking layer's bias enters the membrane (the Fire stage).
            bias: if l.spiking.is_some() {
                None
            } else {
                self.bias.as_deref().map(I32s::new)
            },
        }
    }

    fn stage(&self, l: &LayerDef) -> Stage<'_> {
        if let Some(s) = &l.spiking {
            Stage::Fire {
                threshold: I32s::new(&self.theta),
                v0: I32s::new(&self.v0),
                bias: self.bias.as_deref().map(I32s::new),
                shift: s.shift,
                timesteps: l.timesteps,
            }
        } else if l.raw_output {
            Stage::Raw
        } else {
            Stage::Requantize {
                multipliers: I32s::new(&self.mult),
                shifts: &self.shifts,
                offset: l.offset,
                levels: l.levels,
            }
        }
    }
}

/// A weighted kernel bound to its layer: geometry, weights, stage, input, output, scratch,
/// counters; false when it declined.
type Kernel<'k> =
    dyn Fn(&Geometry, &Weights<'_>, &Stage<'_>, &[u8], &mut [u8], &mut [u8], &mut Ops) -> bool + 'k;

/// What one layer's kernels are given and must produce.
struct Layer<'a> {
    index: usize,
    def: &'a LayerDef,
    g: Geometry,
    input: Vec<u8>,
    want: Vec<u8>,
    /// Alignment of the scratch (0..=3 bytes past a word boundary).
    offset: usize,
}

impl Layer<'_> {
    /// Run `kernel` with `need` bytes of scratch; an error names the kernel when it wrote and
    /// declined, or produced anything but the oracle's output (or, `counts` set, another MAC
    /// count than `macs`).
    fn check(
        &self,
        name: &str,
        need: usize,
        kernel: &Kernel<'_>,
        macs: Option<u64>,
    ) -> Result<bool, String> {
        let a = Arrays::of(self.def);
        let (w, st) = (a.weights(self.def), a.stage(self.def));
        let mut buf = vec![0xC3u8; need + 3];
        let scratch = &mut buf[self.offset..self.offset + need];
        let mut out = vec![0x5Au8; self.want.len()];
        let mut ops = Ops::new();
        let ran = kernel(&self.g, &w, &st, &self.input, &mut out, scratch, &mut ops);
        let at = || format!("layer {} ({:?}, {:?})", self.index, self.def.kind, self.g);
        if !ran {
            if out.iter().any(|&b| b != 0x5A) {
                return Err(format!("{name} declined {} after writing", at()));
            }
            return Ok(false);
        }
        if out != self.want {
            let first = out.iter().zip(&self.want).position(|(x, y)| x != y);
            return Err(format!(
                "{name} differs from the oracle on {} (first difference at byte {first:?})",
                at()
            ));
        }
        if let Some(m) = macs {
            let got = ops.counts().macs;
            if got != m {
                return Err(format!(
                    "{name} counted {got} MACs, the reference {m}, on {}",
                    at()
                ));
            }
        }
        Ok(true)
    }

    /// `K` with `given` bytes of scratch: whether it ran (and, if so, agreed with the oracle).
    fn run_with<K: WeightedKernel>(&self, given: usize) -> Result<bool, String> {
        self.check(K::NAME, given, &by_kind::<K>, None)
    }

    /// `K` with the scratch it asks for; with `macs`, it must count that many.
    fn weighted<K: WeightedKernel>(&self, macs: Option<u64>) -> Result<bool, String> {
        let need = K::scratch(&self.g, self.def.weight_bits) as usize;
        self.check(K::NAME, need, &by_kind::<K>, macs)
    }
}

/// `K`'s convolution or dense kernel, by the layer's kind.
fn by_kind<K: WeightedKernel>(
    g: &Geometry,
    w: &Weights<'_>,
    st: &Stage<'_>,
    i: &[u8],
    o: &mut [u8],
    s: &mut [u8],
    ops: &mut Ops,
) -> bool {
    match g.kind {
        LayerKind::Conv2d => K::conv2d(g, w, st, i, o, s, ops),
        _ => K::dense(g, w, st, i, o, s, ops),
    }
}

/// Run every kernel the runtime has on every layer of `def`, fed from `trace` (the oracle's
/// execution of `def` on some input), and compare; with `scratch` (each layer's scratch bytes in
/// the model file written from `def`), the kernel chosen for each layer must run with it. The
/// error names the kernel and the layer.
pub fn check_model(def: &ModelDef, trace: &Trace, scratch: Option<&[u32]>) -> Result<(), String> {
    let geoms = def
        .geometries()
        .map_err(|(i, e)| format!("layer {i}: {e:?}"))?;
    for (i, (l, g)) in def.layers.iter().zip(geoms).enumerate() {
        let x = &trace.tensors[l.input as usize];
        let layer = Layer {
            index: i,
            def: l,
            g,
            input: tensor_bytes(x),
            want: tensor_bytes(&trace.tensors[i + 1]),
            offset: (i + x.values.first().copied().unwrap_or(0) as usize) % 4,
        };
        match l.kind {
            LayerKind::Conv2d | LayerKind::Dense => {
                check_weighted(&layer, x.levels)?;
                if let Some(&given) = scratch.and_then(|s| s.get(i)) {
                    for isa in [Isa::Dsp, Isa::Portable] {
                        check_chosen_runs(&layer, x.levels, given, isa)?;
                    }
                }
            }
            LayerKind::AvgPool | LayerKind::MaxPool | LayerKind::GlobalAvgPool | LayerKind::Add => {
                let b = l.input2.map(|t| tensor_bytes(&trace.tensors[t as usize]));
                check_unweighted(&layer, b.as_deref().unwrap_or(&[]), x.levels)?;
            }
            LayerKind::Flatten => {}
        }
    }
    Ok(())
}

fn check_weighted(layer: &Layer<'_>, levels: u8) -> Result<(), String> {
    let reference_ran = layer.weighted::<Reference>(None)?;
    if !reference_ran {
        return Err(format!(
            "the reference kernel declined layer {}",
            layer.index
        ));
    }
    // The reference's MAC count (every product with an in-bounds input).
    let macs = {
        let a = Arrays::of(layer.def);
        let (w, st) = (a.weights(layer.def), a.stage(layer.def));
        let mut out = vec![0u8; layer.want.len()];
        let mut ops = Ops::new();
        match layer.g.kind {
            LayerKind::Conv2d => {
                reference::conv2d(&layer.g, &w, &st, &layer.input, &mut out, &mut ops)
            }
            _ => reference::dense(&layer.g, &w, &st, &layer.input, &mut out, &mut ops),
        }
        ops.counts().macs
    };
    let m = Some(macs);
    layer.weighted::<Row>(m)?;
    layer.weighted::<Gather>(m)?;
    layer.weighted::<Narrow>(m)?;
    layer.weighted::<Depthwise>(m)?;
    layer.weighted::<DepthwiseWords>(m)?;
    layer.weighted::<DepthwiseChannels>(m)?;
    layer.weighted::<PackedDense>(m)?;
    // The event-driven kernels count synaptic events, not MACs.
    layer.weighted::<Events>(None)?;
    layer.weighted::<Scatter>(None)?;
    if layer.g.kind == LayerKind::Conv2d {
        let need = scratch_bytes(&layer.g, layer.def.weight_bits) as usize;
        layer.check("packed", need, &with_levels(packed::conv2d, levels), m)?;
        layer.check(
            "packed-depthwise",
            need,
            &with_levels(packed_depthwise::conv2d, levels),
            m,
        )?;
        layer.check("pairs", need, &with_levels(pairs::conv2d, levels), m)?;
        let tables = |g: &Geometry,
                      w: &Weights<'_>,
                      st: &Stage<'_>,
                      i: &[u8],
                      o: &mut [u8],
                      s: &mut [u8],
                      ops: &mut Ops| {
            pairs::conv2d_with(g, w, st, i, levels, o, s, ops, true)
        };
        layer.check("pairs with tables", need, &tables, m)?;
    }
    Ok(())
}

/// The kernel `choose` picks for `layer` on `isa` with `given` bytes of scratch runs with them.
fn check_chosen_runs(layer: &Layer<'_>, levels: u8, given: u32, isa: Isa) -> Result<(), String> {
    let c = choose(
        &layer.g,
        layer.def.weight_bits,
        levels,
        given,
        isa,
        false,
        false,
    );
    let n = given as usize;
    let ran = match c.kernel {
        Choice::Reference => return Ok(()),
        Choice::Row => layer.run_with::<Row>(n)?,
        Choice::Gather => layer.run_with::<Gather>(n)?,
        Choice::Narrow => layer.run_with::<Narrow>(n)?,
        Choice::Depthwise => layer.run_with::<Depthwise>(n)?,
        Choice::PackedDense => layer.run_with::<PackedDense>(n)?,
        Choice::Events => layer.run_with::<Events>(n)?,
        Choice::Packed => layer.check("packed", n, &with_levels(packed::conv2d, levels), None)?,
        Choice::Pairs => layer.check("pairs", n, &with_levels(pairs::conv2d, levels), None)?,
        Choice::PackedDepthwise => layer.check(
            "packed-depthwise",
            n,
            &with_levels(packed_depthwise::conv2d, levels),
            None,
        )?,
        Choice::Elementwise | Choice::Pool => return Ok(()),
    };
    if !ran {
        return Err(format!(
            "layer {} ({:?}): {:?} is chosen on {isa:?} with {given} bytes of scratch but declines them (a silent fallback to the reference kernel)",
            layer.index, layer.g, c.kernel
        ));
    }
    Ok(())
}

/// `f` with the input's `levels` bound: a kernel as [`Layer::check`] takes it.
fn with_levels(f: LevelsKernel, levels: u8) -> Box<Kernel<'static>> {
    Box::new(move |g, w, st, i, o, s, ops| f(g, w, st, i, levels, o, s, ops))
}

/// A convolution kernel that takes the input's levels.
type LevelsKernel =
    fn(&Geometry, &Weights<'_>, &Stage<'_>, &[u8], u8, &mut [u8], &mut [u8], &mut Ops) -> bool;

/// Pools and adds: the reference kernel and the runtime's faster one, against the oracle.
fn check_unweighted(layer: &Layer<'_>, b: &[u8], levels: u8) -> Result<(), String> {
    let a = Arrays::of(layer.def);
    let st = a.stage(layer.def);
    let (g, x) = (&layer.g, &layer.input[..]);
    let run = |name: &str, f: &dyn Fn(&mut [u8])| -> Result<(), String> {
        let mut out = vec![0x5Au8; layer.want.len()];
        f(&mut out);
        if out != layer.want {
            return Err(format!(
                "{name} differs from the oracle on layer {} ({:?})",
                layer.index, g
            ));
        }
        Ok(())
    };
    match layer.def.kind {
        LayerKind::MaxPool => {
            run("reference max pool", &|o| reference::max_pool(g, x, o))?;
            run("max pool", &|o| pool::max_pool(g, x, o))
        }
        LayerKind::AvgPool => {
            run("reference average pool", &|o| {
                reference::avg_pool(g, &st, x, o)
            })?;
            run("average pool", &|o| pool::avg_pool(g, &st, x, levels, o))
        }
        LayerKind::GlobalAvgPool => run("reference global average pool", &|o| {
            reference::global_avg_pool(g, &st, x, o)
        }),
        LayerKind::Add => {
            let w = layer.def.add_weights;
            let bytes: Option<Vec<u8>> = layer
                .def
                .bias
                .as_ref()
                .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect());
            let bias = bytes.as_deref().map(I32s::new);
            run("reference add", &|o| {
                reference::add(g, w, bias, &st, x, b, o)
            })?;
            run("add", &|o| optimized::add(g, w, bias, &st, x, b, o))
        }
        _ => Ok(()),
    }
}

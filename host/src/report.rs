//! Cost reports of a model file: per layer and in total, MACs, BOPs (One-Shot MPS eq. S13),
//! RAM (eq. S14), weight and parameter bytes, and the arena the device needs.

use std::fmt;

use bitspike_core::cost::{bops, macs, ram_s14};
use bitspike_core::format::{weight_bytes, ModelFile};
use bitspike_core::kernel::{choose, Choice, Isa, Reason};
use bitspike_core::layer::{Geometry, Shape};
use bitspike_core::quant::{code_bits, Q31Scale};

/// One layer's row.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    /// Layer index.
    pub index: usize,
    /// Geometry.
    pub geometry: Geometry,
    /// Weight bit width (0 without weights).
    pub weight_bits: u8,
    /// Bit width of the input codes.
    pub input_bits: u32,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Bit operations, eq. S13.
    pub bops: u64,
    /// Packed weight bytes.
    pub weight_bytes: usize,
    /// Timesteps (1 for a non-spiking layer).
    pub timesteps: u16,
    /// Scratch bytes the file gives the layer.
    pub scratch_bytes: u32,
    /// The kernel the default runtime build runs the layer on, on Armv7E-M (DSP) and elsewhere.
    pub kernels: [Choice; 2],
    /// Output rows per band when the layer overwrites its input as it goes, 0 when it does not.
    pub in_place_rows: u8,
    /// Nonzero input codes measured at export (the model file's density byte; 0: not measured).
    pub input_density: u8,
}

/// A model's cost summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Per-layer rows.
    pub layers: Vec<LayerRow>,
    /// Input shape.
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Model file bytes (what goes into flash).
    pub file_bytes: usize,
    /// Arena bytes the device must provide.
    pub arena_bytes: u32,
    /// Largest live activation (and scratch) bytes at any layer.
    pub peak_live_bytes: u32,
    /// RAM by One-Shot MPS eq. S14, bytes.
    pub ram_s14_bytes: u64,
}

impl Summary {
    /// Summarize a validated model file.
    pub fn of(file: &ModelFile<'_>) -> Self {
        let mut layers = Vec::new();
        let mut s14 = Vec::new();
        for i in 0..file.layer_count() {
            let l = file.layer(i);
            let g = file.geometry(i);
            let in_levels = file.tensor(l.input as usize).levels;
            s14.push((g, l.weight_bits, in_levels));
            layers.push(LayerRow {
                index: i,
                geometry: g,
                weight_bits: l.weight_bits,
                input_bits: code_bits(in_levels),
                macs: macs(&g),
                bops: if l.weight_bits > 0 {
                    bops(&g, l.weight_bits, in_levels)
                } else {
                    0
                },
                weight_bytes: if l.weight_bits > 0 {
                    weight_bytes(&g, l.weight_bits).unwrap_or(0)
                } else {
                    0
                },
                timesteps: l.timesteps,
                scratch_bytes: l.scratch_bytes,
                in_place_rows: l.in_place_rows,
                kernels: [Isa::Dsp, Isa::Portable].map(|isa| {
                    choose(
                        &g,
                        l.weight_bits,
                        in_levels,
                        l.scratch_bytes,
                        isa,
                        false,
                        bitspike_core::kernel::events_pay(isa, l.input_density),
                    )
                }),
                input_density: l.input_density,
            });
        }
        let h = file.header();
        Self {
            layers,
            input: file.input().shape,
            output: file.output().shape,
            file_bytes: file.bytes().len(),
            arena_bytes: h.arena_bytes,
            peak_live_bytes: h.peak_live_bytes,
            ram_s14_bytes: ram_s14(file.input().bytes() as u64, s14),
        }
    }

    /// Total MACs.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }

    /// Total BOPs.
    pub fn bops(&self) -> u64 {
        self.layers.iter().map(|l| l.bops).sum()
    }

    /// Total packed weight bytes.
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.weight_bytes).sum()
    }
}

/// The percentage of nonzero inputs a model file's density byte stands for (`None`: not measured;
/// the byte is `1 + round(254 x fraction)`, `bitspike_core::kernel::density`).
pub fn density_percent(byte: u8) -> Option<f64> {
    (byte != 0).then(|| 100.0 * (byte - 1) as f64 / 254.0)
}

fn shape(s: Shape) -> String {
    format!("{}x{}x{}", s.h, s.w, s.c)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>3}  {:<8} {:>11} {:>11} {:>4} {:>4} {:>3} {:>11} {:>13} {:>9} {:>8}  \
             kernel (Cortex-M4/M7 DSP, other targets)",
            "#", "kind", "input", "output", "w", "x", "T", "MACs", "BOPs", "w bytes", "scratch",
        )?;
        for r in &self.layers {
            let g = &r.geometry;
            let w = if r.weight_bits > 0 {
                r.weight_bits.to_string()
            } else {
                "-".into()
            };
            let [dsp, other] = r.kernels;
            let kernel = if dsp.kernel == other.kernel {
                dsp.kernel.name().to_string()
            } else {
                format!("{}, {}", dsp.kernel.name(), other.kernel.name())
            };
            let kernel = match density_percent(r.input_density) {
                None => kernel,
                Some(p) => format!("{kernel} ({p:.0} % of inputs nonzero)"),
            };
            let kernel = match r.in_place_rows {
                0 => kernel,
                1 => format!("{kernel}; in place, row by row"),
                n => format!("{kernel}; in place, {n} rows at a time"),
            };
            let why = match dsp.reason {
                Reason::ScratchShort { needed, given } => {
                    format!(
                        " (the file gives {given} B of scratch, the fast kernel needs {needed} B)"
                    )
                }
                _ => String::new(),
            };
            writeln!(
                f,
                "{:>3}  {:<8} {:>11} {:>11} {:>4} {:>4} {:>3} {:>11} {:>13} {:>9} {:>8}  {kernel}{why}",
                r.index,
                g.kind.name(),
                shape(g.input),
                shape(g.output),
                w,
                r.input_bits,
                r.timesteps,
                r.macs,
                r.bops,
                r.weight_bytes,
                r.scratch_bytes
            )?;
        }
        writeln!(
            f,
            "total: {} MACs, {} BOPs (eq. S13), {} weight bytes",
            self.macs(),
            self.bops(),
            self.weight_bytes()
        )?;
        writeln!(
            f,
            "kernels: gather (eight output pixels per pass, inputs as 16-bit lanes in scratch, two \
             MACs per SMLAD on the DSP), narrow (few input channels on the DSP: each input row \
             spread once into 16-bit lane pairs, every window a run of words, two MACs per \
             SMLAD), packed (4- and 2-bit weights over input codes up to 15: \
             three pixels in 14-bit fields, three MACs per UMLAL on the DSP), pairs \
             (8-, 4- and 2-bit weights over input codes up to 31, without the DSP: two pixels in \
             16-bit fields, two MACs per 32-bit multiply; on Armv6-M, outputs of up to 16 codes \
             by threshold tables where the file reserves them), depthwise (one input channel per \
             output: weights transposed once, four channels per word on the DSP), \
             packed-depthwise (depthwise over input codes up to 15 whose sums fit 13-bit fields, \
             on the DSP: each input row spread once, three pixels per word, three MACs per \
             SMLAL), packed-dense (dense layers with 4- and 2-bit weights, every core: the input \
             spread once into 16-bit pairs, two MACs per 32-bit multiply, SMLADX on the DSP), \
             row (weights unpacked per output channel), elementwise, reference (no faster kernel for \
             the kind, or too little scratch), events (each nonzero input adds its weights to the \
             outputs it reaches: where the exporter measured sparse inputs, and without the DSP \
             for convolutions over more input levels than the pairs kernel takes); in place: the output overwrites the input as it \
             is computed, starting a few rows below it"
        )?;
        writeln!(
            f,
            "memory: model file {} B (flash), arena {} B (live tensors and scratch at the peak: \
             {} B), RAM by eq. S14 {} B",
            self.file_bytes, self.arena_bytes, self.peak_live_bytes, self.ram_s14_bytes
        )
    }
}

/// Per layer, the numbers the device scales by, as real values: each requantizing layer's
/// Q31 multipliers and shifts as the real scales they stand for (smallest and largest over the
/// channels), each spiking layer's thresholds and initial potentials in accumulator units
/// (membrane units over `2^shift`). Layers with neither are left out.
pub fn scales(file: &ModelFile<'_>) -> String {
    use bitspike_core::snn::accumulator_units;
    use std::fmt::Write;
    let range = |v: &mut dyn Iterator<Item = f64>| {
        v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
    };
    let mut out = String::new();
    for i in 0..file.layer_count() {
        let l = file.layer(i);
        let kind = file.geometry_of(&l, i).kind.name();
        let n = l.multipliers.len().min(l.shifts.len());
        if n > 0 {
            let scale = |c: usize| Q31Scale::from_bits(l.multipliers.get(c), l.shifts[c] as i8);
            let (lo, hi) = range(&mut (0..n).map(|c| scale(c).real()));
            let first = scale(0);
            let _ = writeln!(
                out,
                "layer {i} {kind}: scale {lo:.4e}..{hi:.4e} over {n} channels (channel 0: \
                 Q31 {} shifted {} = {:.6e})",
                first.multiplier,
                first.shift,
                first.real()
            );
        }
        if let Some(sp) = l.spiking {
            let units = |v: bitspike_core::format::I32s<'_>| {
                range(&mut (0..v.len()).map(|c| accumulator_units(v.get(c), sp.shift).to_num()))
            };
            let (t_lo, t_hi) = units(sp.threshold);
            let (v_lo, v_hi) = units(sp.v0);
            let _ = writeln!(
                out,
                "layer {i} {kind}: spiking, membrane shift {}: threshold {t_lo}..{t_hi}, initial \
                 potential {v_lo}..{v_hi} accumulator units over {} channels",
                sp.shift,
                sp.threshold.len()
            );
        }
    }
    out
}

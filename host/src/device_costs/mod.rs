//! Device-measured costs: what each layer of a network costs on one board's runtime, measured
//! under QEMU and kept in a table, so that a search can minimise instructions (milliseconds at
//! the board's clock) instead of BOPs.
//!
//! **Keys.** A layer's instructions depend on its geometry, its weight width, the levels of the
//! codes it reads (the fast kernels pack inputs of few levels more densely), the levels it writes
//! (Armv6-M requantizes few levels through threshold tables), its timesteps and whether it is
//! spiking or accumulates event by event, and whether it reads the network input (the runtime
//! checks the input's codes before the first layer, and that check is counted with it).
//! [`LayerKey`] holds exactly these, and its canonical text is the table's key. The same key
//! comes from a model file ([`keys_of_file`]: what `predict` sums) and from a network
//! specification and a bit plan ([`spec_keys`]: what the search sums); a test holds the two equal
//! on every architecture.
//!
//! **Measurement.** `cargo xtask costs` measures every key a search can meet: for every layer,
//! every combination of the candidate bit widths of the quantizers it depends on (its weights,
//! the activations it reads, the activations it writes). Instead of one model per key, it runs
//! whole networks whose per-layer bit widths are chosen so that together they cover every key
//! ([`probe_plans`], a greedy covering design: about 30 networks for 100 to 300 keys) and reads
//! each layer's count from the runtime's per-layer marker. Each layer is thus measured where it
//! runs (its neighbours, the arena, in-place bands); a key met in two networks keeps its first
//! count (the two differ only where the context does, docs/costs.md). The spiking network QAC
//! exports is probed the same way over candidate timesteps ([`snn`]).
//!
//! **Prediction.** A network's instructions are the sum of its layers' entries plus the tail
//! after the last layer (copying the output out), [`CostTable::predict`]; a search sums them
//! over its candidates ([`DeviceCost`], One-Shot MPS) or over level counts ([`snn::SnnCost`],
//! QAC's level penalty).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use bitspike_core::format::{ModelFile, NO_TENSOR};
use bitspike_core::kernel::{self, Isa};
use bitspike_core::layer::{Dtype, Geometry, LayerKind};
use serde::{Deserialize, Serialize};

use crate::slots::{BitPlan, Slots};
use crate::spec::{Op, Spec};

pub mod manifest;
mod probes;
mod search;
pub mod snn;
#[cfg(test)]
mod tests;

pub use probes::{probe_model, probe_plans, search_keys};
pub use search::DeviceCost;

/// Version of the table format ([`CostTable::version`]).
pub const TABLE_VERSION: u32 = 1;

/// What a layer's cost depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerKey {
    /// Kind, window, groups, input and output shapes.
    pub geometry: Geometry,
    /// Weight bits (0 without weights).
    pub weight_bits: u8,
    /// Levels of the codes read (largest code).
    pub in_levels: u8,
    /// Levels of an add's second input.
    pub in2_levels: Option<u8>,
    /// Levels written, `None` for raw i32 output.
    pub out_levels: Option<u8>,
    /// Timesteps (1 for a layer that does not spike).
    pub timesteps: u16,
    /// Integrate-and-fire neurons.
    pub spiking: bool,
    /// Accumulates event by event (its measured input density is low enough on this core).
    pub events: bool,
    /// Reads the network input (the input check before the first layer is counted with it).
    pub first: bool,
}

impl LayerKey {
    /// The canonical text, the table's key: `conv2d 28x28x1>28x28x6 k5x5 s1x1 p2x2 g1 w4 in255
    /// out15 first`.
    pub fn text(&self) -> String {
        let g = &self.geometry;
        let s = |x: bitspike_core::layer::Shape| format!("{}x{}x{}", x.h, x.w, x.c);
        let mut t = format!("{} {}>{}", g.kind.name(), s(g.input), s(g.output));
        let w = g.window;
        if g.kind.has_window() {
            t += &format!(" k{}x{} s{}x{} p{}x{}", w.kh, w.kw, w.sh, w.sw, w.ph, w.pw);
        }
        if g.kind == LayerKind::Conv2d {
            t += &format!(" g{}", g.groups);
        }
        if self.weight_bits > 0 {
            t += &format!(" w{}", self.weight_bits);
        }
        t += &format!(" in{}", self.in_levels);
        if let Some(l) = self.in2_levels {
            t += &format!(",{l}");
        }
        match self.out_levels {
            Some(l) => t += &format!(" out{l}"),
            None => t += " raw",
        }
        if self.timesteps != 1 {
            t += &format!(" t{}", self.timesteps);
        }
        if self.spiking {
            t += " spiking";
        }
        if self.events {
            t += " events";
        }
        if self.first {
            t += " first";
        }
        t
    }
}

pub use crate::boards::isa_of_target;

/// The key of every layer of a model file, for a runtime built for `isa`.
pub fn keys_of_file(file: &ModelFile<'_>, isa: Isa) -> Vec<LayerKey> {
    (0..file.layer_count())
        .map(|i| {
            let l = file.layer(i);
            let out = file.tensor(i + 1);
            let weighted = l.kind.has_weights();
            LayerKey {
                geometry: file.geometry(i),
                weight_bits: l.weight_bits,
                in_levels: file.tensor(l.input as usize).levels,
                in2_levels: (l.input2 != NO_TENSOR).then(|| file.tensor(l.input2 as usize).levels),
                out_levels: (out.dtype == Dtype::Code).then_some(out.levels),
                timesteps: l.timesteps,
                spiking: l.spiking.is_some(),
                events: weighted && kernel::events_pay(isa, l.input_density),
                first: l.input == 0,
            }
        })
        .collect()
}

/// Largest code of `bits`-bit activations.
fn act_levels(bits: u8) -> u8 {
    ((1u32 << bits) - 1).min(255) as u8
}

/// The key of every node of `spec` (a QAT network, as `bitspike export` writes it) under `plan`
/// (every slot filled), for images with codes `0..=input_max`.
pub fn spec_keys(
    spec: &Spec,
    slots: &Slots,
    plan: &BitPlan,
    input_max: u8,
) -> Result<Vec<LayerKey>> {
    slots.check(plan)?;
    ensure!(!plan.is_empty(), "a device cost needs a bit for every slot");
    let geoms = spec.geometries()?;
    let mut levels: Vec<Option<u8>> = vec![Some(input_max)];
    let mut keys = Vec::with_capacity(spec.nodes.len());
    for (k, (n, g)) in spec.nodes.iter().zip(geoms).enumerate() {
        let read = levels[n.input].context("a node reads raw logits")?;
        // A signed output is 8-bit codes at every plan (it has no slot).
        let own = match spec.signed(k) {
            true => Some(255),
            false => slots.act_slot(k).map(|s| act_levels(plan.act_bits[s])),
        };
        let (out, in2) = match n.op {
            Op::Conv { .. } | Op::Add { .. } => (own, None),
            Op::Dense { hidden, .. } => (if hidden { own } else { None }, None),
            _ => (Some(read), None),
        };
        let in2 = match n.op {
            Op::Add { other } => Some(levels[other].context("an add reads raw logits")?),
            _ => in2,
        };
        keys.push(LayerKey {
            geometry: g,
            weight_bits: slots.weight_slot(k).map_or(0, |s| plan.weight_bits[s]),
            in_levels: read,
            in2_levels: in2,
            out_levels: out,
            timesteps: 1,
            spiking: false,
            events: false,
            first: n.input == 0,
        });
        levels.push(out);
    }
    Ok(keys)
}

/// One measured layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Instructions (QEMU's count) from the end of the previous layer to the end of this one.
    pub insns: u64,
    /// Bytes of the model file the layer takes: its record and its arrays.
    pub flash: u64,
    /// Scratch bytes its kernel uses.
    pub scratch: u64,
    /// The kernel the runtime runs it on.
    pub kernel: String,
}

/// A board's measured costs (`boards/costs/<board>.json`, written by `cargo xtask costs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostTable {
    /// [`TABLE_VERSION`].
    pub version: u32,
    /// The emulated board measured.
    pub board: String,
    /// Digest of the runtime, shared crate and board app sources the entries were measured
    /// with: a table whose digest is not the sources' own is stale (`cargo xtask costs`).
    pub kernels: String,
    /// Per layer key ([`LayerKey::text`]).
    pub entries: BTreeMap<String, Entry>,
    /// Instructions after the last layer, per output (`out 10 i32`, [`tail_key`]).
    pub tails: BTreeMap<String, u64>,
    /// The board app's flash besides the model file (code, vectors, tables), bytes.
    pub app_flash: u64,
    /// The board app's RAM besides the arena (statics and peak stack), bytes.
    pub app_ram: u64,
}

/// The key of the instructions after a network's last layer: its output length and storage.
pub fn tail_key(file: &ModelFile<'_>) -> String {
    let o = file.output();
    format!(
        "out {} {}",
        o.shape.len(),
        if o.dtype == Dtype::Code { "u8" } else { "i32" }
    )
}

/// Bytes of `file` that layer `i` takes: its record and its arrays.
pub fn layer_flash(file: &ModelFile<'_>, i: usize) -> u64 {
    let l = file.layer(i);
    let arrays = l.weights.len()
        + l.bias.map_or(0, |b| 4 * b.len())
        + 4 * l.multipliers.len()
        + l.shifts.len()
        + l.spiking
            .map_or(0, |s| 4 * (s.threshold.len() + s.v0.len()));
    (bitspike_core::format::LAYER_RECORD_LEN + arrays) as u64
}

/// The kernel layer `i` of `file` runs on, on a runtime built for `isa`.
pub fn layer_kernel(file: &ModelFile<'_>, i: usize, isa: Isa) -> &'static str {
    let l = file.layer(i);
    let events = l.kind.has_weights() && kernel::events_pay(isa, l.input_density);
    kernel::choose(
        &file.geometry(i),
        l.weight_bits,
        file.tensor(l.input as usize).levels,
        l.scratch_bytes,
        isa,
        false,
        events,
    )
    .kernel
    .name()
}

/// A prediction of one network's cost on a board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Per layer: its key and its entry's instructions (`None`: not in the table).
    pub layers: Vec<(String, Option<u64>)>,
    /// Instructions after the last layer (`None`: not in the table).
    pub tail: Option<u64>,
    /// The sum, when every part is in the table.
    pub insns: Option<u64>,
    /// The model file's bytes.
    pub model_bytes: u64,
    /// The arena's bytes.
    pub arena_bytes: u64,
    /// Flash: the board app and the model file.
    pub flash: u64,
    /// RAM: the board app and the arena.
    pub ram: u64,
}

impl CostTable {
    /// Read a table, naming the file in errors.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cost table {}", path.display()))?;
        let t: Self = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a cost table", path.display()))?;
        ensure!(
            t.version == TABLE_VERSION,
            "{}: cost table version {} (this bitspike reads {TABLE_VERSION}): run `cargo xtask costs`",
            path.display(),
            t.version
        );
        Ok(t)
    }

    /// The instructions of the layer with key `key`.
    pub fn insns(&self, key: &LayerKey) -> Option<u64> {
        self.entries.get(&key.text()).map(|e| e.insns)
    }

    /// The predicted cost of the model in `bytes` on a runtime built for `isa`.
    pub fn predict(&self, bytes: &[u8], isa: Isa) -> Result<Prediction> {
        let file = ModelFile::parse(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let layers: Vec<(String, Option<u64>)> = keys_of_file(&file, isa)
            .iter()
            .map(|k| (k.text(), self.insns(k)))
            .collect();
        let tail = self.tails.get(&tail_key(&file)).copied();
        let insns = layers
            .iter()
            .map(|(_, v)| *v)
            .chain([tail])
            .sum::<Option<u64>>();
        let arena = file.header().arena_bytes as u64;
        Ok(Prediction {
            layers,
            tail,
            insns,
            model_bytes: bytes.len() as u64,
            arena_bytes: arena,
            flash: self.app_flash + bytes.len() as u64,
            ram: self.app_ram + arena,
        })
    }
}

/// The model file and arena bytes of `spec` exported under `plan` (the sizes do not depend on
/// the weights' values), for a board with an Armv6-M core when `armv6m`.
pub fn model_and_arena_bytes(
    spec: &Spec,
    slots: &Slots,
    plan: &BitPlan,
    armv6m: bool,
) -> Result<(u64, u64)> {
    let mut def = probe_model(spec, slots, plan, slots.input_max, 1)?;
    if armv6m {
        def.reserve_armv6m_tables();
    }
    let bytes = bitspike_core::format::writer::write(&def).context("writing the model")?;
    let file = ModelFile::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((bytes.len() as u64, file.header().arena_bytes as u64))
}

/// Where the cost table of `board` lives in the source tree.
pub fn table_path(board: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../boards/costs")
        .join(format!("{board}.json"))
}

/// Reject candidate lists a probe cannot build.
pub fn check_candidates(weight_bits: &[u8], act_bits: &[u8]) -> Result<()> {
    for &b in weight_bits.iter().chain(act_bits) {
        if !(2..=8).contains(&b) {
            bail!("candidate {b} bits: use 2..=8");
        }
    }
    Ok(())
}

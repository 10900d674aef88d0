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
//! runs (its neighbours, the arena, in-place bands), and a key measured twice must agree.
//!
//! **Prediction.** A network's instructions are the sum of its layers' entries plus the tail
//! after the last layer (copying the output out), [`CostTable::predict`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use bitspike_core::def::random::Rng;
use bitspike_core::def::ModelDef;
use bitspike_core::format::{ModelFile, NO_TENSOR};
use bitspike_core::kernel::{self, Isa};
use bitspike_core::layer::{Dtype, Geometry, LayerKind, Window};
use serde::{Deserialize, Serialize};

use crate::builtin::Builder;
use crate::mps::{BitPlan, Slots};
use crate::spec::{Op, Spec};

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

/// The ISA a board's runtime is built for, from its target triple.
pub fn isa_of_target(target: &str) -> Isa {
    if target.starts_with("thumbv7em") {
        Isa::Dsp
    } else {
        Isa::Portable
    }
}

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
        let own = slots.act_slot(k).map(|s| act_levels(plan.act_bits[s]));
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

/// A network of `spec`'s layers under `plan` with deterministic random weights (speed does not
/// depend on them), written as `bitspike export` writes a trained one: what the probes measure.
pub fn probe_model(
    spec: &Spec,
    slots: &Slots,
    plan: &BitPlan,
    input_max: u8,
    seed: u64,
) -> Result<ModelDef> {
    let keys = spec_keys(spec, slots, plan, input_max)?;
    let [c, h, w] = spec.input;
    let mut b = Builder::with_input(
        bitspike_core::layer::Shape::new(h as u16, w as u16, c as u16),
        input_max,
        seed,
    );
    for (n, key) in spec.nodes.iter().zip(&keys) {
        let input = n.input as u16;
        let g = &key.geometry;
        let levels = key.out_levels.unwrap_or(0);
        match n.op {
            Op::Conv { out, groups, .. } => {
                b.conv_to(
                    input,
                    out as u16,
                    g.window,
                    groups as u16,
                    key.weight_bits,
                    levels,
                );
            }
            Op::Dense { out, hidden: true } => {
                b.dense_to(input, out as u16, key.weight_bits, levels);
            }
            Op::Dense { out, hidden: false } => {
                b.logits(input, out as u16, key.weight_bits);
            }
            Op::Add { other } => {
                b.add_to(input, other as u16, levels);
            }
            Op::MaxPool { k, stride } => {
                b.max_pool(input, Window::square(k as u8, stride as u8, 0));
            }
            Op::AvgPool { k, stride } => {
                b.avg_pool_to(input, Window::square(k as u8, stride as u8, 0), levels);
            }
            Op::GlobalAvgPool => {
                let positions = g.input.h as usize * g.input.w as usize;
                b.global_avg_pool_to(input, positions, levels);
            }
            Op::Flatten => {
                b.flatten(input);
            }
        }
    }
    Ok(b.finish())
}

/// Every key a search over `weight_bits` x `act_bits` candidates can meet in `spec`: for each
/// node, every combination of the candidates of the slots it depends on.
pub fn search_keys(
    spec: &Spec,
    slots: &Slots,
    weight_bits: &[u8],
    act_bits: &[u8],
    input_max: u8,
) -> Result<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for plan in node_plans(slots, weight_bits, act_bits) {
        for k in spec_keys(spec, slots, &plan, input_max)? {
            all.insert(k.text());
        }
    }
    Ok(all)
}

/// Plans in which every slot runs through its candidates together with every other slot that
/// a node can depend on jointly (weights, input, second input, output): enough to produce each
/// node's every combination. Exhaustive per node, not a covering: for [`search_keys`].
fn node_plans(slots: &Slots, weight_bits: &[u8], act_bits: &[u8]) -> Vec<BitPlan> {
    let base = BitPlan {
        weight_bits: vec![weight_bits[0]; slots.weight_nodes.len()],
        act_bits: vec![act_bits[0]; slots.act_nodes.len()],
    };
    let mut out = Vec::new();
    for k in 0..slots.macs.len() {
        let deps = node_deps(slots, k);
        let sizes: Vec<usize> = deps
            .iter()
            .map(|d| match d {
                Dep::Weight(_) => weight_bits.len(),
                Dep::Act(_) => act_bits.len(),
            })
            .collect();
        let total: usize = sizes.iter().product();
        for mut idx in 0..total {
            let mut p = base.clone();
            for (d, &n) in deps.iter().zip(&sizes) {
                let v = idx % n;
                idx /= n;
                match *d {
                    Dep::Weight(s) => p.weight_bits[s] = weight_bits[v],
                    Dep::Act(s) => p.act_bits[s] = act_bits[v],
                }
            }
            out.push(p);
        }
    }
    out
}

/// A slot a node's key depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dep {
    Weight(usize),
    Act(usize),
}

/// The slots node `k`'s key depends on.
fn node_deps(slots: &Slots, k: usize) -> Vec<Dep> {
    let mut d = Vec::new();
    if let Some(s) = slots.weight_slot(k) {
        d.push(Dep::Weight(s));
    }
    if let Some(s) = slots.reads[k] {
        d.push(Dep::Act(s));
    }
    if let Some(s) = slots.reads2[k] {
        if !d.contains(&Dep::Act(s)) {
            d.push(Dep::Act(s));
        }
    }
    if let Some(s) = slots.act_slot(k) {
        if !d.contains(&Dep::Act(s)) {
            d.push(Dep::Act(s));
        }
    }
    d
}

/// Bit plans whose networks together contain every key of [`search_keys`], greedily: each
/// round draws random plans, improves the best one slot by slot, and keeps it while it adds
/// keys not yet covered. Deterministic for a `seed`.
pub fn probe_plans(
    spec: &Spec,
    slots: &Slots,
    weight_bits: &[u8],
    act_bits: &[u8],
    input_max: u8,
    seed: u64,
) -> Result<Vec<BitPlan>> {
    ensure!(
        !weight_bits.is_empty() && !act_bits.is_empty(),
        "no candidate bit widths"
    );
    let need = search_keys(spec, slots, weight_bits, act_bits, input_max)?;
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let mut rng = Rng::new(seed);
    let gain = |p: &BitPlan, covered: &BTreeSet<String>| -> Result<usize> {
        let keys: BTreeSet<String> = spec_keys(spec, slots, p, input_max)?
            .iter()
            .map(LayerKey::text)
            .collect();
        Ok(keys.iter().filter(|k| !covered.contains(*k)).count())
    };
    let mut plans = Vec::new();
    while covered.len() < need.len() {
        let mut best: Option<(usize, BitPlan)> = None;
        for _ in 0..16 {
            let mut p = BitPlan {
                weight_bits: (0..slots.weight_nodes.len())
                    .map(|_| weight_bits[rng.range(0, weight_bits.len() as i64 - 1) as usize])
                    .collect(),
                act_bits: (0..slots.act_nodes.len())
                    .map(|_| act_bits[rng.range(0, act_bits.len() as i64 - 1) as usize])
                    .collect(),
            };
            let mut g = gain(&p, &covered)?;
            // Slot by slot, the candidate that covers the most new keys.
            for _ in 0..2 {
                for s in 0..p.weight_bits.len() + p.act_bits.len() {
                    let (cands, nw) = if s < p.weight_bits.len() {
                        (weight_bits, true)
                    } else {
                        (act_bits, false)
                    };
                    for &c in cands {
                        let mut q = p.clone();
                        if nw {
                            q.weight_bits[s] = c;
                        } else {
                            q.act_bits[s - p.weight_bits.len()] = c;
                        }
                        let gq = gain(&q, &covered)?;
                        if gq > g {
                            (p, g) = (q, gq);
                        }
                    }
                }
            }
            if best.as_ref().is_none_or(|(bg, _)| g > *bg) {
                best = Some((g, p));
            }
        }
        let Some((g, p)) = best else { break };
        if g == 0 {
            // Random draws found nothing new: take a plan made for an uncovered key.
            let missing = need
                .iter()
                .find(|k| !covered.contains(*k))
                .cloned()
                .unwrap_or_default();
            let p = node_plans(slots, weight_bits, act_bits)
                .into_iter()
                .find(|q| {
                    spec_keys(spec, slots, q, input_max)
                        .map(|ks| ks.iter().any(|k| k.text() == missing))
                        .unwrap_or(false)
                })
                .with_context(|| format!("no plan produces key `{missing}`"))?;
            for k in spec_keys(spec, slots, &p, input_max)? {
                covered.insert(k.text());
            }
            plans.push(p);
            continue;
        }
        for k in spec_keys(spec, slots, &p, input_max)? {
            covered.insert(k.text());
        }
        plans.push(p);
    }
    Ok(plans)
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

/// A search's device cost: for every node, its table entries over the candidates of the slots
/// it depends on, so that the supernet's expected cost is exact under independent slot
/// distributions (the expectation of a sum of per-node terms, each a function of at most four
/// slots) and a child's cost is the table's prediction of its exported model.
#[derive(Clone, Debug)]
pub struct DeviceCost {
    /// Per node: the slots its key depends on, and its instructions per combination of their
    /// candidates (row-major, the first slot slowest).
    nodes: Vec<(Vec<Dep>, Vec<f64>)>,
    /// Instructions after the last layer.
    tail: f64,
    weight_bits: Vec<u8>,
    act_bits: Vec<u8>,
}

impl DeviceCost {
    /// The costs of `spec`'s nodes over the candidates from `table`; every key a search can
    /// meet must be in it (else the error names the first missing key and the command that
    /// measures it).
    pub fn new(
        spec: &Spec,
        slots: &Slots,
        table: &CostTable,
        weight_bits: &[u8],
        act_bits: &[u8],
        input_max: u8,
    ) -> Result<Self> {
        check_candidates(weight_bits, act_bits)?;
        let mut nodes = Vec::with_capacity(slots.macs.len());
        let base = BitPlan {
            weight_bits: vec![weight_bits[0]; slots.weight_nodes.len()],
            act_bits: vec![act_bits[0]; slots.act_nodes.len()],
        };
        let list = |v: &[u8]| {
            v.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        for k in 0..slots.macs.len() {
            let deps = node_deps(slots, k);
            let sizes: Vec<usize> = deps
                .iter()
                .map(|d| match d {
                    Dep::Weight(_) => weight_bits.len(),
                    Dep::Act(_) => act_bits.len(),
                })
                .collect();
            let total: usize = sizes.iter().product();
            let mut costs = Vec::with_capacity(total);
            for idx in 0..total {
                // Row-major: the last slot fastest.
                let mut p = base.clone();
                let mut rest = idx;
                for (d, &n) in deps.iter().zip(&sizes).rev() {
                    let v = rest % n;
                    rest /= n;
                    match *d {
                        Dep::Weight(s) => p.weight_bits[s] = weight_bits[v],
                        Dep::Act(s) => p.act_bits[s] = act_bits[v],
                    }
                }
                let key = spec_keys(spec, slots, &p, input_max)?[k];
                let n = table.insns(&key).with_context(|| {
                    format!(
                        "the cost table of {} has no entry for layer {k} `{}`: run `cargo xtask costs --board {} --arch <this architecture> --weight-bits {} --act-bits {}`",
                        table.board,
                        key.text(),
                        table.board,
                        list(weight_bits),
                        list(act_bits)
                    )
                })?;
                costs.push(n as f64);
            }
            nodes.push((deps, costs));
        }
        // The tail depends on the output alone: any plan's network gives its key.
        let bytes =
            bitspike_core::format::writer::write(&probe_model(spec, slots, &base, input_max, 1)?)
                .context("writing a probe network")?;
        let file = ModelFile::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let tail = *table.tails.get(&tail_key(&file)).with_context(|| {
            format!(
                "the cost table of {} has no tail `{}`: run `cargo xtask costs --board {}`",
                table.board,
                tail_key(&file),
                table.board
            )
        })? as f64;
        Ok(Self {
            nodes,
            tail,
            weight_bits: weight_bits.to_vec(),
            act_bits: act_bits.to_vec(),
        })
    }

    /// [`DeviceCost::new`] from the committed table of `board` (a real board reads the table of
    /// the emulated board with its core).
    pub fn for_board(
        board: &str,
        spec: &Spec,
        slots: &Slots,
        weight_bits: &[u8],
        act_bits: &[u8],
    ) -> Result<Self> {
        let table = CostTable::read(&table_path(crate::boards::cost_board(board)?))?;
        Self::new(spec, slots, &table, weight_bits, act_bits, slots.input_max)
    }

    /// Instructions of the child `plan` (every slot at one of the candidates).
    pub fn exact(&self, plan: &BitPlan) -> Result<f64> {
        let index = |v: &[u8], b: u8| {
            v.iter()
                .position(|&c| c == b)
                .with_context(|| format!("{b} bits is not a candidate"))
        };
        let mut total = self.tail;
        for (deps, costs) in &self.nodes {
            let mut idx = 0;
            for d in deps {
                let (n, i) = match *d {
                    Dep::Weight(s) => (
                        self.weight_bits.len(),
                        index(&self.weight_bits, plan.weight_bits[s])?,
                    ),
                    Dep::Act(s) => (
                        self.act_bits.len(),
                        index(&self.act_bits, plan.act_bits[s])?,
                    ),
                };
                idx = idx * n + i;
            }
            total += costs[idx];
        }
        Ok(total)
    }

    /// Expected instructions when slot `s` takes its candidates with probabilities `probs[s]`
    /// (weight slots first, then activation slots), the slots independent: differentiable.
    pub fn expected(&self, probs: &[tch::Tensor], weight_slots: usize) -> tch::Tensor {
        let dev = probs.first().map_or(tch::Device::Cpu, |p| p.device());
        let mut total = tch::Tensor::from(self.tail)
            .to_kind(tch::Kind::Float)
            .to_device(dev);
        for (deps, costs) in &self.nodes {
            let sizes: Vec<i64> = deps
                .iter()
                .map(|d| match d {
                    Dep::Weight(_) => self.weight_bits.len() as i64,
                    Dep::Act(_) => self.act_bits.len() as i64,
                })
                .collect();
            let c: Vec<f32> = costs.iter().map(|&v| v as f32).collect();
            let mut t = tch::Tensor::from_slice(&c)
                .to_device(dev)
                .view(sizes.as_slice());
            // Contract the last slot's candidates first.
            for d in deps.iter().rev() {
                let p = match *d {
                    Dep::Weight(s) => &probs[s],
                    Dep::Act(s) => &probs[weight_slots + s],
                };
                t = t.matmul(p);
            }
            total += t;
        }
        total
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TrainArch;
    use bitspike_core::format::writer::write;

    fn specs() -> Vec<Spec> {
        [
            TrainArch::Cnn,
            TrainArch::Lenet,
            TrainArch::Vgg,
            TrainArch::Resnet8,
        ]
        .into_iter()
        .flat_map(|a| [Spec::of(a, [1, 28, 28], 10), Spec::of(a, [3, 32, 32], 10)])
        .collect()
    }

    #[test]
    fn a_probe_model_file_has_the_keys_the_search_computes() {
        let _one = crate::seeded();
        for spec in specs() {
            let slots = Slots::of(&spec, 255).unwrap();
            let mut rng = Rng::new(3);
            for _ in 0..3 {
                let plan = BitPlan {
                    weight_bits: (0..slots.weight_nodes.len())
                        .map(|_| [2, 3, 4, 8][rng.range(0, 3) as usize])
                        .collect(),
                    act_bits: (0..slots.act_nodes.len())
                        .map(|_| [2, 4, 5, 8][rng.range(0, 3) as usize])
                        .collect(),
                };
                let def = probe_model(&spec, &slots, &plan, 255, 1).unwrap();
                let bytes = write(&def).unwrap();
                let file = ModelFile::parse(&bytes).unwrap();
                let from_file: Vec<String> = keys_of_file(&file, Isa::Dsp)
                    .iter()
                    .map(LayerKey::text)
                    .collect();
                let from_spec: Vec<String> = spec_keys(&spec, &slots, &plan, 255)
                    .unwrap()
                    .iter()
                    .map(LayerKey::text)
                    .collect();
                assert_eq!(from_file, from_spec, "{}", plan.label());
            }
        }
    }

    #[test]
    fn probe_plans_cover_every_key_of_the_search() {
        let _one = crate::seeded();
        let spec = Spec::of(TrainArch::Resnet8, [1, 28, 28], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let (w, a) = ([2, 4, 8], [2, 4, 8]);
        let need = search_keys(&spec, &slots, &w, &a, 255).unwrap();
        let plans = probe_plans(&spec, &slots, &w, &a, 255, 7).unwrap();
        let mut got = BTreeSet::new();
        for p in &plans {
            for k in spec_keys(&spec, &slots, p, 255).unwrap() {
                got.insert(k.text());
            }
        }
        assert_eq!(got, need);
        // An add depends on three activation slots: at least 27 networks, and not many more.
        assert!(
            plans.len() >= 27 && plans.len() <= 45,
            "{} plans",
            plans.len()
        );
        // Deterministic.
        assert_eq!(plans, probe_plans(&spec, &slots, &w, &a, 255, 7).unwrap());
    }

    #[test]
    fn prediction_sums_the_entries_and_names_what_is_missing() {
        let _one = crate::seeded();
        let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let plan = slots.uniform(4, 2);
        let bytes = write(&probe_model(&spec, &slots, &plan, 255, 1).unwrap()).unwrap();
        let file = ModelFile::parse(&bytes).unwrap();
        let keys = keys_of_file(&file, Isa::Dsp);
        let mut t = CostTable {
            version: TABLE_VERSION,
            board: "b".into(),
            kernels: "k".into(),
            entries: BTreeMap::new(),
            tails: BTreeMap::new(),
            app_flash: 1000,
            app_ram: 100,
        };
        for (i, k) in keys.iter().enumerate() {
            t.entries.insert(
                k.text(),
                Entry {
                    insns: 10 * (i as u64 + 1),
                    flash: 0,
                    scratch: 0,
                    kernel: String::new(),
                },
            );
        }
        let p = t.predict(&bytes, Isa::Dsp).unwrap();
        assert_eq!(p.insns, None, "the tail is missing");
        t.tails.insert(tail_key(&file), 7);
        let p = t.predict(&bytes, Isa::Dsp).unwrap();
        let n = keys.len() as u64;
        assert_eq!(p.insns, Some(10 * n * (n + 1) / 2 + 7));
        assert_eq!(p.flash, 1000 + bytes.len() as u64);
        assert_eq!(tail_key(&file), "out 10 i32");
        // Another plan's first layer is not in the table.
        let other =
            write(&probe_model(&spec, &slots, &slots.uniform(8, 2), 255, 1).unwrap()).unwrap();
        let p = t.predict(&other, Isa::Dsp).unwrap();
        assert_eq!(p.insns, None);
        assert!(p.layers[0].1.is_none());
    }

    /// A table with an entry for every key a search over `w` x `a` meets in `spec`, each a
    /// value drawn from the key's text, and a tail.
    fn synthetic(spec: &Spec, slots: &Slots, w: &[u8], a: &[u8]) -> CostTable {
        let mut t = CostTable {
            version: TABLE_VERSION,
            board: "b".into(),
            kernels: "k".into(),
            entries: BTreeMap::new(),
            tails: BTreeMap::new(),
            app_flash: 0,
            app_ram: 0,
        };
        for k in search_keys(spec, slots, w, a, 255).unwrap() {
            let h = k
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
            t.entries.insert(
                k,
                Entry {
                    insns: 1000 + h % 100_000,
                    flash: 0,
                    scratch: 0,
                    kernel: String::new(),
                },
            );
        }
        t.tails.insert("out 10 i32".into(), 77);
        t
    }

    #[test]
    fn the_device_cost_of_a_child_is_the_prediction_of_its_model() {
        let _one = crate::seeded();
        let (w, a) = ([2, 4, 8], [2, 4, 8]);
        for arch in [TrainArch::Lenet, TrainArch::Resnet8] {
            let spec = Spec::of(arch, [1, 28, 28], 10);
            let slots = Slots::of(&spec, 255).unwrap();
            let table = synthetic(&spec, &slots, &w, &a);
            let dc = DeviceCost::new(&spec, &slots, &table, &w, &a, 255).unwrap();
            for seed in 0..4 {
                let mut rng = Rng::new(seed);
                let plan = BitPlan {
                    weight_bits: (0..slots.weight_nodes.len())
                        .map(|_| w[rng.range(0, 2) as usize])
                        .collect(),
                    act_bits: (0..slots.act_nodes.len())
                        .map(|_| a[rng.range(0, 2) as usize])
                        .collect(),
                };
                let bytes = write(&probe_model(&spec, &slots, &plan, 255, 1).unwrap()).unwrap();
                let p = table.predict(&bytes, Isa::Dsp).unwrap();
                assert_eq!(
                    dc.exact(&plan).unwrap(),
                    p.insns.unwrap() as f64,
                    "{arch:?}"
                );
            }
        }
        // A table without the keys names the first one missing and the command.
        let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let table = synthetic(&spec, &slots, &[4, 8], &a);
        let e = DeviceCost::new(&spec, &slots, &table, &w, &a, 255)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("w2") && e.contains("cargo xtask costs --board b"),
            "{e}"
        );
    }

    #[test]
    fn the_expected_device_cost_is_the_mean_over_every_child() {
        let _one = crate::seeded();
        let (w, a) = ([2, 8], [2, 4, 8]);
        let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let table = synthetic(&spec, &slots, &w, &a);
        let dc = DeviceCost::new(&spec, &slots, &table, &w, &a, 255).unwrap();
        let (nw, na) = (slots.weight_nodes.len(), slots.act_nodes.len());
        let mut rng = Rng::new(5);
        let probs: Vec<Vec<f64>> = (0..nw + na)
            .map(|s| {
                let n = if s < nw { w.len() } else { a.len() };
                let v: Vec<f64> = (0..n).map(|_| 1.0 + rng.range(0, 100) as f64).collect();
                let sum: f64 = v.iter().sum();
                v.iter().map(|x| x / sum).collect()
            })
            .collect();
        // Every child, weighted by its probability.
        let mut want = 0.0;
        let total = w.len().pow(nw as u32) * a.len().pow(na as u32);
        for mut i in 0..total {
            let mut plan = BitPlan::default();
            let mut p = 1.0;
            for (s, ps) in probs.iter().enumerate() {
                let n = ps.len();
                let j = i % n;
                i /= n;
                p *= ps[j];
                if s < nw {
                    plan.weight_bits.push(w[j]);
                } else {
                    plan.act_bits.push(a[j]);
                }
            }
            want += p * dc.exact(&plan).unwrap();
        }
        let t: Vec<tch::Tensor> = probs
            .iter()
            .map(|v| tch::Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()))
            .collect();
        let got = dc.expected(&t, nw).double_value(&[]);
        assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
    }

    #[test]
    fn layer_flash_adds_up_to_the_layers_part_of_the_file() {
        let _one = crate::seeded();
        let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let bytes =
            write(&probe_model(&spec, &slots, &slots.uniform(4, 4), 255, 1).unwrap()).unwrap();
        let file = ModelFile::parse(&bytes).unwrap();
        let sum: u64 = (0..file.layer_count()).map(|i| layer_flash(&file, i)).sum();
        // The rest is the header, the tensor table and alignment padding.
        assert!(
            sum < bytes.len() as u64 && sum + 1024 > bytes.len() as u64,
            "{sum} of {}",
            bytes.len()
        );
        let w: u64 = (0..file.layer_count())
            .map(|i| file.layer(i).weights.len() as u64)
            .sum();
        // LeNet's weights at 4 bits: (150 + 2400 + 48000 + 10080 + 840) / 2 bytes.
        assert_eq!(w, (150 + 2400 + 48000 + 10080 + 840) / 2);
    }
}

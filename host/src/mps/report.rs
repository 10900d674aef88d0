//! One-Shot MPS after training: front extraction (Algorithm S1, lines 8-16), children as
//! networks of their own, the choice of a front point for export, and the report beside the
//! baselines (Tables S3-S9, Figures S3 and S6-S11 on our data).
//!
//! A search run's folder gains `front.json` ([`Front`]) from [`extract`]. A child is the
//! supernet's weights and BatchNorm run at one bit width per slot: [`child`] builds it as an
//! ordinary mixed-precision network (`[mixed]` plan) and recalibrates BatchNorm's statistics on
//! training images (see `crate::mps`), so that evaluating, exporting and fine-tuning a child all
//! start from the same network.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::config::TrainConfig;
use crate::data::Dataset;
use crate::figures::{plot, plot_series, write_tables};
use crate::mps::{self, BitPlan, CostKind, Slots};
use crate::train::{self, RunDir, Trained};

/// BatchNorm recalibration of a child: batches of 128 training images.
pub const BN_BATCHES: i64 = 50;
const BN_BATCH: i64 = 128;

/// One distinct child found by the sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Child {
    /// Its bit widths.
    pub plan: BitPlan,
    /// The swept penalties whose most probable child it is.
    pub etas: Vec<f64>,
    /// BOPs (eq. S13).
    pub bops: f64,
    /// RAM in bytes (eq. S14).
    pub ram: f64,
    /// On the front's board ([`Front::board`]): its exported model's instructions per inference,
    /// the sum of the board's measured cost table.
    #[serde(default)]
    pub insns: Option<f64>,
    /// On the front's board: its model file's bytes.
    #[serde(default)]
    pub model_bytes: Option<u64>,
    /// On the front's board: its arena's bytes.
    #[serde(default)]
    pub arena_bytes: Option<u64>,
    /// Accuracy on the held-out validation images (0..1; fake-quant, BatchNorm recalibrated).
    pub val_accuracy: f64,
    /// Accuracy on the test split (0..1; the same network).
    pub test_accuracy: f64,
    /// Whether it is on the Pareto front of (searched cost, validation accuracy).
    pub pareto: bool,
}

/// The front of a search run (`front.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Front {
    /// The cost the search penalised.
    pub cost: CostKind,
    /// Penalties swept (linear and logarithmic).
    pub etas: Vec<f64>,
    /// Distinct children, in increasing searched cost.
    pub children: Vec<Child>,
    /// Supernet evaluations: distinct children evaluated (each a BatchNorm recalibration, the
    /// validation split and the test split).
    pub evaluations: usize,
    /// Seconds the supernet trained.
    pub train_seconds: f64,
    /// Seconds the extraction took.
    pub front_seconds: f64,
    /// Candidate probabilities per slot on a logarithmic grid of eta: `(eta, probs[slot][j])`.
    pub probabilities: Vec<(f64, Vec<Vec<f64>>)>,
    /// Labels of the slots: weight slots first.
    pub slot_labels: Vec<String>,
    /// Candidate bit widths of the weight slots.
    pub weight_candidates: Vec<u8>,
    /// Candidate bit widths of the activation slots.
    pub act_candidates: Vec<u8>,
    /// The board whose measured costs the children's device figures come from.
    #[serde(default)]
    pub board: Option<String>,
    /// That board's app besides the model file and the arena: flash and RAM bytes (from its
    /// cost table).
    #[serde(default)]
    pub app_bytes: Option<(u64, u64)>,
}

/// A child's figures on the front's board.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnBoard {
    /// Instructions per inference (the sum of the board's measured cost table).
    pub insns: f64,
    /// Milliseconds at the board's clock, one instruction per cycle (`None` on an emulated
    /// board, which has no clock).
    pub ms: Option<f64>,
    /// Microjoules from the datasheet's run current (`None` without datasheet figures).
    pub uj: Option<f64>,
    /// Flash: the board app and the model file.
    pub flash: u64,
    /// RAM: the board app (statics, peak stack) and the arena.
    pub ram: u64,
}

impl Front {
    /// A child's figures on the front's board, when the front has them.
    pub fn on_board(&self, c: &Child) -> Option<OnBoard> {
        let board = self.board.as_deref()?;
        let (app_flash, app_ram) = self.app_bytes?;
        let insns = c.insns?;
        let ms = crate::boards::clock_mhz(board)
            .ok()
            .flatten()
            .map(|mhz| insns / (mhz * 1e3));
        let uj = crate::boards::microjoules(board, insns).ok().flatten();
        Some(OnBoard {
            insns,
            ms,
            uj,
            flash: app_flash + c.model_bytes?,
            ram: app_ram + c.arena_bytes?,
        })
    }

    /// The Pareto-optimal children, in increasing cost.
    pub fn pareto(&self) -> Vec<&Child> {
        self.children.iter().filter(|c| c.pareto).collect()
    }

    /// How many of the slots are activation slots.
    pub fn act_slots(&self) -> usize {
        self.children.first().map_or(0, |c| c.plan.act_bits.len())
    }

    /// `front.json` of a run.
    pub fn path(run: &RunDir) -> PathBuf {
        run.0.join("front.json")
    }

    /// Read a run's front.
    pub fn read(run: &RunDir) -> Result<Self> {
        let p = Self::path(run);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "{} has no front yet: run `bitspike mps front --run {}`",
                run.0.display(),
                run.0.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: corrupt", p.display()))
    }
}

/// The configuration of child `plan` of a search run.
pub fn child_config(cfg: &TrainConfig, plan: &BitPlan) -> TrainConfig {
    TrainConfig {
        mps: None,
        mixed: plan.clone(),
        ..cfg.clone()
    }
}

/// Child `plan` of the search run `run`: its network with the supernet's weights, BatchNorm
/// recalibrated on the first [`BN_BATCHES`] batches of training images.
pub fn child(run: &RunDir, plan: &BitPlan, data: &Dataset, device: Device) -> Result<Trained> {
    let cfg = child_config(&run.read_config()?, plan);
    let mut t = train::build(&train::Qat, &cfg, data, device)?;
    let w = run.weights()?;
    t.vs.load(&w).map_err(|e| {
        anyhow::anyhow!(
            "{}: not this search's checkpoint ({})",
            w.display(),
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    mps::recalibrate_bn(
        &t.net,
        &data.train.images,
        data.max_code,
        BN_BATCHES,
        BN_BATCH,
    );
    Ok(t)
}

/// The validation images of a search: the last `n` of the training split.
pub fn validation(data: &Dataset, n: i64) -> crate::data::Split {
    let total = data.train.len();
    let n = n.clamp(0, total);
    crate::data::Split {
        images: data.train.images.narrow(0, total - n, n),
        labels: data.train.labels.narrow(0, total - n, n),
    }
}

/// Names of the slots of a network: `n<node> <kind> w` / `in <node>`.
fn slot_labels(spec: &crate::net::Spec, slots: &Slots) -> Vec<String> {
    let name = |i: usize| match spec.nodes[i].op {
        crate::net::Op::Conv { .. } => format!("conv{i}"),
        crate::net::Op::Dense { .. } => format!("dense{i}"),
        _ => format!("add{i}"),
    };
    slots
        .weight_nodes
        .iter()
        .map(|&i| format!("{} weights", name(i)))
        .chain(
            slots
                .act_nodes
                .iter()
                .map(|&i| format!("{} output (next input)", name(i))),
        )
        .collect()
}

/// Algorithm S1, lines 8-15: sweep eta (`count` linear and `count` logarithmic values), take the
/// most probable child of each, drop duplicates, evaluate each distinct child, compute its BOPs
/// and RAM (and with a board, its instructions, flash and RAM there from the board's measured
/// cost table) and mark the Pareto-optimal ones (searched cost against validation accuracy).
/// `board` defaults to the search's own (`[mps] board`). Writes `front.json` into the run and
/// returns it.
pub fn extract(
    run: &RunDir,
    data: &Dataset,
    device: Device,
    count: usize,
    board: Option<&str>,
) -> Result<Front> {
    let started = Instant::now();
    let cfg = run.read_config()?;
    let Some(m) = cfg.mps.clone() else {
        bail!(
            "{} is not a search run (its config has no [mps])",
            run.0.display()
        );
    };
    let state = run.read_state()?;
    let t = train::load(&mps::Search, run, data, device)?;
    let Some(s) = mps::supernet(&t.net) else {
        bail!("{}: the network has no supernet", run.0.display());
    };
    let etas = mps::sweep(m.eta, count);
    let mut plans: Vec<(BitPlan, Vec<f64>)> = Vec::new();
    for &eta in &etas {
        let p = s.plan_at(eta);
        match plans.iter_mut().find(|(q, _)| *q == p) {
            Some((_, e)) => e.push(eta),
            None => plans.push((p, vec![eta])),
        }
    }
    let (a, b) = (m.eta[0].ln(), m.eta[1].ln());
    let grid: Vec<f64> = (0..41)
        .map(|i| (a + (b - a) * i as f64 / 40.0).exp())
        .collect();
    let probabilities = grid.iter().map(|&e| (e, s.probs(e))).collect();
    let slot_labels = slot_labels(&t.net.spec, &s.slots);
    let slots = s.slots.clone();
    let board = board.map(str::to_string).or(m.board.clone());
    let on_board = match &board {
        Some(b) => {
            let table = crate::device_costs::CostTable::read(&crate::device_costs::table_path(
                crate::boards::cost_board(b)?,
            ))?;
            let dc = crate::device_costs::DeviceCost::new(
                &t.net.spec,
                &slots,
                &table,
                &m.weight_bits,
                &m.act_bits,
                slots.input_max,
            )?;
            Some((dc, table, t.net.spec.clone(), crate::boards::armv6m(b)?))
        }
        None => None,
    };
    drop(t);
    let val = validation(data, m.validation);
    if val.is_empty() {
        bail!("the search held out no validation images (mps validation = 0)");
    }
    let mut children = Vec::new();
    for (plan, etas) in plans {
        let c = child(run, &plan, data, device)?;
        let val_accuracy = train::accuracy(&c.net, &val, data.max_code, device);
        let test_accuracy = train::accuracy(&c.net, &data.test, data.max_code, device);
        let (insns, model_bytes, arena_bytes) = match &on_board {
            Some((dc, _, spec, armv6m)) => {
                let (m, a) =
                    crate::device_costs::model_and_arena_bytes(spec, &slots, &plan, *armv6m)?;
                (Some(dc.exact(&plan)?), Some(m), Some(a))
            }
            None => (None, None, None),
        };
        children.push(Child {
            bops: slots.cost(&plan, CostKind::Bops),
            ram: slots.cost(&plan, CostKind::Ram),
            insns,
            model_bytes,
            arena_bytes,
            plan,
            etas,
            val_accuracy,
            test_accuracy,
            pareto: false,
        });
    }
    let cost = |c: &Child| match m.cost {
        CostKind::Bops => c.bops,
        CostKind::Ram => c.ram,
        CostKind::Device => c.insns.unwrap_or(f64::NAN),
    };
    children.sort_by(|a, b| cost(a).total_cmp(&cost(b)));
    let pts: Vec<(f64, f64)> = children.iter().map(|c| (cost(c), c.val_accuracy)).collect();
    for i in mps::pareto(&pts) {
        children[i].pareto = true;
    }
    let front = Front {
        cost: m.cost,
        evaluations: children.len(),
        etas,
        children,
        train_seconds: state.seconds,
        front_seconds: started.elapsed().as_secs_f64(),
        probabilities,
        slot_labels,
        weight_candidates: m.weight_bits.clone(),
        act_candidates: m.act_bits.clone(),
        app_bytes: on_board
            .as_ref()
            .map(|(_, t, _, _)| (t.app_flash, t.app_ram)),
        board,
    };
    crate::train::write_atomic(
        &Front::path(run),
        serde_json::to_string_pretty(&front)?.as_bytes(),
    )?;
    Ok(front)
}

/// How to choose a front point.
#[derive(Clone, Copy, Debug, Default)]
pub struct Choice {
    /// The K-th Pareto point (0 = cheapest).
    pub point: Option<usize>,
    /// The most accurate Pareto point with at most this many BOPs.
    pub max_bops: Option<f64>,
    /// The most accurate Pareto point with at most this many bytes of S14 RAM.
    pub max_s14_ram: Option<f64>,
    /// The most accurate Pareto point that runs in at most this many milliseconds on the
    /// front's board (its clock, one instruction per cycle).
    pub max_ms: Option<f64>,
    /// ... whose board app with the model takes at most this many bytes of flash.
    pub max_flash: Option<f64>,
    /// ... whose board app with the arena takes at most this many bytes of RAM.
    pub max_ram: Option<f64>,
    /// ... that takes at most this many microjoules per inference (the board's datasheet).
    pub max_uj: Option<f64>,
}

impl Choice {
    /// Whether a budget on the board is set.
    fn on_board(&self) -> bool {
        self.max_ms.is_some()
            || self.max_flash.is_some()
            || self.max_ram.is_some()
            || self.max_uj.is_some()
    }
}

/// The Pareto points `choice` allows, most accurate (validation) first.
pub fn candidates<'a>(front: &'a Front, choice: &Choice) -> Result<Vec<&'a Child>> {
    let pareto = front.pareto();
    if let Some(k) = choice.point {
        let Some(c) = pareto.get(k) else {
            bail!(
                "--pareto-point {k}: the front has {} points (0..={})",
                pareto.len(),
                pareto.len().saturating_sub(1)
            );
        };
        return Ok(vec![c]);
    }
    if choice.on_board() {
        let Some(board) = front.board.as_deref() else {
            bail!(
                "--max-ms, --max-flash, --max-ram and --max-uj budget the board, and this front has \
                 no board figures: run `bitspike mps front --run R --board B` (the S14 RAM \
                 budget is --max-s14-ram)"
            );
        };
        if choice.max_ms.is_some() && crate::boards::clock_mhz(board)?.is_none() {
            bail!("--max-ms: {board} is an emulated board without a clock: give the real board (`mps front --board nucleo-l4r5zi`)");
        }
        if choice.max_uj.is_some() && crate::boards::microjoules(board, 1.0)?.is_none() {
            bail!("--max-uj: {board} has no datasheet energy figures");
        }
    }
    let fits = |c: &Child| -> bool {
        if !choice.on_board() {
            return true;
        }
        let Some(b) = front.on_board(c) else {
            return false;
        };
        choice.max_ms.is_none_or(|x| b.ms.is_some_and(|v| v <= x))
            && choice.max_uj.is_none_or(|x| b.uj.is_some_and(|v| v <= x))
            && choice.max_flash.is_none_or(|x| b.flash as f64 <= x)
            && choice.max_ram.is_none_or(|x| b.ram as f64 <= x)
    };
    let mut v: Vec<&Child> = pareto
        .into_iter()
        .filter(|c| choice.max_bops.is_none_or(|b| c.bops <= b))
        .filter(|c| choice.max_s14_ram.is_none_or(|r| c.ram <= r))
        .filter(|c| fits(c))
        .collect();
    if v.is_empty() {
        bail!("no point of the front fits the budget (see `bitspike mps front --run R`)");
    }
    v.sort_by(|a, b| b.val_accuracy.total_cmp(&a.val_accuracy));
    Ok(v)
}

/// The front as a Markdown table; with board figures, the instructions, time, flash and RAM
/// on the board beside BOPs and S14 RAM.
pub fn front_markdown(front: &Front) -> String {
    let mut m = String::new();
    let board = front.board.is_some() && front.app_bytes.is_some();
    let ms = front
        .board
        .as_deref()
        .is_some_and(|b| crate::boards::clock_mhz(b).ok().flatten().is_some());
    if board {
        let _ = writeln!(
            m,
            "| point | BOPs (M) | RAM S14 (B) | instructions (M) |{} flash (B) | RAM (B) | validation | test | weight bits | input bits | eta |",
            if ms { " ms |" } else { "" }
        );
        let _ = writeln!(
            m,
            "| --- | --- | --- | --- |{} --- | --- | --- | --- | --- | --- | --- |",
            if ms { " --- |" } else { "" }
        );
    } else {
        let _ = writeln!(
            m,
            "| point | BOPs (M) | RAM S14 (B) | validation | test | weight bits | input bits | eta |"
        );
        let _ = writeln!(m, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    }
    let mut k = 0;
    for c in &front.children {
        let point = if c.pareto {
            k += 1;
            (k - 1).to_string()
        } else {
            "-".into()
        };
        let dev = match front.on_board(c) {
            Some(b) if board => format!(
                " {:.3} |{} {} | {} |",
                b.insns / 1e6,
                match b.ms {
                    Some(v) if ms => format!(" {v:.2} |"),
                    _ => String::new(),
                },
                b.flash,
                b.ram
            ),
            _ if board => format!(" - |{} - | - |", if ms { " - |" } else { "" }),
            _ => String::new(),
        };
        let _ = writeln!(
            m,
            "| {point} | {:.3} | {:.0} |{dev} {:.2} % | {:.2} % | {} | {} | {:.3}..{:.3} |",
            c.bops / 1e6,
            c.ram,
            100.0 * c.val_accuracy,
            100.0 * c.test_accuracy,
            join(&c.plan.weight_bits),
            join(&c.plan.act_bits),
            c.etas.first().copied().unwrap_or(0.0),
            c.etas.last().copied().unwrap_or(0.0),
        );
    }
    m
}

fn join(v: &[u8]) -> String {
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One labelled result of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Method (`One-Shot (Lloyd)`, `EdMIPS (Lloyd)`, `LSQ w4a4`...).
    pub method: String,
    /// BOPs.
    pub bops: f64,
    /// RAM in bytes (S14).
    pub ram: f64,
    /// Test accuracy (0..1).
    pub accuracy: f64,
    /// Bit widths.
    pub plan: BitPlan,
    /// Where it came from.
    pub source: String,
}

/// The report: every method's points, the Pareto front of each, and the child-vs-standalone
/// correlation.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// All points.
    pub points: Vec<Point>,
    /// The One-Shot search: supernet evaluations and training seconds.
    pub evaluations: usize,
    /// Supernet training seconds.
    pub train_seconds: f64,
    /// `(child accuracy in the supernet, standalone accuracy)` per child trained standalone.
    pub correlation_pairs: Vec<(f64, f64)>,
    /// Pearson correlation of the pairs.
    pub pearson: Option<f64>,
    /// Spearman rank correlation of the pairs.
    pub spearman: Option<f64>,
}

/// Pearson's correlation.
pub fn pearson(p: &[(f64, f64)]) -> Option<f64> {
    let n = p.len() as f64;
    if p.len() < 3 {
        return None;
    }
    let (mx, my) = (
        p.iter().map(|q| q.0).sum::<f64>() / n,
        p.iter().map(|q| q.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in p {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (ties share their mean rank).
pub fn spearman(p: &[(f64, f64)]) -> Option<f64> {
    let x = ranks(&p.iter().map(|q| q.0).collect::<Vec<_>>());
    let y = ranks(&p.iter().map(|q| q.1).collect::<Vec<_>>());
    pearson(&x.into_iter().zip(y).collect::<Vec<_>>())
}

/// A trained run's point: its plan (the uniform bits when it has none), its costs and its final
/// fake-quant test accuracy.
pub fn run_point(method: &str, run: &Path, data: &Dataset) -> Result<Point> {
    let r = RunDir(run.to_path_buf());
    let cfg = r.read_config()?;
    let state = r.read_state()?;
    let how: &dyn train::Method = match cfg.mps {
        Some(_) => &mps::Search,
        None => &train::Qat,
    };
    let t = train::build(how, &cfg, data, Device::Cpu)?;
    let slots = Slots::of(&t.net.spec, data.max_code)?;
    let plan = if cfg.mixed.is_empty() {
        // The uniform policy: hidden layers at weight_bits, first and last at first_last_bits.
        let mut p = slots.uniform(cfg.quant.weight_bits, cfg.quant.act_bits);
        let last = p.weight_bits.len().saturating_sub(1);
        for i in [0, last] {
            if let Some(b) = p.weight_bits.get_mut(i) {
                *b = cfg.quant.first_last_bits;
            }
        }
        p
    } else {
        cfg.mixed.clone()
    };
    Ok(Point {
        method: method.to_string(),
        bops: slots.cost(&plan, CostKind::Bops),
        ram: slots.cost(&plan, CostKind::Ram),
        accuracy: state.test_accuracy,
        plan,
        source: run.display().to_string(),
    })
}

/// Build the report from a search run with its front, and labelled trained runs
/// (`(label, run)`): a trained run gives one point, another search run its front's Pareto
/// children. Runs labelled `standalone` are children trained from scratch; they pair with the
/// front's children of the same plan for the correlation (Figure S3).
pub fn report(
    search: &RunDir,
    runs: &[(String, PathBuf)],
    data: &Dataset,
    out: &Path,
) -> Result<Report> {
    let front = Front::read(search)?;
    let children = |f: &Front, label: &str, source: &Path| -> Vec<Point> {
        f.pareto()
            .into_iter()
            .map(|c| Point {
                method: label.into(),
                bops: c.bops,
                ram: c.ram,
                accuracy: c.test_accuracy,
                plan: c.plan.clone(),
                source: source.display().to_string(),
            })
            .collect()
    };
    let mut points = children(&front, "One-Shot (supernet child)", &search.0);
    let mut pairs = Vec::new();
    for (label, run) in runs {
        // Another search with a front (One-Shot with another quantizer, say): its Pareto
        // children under the label.
        let other = RunDir(run.clone());
        if other.read_config()?.mps.is_some() {
            points.extend(children(&Front::read(&other)?, label, run));
            continue;
        }
        let p = run_point(label, run, data)?;
        if label == "standalone" {
            if let Some(c) = front.children.iter().find(|c| c.plan == p.plan) {
                pairs.push((c.test_accuracy, p.accuracy));
            }
        }
        points.push(p);
    }
    let r = Report {
        points,
        evaluations: front.evaluations,
        train_seconds: front.train_seconds,
        pearson: pearson(&pairs),
        spearman: spearman(&pairs),
        correlation_pairs: pairs,
    };
    write_report(&r, &front, out)?;
    Ok(r)
}

fn write_report(r: &Report, front: &Front, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| method | BOPs (M) | RAM S14 (B) | test accuracy | weight bits | input bits |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- |");
    let mut methods: Vec<&str> = Vec::new();
    for p in &r.points {
        if !methods.contains(&p.method.as_str()) {
            methods.push(&p.method);
        }
    }
    let mut series = Vec::new();
    for m in &methods {
        let mut pts: Vec<&Point> = r.points.iter().filter(|p| p.method == *m).collect();
        pts.sort_by(|a, b| a.bops.total_cmp(&b.bops));
        for p in &pts {
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.0} | {:.2} % | {} | {} |",
                p.method,
                p.bops / 1e6,
                p.ram,
                100.0 * p.accuracy,
                join(&p.plan.weight_bits),
                join(&p.plan.act_bits)
            );
        }
        series.push((
            m.to_string(),
            pts.iter().map(|p| (p.bops / 1e6, p.accuracy)).collect(),
        ));
    }
    let _ = writeln!(
        md,
        "\nOne-Shot: {} supernet evaluations for the front; supernet training {:.0} s.",
        r.evaluations, r.train_seconds
    );
    if let Some(c) = r.pearson {
        let _ = writeln!(
            md,
            "Child in the supernet vs the same bit widths trained standalone: Pearson {c:.3}, \
             Spearman {:.3} over {} children.",
            r.spearman.unwrap_or(f64::NAN),
            r.correlation_pairs.len()
        );
    }
    write_tables(out, "pareto", &md, r)?;
    plot(
        &out.join("pareto.svg"),
        "Pareto fronts: test accuracy against BOPs",
        "MBOPs",
        &series,
        false,
    )?;
    if !r.correlation_pairs.is_empty() {
        let pts: Vec<(f64, f64)> = r.correlation_pairs.clone();
        let mut sorted = pts.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        plot(
            &out.join("child-vs-standalone.svg"),
            "Standalone test accuracy against child test accuracy in the supernet",
            "child accuracy in the supernet",
            &[("standalone".into(), sorted)],
            false,
        )?;
    }
    write_tables(out, "front", &front_markdown(front), front)?;
    plot_probabilities(front, out)
}

/// Figures S6-S11: the candidate probabilities of every slot against eta, one SVG per slot.
pub fn plot_probabilities(front: &Front, out: &Path) -> Result<()> {
    let Some((_, first)) = front.probabilities.first() else {
        return Ok(());
    };
    for (s, label) in front.slot_labels.iter().enumerate() {
        let n = first.get(s).map_or(0, Vec::len);
        let weights = s < front.slot_labels.len() - front.act_slots();
        let (cands, kind) = if weights {
            (&front.weight_candidates, "weights")
        } else {
            (&front.act_candidates, "output")
        };
        let series: Vec<(String, Vec<(f64, f64)>)> = (0..n)
            .map(|j| {
                (
                    format!("{} bits", cands.get(j).copied().unwrap_or(0)),
                    front
                        .probabilities
                        .iter()
                        .map(|(e, p)| (*e, 100.0 * p[s][j]))
                        .collect(),
                )
            })
            .collect();
        let file = out.join(format!(
            "probabilities-{s:02}-{}-{kind}.svg",
            label.split(' ').next().unwrap_or("slot")
        ));
        plot_series(
            &file,
            &format!("{label}: candidate probabilities"),
            "eta",
            "probability (%)",
            &series,
            true,
        )?;
    }
    Ok(())
}

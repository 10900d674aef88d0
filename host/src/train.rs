//! Quantization-aware training and the run folder it writes.
//!
//! A run folder holds `config.toml` (the resolved configuration), `weights-<epoch>.ot` (the tch
//! VarStore: weights, BatchNorm statistics, quantizer parameters), `state.json` (epochs done,
//! the weights file of that epoch, latest accuracy) and `log.jsonl` (one JSON object per epoch).
//!
//! A checkpoint commits in one step: the new weights file is written under a temporary name and
//! renamed, then `state.json` (which names it) is replaced the same way, then the previous
//! weights file is removed. A run stopped at any point leaves a `state.json` naming a whole
//! weights file of the epoch it counts. `--resume` continues from there: it trims the log to the
//! committed epochs, reseeds as an uninterrupted run would, and restarts the optimizer's moments.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::config::{Optimizer, TrainConfig};
use crate::data::{self, Dataset};
use crate::net::{QNet, Spec};

/// How far a run got.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Fake-quant test accuracy after the last evaluation (0..1).
    pub test_accuracy: f64,
    /// Seconds of training so far.
    pub seconds: f64,
    /// The weights file of `epochs_done` (in the run folder).
    pub weights: String,
}

/// Paths of a run folder.
#[derive(Clone, Debug)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// The committed weights file (named by `state.json`).
    pub fn weights(&self) -> Result<PathBuf> {
        let s = self.read_state()?;
        if s.weights.is_empty() || s.weights.contains('/') {
            bail!("{}: names no weights file", self.state().display());
        }
        Ok(self.0.join(s.weights))
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
    /// `log.jsonl`.
    pub fn log(&self) -> PathBuf {
        self.0.join("log.jsonl")
    }

    /// Read the state of a finished or interrupted run.
    pub fn read_state(&self) -> Result<State> {
        let text = std::fs::read_to_string(self.state()).with_context(|| {
            format!("{} is not a training run (no state.json)", self.0.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: corrupt", self.state().display()))
    }

    /// Read the run's configuration.
    pub fn read_config(&self) -> Result<TrainConfig> {
        TrainConfig::from_file(&self.config())
    }
}

/// libtorch's messages run over many lines; errors here are one line.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim_end_matches('.')
}

/// Whether a variable name is a quantizer's parameter (learned step, clip, its initialisation
/// flag, an observed range, QAC's parameters) rather than a weight or BatchNorm statistic.
fn is_quantizer_param(name: &str) -> bool {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    ["log_wstep", "wstep_init", "log_astep", "astep_init", "amax"].contains(&leaf)
        || leaf.starts_with("qac_")
}

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A network with its parameters, rebuilt from a configuration.
pub struct Trained {
    /// The parameters.
    pub vs: nn::VarStore,
    /// The network.
    pub net: QNet,
}

/// QAC's level penalty on the board (`[quant.qac] cost = "device"`): the spiking network's
/// measured cost as a function of its layers' level counts, and the unit that gives a network
/// of uniform initial level counts the same penalty as the mean level count would.
fn qac_device_penalty(
    cfg: &TrainConfig,
    net: &QNet,
) -> Result<Option<(crate::device_costs::snn::SnnCost, f64)>> {
    use crate::device_costs::{self as dc, snn};
    let q = &cfg.quant.qac;
    if cfg.quant.act_quantizer != crate::quant::ActQuantizer::Qac
        || q.cost != crate::qac::LevelCost::Device
    {
        return Ok(None);
    }
    let board = q
        .board
        .as_deref()
        .context("qac cost = \"device\" needs a board")?;
    let table = dc::CostTable::read(&dc::table_path(crate::boards::cost_board(board)?))?;
    let weights = snn::weight_plan(&net.spec, cfg.quant.weight_bits, cfg.quant.first_last_bits);
    let cost = snn::SnnCost::new(
        &net.spec,
        &weights,
        &table,
        &crate::qac::DEVICE_TIMESTEPS,
        net.input_max,
    )?;
    let n = crate::qac::layers(net).len();
    let init: Vec<Tensor> = (0..n).map(|_| Tensor::from(q.initial_levels)).collect();
    let e = cost.interpolated(&init).double_value(&[]);
    // penalty * E(levels) / unit equals penalty * initial_levels at the start.
    Ok(Some((cost, e / q.initial_levels.max(1e-9))))
}

/// Build the network a configuration describes, for `data`'s input shape.
pub fn build(cfg: &TrainConfig, data: &Dataset, device: Device) -> Result<Trained> {
    let vs = nn::VarStore::new(device);
    let net = build_in(&vs, cfg, data)?;
    Ok(Trained { vs, net })
}

/// Build the network a configuration describes with its parameters in `vs`.
pub fn build_in(vs: &nn::VarStore, cfg: &TrainConfig, data: &Dataset) -> Result<QNet> {
    let s = data.shape;
    let spec = Spec::of(cfg.arch, [s.c as i64, s.h as i64, s.w as i64], data.classes);
    QNet::build(vs, spec, cfg, data.max_code)
}

/// Load a run's network and weights.
pub fn load(run: &RunDir, data: &Dataset, device: Device) -> Result<Trained> {
    let cfg = run.read_config()?;
    let mut t = build(&cfg, data, device)?;
    let weights = run.weights()?;
    t.vs.load(&weights).map_err(|e| {
        anyhow::anyhow!(
            "{}: corrupt or not this network's checkpoint ({})",
            weights.display(),
            first_line(&e.to_string())
        )
    })?;
    Ok(t)
}

/// Fake-quant accuracy (0..1) on `split`, batch by batch, in evaluation mode.
pub fn accuracy(net: &QNet, split: &data::Split, max_code: u8, device: Device) -> f64 {
    tch::no_grad(|| {
        let mut correct = 0i64;
        for idx in data::batches(split.len(), 1000, false) {
            let x = data::to_input(&split.images.index_select(0, &idx), max_code, device);
            let y = split.labels.index_select(0, &idx).to_device(device);
            let pred = net.forward_t(&x, false).argmax(-1, false);
            correct += pred.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
        }
        correct as f64 / split.len().max(1) as f64
    })
}

/// Options of one training call.
pub struct TrainOptions<'a> {
    /// The run folder.
    pub out: &'a Path,
    /// Continue an interrupted run instead of starting a new one.
    pub resume: bool,
    /// Where to train.
    pub device: Device,
    /// Show progress bars.
    pub progress: bool,
    /// Start a new run from these weights (a checkpoint holding at least this network's
    /// variables, e.g. a supernet's for one of its children) instead of a fresh initialisation.
    pub init: Option<&'a Path>,
}

impl<'a> TrainOptions<'a> {
    /// A new run into `out` on the CPU, from a fresh initialisation, without progress bars (as
    /// tests and scripts want it).
    pub fn cpu(out: &'a Path) -> Self {
        Self {
            out,
            resume: false,
            device: Device::Cpu,
            progress: false,
            init: None,
        }
    }
}

/// Train `cfg` on `data` into the run folder; returns the final state.
pub fn train(cfg: &TrainConfig, data: &Dataset, o: &TrainOptions<'_>) -> Result<State> {
    cfg.check()?;
    let run = RunDir(o.out.to_path_buf());
    let mut state = if o.resume {
        let saved = run.read_config()?;
        if &saved != cfg {
            bail!(
                "{}: --resume continues a run with its own configuration; pass no options that change it",
                run.0.display()
            );
        }
        // A run stopped before its first checkpoint starts over.
        if run.state().exists() {
            run.read_state()?
        } else {
            State::default()
        }
    } else {
        let busy = std::fs::read_dir(&run.0).is_ok_and(|mut d| d.next().is_some());
        if busy {
            bail!(
                "{} is not empty: continue a run there with --resume, or choose another --out",
                run.0.display()
            );
        }
        State::default()
    };
    tch::manual_seed(cfg.seed);
    // Build before writing anything: a network the configuration cannot describe (a bit plan
    // of the wrong length, say) leaves no run folder behind.
    let mut t = build(cfg, data, o.device)?;
    // A search holds out the last training images to evaluate its children on.
    let holdout = cfg.mps.as_ref().map_or(0, |m| m.validation);
    let n = data.train.len() - holdout;
    if n < 1 {
        bail!(
            "mps validation {holdout} leaves no training images (the training split has {})",
            data.train.len()
        );
    }
    // The starting weights load before anything is written: a bad file leaves no run folder.
    if let (Some(init), 0) = (o.init, state.epochs_done) {
        let missing = t.vs.load_partial(init).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot start from it ({})",
                init.display(),
                first_line(&e.to_string())
            )
        })?;
        // Quantizer parameters may be new (QAT from a full-precision or differently quantized
        // network): they initialise from the data on first use. Weights may not be.
        let weights: Vec<&String> = missing.iter().filter(|n| !is_quantizer_param(n)).collect();
        if !weights.is_empty() {
            bail!(
                "{}: cannot start from it (it lacks {})",
                init.display(),
                weights
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if state.epochs_done > 0 {
        let weights = run.weights()?;
        t.vs.load(&weights).map_err(|e| {
            anyhow::anyhow!(
                "{}: corrupt checkpoint ({})",
                weights.display(),
                first_line(&e.to_string())
            )
        })?;
    }
    if !o.resume {
        std::fs::create_dir_all(&run.0)
            .with_context(|| format!("cannot create {}", run.0.display()))?;
        let text = toml::to_string(cfg).context("serializing the configuration")?;
        write_atomic(&run.config(), text.as_bytes())?;
    }
    // Keep the log to the committed epochs (a stop after a log line, before its checkpoint).
    let log_text = std::fs::read_to_string(run.log()).unwrap_or_default();
    let kept: Vec<&str> = log_text.lines().take(state.epochs_done).collect();
    write_atomic(
        &run.log(),
        (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes(),
    )?;
    let mut opt = optimizer(cfg, &t.vs)?;
    // Groups exist up to the largest one with a variable (Lloyd and HWGQ learn nothing in
    // group 1, for instance); setting a missing one is an error in libtorch.
    let groups =
        t.vs.variables_
            .lock()
            .map(|v| v.trainable_variables.iter().map(|v| v.group + 1).max())
            .ok()
            .flatten()
            .unwrap_or(1);
    opt.set_weight_decay_group(0, cfg.weight_decay);
    for g in 1..groups {
        opt.set_weight_decay_group(g, 0.0);
    }
    let per_epoch = ((n + cfg.batch_size - 1) / cfg.batch_size) as usize;
    let total = per_epoch * cfg.epochs;
    let device_penalty = qac_device_penalty(cfg, &t.net)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.log())
        .with_context(|| format!("cannot open {}", run.log().display()))?;
    for epoch in state.epochs_done..cfg.epochs {
        // Each epoch's shuffling and augmentation depend on the seed and the epoch only, so a
        // resumed run sees what an uninterrupted one would.
        tch::manual_seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as i64));
        let started = Instant::now();
        let bar = if o.progress {
            indicatif::ProgressBar::new(per_epoch as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {msg} [{bar:30}] {pos}/{len} batches, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("{}/{}", epoch + 1, cfg.epochs));
        let (mut loss_sum, mut seen, mut correct) = (0.0, 0i64, 0i64);
        for (b, idx) in data::batches(n, cfg.batch_size, true)
            .into_iter()
            .enumerate()
        {
            opt.set_lr(cfg.lr_at(epoch * per_epoch + b, total, epoch));
            // The bit-width model learns at its own constant rate; draw this step's penalty
            // and relaxed child before the forward pass.
            let search = t.net.mps.as_ref().map(|s| {
                opt.set_lr_group(2, s.cfg.lr_theta);
                let eta = s.sample_eta();
                let progress = (epoch * per_epoch + b) as f64 / total.max(1) as f64;
                s.begin_step(eta, progress)
            });
            let x = data::to_input(
                &data.train.images.index_select(0, &idx),
                data.max_code,
                o.device,
            );
            let x = data::augment(&x, &cfg.augment, data.name.flips());
            let y = data.train.labels.index_select(0, &idx).to_device(o.device);
            let logits = t.net.forward_t(&x, true);
            let mut loss = logits.cross_entropy_for_logits(&y);
            if let Some(extra) = search {
                loss += extra;
            }
            // QAC's optional pressure towards fewer timesteps: the mean learned level count, or
            // the board's measured cost of every layer's level count.
            let penalty = cfg.quant.qac.level_penalty;
            if let (Some((cost, unit)), true) = (&device_penalty, penalty > 0.0) {
                let levels: Vec<Tensor> = crate::qac::layers(&t.net)
                    .into_iter()
                    .map(|(_, q)| q.levels_tensor())
                    .collect();
                loss += cost.interpolated(&levels) * (penalty / unit);
            } else if penalty > 0.0 {
                let learned: Vec<Tensor> = crate::qac::layers(&t.net)
                    .into_iter()
                    .filter(|(_, q)| q.learns_levels())
                    .map(|(_, q)| q.levels_tensor())
                    .collect();
                if !learned.is_empty() {
                    let n = learned.len() as f64;
                    loss += Tensor::stack(&learned, 0).sum(Kind::Float) * (penalty / n);
                }
            }
            opt.backward_step(&loss);
            let k = idx.size()[0];
            loss_sum += loss.double_value(&[]) * k as f64;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
            seen += k;
            bar.inc(1);
        }
        bar.finish_and_clear();
        state.epochs_done = epoch + 1;
        state.seconds += started.elapsed().as_secs_f64();
        let last = epoch + 1 == cfg.epochs;
        // A supernet is evaluated as its most probable child at the middle penalty.
        let mid = t.net.mps.as_ref().map(|s| {
            let eta = (s.cfg.eta[0] * s.cfg.eta[1]).sqrt();
            let plan = s.plan_at(eta);
            (eta, plan)
        });
        if let (Some(s), Some((_, plan))) = (&t.net.mps, &mid) {
            s.select(plan)?;
        }
        let test = if last || (epoch + 1) % cfg.eval_every == 0 {
            let a = accuracy(&t.net, &data.test, data.max_code, o.device);
            state.test_accuracy = a;
            Some(a)
        } else {
            None
        };
        let line = serde_json::json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen.max(1) as f64,
            "train_accuracy": correct as f64 / seen.max(1) as f64,
            "test_accuracy_fake_quant": test,
            "lr": cfg.lr_at((epoch + 1) * per_epoch, total, epoch),
            "seconds": state.seconds,
            "qac_levels": crate::qac::layers(&t.net).iter().map(|(_, q)| q.levels()).collect::<Vec<_>>(),
            "mps_mid_eta": mid.as_ref().map(|m| m.0),
            "mps_mid_plan": mid.as_ref().map(|m| m.1.label()),
        });
        writeln!(log, "{line}").context("writing the log")?;
        if o.progress {
            eprintln!(
                "epoch {}/{}: loss {:.4}, train {:.2} %{}",
                epoch + 1,
                cfg.epochs,
                loss_sum / seen.max(1) as f64,
                100.0 * correct as f64 / seen.max(1) as f64,
                test.map(|a| format!(", test (fake-quant) {:.2} %", 100.0 * a))
                    .unwrap_or_default()
            );
            if let Some((eta, plan)) = &mid {
                eprintln!("  most probable child at eta {eta:.3}: {}", plan.label());
            }
            let qac = crate::qac::layers(&t.net);
            if !qac.is_empty() {
                let levels: Vec<String> = qac
                    .iter()
                    .map(|(_, q)| format!("{:.2}", q.levels()))
                    .collect();
                eprintln!("  QAC level counts (timesteps): {}", levels.join(" "));
            }
        }
        commit_checkpoint(&run, &t.vs, &mut state)?;
    }
    Ok(state)
}

/// Save `vs` to `file` through a temporary file and a rename.
pub fn save_atomic(vs: &nn::VarStore, file: &Path) -> Result<()> {
    let tmp = file.with_extension("tmp");
    vs.save(&tmp).map_err(|e| {
        anyhow::anyhow!(
            "cannot write {}: {}",
            tmp.display(),
            first_line(&e.to_string())
        )
    })?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))
}

/// Commit the checkpoint of `state.epochs_done` epochs: the weights file, then `state.json`
/// naming it (the commit point), then the previous weights file is removed.
pub fn commit_checkpoint(run: &RunDir, vs: &nn::VarStore, state: &mut State) -> Result<()> {
    let name = format!("weights-{}.ot", state.epochs_done);
    save_atomic(vs, &run.0.join(&name))?;
    let previous = std::mem::replace(&mut state.weights, name);
    write_atomic(
        &run.state(),
        serde_json::to_string_pretty(&state)?.as_bytes(),
    )?;
    if !previous.is_empty() && previous != state.weights {
        let _ = std::fs::remove_file(run.0.join(previous));
    }
    Ok(())
}

/// The optimizer a configuration names, over every variable of `vs`, at rate `cfg.lr`.
pub fn optimizer(cfg: &TrainConfig, vs: &nn::VarStore) -> Result<nn::Optimizer> {
    Ok(match cfg.optimizer {
        Optimizer::Adam => nn::Adam::default().build(vs, cfg.lr)?,
        Optimizer::Sgd => nn::Sgd {
            momentum: cfg.momentum,
            ..Default::default()
        }
        .build(vs, cfg.lr)?,
    })
}

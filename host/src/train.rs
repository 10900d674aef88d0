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
//!
//! The loop knows no method: a [`Method`] builds the network a configuration describes and
//! gives the loop a [`Hook`] (extra loss terms, per-step work, log fields). Plain QAT, uniform
//! or with a mixed-precision plan, is [`Qat`]; One-Shot MPS's search (`crate::mps::Search`) and
//! QAC (`crate::qac::Qac`) are methods of their own, and `crate::methods` picks one for a
//! configuration.

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
use crate::slots::{Planned, Slots};

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

/// Write `bytes` to `path` through a temporary file and a rename: a write that fails (a full
/// disk) leaves the previous file as it was, and no temporary file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write {}: {e}", path.display());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A network with its parameters, rebuilt from a configuration.
pub struct Trained {
    /// The parameters.
    pub vs: nn::VarStore,
    /// The network.
    pub net: QNet,
    /// The configuration it was built from.
    pub cfg: TrainConfig,
}

/// A way of training a network: how it builds the network a configuration describes, and
/// what it adds to the generic loop.
pub trait Method {
    /// Build the network `cfg` describes for `spec` (images with codes `0..=input_max`),
    /// with its parameters in `vs`.
    fn build(
        &self,
        vs: &nn::VarStore,
        spec: Spec,
        cfg: &TrainConfig,
        input_max: u8,
    ) -> Result<QNet>;

    /// How many training images at the end of the split the loop leaves out.
    fn holdout(&self, _cfg: &TrainConfig) -> i64 {
        0
    }

    /// The hook of one run of `net` (made before anything is written, so that a setting it
    /// cannot use leaves no run folder behind).
    fn hook(&self, _cfg: &TrainConfig, _net: &QNet) -> Result<Box<dyn Hook>> {
        Ok(Box::new(NoHook))
    }
}

/// What a method does inside the training loop.
pub trait Hook {
    /// Before a step's forward pass (`progress`: steps done over all steps): per-group
    /// rates, draws the step needs; returns a term to add to the loss.
    fn before_step(
        &mut self,
        _net: &QNet,
        _opt: &mut nn::Optimizer,
        _progress: f64,
    ) -> Option<Tensor> {
        None
    }

    /// After a step's forward pass: a term to add to the loss.
    fn loss(&mut self, _net: &QNet) -> Option<Tensor> {
        None
    }

    /// After an epoch's steps, before its evaluation: set the network up to be evaluated and
    /// say what the log line and the progress output add.
    fn end_epoch(&mut self, _net: &QNet) -> Result<EpochNotes> {
        Ok(EpochNotes::default())
    }
}

/// What a [`Hook`] adds to an epoch's log line and progress output.
#[derive(Debug, Default)]
pub struct EpochNotes {
    /// Fields of the JSON log line.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Lines printed after the epoch's progress line.
    pub lines: Vec<String>,
}

/// A hook that adds nothing.
pub struct NoHook;

impl Hook for NoHook {}

/// Quantization-aware training at uniform bit widths (`[quant]`) or with a mixed-precision
/// plan (`[mixed]`, the quantizers of a slot at `b` bits under `n<i>/w<b>` and `n<i>/a<b>`, so
/// that a supernet's checkpoint loads into it).
pub struct Qat;

impl Method for Qat {
    fn build(
        &self,
        vs: &nn::VarStore,
        spec: Spec,
        cfg: &TrainConfig,
        input_max: u8,
    ) -> Result<QNet> {
        cfg.quant.check()?;
        if cfg.mixed.is_empty() {
            let q = cfg.quant.uniform();
            let bits = q.bits.clone();
            return QNet::with(vs, spec, input_max, &q, Some(bits), false);
        }
        let slots = Slots::of(&spec, input_max)?;
        slots.check(&cfg.mixed)?;
        let q = Planned {
            weight: cfg.quant.weight_quantizer,
            act: cfg.quant.act_quantizer,
            plan: cfg.mixed.clone(),
            slots,
        };
        QNet::with(vs, spec, input_max, &q, None, false)
    }
}

/// Build the network a configuration describes, for `data`'s input shape.
pub fn build(
    method: &dyn Method,
    cfg: &TrainConfig,
    data: &Dataset,
    device: Device,
) -> Result<Trained> {
    let vs = nn::VarStore::new(device);
    let net = build_in(method, &vs, cfg, data)?;
    Ok(Trained {
        vs,
        net,
        cfg: cfg.clone(),
    })
}

/// Build the network a configuration describes with its parameters in `vs`.
pub fn build_in(
    method: &dyn Method,
    vs: &nn::VarStore,
    cfg: &TrainConfig,
    data: &Dataset,
) -> Result<QNet> {
    let s = data.shape;
    let spec = Spec::of(cfg.arch, [s.c as i64, s.h as i64, s.w as i64], data.classes);
    method.build(vs, spec, cfg, data.max_code)
}

/// Load a run's network and weights.
pub fn load(method: &dyn Method, run: &RunDir, data: &Dataset, device: Device) -> Result<Trained> {
    let cfg = run.read_config()?;
    let mut t = build(method, &cfg, data, device)?;
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
pub fn train(
    method: &dyn Method,
    cfg: &TrainConfig,
    data: &Dataset,
    o: &TrainOptions<'_>,
) -> Result<State> {
    cfg.check()?;
    let run = RunDir(o.out.to_path_buf());
    let mut state = open_run(&run, cfg, o.resume)?;
    tch::manual_seed(cfg.seed);
    // Build before writing anything: a network the configuration cannot describe (a bit plan
    // of the wrong length, say) leaves no run folder behind.
    let mut t = build(method, cfg, data, o.device)?;
    let mut hook = method.hook(cfg, &t.net)?;
    // A search holds out the last training images to evaluate its children on.
    let holdout = method.holdout(cfg);
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
        load_checkpoint(&run, &mut t.vs)?;
    }
    if !o.resume {
        std::fs::create_dir_all(&run.0)
            .with_context(|| format!("cannot create {}", run.0.display()))?;
        let text = toml::to_string(cfg).context("serializing the configuration")?;
        write_atomic(&run.config(), text.as_bytes())?;
    }
    trim_log(&run, state.epochs_done)?;
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
            let progress = (epoch * per_epoch + b) as f64 / total.max(1) as f64;
            let extra = hook.before_step(&t.net, &mut opt, progress);
            let x = data::to_input(
                &data.train.images.index_select(0, &idx),
                data.max_code,
                o.device,
            );
            let x = data::augment(&x, &cfg.augment, data.name.flips());
            let y = data.train.labels.index_select(0, &idx).to_device(o.device);
            let logits = t.net.forward_t(&x, true);
            let mut loss = logits.cross_entropy_for_logits(&y);
            if let Some(extra) = extra {
                loss += extra;
            }
            if let Some(extra) = hook.loss(&t.net) {
                loss += extra;
            }
            let value = loss.double_value(&[]);
            check_finite(value, None, epoch + 1, b + 1)?;
            opt.backward_step(&loss);
            check_finite(value, Some(&t.vs), epoch + 1, b + 1)?;
            let k = idx.size()[0];
            loss_sum += value * k as f64;
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
        let notes = hook.end_epoch(&t.net)?;
        let test = if last || (epoch + 1) % cfg.eval_every == 0 {
            let a = accuracy(&t.net, &data.test, data.max_code, o.device);
            state.test_accuracy = a;
            Some(a)
        } else {
            None
        };
        let mut line = serde_json::json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen.max(1) as f64,
            "train_accuracy": correct as f64 / seen.max(1) as f64,
            "test_accuracy_fake_quant": test,
            "lr": cfg.lr_at((epoch + 1) * per_epoch, total, epoch),
            "seconds": state.seconds,
        });
        if let Some(m) = line.as_object_mut() {
            m.extend(notes.fields);
        }
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
            for l in &notes.lines {
                eprintln!("  {l}");
            }
        }
        commit_checkpoint(&run, &t.vs, &mut state)?;
    }
    Ok(state)
}

/// Stop a run that diverged: a non-finite loss at step `step` (from 1) of epoch `epoch` (from
/// 1), or, with `vs`, a non-finite parameter after it. The error is one line naming both; the
/// run's last committed checkpoint stays as it is (nothing after it is written).
pub fn check_finite(loss: f64, vs: Option<&nn::VarStore>, epoch: usize, step: usize) -> Result<()> {
    let at = format!("epoch {epoch}, step {step}");
    if !loss.is_finite() {
        bail!(
            "{at}: the loss is {loss}: the run diverged (lower the learning rate); its last checkpoint is kept"
        );
    }
    if let Some(vs) = vs {
        for (name, v) in vs.variables() {
            // A sum is non-finite when any element is (inf - inf is NaN).
            let sum = tch::no_grad(|| v.sum(Kind::Double).double_value(&[]));
            if !sum.is_finite() {
                bail!(
                    "{at}: parameter {name} is not finite: the run diverged (lower the learning rate); its last checkpoint is kept"
                );
            }
        }
    }
    Ok(())
}

/// Save `vs` to `file` through a temporary file and a rename.
pub fn save_atomic(vs: &nn::VarStore, file: &Path) -> Result<()> {
    // Serialized in memory first: libtorch aborts the process when its own file write fails
    // (a full disk), where a Rust write returns an error.
    let mut bytes = Vec::new();
    vs.save_to_stream(&mut bytes).map_err(|e| {
        anyhow::anyhow!(
            "cannot serialize the checkpoint {}: {}",
            file.display(),
            first_line(&e.to_string())
        )
    })?;
    write_atomic(file, &bytes)
}

/// The state a run starts from: a new run's (its folder must be empty or absent), or with
/// `resume` the committed state of an interrupted one, whose saved configuration must equal
/// `cfg` (a run stopped before its first checkpoint starts over).
pub fn open_run(run: &RunDir, cfg: &TrainConfig, resume: bool) -> Result<State> {
    if resume {
        let saved = run.read_config()?;
        if &saved != cfg {
            bail!(
                "{}: --resume continues a run with its own configuration; pass no options that change it",
                run.0.display()
            );
        }
        if run.state().exists() {
            run.read_state()
        } else {
            Ok(State::default())
        }
    } else {
        let busy = std::fs::read_dir(&run.0).is_ok_and(|mut d| d.next().is_some());
        if busy {
            bail!(
                "{} is not empty: continue a run there with --resume, or choose another --out",
                run.0.display()
            );
        }
        Ok(State::default())
    }
}

/// Load the run's committed weights file into `vs`.
pub fn load_checkpoint(run: &RunDir, vs: &mut nn::VarStore) -> Result<()> {
    let weights = run.weights()?;
    vs.load(&weights).map_err(|e| {
        anyhow::anyhow!(
            "{}: corrupt checkpoint ({})",
            weights.display(),
            first_line(&e.to_string())
        )
    })
}

/// Keep the log to the committed epochs (a stop after a log line, before its checkpoint).
pub fn trim_log(run: &RunDir, epochs_done: usize) -> Result<()> {
    let log_text = std::fs::read_to_string(run.log()).unwrap_or_default();
    let kept: Vec<&str> = log_text.lines().take(epochs_done).collect();
    write_atomic(
        &run.log(),
        (kept.join("\n") + if kept.is_empty() { "" } else { "\n" }).as_bytes(),
    )
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

/// tch's BatchNorm momentum (its default, which `QNet` keeps).
const BN_MOMENTUM: f64 = 0.1;

/// Re-estimate every BatchNorm's running statistics as the plain average of the batch
/// statistics of `batches` batches of `batch` training images taken in order from the start of
/// `images` (the weights are unchanged: a supernet's child, whose BatchNorm statistics are a mixture
/// over the sampled children, or a network quantized after training at another bit width). Deterministic for a given
/// network and data.
pub fn recalibrate_bn(net: &QNet, images: &Tensor, max_code: u8, batches: i64, batch: i64) {
    // Only BatchNorm moves: the signed outputs keep their calibrated ranges.
    net.hold_signed_ranges(true);
    tch::no_grad(|| {
        let n = images.size()[0];
        let dev = net.device();
        let bns: Vec<&nn::BatchNorm> = net
            .params
            .iter()
            .filter_map(|p| match p {
                crate::net::Params::Conv { bn, .. } => Some(bn),
                _ => None,
            })
            .collect();
        for b in 0..batches {
            let (lo, hi) = (b * batch, ((b + 1) * batch).min(n));
            if lo >= hi {
                break;
            }
            let old: Vec<(Tensor, Tensor)> = bns
                .iter()
                .map(|bn| (bn.running_mean.copy(), bn.running_var.copy()))
                .collect();
            let x = crate::data::to_input(&images.narrow(0, lo, hi - lo), max_code, dev);
            let _ = net.forward_t(&x, true);
            // BatchNorm moved its statistics by `BN_MOMENTUM` towards this batch's; recover
            // the batch's and keep the plain average over the batches so far instead.
            for (bn, (m0, v0)) in bns.iter().zip(old) {
                for (run, prev) in [(&bn.running_mean, m0), (&bn.running_var, v0)] {
                    let this = (run - &prev * (1.0 - BN_MOMENTUM)) / BN_MOMENTUM;
                    let avg = (prev * b as f64 + this) / (b + 1) as f64;
                    run.shallow_clone().copy_(&avg);
                }
            }
        }
    });
    net.hold_signed_ranges(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder whose `<name>.tmp` is a link to `/dev/full`: every write to it fails with "no
    /// space left on device", as on a full disk.
    fn full_disk(name: &str) -> (PathBuf, PathBuf) {
        let d = std::env::temp_dir().join(format!("bitspike-full-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join(name);
        std::os::unix::fs::symlink("/dev/full", file.with_extension("tmp")).unwrap();
        (d, file)
    }

    /// Re-estimating BatchNorm runs training passes; the signed outputs' calibrated ranges
    /// stay where they are (an ordinary training pass still moves them).
    #[test]
    fn recalibrating_batchnorm_keeps_the_signed_ranges() {
        let _one = crate::seeded();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = Spec::of(crate::spec::TrainArch::Resnet8, [1, 8, 8], 10);
        let q = crate::config::QuantConfig {
            weight_quantizer: crate::quant::WeightQuantizer::MaxAbs,
            act_quantizer: crate::quant::ActQuantizer::MinMax,
            ..Default::default()
        }
        .uniform();
        let bits = q.bits.clone();
        let net = QNet::with(&vs, spec, 255, &q, Some(bits), false).unwrap();
        let images = Tensor::randint(256, [32, 1, 8, 8], (Kind::Uint8, Device::Cpu));
        let x = data::to_input(&images, 255, Device::Cpu);
        net.set_mode(crate::net::Mode::Calibrate);
        let _ = tch::no_grad(|| net.forward_t(&x, false));
        net.set_mode(crate::net::Mode::Quantized);
        let ranges = || {
            net.act_quantizers()
                .filter(|(i, _)| net.spec.signed(*i))
                .map(|(_, q)| (q.step(), q.zero_point()))
                .collect::<Vec<_>>()
        };
        let bn_mean = || match &net.params[0] {
            crate::net::Params::Conv { bn, .. } => bn.running_mean.copy(),
            _ => panic!("ResNet-8 starts with a convolution"),
        };
        let (before, mean) = (ranges(), bn_mean());
        assert_eq!(before.len(), 5);
        recalibrate_bn(&net, &images, 255, 2, 16);
        assert_eq!(ranges(), before);
        assert!((bn_mean() - mean).abs().max().double_value(&[]) > 0.0);
        let _ = tch::no_grad(|| net.forward_t(&(&x * 3.0), true));
        assert_ne!(ranges(), before, "a training pass tracks its batch");
    }

    #[test]
    fn a_full_disk_leaves_the_previous_file_intact() {
        let (_d, file) = full_disk("model.bsm");
        std::fs::write(&file, b"the previous model").unwrap();
        let e = write_atomic(&file, &[7u8; 4096]).unwrap_err().to_string();
        assert!(e.contains("model.bsm") && !e.contains('\n'), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"the previous model");
        assert!(
            !file.with_extension("tmp").exists(),
            "no temporary file left"
        );
    }

    #[test]
    fn a_full_disk_leaves_the_previous_checkpoint_intact() {
        let _one = crate::seeded();
        let (_d, file) = full_disk("weights-2.ot");
        let vs = nn::VarStore::new(Device::Cpu);
        let _w = vs.root().var("w", &[64, 64], nn::Init::Const(1.0));
        std::fs::write(&file, b"the previous checkpoint").unwrap();
        let e = save_atomic(&vs, &file).unwrap_err().to_string();
        assert!(e.contains("weights-2.ot") && !e.contains('\n'), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"the previous checkpoint");
        assert!(
            !file.with_extension("tmp").exists(),
            "no temporary file left"
        );
    }

    #[test]
    fn non_finite_losses_and_parameters_stop_the_run() {
        let _one = crate::seeded();
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        assert!(check_finite(0.5, Some(&vs), 1, 1).is_ok());
        let e = check_finite(f64::NAN, None, 3, 17).unwrap_err().to_string();
        assert!(e.starts_with("epoch 3, step 17: the loss is NaN"), "{e}");
        tch::no_grad(|| {
            let _ = w.get(1).fill_(f64::INFINITY);
        });
        let e = check_finite(0.5, Some(&vs), 2, 5).unwrap_err().to_string();
        assert!(
            e.starts_with("epoch 2, step 5: parameter w is not finite"),
            "{e}"
        );
    }
}

//! Evaluation of self-supervised encoders at every bit width (SSQL's Tables 11 and 12).
//!
//! For a pretraining run ([`crate::ssql::pretrain`]) and an evaluation dataset (the pretraining
//! set or a transfer set):
//!
//! 1. **Linear evaluation**: the encoder is frozen (BatchNorm statistics re-estimated in full
//!    precision on the evaluation set's training images, as any frozen backbone on a new set
//!    needs), its features are centred and scaled and a linear head is trained on them with SGD
//!    (momentum 0.9, no weight decay, the rate divided by 10 at 60 % and 80 % of the epochs:
//!    the appendix's schedule scaled from 100 epochs); the standardisation folds exactly into
//!    the head, which becomes the network's logits layer.
//! 2. **Fine-tuning**: from the linear-evaluated network, every weight trains with SGD (momentum
//!    0.9, weight decay 1e-4, the same step schedule), full precision, light augmentation.
//! 3. Each of the two networks is **quantized after training** at every requested bit width
//!    (`8w8a`, `4w4a`, ...): weights per output channel by their largest magnitude, activations
//!    by the largest value seen on `calibration` training images, first and last layers' weights
//!    at 8 bits; test accuracy at each. Every (network, bit width) is written as a run folder
//!    that `bitspike export` and `bitspike eval` take as they are.
//!
//! Also: statistics of the weight distributions (range, standard deviation, kurtosis, share
//! beyond 3 sigma; the appendix's Fig. 7) of the pretrained and fine-tuned encoders, and
//! optionally LSQ quantization-aware training started from the linear-evaluated network (the
//! appendix's "better starting point").

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::stats::FEATURE_IMAGES;
pub use super::stats::{feature_error, stats_of, weight_stats, FeatureError, WeightStats};
use crate::config::QuantConfig;
use crate::config::{Optimizer, Schedule, TrainConfig};
use crate::data::{self, Dataset, DatasetName};
use crate::net::{Mode, Params, QNet};
use crate::quant::{ActQuantizer, WeightQuantizer};
use crate::ssql::SsqlConfig;
use crate::train::{self, write_atomic, RunDir, State};

/// A bit width to evaluate at: full precision or `Nw Ma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Bits {
    /// Full precision.
    Float,
    /// Weights and activations quantized.
    Quantized {
        /// Weight bits of the hidden layers (first and last stay at 8).
        w: u8,
        /// Activation bits.
        a: u8,
    },
}

impl std::fmt::Display for Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bits::Float => write!(f, "FP"),
            Bits::Quantized { w, a } => write!(f, "{w}w{a}a"),
        }
    }
}

impl From<Bits> for String {
    fn from(b: Bits) -> String {
        b.to_string()
    }
}

impl TryFrom<String> for Bits {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl std::str::FromStr for Bits {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "fp" {
            return Ok(Bits::Float);
        }
        let parsed = t
            .strip_suffix('a')
            .and_then(|r| r.split_once('w'))
            .and_then(|(w, a)| Some((w.parse::<u8>().ok()?, a.parse::<u8>().ok()?)));
        match parsed {
            Some((w, a)) if (2..=8).contains(&w) && (2..=8).contains(&a) => {
                Ok(Bits::Quantized { w, a })
            }
            _ => bail!("bit width {s:?}: write fp or <w>w<a>a with 2..=8 bits, e.g. 4w4a"),
        }
    }
}

/// The bit widths of the appendix's tables.
pub fn default_bits() -> Vec<Bits> {
    ["fp", "8w8a", "5w5a", "4w4a", "3w3a", "2w4a"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Linear evaluation epochs (the appendix: 100).
    pub linear_epochs: usize,
    /// Linear evaluation's rate on standardised features.
    pub linear_lr: f64,
    /// Fine-tuning epochs (the appendix: 50); 0 skips fine-tuning.
    pub finetune_epochs: usize,
    /// Fine-tuning rate.
    pub finetune_lr: f64,
    /// Batch size of both.
    pub batch: i64,
    /// Training images that calibrate the activation ranges.
    pub calibration: i64,
    /// Re-estimate the BatchNorm statistics of the quantized network at each bit width (on the
    /// calibration images) instead of keeping the full-precision ones.
    pub bn_per_bits: bool,
    /// Quantize the first layer's output and the features the head reads at this width at
    /// every bit width (`edge_act_bits` of the quantization settings); none: at the bit width's
    /// own.
    #[serde(default)]
    pub edge_act_bits: Option<u8>,
    /// Calibrate each activation range to the clip of least squared error at the bit width
    /// ([`ActQuantizer::Mse`]) instead of the largest value seen; always on for encoders
    /// pretrained that way.
    #[serde(default)]
    pub mse_clip: bool,
    /// Linear evaluation trains a head at each quantized bit width on the quantized, frozen
    /// encoder's features (the quantization calibrated first), instead of quantizing the
    /// full-precision head with the encoder. Fine-tuning is unaffected.
    #[serde(default)]
    pub head_per_bits: bool,
    /// The supervised reference: the encoder keeps its random initialisation (the pretraining
    /// run only names the architecture and the seed) and fine-tuning trains it with labels
    /// from there; its linear evaluation measures random features.
    #[serde(default)]
    pub from_scratch: bool,
    /// The post-training quantization protocol (none: the pretraining run's). SSQL's official
    /// one quantizes weights at `max|w| / ((2^b - 1) / 2)`, keeps the features the head reads
    /// at 8 bits (the first layer's output at the bit width) and trains a head per bit width.
    #[serde(default)]
    pub protocol: Option<crate::ssql::Protocol>,
    /// Bit widths to evaluate at.
    pub bits: Vec<Bits>,
    /// LSQ training epochs from the linear-evaluated network (0: none).
    pub lsq_epochs: usize,
    /// The bit width of that LSQ training.
    pub lsq_bits: Bits,
    /// Seed.
    pub seed: i64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            linear_epochs: 30,
            linear_lr: 0.5,
            finetune_epochs: 5,
            finetune_lr: 0.001,
            batch: 256,
            calibration: 2048,
            bn_per_bits: false,
            edge_act_bits: None,
            mse_clip: false,
            head_per_bits: false,
            from_scratch: false,
            protocol: None,
            bits: default_bits(),
            lsq_epochs: 0,
            lsq_bits: Bits::Quantized { w: 2, a: 4 },
            seed: 1,
        }
    }
}

impl EvalConfig {
    /// Refuse settings that cannot run.
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(self.linear_epochs >= 1, "linear epochs must be at least 1");
        anyhow::ensure!(
            self.linear_lr > 0.0 && self.finetune_lr > 0.0,
            "rates must be positive"
        );
        anyhow::ensure!(self.batch >= 2, "the batch size must be at least 2");
        anyhow::ensure!(
            self.calibration >= 1,
            "calibration needs at least one image"
        );
        anyhow::ensure!(!self.bits.is_empty(), "no bit widths to evaluate at");
        anyhow::ensure!(
            !self.from_scratch || self.finetune_epochs >= 1,
            "training from scratch needs fine-tuning epochs (--finetune-epochs)"
        );
        anyhow::ensure!(
            self.edge_act_bits.is_none_or(|b| (2..=8).contains(&b)),
            "edge activation bits must be in 2..=8"
        );
        anyhow::ensure!(
            matches!(self.lsq_bits, Bits::Quantized { .. }),
            "the LSQ bit width must be quantized"
        );
        Ok(())
    }
}

/// The classifier configuration of an evaluation: the encoder's architecture on `on`
/// (resized to the encoder's input when the sizes differ), min-max post-training quantizers at
/// `bits` (8/8 stands for full precision, which runs in [`Mode::Float`]).
pub fn classifier_config(
    pre: &TrainConfig,
    on: DatasetName,
    resize: i64,
    bits: Bits,
) -> TrainConfig {
    let (w, a) = match bits {
        Bits::Float => (8, 8),
        Bits::Quantized { w, a } => (w, a),
    };
    TrainConfig {
        dataset: on,
        arch: pre.arch,
        resize,
        seed: pre.seed,
        quant: QuantConfig {
            weight_bits: w,
            act_bits: a,
            first_last_bits: 8,
            weight_quantizer: WeightQuantizer::MaxAbs,
            act_quantizer: ActQuantizer::MinMax,
            ..QuantConfig::default()
        },
        ..TrainConfig::default()
    }
}

/// Accuracy at one bit width of a classifier, in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The bit width.
    pub bits: Bits,
    /// Test accuracy, %.
    pub accuracy: f64,
    /// The run folder of this (network, bit width), for `bitspike export`.
    pub run: PathBuf,
    /// How far the quantized encoder's features moved from the full-precision ones on the
    /// first test images ([`feature_error`]); absent for full precision.
    #[serde(default)]
    pub features: Option<FeatureError>,
}

/// What one evaluation measured (`results.json` of its folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// "SimSiam", "SimSiam+SSQL", ...
    pub method: String,
    /// The pretraining dataset.
    pub pretrained_on: DatasetName,
    /// The evaluation dataset.
    pub evaluated_on: DatasetName,
    /// The pretraining run.
    pub pretrain_run: PathBuf,
    /// The pretraining run's seed (absent in results written before it was recorded).
    #[serde(default)]
    pub pretrain_seed: Option<i64>,
    /// The pretraining settings an SSQL encoder shares with its baseline ([`pretraining_of`];
    /// absent in results written before it was recorded).
    #[serde(default)]
    pub pretraining: Option<String>,
    /// Settings.
    pub config: EvalConfig,
    /// Linear evaluation at every bit width.
    pub linear: Vec<Point>,
    /// Fine-tuning at every bit width (empty when skipped).
    pub finetune: Vec<Point>,
    /// Weight statistics of the pretrained encoder (its random initialisation with
    /// `from_scratch`).
    pub pretrained_weights: Vec<WeightStats>,
    /// Weight statistics of the fine-tuned encoder.
    pub finetuned_weights: Vec<WeightStats>,
    /// LSQ from the linear-evaluated network: test accuracy (%) after every epoch.
    pub lsq: Vec<f64>,
    /// Seconds.
    pub seconds: f64,
}

/// A classifier on the evaluation set with the pretrained encoder's weights (`scratch`: with
/// its random initialisation).
fn load_encoder(
    pre_run: &RunDir,
    pre: &TrainConfig,
    cfg: &TrainConfig,
    data: &Dataset,
    device: Device,
    scratch: bool,
) -> Result<(nn::VarStore, QNet)> {
    let mut vs = nn::VarStore::new(device);
    let net = train::build_in(&train::Qat, &vs, cfg, data)?;
    if scratch {
        return Ok((vs, net));
    }
    let weights = pre_run.weights()?;
    let missing = vs.load_partial(&weights).map_err(|e| {
        anyhow::anyhow!(
            "{}: corrupt or not this encoder's checkpoint ({})",
            weights.display(),
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    if !missing.is_empty() {
        // ResNet-8 gained signed block outputs and a shortcut BatchNorm (MLPerf Tiny's network):
        // checkpoints from before lack exactly those.
        let hint = if pre.arch == crate::spec::TrainArch::Resnet8 {
            "; a ResNet-8 pretrained before its blocks had signed outputs must be pretrained again"
        } else {
            ""
        };
        bail!(
            "{}: not a {:?} encoder (missing {}){hint}",
            weights.display(),
            pre.arch,
            missing.join(", ")
        );
    }
    Ok((vs, net))
}

/// The tensors of `split` in batches, through `f`, concatenated.
fn map_batches(
    split: &data::Split,
    max_code: u8,
    device: Device,
    f: impl Fn(&Tensor) -> Tensor,
) -> Tensor {
    tch::no_grad(|| {
        let parts: Vec<Tensor> = data::batches(split.len(), 1000, false)
            .into_iter()
            .map(|idx| {
                f(&data::to_input(
                    &split.images.index_select(0, &idx),
                    max_code,
                    device,
                ))
            })
            .collect();
        Tensor::cat(&parts, 0)
    })
}

/// The step schedule of linear evaluation and fine-tuning: the rate divided by 10 at 60 % and
/// again at 80 % of the epochs.
pub fn step_lr(lr: f64, epoch: usize, epochs: usize) -> f64 {
    let t = epoch as f64 / epochs.max(1) as f64;
    if t >= 0.8 {
        lr * 0.01
    } else if t >= 0.6 {
        lr * 0.1
    } else {
        lr
    }
}

/// Train a linear head on the frozen encoder's standardised features and fold it into the
/// network's logits layer. Returns nothing; the network's logits layer is replaced.
pub fn linear_eval(net: &QNet, data: &Dataset, e: &EvalConfig, device: Device) -> Result<()> {
    net.set_mode(Mode::Float);
    fit_head(net, data, e, device)
}

/// Train a linear head on the standardised features `net` computes in its current mode (full
/// precision, or quantized and calibrated) on the training images, and fold it into the
/// network's logits layer.
fn fit_head(net: &QNet, data: &Dataset, e: &EvalConfig, device: Device) -> Result<()> {
    let train_f = map_batches(&data.train, data.max_code, device, |x| {
        net.features(x, false)
    });
    // Centred per feature, scaled by one number (the mean feature deviation): a per-feature
    // scale would blow up the folded weights of nearly constant features, and with them the
    // 8-bit head's one step.
    let mu = train_f.mean_dim(&[0i64][..], true, Kind::Float);
    let sd = train_f
        .std_dim(&[0i64][..], false, true)
        .mean(Kind::Float)
        .clamp_min(1e-6);
    let z = (&train_f - &mu) / &sd;
    let (n, f) = (z.size()[0], z.size()[1]);
    let classes = data.classes;
    let vs = nn::VarStore::new(device);
    let head = nn::linear(
        vs.root() / "head",
        f,
        classes,
        nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        },
    );
    let mut opt = nn::Sgd {
        momentum: 0.9,
        ..Default::default()
    }
    .build(&vs, e.linear_lr)?;
    let labels = data.train.labels.to_device(device);
    for epoch in 0..e.linear_epochs {
        opt.set_lr(step_lr(e.linear_lr, epoch, e.linear_epochs));
        for idx in data::batches(n, e.batch, true) {
            let idx = idx.to_device(device);
            let logits = z.index_select(0, &idx).apply(&head);
            let loss = logits.cross_entropy_for_logits(&labels.index_select(0, &idx));
            opt.backward_step(&loss);
        }
    }
    // logits = W (x - mu) / sd + b = (W / sd) x + (b - (W / sd) mu)
    let Some(Params::Dense { w, b, .. }) = net.params.last() else {
        bail!("the network's last layer is not a dense head");
    };
    tch::no_grad(|| {
        let ws = &head.ws / &sd;
        let bs = head.bs.as_ref().map_or_else(
            || Tensor::zeros([classes], (Kind::Float, device)),
            |b| b.shallow_clone(),
        ) - ws.matmul(&mu.transpose(0, 1)).squeeze_dim(1);
        w.shallow_clone().copy_(&ws);
        b.shallow_clone().copy_(&bs);
    });
    Ok(())
}

/// Copies of the logits layer's weight and bias.
fn head_state(net: &QNet) -> Option<(Tensor, Tensor)> {
    match net.params.last() {
        Some(Params::Dense { w, b, .. }) => Some((w.copy(), b.copy())),
        _ => None,
    }
}

/// Put back a logits layer saved by [`head_state`].
fn restore_head(net: &QNet, saved: &Option<(Tensor, Tensor)>) {
    if let (Some(Params::Dense { w, b, .. }), Some((sw, sb))) = (net.params.last(), saved) {
        tch::no_grad(|| {
            w.shallow_clone().copy_(sw);
            b.shallow_clone().copy_(sb);
        });
    }
}

/// Fine-tune every weight of `net` (full precision) with cross-entropy.
pub fn finetune(
    vs: &nn::VarStore,
    net: &QNet,
    data: &Dataset,
    e: &EvalConfig,
    device: Device,
) -> Result<()> {
    net.set_mode(Mode::Float);
    let mut opt = nn::Sgd {
        momentum: 0.9,
        ..Default::default()
    }
    .build(vs, e.finetune_lr)?;
    opt.set_weight_decay(1e-4);
    let augment = data::Augment {
        crop_pad: 2,
        flip: true,
        noise: 0.0,
    };
    for epoch in 0..e.finetune_epochs {
        opt.set_lr(step_lr(e.finetune_lr, epoch, e.finetune_epochs));
        for idx in data::batches(data.train.len(), e.batch, true) {
            if idx.size()[0] < 2 {
                continue;
            }
            let x = data::to_input(
                &data.train.images.index_select(0, &idx),
                data.max_code,
                device,
            );
            let x = data::augment(&x, &augment, data.name.flips());
            let y = data.train.labels.index_select(0, &idx).to_device(device);
            let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
        }
    }
    Ok(())
}

/// Quantize `net` after training at `bits`: calibrate the activation ranges on the first
/// `e.calibration` training images, with `e.edge_act_bits` at the edges, and with
/// `e.bn_per_bits` re-estimate BatchNorm's statistics of the quantized network on them; full
/// precision runs in [`Mode::Float`]. The network is left in that mode, BatchNorm statistics
/// included, ready to be measured.
fn quantize_at(
    net: &mut QNet,
    data: &Dataset,
    bits: Bits,
    e: &EvalConfig,
    device: Device,
) -> Result<()> {
    let cal = data.train.take(e.calibration);
    let official = e.protocol == Some(crate::ssql::Protocol::Official);
    match bits {
        Bits::Float => {
            // Measured in full precision; calibrated at 8w8a so that its saved run folder
            // exports as the integer device runs it.
            net.set_edge_policy(None)?;
            net.set_head_policy(None)?;
            net.set_bits(8, 8)?;
            calibrate(net, &cal, data.max_code, device);
            net.set_mode(Mode::Float);
        }
        Bits::Quantized { w, a } => {
            net.set_edge_policy(e.edge_act_bits)?;
            net.set_head_policy(official.then_some(8))?;
            net.set_bits(w, a)?;
            calibrate(net, &cal, data.max_code, device);
            net.set_mode(Mode::Quantized);
            if e.bn_per_bits {
                let batches = (cal.len() + 255) / 256;
                crate::train::recalibrate_bn(net, &cal.images, data.max_code, batches, 256);
            }
        }
    }
    Ok(())
}

/// Copies of every BatchNorm's running statistics.
fn bn_state(net: &QNet) -> Vec<(Tensor, Tensor)> {
    net.params
        .iter()
        .filter_map(|p| match p {
            Params::Conv { bn, .. } => Some((bn.running_mean.copy(), bn.running_var.copy())),
            _ => None,
        })
        .collect()
}

/// Put back statistics saved by [`bn_state`].
fn restore_bn(net: &QNet, saved: &[(Tensor, Tensor)]) {
    let bns = net.params.iter().filter_map(|p| match p {
        Params::Conv { bn, .. } => Some(bn),
        _ => None,
    });
    tch::no_grad(|| {
        for (bn, (m, v)) in bns.zip(saved) {
            bn.running_mean.shallow_clone().copy_(m);
            bn.running_var.shallow_clone().copy_(v);
        }
    });
}

/// Calibration of every activation range on `split` (evaluation-mode BatchNorm): min-max, or
/// MSE clips fitted at the current bit widths.
pub fn calibrate(net: &QNet, split: &data::Split, max_code: u8, device: Device) {
    net.reset_ranges();
    net.set_mode(Mode::Calibrate);
    let _ = map_batches(split, max_code, device, |x| net.forward_t(x, false));
    net.fit_ranges();
}

/// Save `vs` as a run folder with configuration `cfg` (exportable as it is).
fn save_run(dir: &Path, cfg: &TrainConfig, vs: &nn::VarStore, accuracy: f64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let run = RunDir(dir.to_path_buf());
    write_atomic(&run.config(), toml::to_string(cfg)?.as_bytes())?;
    train::save_atomic(vs, &dir.join("weights.ot"))?;
    let state = State {
        epochs_done: 0,
        test_accuracy: accuracy / 100.0,
        seconds: 0.0,
        weights: "weights.ot".into(),
    };
    write_atomic(
        &run.state(),
        serde_json::to_string_pretty(&state)?.as_bytes(),
    )
}

/// Every bit width of `e` for one trained classifier: accuracy and a run folder each.
/// With `head_per_bits`, each quantized bit width trains its own linear head on the quantized
/// encoder's features (the full-precision head is put back after each).
#[allow(clippy::too_many_arguments)]
pub(super) fn sweep(
    vs: &nn::VarStore,
    net: &mut QNet,
    cfg_of: &dyn Fn(Bits) -> TrainConfig,
    data: &Dataset,
    e: &EvalConfig,
    head_per_bits: bool,
    out: &Path,
    device: Device,
) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    let float_bn = bn_state(net);
    let float_head = head_state(net);
    let probe = data.test.take(FEATURE_IMAGES);
    net.set_mode(Mode::Float);
    let float_features = map_batches(&probe, data.max_code, device, |x| net.features(x, false));
    for &bits in &e.bits {
        restore_bn(net, &float_bn);
        restore_head(net, &float_head);
        quantize_at(net, data, bits, e, device)?;
        if head_per_bits && matches!(bits, Bits::Quantized { .. }) {
            fit_head(net, data, e, device)?;
        }
        let accuracy = 100.0 * train::accuracy(net, &data.test, data.max_code, device);
        let features = matches!(bits, Bits::Quantized { .. }).then(|| {
            let q = map_batches(&probe, data.max_code, device, |x| net.features(x, false));
            feature_error(&float_features, &q)
        });
        let run = out.join(bits.to_string().to_ascii_lowercase());
        save_run(&run, &cfg_of(bits), vs, accuracy)?;
        points.push(Point {
            bits,
            accuracy,
            run,
            features,
        });
    }
    restore_bn(net, &float_bn);
    restore_head(net, &float_head);
    net.set_mode(Mode::Float);
    Ok(points)
}

/// Evaluate the pretraining run `pre_run` on `on` into `out` (which must be empty or absent):
/// linear evaluation and fine-tuning at every bit width, weight statistics, LSQ from the
/// linear-evaluated network; `results.json` and one run folder per (network, bit width).
pub fn evaluate(
    pre_run: &Path,
    on: DatasetName,
    data_dir: &Path,
    e: &EvalConfig,
    out: &Path,
    device: Device,
    progress: bool,
) -> Result<EvalResult> {
    e.check()?;
    let started = std::time::Instant::now();
    let run = RunDir(pre_run.to_path_buf());
    let pre = run.read_config()?;
    let ssql = pre.ssql.clone().with_context(|| {
        format!(
            "{} is not an SSQL pretraining run (no [ssql] table)",
            pre_run.display()
        )
    })?;
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} is not empty: choose another --out", out.display());
    }
    // The evaluation set in the encoder's input size.
    let pre_data = pre.load_data(data_dir)?;
    let native = data::load(on, data_dir)?;
    let resize = if native.shape == pre_data.shape {
        0
    } else if native.shape.c == pre_data.shape.c && pre_data.shape.h == pre_data.shape.w {
        pre_data.shape.h as i64
    } else {
        bail!("{} images cannot feed this encoder", on.as_str());
    };
    let mut e = e.clone();
    e.mse_clip |= pre.quant.act_quantizer == ActQuantizer::Mse;
    let protocol = *e.protocol.get_or_insert(ssql.protocol);
    let official = protocol == crate::ssql::Protocol::Official;
    e.head_per_bits |= official;
    let e = &e;
    let weights = if official {
        WeightQuantizer::MaxAbsHalf
    } else {
        WeightQuantizer::MaxAbs
    };
    let act = if e.mse_clip {
        ActQuantizer::Mse
    } else {
        ActQuantizer::MinMax
    };
    let mut base = classifier_config(&pre, on, resize, Bits::Float);
    base.quant.act_quantizer = act;
    base.quant.weight_quantizer = weights;
    let data = base.load_data(data_dir)?;
    drop((pre_data, native));
    tch::manual_seed(e.seed);
    let say = |s: &str| {
        if progress {
            eprintln!("{s}");
        }
    };
    let cfg_of = |bits: Bits| {
        let mut c = classifier_config(&pre, on, resize, bits);
        c.quant.act_quantizer = act;
        c.quant.weight_quantizer = weights;
        if matches!(bits, Bits::Quantized { .. }) {
            c.quant.edge_act_bits = e.edge_act_bits;
            // The official head reads 8-bit features unless edge widths are given (they
            // cover the head's input), as in pretraining.
            c.quant.head_act_bits = (official && e.edge_act_bits.is_none()).then_some(8);
        }
        c
    };
    let (vs, mut net) = load_encoder(&run, &pre, &base, &data, device, e.from_scratch)?;
    let pretrained_weights = weight_stats(&net);
    net.set_mode(Mode::Float);
    crate::train::recalibrate_bn(&net, &data.train.images, data.max_code, 20, 256);
    say("linear evaluation");
    linear_eval(&net, &data, e, device)?;
    let linear = sweep(
        &vs,
        &mut net,
        &cfg_of,
        &data,
        e,
        e.head_per_bits,
        &out.join("linear"),
        device,
    )?;
    let lsq = if e.lsq_epochs > 0 {
        say("LSQ from the linear-evaluated network");
        lsq_from(&linear, &cfg_of, e, &data, &out.join("lsq"), device)?
    } else {
        Vec::new()
    };
    let (finetune, finetuned_weights) = if e.finetune_epochs > 0 {
        say("fine-tuning");
        finetune(&vs, &net, &data, e, device)?;
        let w = weight_stats(&net);
        (
            sweep(
                &vs,
                &mut net,
                &cfg_of,
                &data,
                e,
                false,
                &out.join("finetune"),
                device,
            )?,
            w,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let result = EvalResult {
        method: {
            let mut m = ssql.method();
            if e.from_scratch {
                m = "supervised".into();
            }
            if ssql.quantize {
                // Pretrained with edge activations at their own width, or MSE clips.
                if let Some(b) = pre.quant.edge_act_bits {
                    m.push_str(&format!(" [trained edges {b}a]"));
                }
                if pre.quant.act_quantizer == ActQuantizer::Mse {
                    m.push_str(" [trained MSE clip]");
                }
            }
            m
        },
        pretrained_on: pre.dataset,
        evaluated_on: on,
        pretrain_run: pre_run.to_path_buf(),
        pretrain_seed: Some(pre.seed),
        pretraining: Some(pretraining_of(&pre, &ssql)),
        config: e.clone(),
        linear,
        finetune,
        pretrained_weights,
        finetuned_weights,
        lsq,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    Ok(result)
}

/// LSQ quantization-aware training at `e.lsq_bits` started from the linear-evaluated
/// full-precision network; test accuracy (%) after each epoch.
fn lsq_from(
    linear: &[Point],
    cfg_of: &dyn Fn(Bits) -> TrainConfig,
    e: &EvalConfig,
    data: &Dataset,
    out: &Path,
    device: Device,
) -> Result<Vec<f64>> {
    let Some(start) = linear
        .iter()
        .find(|p| p.bits == Bits::Float)
        .or(linear.first())
    else {
        bail!("nothing was evaluated to start LSQ from");
    };
    let Bits::Quantized { w, a } = e.lsq_bits else {
        bail!("the LSQ bit width must be quantized");
    };
    let mut cfg = cfg_of(e.lsq_bits);
    cfg.quant.weight_bits = w;
    cfg.quant.act_bits = a;
    cfg.quant.weight_quantizer = WeightQuantizer::Lsq;
    cfg.quant.act_quantizer = ActQuantizer::Lsq;
    // LSQ learns each step at one width: the head's input cannot be switched to 8 bits after
    // the network is built (edges can: they are built at their width).
    cfg.quant.head_act_bits = None;
    cfg.epochs = e.lsq_epochs;
    cfg.optimizer = Optimizer::Sgd;
    cfg.lr = 0.01;
    cfg.schedule = Schedule::Cosine;
    cfg.weight_decay = 1e-5;
    let weights = RunDir(start.run.clone()).weights()?;
    train::train(
        &train::Qat,
        &cfg,
        data,
        &train::TrainOptions {
            out,
            resume: false,
            device,
            progress: false,
            init: Some(&weights),
        },
    )?;
    let log = std::fs::read_to_string(RunDir(out.to_path_buf()).log())?;
    Ok(log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("test_accuracy_fake_quant").and_then(|a| a.as_f64()))
        .map(|a| 100.0 * a)
        .collect())
}

/// The pretraining settings an SSQL encoder and its baseline share, and must share to be
/// compared: architecture, schedule, and the projector's and predictor's widths. The method
/// ([`SsqlConfig::method`]) names what differs between the two.
pub fn pretraining_of(pre: &TrainConfig, ssql: &SsqlConfig) -> String {
    let official = match ssql.protocol {
        crate::ssql::Protocol::Official => ", official protocol",
        crate::ssql::Protocol::Bitspike => "",
    };
    format!(
        "{}, {} epochs, batch {}, lr {}, projector {}-{}, predictor {}{official}",
        format!("{:?}", pre.arch).to_lowercase(),
        pre.epochs,
        pre.batch_size,
        pre.lr,
        ssql.hidden,
        ssql.dim,
        ssql.predictor_hidden
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bit_widths_parse_and_print() {
        let _one = crate::seeded();
        assert_eq!("fp".parse::<Bits>().unwrap(), Bits::Float);
        assert_eq!(
            "2w4a".parse::<Bits>().unwrap(),
            Bits::Quantized { w: 2, a: 4 }
        );
        assert_eq!(Bits::Quantized { w: 5, a: 5 }.to_string(), "5w5a");
        for bad in ["9w4a", "4w1a", "w4a", "4w4", "44"] {
            assert!(bad.parse::<Bits>().is_err(), "{bad}");
        }
        assert_eq!(default_bits().len(), 6);
    }

    #[test]
    fn step_schedule_divides_at_sixty_and_eighty_percent() {
        let _one = crate::seeded();
        let lr: Vec<f64> = (0..10).map(|e| step_lr(1.0, e, 10)).collect();
        assert_eq!(lr[5], 1.0);
        assert!((lr[6] - 0.1).abs() < 1e-12 && (lr[7] - 0.1).abs() < 1e-12);
        assert!((lr[8] - 0.01).abs() < 1e-12 && (lr[9] - 0.01).abs() < 1e-12);
    }

    #[test]
    fn weight_statistics_by_hand() {
        let _one = crate::seeded();
        // -1, 1, -1, 1: mean 0, variance 1, fourth moment 1 -> kurtosis 1; nothing beyond 3.
        let s = stats_of("x", &Tensor::from_slice(&[-1.0f32, 1.0, -1.0, 1.0]));
        assert_eq!((s.count, s.range), (4, 2.0));
        assert!((s.std - 1.0).abs() < 1e-12 && (s.kurtosis - 1.0).abs() < 1e-12);
        assert_eq!(s.outliers, 0.0);
        // 99 zeros and one 10: sigma = 0.995, the 10 is beyond 3 sigma.
        let mut v = vec![0.0f32; 99];
        v.push(10.0);
        let s = stats_of("y", &Tensor::from_slice(&v));
        assert!((s.outliers - 0.01).abs() < 1e-12);
    }

    #[test]
    fn feature_error_by_hand() {
        let _one = crate::seeded();
        let f = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0]).reshape([2, 2]);
        let same = feature_error(&f, &f);
        assert!((same.centred_cosine - 1.0).abs() < 1e-6 && (same.norm_ratio - 1.0).abs() < 1e-6);
        // q = 2 f: centred rows (1.5, -0.5) and (-0.5, 1.5) against (0.5, -0.5), (-0.5, 0.5):
        // cosine 1 / (sqrt 0.5 sqrt 2.5) = 0.8944 each; norms double.
        let e = feature_error(&f, &(&f * 2.0));
        assert!((e.centred_cosine - 0.894_427).abs() < 1e-5, "{e:?}");
        assert!((e.norm_ratio - 2.0).abs() < 1e-6);
    }
}

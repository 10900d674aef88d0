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

use crate::config::{Optimizer, Schedule, TrainConfig};
use crate::data::{self, Dataset, DatasetName};
use crate::net::{Mode, Params, QNet, QuantConfig};
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

/// Statistics of a weight distribution (the appendix's Fig. 7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Layer name (`n<i>`) or `mean` for the average over layers.
    pub layer: String,
    /// Number of weights.
    pub count: i64,
    /// `max - min`.
    pub range: f64,
    /// Standard deviation.
    pub std: f64,
    /// Kurtosis `E[(w - mu)^4] / sigma^4` (3 for a normal distribution).
    pub kurtosis: f64,
    /// Share of weights with `|w - mu| > 3 sigma`.
    pub outliers: f64,
}

/// Statistics of one tensor's values.
pub fn stats_of(layer: &str, w: &Tensor) -> WeightStats {
    let w = w.detach().to_kind(Kind::Double).flatten(0, -1);
    let mu = w.mean(Kind::Double);
    let d = &w - &mu;
    let var = d.square().mean(Kind::Double).double_value(&[]);
    let std = var.sqrt();
    let m4 = d.pow_tensor_scalar(4).mean(Kind::Double).double_value(&[]);
    let outliers = d
        .abs()
        .gt(3.0 * std)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    WeightStats {
        layer: layer.to_string(),
        count: w.numel() as i64,
        range: (w.max() - w.min()).double_value(&[]),
        std,
        kurtosis: if var > 0.0 { m4 / (var * var) } else { 0.0 },
        outliers,
    }
}

/// Statistics of every convolution and hidden dense layer of `net` (the encoder; the head is
/// left out), then their mean over layers.
pub fn weight_stats(net: &QNet) -> Vec<WeightStats> {
    let last = net.params.len().saturating_sub(1);
    let mut v: Vec<WeightStats> = net
        .params
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != last)
        .filter_map(|(i, p)| match p {
            Params::Conv { w, .. } | Params::Dense { w, .. } => Some(stats_of(&format!("n{i}"), w)),
            _ => None,
        })
        .collect();
    let n = v.len().max(1) as f64;
    let mean = WeightStats {
        layer: "mean".into(),
        count: v.iter().map(|s| s.count).sum(),
        range: v.iter().map(|s| s.range).sum::<f64>() / n,
        std: v.iter().map(|s| s.std).sum::<f64>() / n,
        kurtosis: v.iter().map(|s| s.kurtosis).sum::<f64>() / n,
        outliers: v.iter().map(|s| s.outliers).sum::<f64>() / n,
    };
    v.push(mean);
    v
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

/// The quantized encoder's features against the full-precision ones, averaged over images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureError {
    /// Cosine similarity after subtracting the full-precision features' mean.
    pub centred_cosine: f64,
    /// Norm of the quantized features over the norm of the full-precision ones.
    pub norm_ratio: f64,
}

/// Test images the feature error is measured on.
const FEATURE_IMAGES: i64 = 2000;

/// Compare quantized features `q` with full-precision features `f` (`[N, F]` each).
pub fn feature_error(f: &Tensor, q: &Tensor) -> FeatureError {
    let norm = |x: &Tensor| x.norm_scalaropt_dim(2, [1i64], false);
    let mu = f.mean_dim(&[0i64][..], true, Kind::Float);
    let (fc, qc) = (f - &mu, q - &mu);
    let cos = (&fc * &qc).sum_dim_intlist(&[1i64][..], false, Kind::Float)
        / (norm(&fc) * norm(&qc)).clamp_min(1e-12);
    let ratio = norm(q) / norm(f).clamp_min(1e-12);
    FeatureError {
        centred_cosine: cos.mean(Kind::Float).double_value(&[]),
        norm_ratio: ratio.mean(Kind::Float).double_value(&[]),
    }
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
    /// Weight statistics of the pretrained encoder.
    pub pretrained_weights: Vec<WeightStats>,
    /// Weight statistics of the fine-tuned encoder.
    pub finetuned_weights: Vec<WeightStats>,
    /// LSQ from the linear-evaluated network: test accuracy (%) after every epoch.
    pub lsq: Vec<f64>,
    /// Seconds.
    pub seconds: f64,
}

/// A classifier on the evaluation set with the pretrained encoder's weights.
fn load_encoder(
    pre_run: &RunDir,
    pre: &TrainConfig,
    cfg: &TrainConfig,
    data: &Dataset,
    device: Device,
) -> Result<(nn::VarStore, QNet)> {
    let mut vs = nn::VarStore::new(device);
    let net = train::build_in(&vs, cfg, data)?;
    let weights = pre_run.weights()?;
    let missing = vs.load_partial(&weights).map_err(|e| {
        anyhow::anyhow!(
            "{}: corrupt or not this encoder's checkpoint ({})",
            weights.display(),
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    if !missing.is_empty() {
        bail!(
            "{}: not a {:?} encoder (missing {})",
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
    match bits {
        Bits::Float => {
            // Measured in full precision; calibrated at 8w8a so that its saved run folder
            // exports as the integer device runs it.
            net.quant.edge_act_bits = None;
            net.set_bits(8, 8)?;
            calibrate(net, &cal, data.max_code, device);
            net.set_mode(Mode::Float);
        }
        Bits::Quantized { w, a } => {
            net.quant.edge_act_bits = e.edge_act_bits;
            net.set_bits(w, a)?;
            calibrate(net, &cal, data.max_code, device);
            net.set_mode(Mode::Quantized);
            if e.bn_per_bits {
                let batches = (cal.len() + 255) / 256;
                crate::mps::recalibrate_bn(net, &cal.images, data.max_code, batches, 256);
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
fn sweep(
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
    let pre_data = data::load_for(&pre, data_dir)?;
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
    let e = &e;
    let act = if e.mse_clip {
        ActQuantizer::Mse
    } else {
        ActQuantizer::MinMax
    };
    let mut base = classifier_config(&pre, on, resize, Bits::Float);
    base.quant.act_quantizer = act;
    let data = data::load_for(&base, data_dir)?;
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
        if matches!(bits, Bits::Quantized { .. }) {
            c.quant.edge_act_bits = e.edge_act_bits;
        }
        c
    };
    let (vs, mut net) = load_encoder(&run, &pre, &base, &data, device)?;
    let pretrained_weights = weight_stats(&net);
    net.set_mode(Mode::Float);
    crate::mps::recalibrate_bn(&net, &data.train.images, data.max_code, 20, 256);
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
    cfg.epochs = e.lsq_epochs;
    cfg.optimizer = Optimizer::Sgd;
    cfg.lr = 0.01;
    cfg.schedule = Schedule::Cosine;
    cfg.weight_decay = 1e-5;
    let weights = RunDir(start.run.clone()).weights()?;
    train::train(
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

/// Accuracy at `bits` in `points`, if evaluated.
fn at(points: &[Point], bits: Bits) -> Option<f64> {
    points.iter().find(|p| p.bits == bits).map(|p| p.accuracy)
}

/// The drop from full precision at `bits`, in points.
pub fn drop_at(points: &[Point], bits: Bits) -> Option<f64> {
    Some(at(points, Bits::Float)? - at(points, bits)?)
}

/// The pretraining settings an SSQL encoder and its baseline share, and must share to be
/// compared: architecture, schedule, and the projector's and predictor's widths. The method
/// ([`SsqlConfig::method`]) names what differs between the two.
pub fn pretraining_of(pre: &TrainConfig, ssql: &SsqlConfig) -> String {
    format!(
        "{}, {} epochs, batch {}, lr {}, projector {}-{}, predictor {}",
        format!("{:?}", pre.arch).to_lowercase(),
        pre.epochs,
        pre.batch_size,
        pre.lr,
        ssql.hidden,
        ssql.dim,
        ssql.predictor_hidden
    )
}

/// How the tables name an evaluation: its pretraining method, "BN per bits" when its
/// post-training quantization re-estimated BatchNorm at each bit width, "edges Na" when it
/// kept the edge activations at N bits, "MSE clip" when its ranges were MSE clips, and "head
/// per bits" when each bit width trained its own linear head.
fn label(r: &EvalResult) -> String {
    let mut l = r.method.clone();
    if r.config.bn_per_bits {
        l.push_str(" [BN per bits]");
    }
    if let Some(b) = r.config.edge_act_bits {
        l.push_str(&format!(" [edges {b}a]"));
    }
    if r.config.mse_clip {
        l.push_str(" [MSE clip]");
    }
    if r.config.head_per_bits {
        l.push_str(" [head per bits]");
    }
    l
}

/// The baseline evaluated the same way as the SSQL evaluation `q`: the same framework without
/// SSQL, the same pretraining and evaluation sets and the same post-training quantization;
/// the one pretrained with `q`'s seed when there is one.
fn baseline_of<'a>(q: &EvalResult, results: &'a [EvalResult]) -> Option<&'a EvalResult> {
    let (base_name, _) = q.method.split_once("+SSQL")?;
    let same = |r: &&EvalResult| {
        r.method == base_name
            && r.pretrained_on == q.pretrained_on
            && r.evaluated_on == q.evaluated_on
            && r.config.bn_per_bits == q.config.bn_per_bits
            && r.config.mse_clip == q.config.mse_clip
            && r.config.head_per_bits == q.config.head_per_bits
            && r.config.edge_act_bits == q.config.edge_act_bits
            && (r.pretraining == q.pretraining
                || r.pretraining.is_none()
                || q.pretraining.is_none())
    };
    results
        .iter()
        .filter(same)
        .find(|r| r.pretrain_seed.is_some() && r.pretrain_seed == q.pretrain_seed)
        .or_else(|| results.iter().find(same))
}

/// SSQL's target on drops from full precision: at most half of the baseline's (or none).
fn halves(ssql: f64, baseline: f64) -> bool {
    ssql <= 0.5 * baseline.max(0.0) || ssql <= 0.0
}

/// Whether SSQL evaluation `q` meets the target against baseline `b`: its linear-evaluation
/// drops at 4w4a and 3w3a both at most half of the baseline's ([`halves`]).
fn pair_meets_target(b: &EvalResult, q: &EvalResult) -> bool {
    [
        Bits::Quantized { w: 4, a: 4 },
        Bits::Quantized { w: 3, a: 3 },
    ]
    .iter()
    .all(|&x| match (drop_at(&q.linear, x), drop_at(&b.linear, x)) {
        (Some(dq), Some(db)) => halves(dq, db),
        _ => false,
    })
}

/// `v`, with the values that print as -0.00 printed as 0.00.
fn unsigned_zero(v: f64) -> f64 {
    if v.abs() < 0.005 {
        0.0
    } else {
        v
    }
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() < 2 {
        0.0
    } else {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    (mean, sd)
}

/// What the drop table compares: the pretraining and evaluation sets, the baseline's and SSQL's
/// labels.
type PairKey = (DatasetName, DatasetName, String, String);

/// The (baseline, SSQL) pairs of evaluations compared under one key, one pair per seed.
type PairGroup<'a> = (PairKey, Vec<(&'a EvalResult, &'a EvalResult)>);

/// The tables over pretraining seeds: each evaluation's linear accuracy as mean and standard
/// deviation over the encoders pretrained the same way with different seeds (Table 12
/// layout), and each SSQL-against-baseline comparison of the drop table over its seeds: mean
/// drops, the ratio of the mean drops, whether the means meet the target, and in how many
/// seeds' pairs it is met.
fn over_seeds(
    results: &[EvalResult],
    groups: &[PairGroup<'_>],
    bits: &[Bits],
    named: &dyn Fn(&EvalResult) -> String,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let seeds_of = |rs: &[&EvalResult]| {
        rs.iter()
            .map(|r| r.pretrain_seed.map_or("-".into(), |x| x.to_string()))
            .collect::<Vec<String>>()
            .join(", ")
    };
    let stat = |v: Vec<f64>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            let (m, sd) = mean_sd(&v);
            format!("{:.2} ± {sd:.2}", unsigned_zero(m))
        }
    };
    let _ = writeln!(
        s,
        "\n## Over pretraining seeds: linear evaluation, test accuracy %, mean ± standard deviation (Table 12 layout)\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | seeds | {} |",
        bits.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|---|{}", "---|".repeat(bits.len()));
    let mut done: Vec<(DatasetName, DatasetName, String)> = Vec::new();
    for r in results {
        let key = (r.pretrained_on, r.evaluated_on, named(r));
        if done.contains(&key) {
            continue;
        }
        let same: Vec<&EvalResult> = results
            .iter()
            .filter(|x| (x.pretrained_on, x.evaluated_on, named(x)) == key)
            .collect();
        done.push(key);
        if same.len() < 2 {
            continue;
        }
        let cells: Vec<String> = bits
            .iter()
            .map(|b| stat(same.iter().filter_map(|x| at(&x.linear, *b)).collect()))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.pretrained_on.as_str(),
            r.evaluated_on.as_str(),
            named(r),
            seeds_of(&same),
            cells.join(" | ")
        );
    }
    let q44 = Bits::Quantized { w: 4, a: 4 };
    let q33 = Bits::Quantized { w: 3, a: 3 };
    let _ = writeln!(
        s,
        "\n## Accuracy drop over pretraining seeds, linear evaluation (points, mean ± standard deviation)\n\n\
         Ratio: SSQL's mean drop over the baseline's. Target met on the means: both ratios at \
         most 0.5; per seed: the pairs of the table above that meet it.\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | baseline | SSQL | seeds (baseline; SSQL) | baseline 4w4a | SSQL 4w4a | baseline 3w3a | SSQL 3w3a | ratio 4w4a | ratio 3w3a | target met on the means | per seed |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((pre, on, bl, ql), pairs) in groups {
        // Each evaluation once, however many pairs it is in.
        let mut bs: Vec<&EvalResult> = Vec::new();
        let mut qs: Vec<&EvalResult> = Vec::new();
        for (b, q) in pairs {
            if !bs.iter().any(|x| std::ptr::eq(*x, *b)) {
                bs.push(b);
            }
            if !qs.iter().any(|x| std::ptr::eq(*x, *q)) {
                qs.push(q);
            }
        }
        let drops = |rs: &[&EvalResult], bits| -> Vec<f64> {
            rs.iter().filter_map(|r| drop_at(&r.linear, bits)).collect()
        };
        let mean = |v: Vec<f64>| mean_sd(&v).0;
        // A ratio only of a baseline drop there is (at least 0.01 points).
        let ratio = |bits| {
            let db = mean(drops(&bs, bits));
            if db >= 0.01 {
                mean(drops(&qs, bits)) / db
            } else {
                f64::NAN
            }
        };
        let met_on_means = [q44, q33].iter().all(|&x| {
            let (dq, db) = (mean(drops(&qs, x)), mean(drops(&bs, x)));
            dq.is_finite() && db.is_finite() && halves(dq, db)
        });
        let per_seed = pairs
            .iter()
            .filter(|(b, q)| pair_meets_target(b, q))
            .count();
        let r2 = |v: f64| {
            if v.is_finite() {
                format!("{:.2}", unsigned_zero(v))
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}; {} | {} | {} | {} | {} | {} | {} | {} | {} of {} |",
            pre.as_str(),
            on.as_str(),
            bl,
            ql,
            seeds_of(&bs),
            seeds_of(&qs),
            stat(drops(&bs, q44)),
            stat(drops(&qs, q44)),
            stat(drops(&bs, q33)),
            stat(drops(&qs, q33)),
            r2(ratio(q44)),
            r2(ratio(q33)),
            if met_on_means { "yes" } else { "no" },
            per_seed,
            pairs.len()
        );
    }
    s
}

/// Markdown tables of evaluations: the layout of the appendix's Table 11 (linear evaluation and
/// fine-tuning at every bit width, per evaluation set and method), the drop from full
/// precision with SSQL's against its baseline's (Table 12's comparison), weight statistics
/// (Fig. 7) and LSQ from each network. With encoders pretrained with several seeds, rows name
/// their seed, each SSQL encoder is compared with the baseline of its seed, and tables over
/// the seeds follow the drop table ([`mean_sd`]).
pub fn report(results: &[EvalResult]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let bits: Vec<Bits> = {
        let mut b: Vec<Bits> = Vec::new();
        for r in results {
            for p in r.linear.iter().chain(&r.finetune) {
                if !b.contains(&p.bits) {
                    b.push(p.bits);
                }
            }
        }
        b
    };
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", unsigned_zero(v)));
    // With evaluations of encoders pretrained with different seeds, rows name their seed.
    // With encoders pretrained with different settings, rows name the settings too.
    let several =
        |f: &dyn Fn(&EvalResult) -> String| results.iter().any(|r| f(r) != f(&results[0]));
    let several_seeds = several(&|r| format!("{:?}", r.pretrain_seed));
    let several_pretrainings = several(&|r| format!("{:?}", r.pretraining));
    let named = |r: &EvalResult| match (several_pretrainings, &r.pretraining) {
        (true, Some(p)) => format!("{} · {p}", label(r)),
        _ => label(r),
    };
    let shown = |r: &EvalResult| match (several_seeds, r.pretrain_seed) {
        (false, _) => named(r),
        (true, Some(seed)) => format!("{} · seed {seed}", named(r)),
        (true, None) => format!("{} · seed -", named(r)),
    };
    let head: Vec<String> = bits.iter().map(|b| b.to_string()).collect();
    let _ = writeln!(
        s,
        "## Linear evaluation and fine-tuning, test accuracy % (Table 11 layout)\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | {} | {} |",
        head.iter()
            .map(|h| format!("linear {h}"))
            .collect::<Vec<_>>()
            .join(" | "),
        head.iter()
            .map(|h| format!("fine-tuned {h}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|{}", "---|".repeat(2 * bits.len()));
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.pretrained_on.as_str(),
            r.evaluated_on.as_str(),
            shown(r),
            bits.iter()
                .map(|b| cell(at(&r.linear, *b)))
                .collect::<Vec<_>>()
                .join(" | "),
            bits.iter()
                .map(|b| cell(at(&r.finetune, *b)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    // SSQL against its baseline: same framework, same sets, same post-training quantization.
    let q44 = Bits::Quantized { w: 4, a: 4 };
    let q33 = Bits::Quantized { w: 3, a: 3 };
    let _ = writeln!(
        s,
        "\n## Accuracy drop from full precision, linear evaluation (points)\n\n\
         Target: SSQL's drop at 4w4a and 3w3a at most half of its baseline's.\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | baseline | SSQL | baseline 4w4a | SSQL 4w4a | baseline 3w3a | SSQL 3w3a | target met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    // Each pair, grouped by what was compared: (sets, baseline label, SSQL label).
    let mut groups: Vec<PairGroup<'_>> = Vec::new();
    for q in results.iter() {
        let Some(b) = baseline_of(q, results) else {
            continue;
        };
        let d = |r: &EvalResult, bits| drop_at(&r.linear, bits);
        let met = pair_meets_target(b, q);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            q.pretrained_on.as_str(),
            q.evaluated_on.as_str(),
            shown(b),
            shown(q),
            cell(d(b, q44)),
            cell(d(q, q44)),
            cell(d(b, q33)),
            cell(d(q, q33)),
            if met { "yes" } else { "no" }
        );
        let key = (q.pretrained_on, q.evaluated_on, named(b), named(q));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pairs)) => pairs.push((b, q)),
            None => groups.push((key, vec![(b, q)])),
        }
    }
    if groups.iter().any(|(_, pairs)| pairs.len() > 1) {
        s.push_str(&over_seeds(results, &groups, &bits, &named));
    }
    let _ = writeln!(
        s,
        "\n## Feature error of the linear-evaluated encoder (centred cosine to full precision / norm ratio)\n"
    );
    let qbits: Vec<Bits> = bits.iter().copied().filter(|b| *b != Bits::Float).collect();
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | {} |",
        qbits
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|{}", "---|".repeat(qbits.len()));
    for r in results {
        let cells: Vec<String> = qbits
            .iter()
            .map(|b| {
                r.linear
                    .iter()
                    .find(|p| p.bits == *b)
                    .and_then(|p| p.features)
                    .map_or("-".into(), |f| {
                        format!("{:.3} / {:.2}", f.centred_cosine, f.norm_ratio)
                    })
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.pretrained_on.as_str(),
            r.evaluated_on.as_str(),
            shown(r),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        s,
        "\n## Weight distributions of the encoder (mean over its layers; Fig. 7)\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | encoder | range | std | kurtosis | beyond 3 sigma % |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let mut encoders: Vec<(String, DatasetName)> = Vec::new();
    for r in results {
        // The pretrained encoder once per pretraining run, then each fine-tuned one.
        let first = !encoders.contains(&(shown(r), r.pretrained_on));
        if first {
            encoders.push((shown(r), r.pretrained_on));
        }
        let rows = [
            ("pretrained", &r.pretrained_weights, first),
            ("fine-tuned", &r.finetuned_weights, true),
        ];
        for (what, w, show) in rows {
            let Some(m) = w.iter().find(|x| x.layer == "mean").filter(|_| show) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.4} | {:.4} | {:.2} | {:.3} |",
                r.pretrained_on.as_str(),
                if what == "pretrained" {
                    "-"
                } else {
                    r.evaluated_on.as_str()
                },
                shown(r),
                what,
                m.range,
                m.std,
                m.kurtosis,
                100.0 * m.outliers
            );
        }
    }
    if results.iter().any(|r| !r.lsq.is_empty()) {
        let _ = writeln!(
            s,
            "\n## LSQ from the linear-evaluated network (test accuracy % after each epoch)\n"
        );
        let _ = writeln!(
            s,
            "| pretrained on | evaluated on | method | bits | epochs |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for r in results.iter().filter(|r| !r.lsq.is_empty()) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.pretrained_on.as_str(),
                r.evaluated_on.as_str(),
                shown(r),
                r.config.lsq_bits,
                r.lsq
                    .iter()
                    .map(|a| format!("{a:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table rows of a report's section whose title starts with `title`.
    fn section<'a>(md: &'a str, title: &str) -> Vec<&'a str> {
        md.lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| fashion-mnist"))
            .collect()
    }

    fn result(method: &str, bn_per_bits: bool, fp: f64, w4a4: f64, w3a3: f64) -> EvalResult {
        edged(method, bn_per_bits, None, fp, w4a4, w3a3)
    }

    fn edged(
        method: &str,
        bn_per_bits: bool,
        edge_act_bits: Option<u8>,
        fp: f64,
        w4a4: f64,
        w3a3: f64,
    ) -> EvalResult {
        let point = |bits, accuracy| Point {
            bits,
            accuracy,
            run: PathBuf::new(),
            features: None,
        };
        EvalResult {
            method: method.into(),
            pretrained_on: DatasetName::FashionMnist,
            evaluated_on: DatasetName::FashionMnist,
            pretrain_run: PathBuf::new(),
            pretrain_seed: None,
            pretraining: None,
            config: EvalConfig {
                bn_per_bits,
                edge_act_bits,
                ..Default::default()
            },
            linear: vec![
                point(Bits::Float, fp),
                point(Bits::Quantized { w: 4, a: 4 }, w4a4),
                point(Bits::Quantized { w: 3, a: 3 }, w3a3),
            ],
            finetune: Vec::new(),
            pretrained_weights: Vec::new(),
            finetuned_weights: Vec::new(),
            lsq: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Each SSQL evaluation is compared with the baseline evaluated by the same post-training
    /// quantization, and the target holds only when both drops are at most half.
    #[test]
    fn the_target_pairs_evaluations_of_the_same_quantization() {
        let _one = crate::seeded();
        let md = report(&[
            result("SimSiam", false, 80.0, 60.0, 30.0),
            result("SimSiam", true, 80.0, 70.0, 60.0),
            result("SimSiam+SSQL", false, 80.0, 71.0, 56.0),
            result("SimSiam+SSQL (float BN)", false, 80.0, 70.0, 50.0),
            result("SimSiam+SSQL", true, 80.0, 76.0, 70.0),
            edged("SimSiam+SSQL", false, Some(8), 80.0, 79.0, 75.0),
            edged("SimSiam", false, Some(8), 80.0, 78.0, 70.0),
            {
                let mut r = edged("SimSiam+SSQL", false, Some(8), 80.0, 79.5, 77.0);
                r.config.mse_clip = true;
                r
            },
            {
                let mut r = edged("SimSiam", false, Some(8), 80.0, 79.0, 74.0);
                r.config.mse_clip = true;
                r
            },
            {
                let mut r = edged("SimSiam+SSQL", false, Some(8), 80.0, 79.0, 76.0);
                r.config.head_per_bits = true;
                r
            },
            {
                let mut r = edged("SimSiam", false, Some(8), 80.0, 78.0, 72.0);
                r.config.head_per_bits = true;
                r
            },
        ]);
        let rows = section(&md, "## Accuracy drop");
        assert_eq!(
            rows,
            [
                "| fashion-mnist | fashion-mnist | SimSiam | SimSiam+SSQL | 20.00 | 9.00 | 50.00 | 24.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam | SimSiam+SSQL (float BN) | 20.00 | 10.00 | 50.00 | 30.00 | no |",
                "| fashion-mnist | fashion-mnist | SimSiam [BN per bits] | SimSiam+SSQL [BN per bits] | 10.00 | 4.00 | 20.00 | 10.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam [edges 8a] | SimSiam+SSQL [edges 8a] | 2.00 | 1.00 | 10.00 | 5.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam [edges 8a] [MSE clip] | SimSiam+SSQL [edges 8a] [MSE clip] | 1.00 | 0.50 | 6.00 | 3.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam [edges 8a] [head per bits] | SimSiam+SSQL [edges 8a] [head per bits] | 2.00 | 1.00 | 8.00 | 4.00 | yes |",
            ]
        );
    }

    /// Over seeds, each SSQL encoder is paired with the baseline of its own seed, and the means,
    /// standard deviations, ratios and the target are taken over the seeds.
    #[test]
    fn seeds_pair_by_seed_and_average() {
        let _one = crate::seeded();
        let seeded = |method: &str, seed: i64, w4a4: f64, w3a3: f64| {
            let mut r = result(method, false, 80.0, w4a4, w3a3);
            r.pretrain_seed = Some(seed);
            r
        };
        let md = report(&[
            seeded("SimSiam", 1, 70.0, 60.0),
            seeded("SimSiam", 2, 68.0, 56.0),
            seeded("SimSiam", 3, 72.0, 58.0),
            seeded("SimSiam+SSQL", 3, 75.0, 66.0),
            seeded("SimSiam+SSQL", 1, 76.0, 70.0),
            seeded("SimSiam+SSQL", 2, 74.0, 71.0),
        ]);
        assert_eq!(
            section(&md, "## Accuracy drop from full precision")[0],
            "| fashion-mnist | fashion-mnist | SimSiam · seed 3 | SimSiam+SSQL · seed 3 | 8.00 | 5.00 | 22.00 | 14.00 | no |"
        );
        assert_eq!(
            section(&md, "## Over pretraining seeds")[0],
            "| fashion-mnist | fashion-mnist | SimSiam | 1, 2, 3 | 80.00 ± 0.00 | 70.00 ± 2.00 | 58.00 ± 2.00 |"
        );
        assert_eq!(
            section(&md, "## Accuracy drop over pretraining seeds"),
            ["| fashion-mnist | fashion-mnist | SimSiam | SimSiam+SSQL | 3, 1, 2; 3, 1, 2 | 10.00 ± 2.00 | 5.00 ± 1.00 | 22.00 ± 2.00 | 11.00 ± 2.65 | 0.50 | 0.50 | yes | 2 of 3 |"]
        );
        // A baseline that loses nothing has no ratio; SSQL losing nothing either meets the target.
        let flat = report(&[
            seeded("SimSiam", 1, 80.0, 80.0),
            seeded("SimSiam", 2, 80.0, 80.0),
            seeded("SimSiam+SSQL", 1, 80.0, 80.0),
            seeded("SimSiam+SSQL", 2, 80.0, 80.0),
        ]);
        assert!(flat.contains(
            "| 1, 2; 1, 2 | 0.00 ± 0.00 | 0.00 ± 0.00 | 0.00 ± 0.00 | 0.00 ± 0.00 | - | - | yes | 2 of 2 |"
        ));
        // One seed: no seed in the names and no tables over seeds.
        let one = report(&[
            seeded("SimSiam", 1, 70.0, 60.0),
            seeded("SimSiam+SSQL", 1, 76.0, 70.0),
        ]);
        assert!(!one.contains("seed 1") && !one.contains("## Over pretraining seeds"));
    }

    /// An SSQL encoder is compared only with a baseline pretrained with the same shared
    /// settings, and the rows name the settings when the report mixes them.
    #[test]
    fn pairs_share_the_pretraining_settings() {
        let _one = crate::seeded();
        let pretrained = |method: &str, pretraining: &str, w4a4: f64, w3a3: f64| {
            let mut r = result(method, false, 80.0, w4a4, w3a3);
            r.pretraining = Some(pretraining.into());
            r
        };
        let md = report(&[
            pretrained("SimSiam", "cnn, 20 epochs", 70.0, 60.0),
            pretrained("SimSiam", "cnn, 12 epochs", 76.0, 72.0),
            pretrained("SimSiam+SSQL", "cnn, 12 epochs", 77.0, 74.0),
        ]);
        let rows = section(&md, "## Accuracy drop");
        assert_eq!(
            rows,
            ["| fashion-mnist | fashion-mnist | SimSiam · cnn, 12 epochs | SimSiam+SSQL · cnn, 12 epochs | 4.00 | 3.00 | 8.00 | 6.00 | no |"]
        );
    }

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

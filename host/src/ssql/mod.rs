//! SSQL: self-supervised pretraining that stays accurate at every bit width (Cao et al.,
//! "Synergistic Self-supervised and Quantization Learning", ECCV 2022; appendix in the papers
//! folder).
//!
//! One encoder (a [`QNet`] whose logits layer is the linear head of later evaluation) is
//! pretrained without labels with SimSiam, BYOL or MoCo v2. With SSQL on, every step also
//! runs the **same** encoder quantized at a weight and an activation bit width drawn uniformly
//! from the configured ranges (2..=8 and 4..=8 by default), and the loss pairs the quantized
//! branch with the full-precision targets:
//!
//! * the full-precision pass runs in [`Mode::Calibrate`]: it recalibrates every activation
//!   quantizer's min-max range, because the weights changed since the last step;
//! * weights are quantized per output channel, symmetric, by their largest magnitude (min-max);
//!   activations by the largest value the full-precision pass saw; the first and last layers'
//!   weights stay at `first_last_bits` (8);
//! * the loss is the framework's loss of the full-precision branch and the same loss with the
//!   quantized branch's predictions against the same (stop-gradient / momentum) targets,
//!   averaged: [`ssql_pair`].
//!
//! The three frameworks, each also trainable without SSQL (the baselines):
//!
//! * **SimSiam**: projector, predictor, `D(p, z) = -cos(p, sg(z))`, symmetric
//!   ([`simsiam_loss`]);
//! * **BYOL**: a momentum target (encoder and projector, `t <- m t + (1 - m) o` after every
//!   step, m = 0.99), `2 - 2 cos(p, t)`, symmetric ([`byol_loss`]);
//! * **MoCo v2**: a momentum key encoder (m = 0.999), a queue of 4096 negatives, InfoNCE at
//!   temperature 0.2 ([`infonce_loss`]).
//!
//! Evaluation (linear, fine-tuning, post-training quantization at any bit width) is in
//! [`crate::ssql::eval`].

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::config::TrainConfig;
use crate::data::{self, Dataset};
use crate::net::{Mode, QNet};
use crate::train::{write_atomic, RunDir, State, TrainOptions};

pub mod config;
pub mod eval;
pub mod loss;
pub mod ptq;
pub mod report;
pub mod stats;

pub use config::{default_lr, Framework, Protocol, QuantizedBn, SsqlConfig};
use loss::normalize;
pub use loss::{byol_loss, infonce_loss, momentum_update, neg_cosine, simsiam_loss, ssql_pair};

/// Draws a step's bit widths uniformly from inclusive ranges (tch's generator, so a seeded
/// run draws the same widths).
#[derive(Clone, Copy, Debug)]
pub struct BitSampler {
    /// Weight bit range (inclusive).
    pub weight: [u8; 2],
    /// Activation bit range (inclusive).
    pub act: [u8; 2],
}

impl BitSampler {
    /// One draw: `(weight bits, activation bits)`.
    pub fn draw(&self) -> (u8, u8) {
        let pick = |[lo, hi]: [u8; 2]| {
            let r = Tensor::randint_low(lo as i64, hi as i64 + 1, [1], (Kind::Int64, Device::Cpu));
            r.int64_value(&[0]) as u8
        };
        (pick(self.weight), pick(self.act))
    }
}

/// A head of two or three linear layers: `(Linear, BatchNorm, ReLU)` once or twice, then
/// `Linear` and optionally a BatchNorm without affine parameters on the output (SimSiam's
/// projector).
#[derive(Debug)]
pub struct Mlp {
    /// The extra first layer of a three-layer head, with its BatchNorm.
    l0: Option<(nn::Linear, nn::BatchNorm)>,
    l1: nn::Linear,
    bn1: Option<nn::BatchNorm>,
    l2: nn::Linear,
    bn_out: Option<nn::BatchNorm>,
}

impl Mlp {
    /// `inp -> hidden -> out`; `bn`: BatchNorm after the first layer; `bn_out`: after the second.
    pub fn new(p: &nn::Path, inp: i64, hidden: i64, out: i64, bn: bool, bn_out: bool) -> Self {
        Self::with_layers(p, 2, inp, hidden, out, bn, bn_out)
    }

    /// As [`Mlp::new`] with `layers` (2 or 3) linear layers: a third one, `inp -> hidden` with
    /// BatchNorm and ReLU, comes first.
    pub fn with_layers(
        p: &nn::Path,
        layers: u8,
        inp: i64,
        hidden: i64,
        out: i64,
        bn: bool,
        bn_out: bool,
    ) -> Self {
        let (l0, inp) = if layers >= 3 {
            let l = nn::linear(p / "l0", inp, hidden, Default::default());
            let b = nn::batch_norm1d(p / "bn0", hidden, Default::default());
            (Some((l, b)), hidden)
        } else {
            (None, inp)
        };
        let l1 = nn::linear(p / "l1", inp, hidden, Default::default());
        let bn1 = bn.then(|| nn::batch_norm1d(p / "bn1", hidden, Default::default()));
        let l2 = nn::linear(p / "l2", hidden, out, Default::default());
        let bn_out = bn_out.then(|| {
            nn::batch_norm1d(
                p / "bn2",
                out,
                nn::BatchNormConfig {
                    affine: false,
                    ..Default::default()
                },
            )
        });
        Self {
            l0,
            l1,
            bn1,
            l2,
            bn_out,
        }
    }

    /// The forward pass with every linear layer's weight fake-quantized at `weight_bits`
    /// (SSQL's observer, per output channel; 0: full precision).
    pub fn forward_bits(&self, x: &Tensor, train: bool, weight_bits: u8) -> Tensor {
        let lin = |l: &nn::Linear, x: &Tensor| match weight_bits {
            0 => l.forward(x),
            b => x.linear(&fake_quant_rows(&l.ws, b), l.bs.as_ref()),
        };
        let x = match &self.l0 {
            Some((l, bn)) => bn.forward_t(&lin(l, x), train).relu(),
            None => x.shallow_clone(),
        };
        let mut h = lin(&self.l1, &x);
        if let Some(bn) = &self.bn1 {
            h = bn.forward_t(&h, train);
        }
        let mut y = lin(&self.l2, &h.relu());
        if let Some(bn) = &self.bn_out {
            y = bn.forward_t(&y, train);
        }
        y
    }
}

/// `w` (`[out, in]`) fake-quantized per row at `bits` with SSQL's symmetric observer, step
/// `max|w| / ((2^b - 1) / 2)`, straight-through gradient.
fn fake_quant_rows(w: &Tensor, bits: u8) -> Tensor {
    let q = ((1i64 << (bits - 1)) - 1) as f64;
    let s = (w.detach().abs().amax(1, true) / (q + 0.5)).clamp_min(1e-8);
    crate::quant::round_ste(&(w / &s).clamp(-q, q)) * s
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_bits(x, train, 0)
    }
}

/// The networks of one framework: the online encoder with its heads, and for BYOL / MoCo the
/// momentum copy (encoder and projector) in a store of its own.
pub struct Pretrainer {
    /// Settings.
    pub cfg: SsqlConfig,
    /// Online parameters (encoder under `n<i>`, projector under `proj`, predictor under `pred`).
    pub vs: nn::VarStore,
    /// The encoder, whose logits layer is unused here.
    pub net: QNet,
    /// Projector.
    pub proj: Mlp,
    /// Predictor (SimSiam, BYOL).
    pub pred: Option<Mlp>,
    /// Momentum network (BYOL's target, MoCo's key encoder): store, encoder, projector.
    pub momentum: Option<(nn::VarStore, QNet, Mlp)>,
    /// MoCo's queue `[dim, queue]` and its write position.
    pub queue: Option<(Tensor, i64)>,
    /// MoCo's keys of the last step, enqueued after the optimizer's step (the loss's graph
    /// still reads the queue until then).
    pending: Option<Tensor>,
    bits: BitSampler,
}

impl Pretrainer {
    /// Build the networks for `train` (its encoder) on `data`.
    pub fn new(
        train: &TrainConfig,
        cfg: &SsqlConfig,
        data: &Dataset,
        device: Device,
    ) -> Result<Self> {
        cfg.check()?;
        anyhow::ensure!(
            cfg.dim > 0 && cfg.hidden > 0 && cfg.predictor_hidden > 0,
            "ssql widths of 0 are resolved when pretraining starts"
        );
        let q = &train.quant;
        let switchable = q.weight_quantizer.switchable()
            && matches!(
                q.act_quantizer,
                crate::quant::ActQuantizer::MinMax
                    | crate::quant::ActQuantizer::Mse
                    | crate::quant::ActQuantizer::Hwgq
            );
        if cfg.quantize && !switchable {
            bail!(
                "SSQL switches bit widths every step: use max-abs (or lloyd) weights and min-max (mse, or hwgq) activations"
            );
        }
        let enc = |vs: &nn::VarStore| -> Result<(QNet, Mlp)> {
            let t = crate::train::build_in(&crate::train::Qat, vs, train, data)?;
            let f = t.feature_count();
            let (bn, bn_out) = match cfg.framework {
                Framework::Simsiam => (true, true),
                Framework::Byol => (true, false),
                Framework::Moco => (false, false),
            };
            let proj = Mlp::with_layers(
                &(vs.root() / "proj"),
                cfg.projector_layers,
                f,
                cfg.hidden,
                cfg.dim,
                bn,
                bn_out,
            );
            Ok((t, proj))
        };
        let vs = nn::VarStore::new(device);
        let (net, proj) = enc(&vs)?;
        let pred = match cfg.framework {
            Framework::Simsiam => Some(Mlp::new(
                &(vs.root() / "pred"),
                cfg.dim,
                cfg.predictor_hidden,
                cfg.dim,
                true,
                false,
            )),
            Framework::Byol => Some(Mlp::new(
                &(vs.root() / "pred"),
                cfg.dim,
                cfg.hidden,
                cfg.dim,
                true,
                false,
            )),
            Framework::Moco => None,
        };
        let momentum = match cfg.framework {
            Framework::Simsiam => None,
            _ => {
                let mut tvs = nn::VarStore::new(device);
                let (tnet, tproj) = enc(&tvs)?;
                tvs.copy(&vs)?;
                tvs.freeze();
                Some((tvs, tnet, tproj))
            }
        };
        let queue = (cfg.framework == Framework::Moco).then(|| {
            let q = Tensor::randn([cfg.dim, cfg.queue], (Kind::Float, device));
            (&q / q.norm_scalaropt_dim(2, [0], true), 0)
        });
        Ok(Self {
            cfg: cfg.clone(),
            vs,
            net,
            proj,
            pred,
            momentum,
            queue,
            pending: None,
            bits: BitSampler {
                weight: cfg.weight_bits,
                act: cfg.act_bits,
            },
        })
    }

    /// Projections of the online encoder on a view, in the encoder's current mode.
    fn project(&self, x: &Tensor) -> Tensor {
        self.proj.forward_t(&self.net.features(x, true), true)
    }

    /// Whether the quantized branch's BatchNorm layers normalize with their batch's
    /// statistics ([`QuantizedBn::Batch`]) rather than the running ones.
    fn quantized_batch_stats(&self) -> bool {
        self.cfg.quantized_bn == QuantizedBn::Batch
    }

    /// The projections of the encoder quantized at its current bit widths on a view (this
    /// leaves it in [`Mode::Quantized`]). Every BatchNorm of the branch, the encoder's and the
    /// full-precision projector's, normalizes with the configured statistics
    /// ([`QuantizedBn`]); only `Batch` updates their running statistics.
    pub fn quantized_projection(&self, x: &Tensor) -> Tensor {
        self.net.set_mode(Mode::Quantized);
        let batch = self.quantized_batch_stats();
        self.proj.forward_bits(
            &self.net.features(x, batch),
            batch,
            self.cfg.projector_weight_bits,
        )
    }

    /// The loss of one step on two views, and the bit widths of its quantized branch (none
    /// for a baseline). Leaves the encoder in full precision.
    pub fn loss(&mut self, v1: &Tensor, v2: &Tensor) -> Result<(Tensor, Option<(u8, u8)>)> {
        let quantize = self.cfg.quantize;
        // The full-precision pass recalibrates the activation ranges (the weights moved).
        if quantize {
            self.net.reset_ranges();
            self.net.set_mode(Mode::Calibrate);
        } else {
            self.net.set_mode(Mode::Float);
        }
        let z1 = self.project(v1);
        let z2 = self.project(v2);
        let drawn = if quantize {
            let (wb, ab) = self.bits.draw();
            self.net.set_bits(wb, ab)?;
            Some((wb, ab))
        } else {
            None
        };
        let loss = match self.cfg.framework {
            Framework::Simsiam | Framework::Byol => {
                let pred = self
                    .pred
                    .as_ref()
                    .context("SimSiam and BYOL have a predictor")?;
                // SimSiam's targets are its own projections (stop-gradient in the loss), BYOL's
                // the momentum network's.
                let (t1, t2) = match &self.momentum {
                    Some((_, tnet, tproj)) => tch::no_grad(|| {
                        tnet.set_mode(Mode::Float);
                        let t = |x: &Tensor| tproj.forward_t(&tnet.features(x, true), true);
                        (t(v1), t(v2))
                    }),
                    None => (z1.shallow_clone(), z2.shallow_clone()),
                };
                let objective: fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Tensor =
                    match self.cfg.framework {
                        Framework::Byol => byol_loss,
                        _ => simsiam_loss,
                    };
                let (p1, p2) = (pred.forward_t(&z1, true), pred.forward_t(&z2, true));
                let fp = objective(&p1, &p2, &t1, &t2);
                if quantize {
                    self.net.set_mode(Mode::Quantized);
                    // The predictor's BatchNorm too, as the configuration says.
                    let batch = self.quantized_batch_stats();
                    let q1 = pred.forward_t(&self.quantized_projection(v1), batch);
                    let q2 = pred.forward_t(&self.quantized_projection(v2), batch);
                    ssql_pair(&fp, &objective(&q1, &q2, &t1, &t2))
                } else {
                    fp
                }
            }
            Framework::Moco => {
                let (_, knet, kproj) = self.momentum.as_ref().context("MoCo has a key encoder")?;
                let (queue, _) = self.queue.as_ref().context("MoCo has a queue")?;
                let k = tch::no_grad(|| {
                    knet.set_mode(Mode::Float);
                    normalize(&kproj.forward_t(&knet.features(v2, true), true))
                });
                let fp = infonce_loss(&z1, &k, queue, self.cfg.temperature);
                let loss = if quantize {
                    self.net.set_mode(Mode::Quantized);
                    let q = self.quantized_projection(v1);
                    ssql_pair(&fp, &infonce_loss(&q, &k, queue, self.cfg.temperature))
                } else {
                    fp
                };
                self.pending = Some(k);
                loss
            }
        };
        self.net.set_mode(Mode::Float);
        Ok((loss, drawn))
    }

    /// The training state beyond the online store: the momentum network's variables (under
    /// `momentum.`), MoCo's queue and its write position. Empty for SimSiam.
    fn momentum_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        if let Some((tvs, _, _)) = &self.momentum {
            let mut vars: Vec<(String, Tensor)> = tvs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(vars.into_iter().map(|(n, t)| (format!("momentum.{n}"), t)));
        }
        if let Some((queue, ptr)) = &self.queue {
            out.push(("queue".into(), queue.shallow_clone()));
            out.push(("queue_ptr".into(), Tensor::from_slice(&[*ptr])));
        }
        out
    }

    /// Save the momentum network, MoCo's queue and its position to `file` (atomically; no file
    /// for SimSiam).
    pub fn save_momentum(&self, file: &Path) -> Result<()> {
        let tensors = self.momentum_tensors();
        if tensors.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        Tensor::save_multi_to_stream(&tensors, &mut bytes)
            .with_context(|| format!("cannot serialize {}", file.display()))?;
        write_atomic(file, &bytes)
    }

    /// Restore what [`Self::save_momentum`] wrote: every tensor must be there with its shape.
    pub fn load_momentum(&mut self, file: &Path) -> Result<()> {
        let expected = self.momentum_tensors();
        if expected.is_empty() {
            return Ok(());
        }
        let loaded: std::collections::HashMap<String, Tensor> = Tensor::load_multi(file)
            .map_err(|e| {
                let e = e.to_string();
                anyhow::anyhow!(
                    "{}: cannot read the momentum state ({})",
                    file.display(),
                    e.lines().next().unwrap_or_default()
                )
            })?
            .into_iter()
            .collect();
        for (name, dst) in &expected {
            let src = loaded
                .get(name)
                .with_context(|| format!("{}: lacks {name}", file.display()))?;
            if src.size() != dst.size() {
                bail!(
                    "{}: {name} has shape {:?}, the run's network {:?}",
                    file.display(),
                    src.size(),
                    dst.size()
                );
            }
            if name == "queue_ptr" {
                let ptr = src.int64_value(&[0]);
                if let Some((queue, p)) = &mut self.queue {
                    if !(0..queue.size()[1]).contains(&ptr) {
                        bail!("{}: queue position {ptr} out of range", file.display());
                    }
                    *p = ptr;
                }
            } else {
                let mut dst = dst.shallow_clone();
                tch::no_grad(|| dst.copy_(&src.to_device(dst.device())));
            }
        }
        Ok(())
    }

    /// MoCo: write the keys into the queue (oldest first out).
    fn enqueue(&mut self, k: &Tensor) {
        if let Some((queue, ptr)) = &mut self.queue {
            let len = queue.size()[1];
            let n = k.size()[0].min(len);
            tch::no_grad(|| {
                let kt = k.narrow(0, 0, n).transpose(0, 1);
                let first = n.min(len - *ptr);
                queue.narrow(1, *ptr, first).copy_(&kt.narrow(1, 0, first));
                if first < n {
                    queue
                        .narrow(1, 0, n - first)
                        .copy_(&kt.narrow(1, first, n - first));
                }
            });
            *ptr = (*ptr + n) % len;
        }
    }

    /// After the optimizer's step: move the momentum network towards the online one; MoCo
    /// enqueues the step's keys.
    pub fn after_step(&mut self) -> Result<()> {
        if let Some((tvs, _, _)) = &self.momentum {
            momentum_update(tvs, &self.vs, self.cfg.momentum())?;
        }
        if let Some(k) = self.pending.take() {
            self.enqueue(&k);
        }
        Ok(())
    }
}

/// Two random views of a float batch `[N, C, H, W]` in `[0, 1]`: random resized crop with a
/// small rotation (one affine resampling), brightness and contrast jitter, horizontal flips
/// where the dataset allows them.
pub fn view(x: &Tensor, cfg: &SsqlConfig, flips: bool) -> Tensor {
    let n = x.size()[0];
    let dev = x.device();
    let opts = (Kind::Float, dev);
    let u = |lo: f64, hi: f64| Tensor::rand([n], opts) * (hi - lo) + lo;
    let area = u(cfg.crop_scale[0], cfg.crop_scale[1]);
    let ratio = (u((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln())).exp();
    let sx = (&area * &ratio).sqrt().clamp_max(1.0);
    let sy = (&area / &ratio).sqrt().clamp_max(1.0);
    let tx = (Tensor::rand([n], opts) * 2.0 - 1.0) * (1.0 - &sx);
    let ty = (Tensor::rand([n], opts) * 2.0 - 1.0) * (1.0 - &sy);
    let a = u(-cfg.rotation, cfg.rotation) * (std::f64::consts::PI / 180.0);
    let (c, s) = (a.cos(), a.sin());
    let mut sxf = sx.shallow_clone();
    if flips {
        let sign = Tensor::rand([n], opts).lt(0.5).to_kind(Kind::Float) * 2.0 - 1.0;
        sxf *= sign;
    }
    let row1 = Tensor::stack(&[&sxf * &c, -(&sy * &s), tx], 1);
    let row2 = Tensor::stack(&[&sxf * &s, &sy * &c, ty], 1);
    let theta = Tensor::stack(&[row1, row2], 1);
    let grid = Tensor::affine_grid_generator(&theta, x.size(), false);
    let mut y = x.grid_sampler(&grid, 0, 0, false);
    if cfg.jitter > 0.0 {
        let on = Tensor::rand([n, 1, 1, 1], opts).lt(cfg.jitter_p);
        let j = cfg.jitter;
        let b = Tensor::rand([n, 1, 1, 1], opts) * (2.0 * j) + (1.0 - j);
        let k = Tensor::rand([n, 1, 1, 1], opts) * (2.0 * j) + (1.0 - j);
        let mean = y.mean_dim(&[1i64, 2, 3][..], true, Kind::Float);
        let jittered = ((&y - &mean) * k + &mean) * b;
        y = jittered.where_self(&on, &y);
    }
    y.clamp(0.0, 1.0)
}

/// The momentum state's file of a checkpoint after `epochs` epochs.
fn momentum_file(epochs: usize) -> String {
    format!("momentum-{epochs}.ot")
}

/// Pretrain without labels into the run folder `o.out` (`config.toml` with its `[ssql]` table,
/// `weights-<epoch>.ot` holding encoder, projector and predictor, `momentum-<epoch>.ot` with
/// BYOL's target or MoCo's key encoder and queue, `state.json`, `log.jsonl` with the loss of
/// every epoch). The schedule, optimizer and rate are `train`'s. With `o.resume` an interrupted
/// run continues from its last committed epoch as QAT's does (`crate::train`): same
/// configuration, each epoch reseeded, the optimizer's moments restarted.
pub fn pretrain(train: &TrainConfig, data: &Dataset, o: &TrainOptions<'_>) -> Result<State> {
    train.check()?;
    if o.init.is_some() {
        bail!("a pretraining run starts from a fresh initialisation: --init is for `train qat`");
    }
    // Widths of 0 scale with the encoder's features (recorded resolved).
    let mut train = train.clone();
    let s = data.shape;
    let spec = crate::spec::Spec::of(
        train.arch,
        [s.c as i64, s.h as i64, s.w as i64],
        data.classes,
    );
    let features = spec.feature_count()?;
    if let Some(c) = &mut train.ssql {
        c.resolve_widths(features);
    }
    let train = &train;
    let cfg = train
        .ssql
        .clone()
        .context("a pretraining run needs an [ssql] table")?;
    let run = RunDir(o.out.to_path_buf());
    let mut state = crate::train::open_run(&run, train, o.resume)?;
    tch::manual_seed(train.seed);
    let mut p = Pretrainer::new(train, &cfg, data, o.device)?;
    if state.epochs_done > 0 {
        crate::train::load_checkpoint(&run, &mut p.vs)?;
        p.load_momentum(&run.0.join(momentum_file(state.epochs_done)))?;
    }
    if !o.resume {
        std::fs::create_dir_all(o.out)
            .with_context(|| format!("cannot create {}", o.out.display()))?;
        let text = toml::to_string(train).context("serializing the configuration")?;
        write_atomic(&run.config(), text.as_bytes())?;
    }
    crate::train::trim_log(&run, state.epochs_done)?;
    let mut opt = crate::train::optimizer(train, &p.vs)?;
    opt.set_weight_decay(train.weight_decay);
    let n = data.train.len();
    let per_epoch = ((n + train.batch_size - 1) / train.batch_size) as usize;
    let total = per_epoch * train.epochs;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.log())
        .with_context(|| format!("cannot open {}", run.log().display()))?;
    let flips = data.name.flips();
    for epoch in state.epochs_done..train.epochs {
        tch::manual_seed(
            train
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(epoch as i64),
        );
        let started = Instant::now();
        let bar = if o.progress {
            indicatif::ProgressBar::new(per_epoch as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_message(format!("{}/{}", epoch + 1, train.epochs));
        let (mut loss_sum, mut steps) = (0.0, 0usize);
        let mut drawn = std::collections::BTreeMap::<String, usize>::new();
        for (b, idx) in data::batches(n, train.batch_size, true)
            .into_iter()
            .enumerate()
        {
            if idx.size()[0] < 2 {
                continue; // BatchNorm needs two samples
            }
            opt.set_lr(train.lr_at(epoch * per_epoch + b, total, epoch));
            let x = data::to_input(
                &data.train.images.index_select(0, &idx),
                data.max_code,
                o.device,
            );
            let (v1, v2) = (view(&x, &cfg, flips), view(&x, &cfg, flips));
            let (loss, bits) = p.loss(&v1, &v2)?;
            let l = loss.double_value(&[]);
            crate::train::check_finite(l, None, epoch + 1, b + 1)?;
            opt.backward_step(&loss);
            p.after_step()?;
            crate::train::check_finite(l, Some(&p.vs), epoch + 1, b + 1)?;
            loss_sum += l;
            steps += 1;
            if let Some((w, a)) = bits {
                *drawn.entry(format!("{w}w{a}a")).or_default() += 1;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        state.epochs_done = epoch + 1;
        state.seconds += seconds;
        // The momentum state first: a committed epoch always has its file.
        p.save_momentum(&run.0.join(momentum_file(state.epochs_done)))?;
        crate::train::commit_checkpoint(&run, &p.vs, &mut state)?;
        if epoch > 0 {
            let _ = std::fs::remove_file(run.0.join(momentum_file(epoch)));
        }
        let line = serde_json::json!({
            "epoch": epoch + 1,
            "loss": loss_sum / steps.max(1) as f64,
            "seconds": seconds,
            "bits_drawn": drawn,
        });
        writeln!(log, "{line}")?;
        if o.progress {
            eprintln!(
                "epoch {}/{}: loss {:.4}, {:.0} s",
                epoch + 1,
                train.epochs,
                loss_sum / steps.max(1) as f64,
                seconds
            );
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_sampling_covers_exactly_the_ranges() {
        let _one = crate::seeded();
        tch::manual_seed(5);
        let s = BitSampler {
            weight: [2, 8],
            act: [4, 8],
        };
        let mut w = std::collections::BTreeSet::new();
        let mut a = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let (x, y) = s.draw();
            w.insert(x);
            a.insert(y);
        }
        assert_eq!(
            w.into_iter().collect::<Vec<_>>(),
            (2..=8).collect::<Vec<u8>>()
        );
        assert_eq!(
            a.into_iter().collect::<Vec<_>>(),
            (4..=8).collect::<Vec<u8>>()
        );
        let one = BitSampler {
            weight: [3, 3],
            act: [5, 5],
        };
        assert!((0..50).all(|_| one.draw() == (3, 5)));
    }

    #[test]
    fn methods_name_their_settings() {
        let _one = crate::seeded();
        let mut c = SsqlConfig::default();
        assert_eq!(c.method(), "SimSiam+SSQL");
        c.quantized_bn = QuantizedBn::Float;
        c.act_bits = [3, 8];
        assert_eq!(c.method(), "SimSiam+SSQL (float BN, a3-8)");
        c.quantize = false;
        assert_eq!(c.method(), "SimSiam");
    }

    #[test]
    fn the_bitspike_protocol_undoes_the_official_one() {
        let _one = crate::seeded();
        let mut c = SsqlConfig {
            framework: Framework::Moco,
            act_bits: [5, 8],
            ..Default::default()
        };
        let official = c.clone().official();
        assert_eq!(official.protocol, Protocol::Official);
        assert_ne!(official.crop_scale, c.crop_scale);
        assert_eq!(official.clone().bitspike(), c);
        // Settings the official protocol does not touch stay as they were.
        c.queue = 77;
        let mut o = official;
        o.queue = 77;
        assert_eq!(o.bitspike(), c);
    }

    #[test]
    fn bad_settings_are_refused() {
        let _one = crate::seeded();
        let bad = |f: fn(&mut SsqlConfig)| {
            let mut c = SsqlConfig::default();
            f(&mut c);
            c.check().is_err()
        };
        assert!(SsqlConfig::default().check().is_ok());
        assert!(bad(|c| c.weight_bits = [1, 8]));
        assert!(bad(|c| c.weight_bits = [6, 4]));
        assert!(bad(|c| c.act_bits = [4, 9]));
        assert!(bad(|c| c.momentum = 1.0));
        assert!(bad(|c| c.crop_scale = [0.0, 1.0]));
        assert!(bad(|c| c.temperature = 0.0));
    }

    #[test]
    fn views_keep_shape_and_range_and_differ() {
        let _one = crate::seeded();
        tch::manual_seed(2);
        let x = Tensor::rand([6, 1, 28, 28], (Kind::Float, Device::Cpu));
        let c = SsqlConfig::default();
        let (a, b) = (view(&x, &c, true), view(&x, &c, true));
        assert_eq!(a.size(), x.size());
        assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
        assert!((&a - &b).abs().max().double_value(&[]) > 0.1);
    }
}

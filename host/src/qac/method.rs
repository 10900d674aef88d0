//! QAC as a training method: a spiking-ready network whose activation quantizers are QAC's,
//! and its level penalty in the training loop.

use anyhow::{bail, Context, Result};
use tch::nn;
use tch::{Kind, Tensor};

use super::{layers, LevelCost, QacCase, QacConfig, QacQuant, DEVICE_TIMESTEPS, MAX_TIMESTEPS};
use crate::config::TrainConfig;
use crate::device_costs::{self as dc, snn::SnnCost};
use crate::net::{QNet, Spec};
use crate::quant::{ActQuantize, ActQuantizer, Quantizers, Uniform, WeightQuantize};
use crate::train::{EpochNotes, Hook, Method};

/// QAC training (`act_quantizer = "qac"`, `[quant.qac]`), and its QCFS baseline
/// (`fixed_levels`, or `act_quantizer = "qcfs"`: every level count frozen at `2^b - 1`): the
/// specification made spiking-ready, weights quantized as `[quant]` says, every activation
/// quantizer QAC's.
pub struct Qac;

/// The QAC settings a configuration trains with: its `[quant.qac]`, or for
/// `act_quantizer = "qcfs"` case 4 frozen at `L = 2^b - 1` levels.
pub fn settings(cfg: &TrainConfig) -> Result<QacConfig> {
    let q = cfg.quant.qac.clone();
    if cfg.quant.act_quantizer != ActQuantizer::Qcfs {
        return Ok(q);
    }
    let levels = (1u32 << cfg.quant.act_bits) - 1;
    if levels > MAX_TIMESTEPS as u32 {
        bail!(
            "qcfs at {} bits: its L = 2^b - 1 = {levels} levels are a spiking layer's timesteps, \
             at most {MAX_TIMESTEPS} (use up to 6 activation bits)",
            cfg.quant.act_bits
        );
    }
    Ok(QacConfig {
        case: QacCase::TAlpha,
        fixed_levels: levels as u16,
        ..q
    })
}

/// The weights of the uniform quantizers, QAC's activations.
struct QacQuantizers {
    weights: Uniform,
    qac: QacConfig,
}

impl Quantizers for QacQuantizers {
    fn weight(
        &self,
        path: &nn::Path,
        node: usize,
        edge: bool,
        out: i64,
        per_channel: bool,
    ) -> Result<Box<dyn WeightQuantize>> {
        self.weights.weight(path, node, edge, out, per_channel)
    }

    fn act(&self, path: &nn::Path, _node: usize, _edge: bool) -> Result<Box<dyn ActQuantize>> {
        Ok(Box::new(QacQuant::new(path, &self.qac)))
    }
}

impl Method for Qac {
    fn build(
        &self,
        vs: &nn::VarStore,
        spec: Spec,
        cfg: &TrainConfig,
        input_max: u8,
    ) -> Result<QNet> {
        cfg.quant.check()?;
        if cfg.mps.is_some() || !cfg.mixed.is_empty() {
            bail!(
                "QAC and QCFS set their own level counts: they take no [mixed] plan or [mps] search"
            );
        }
        let q = QacQuantizers {
            weights: cfg.quant.uniform(),
            qac: settings(cfg)?,
        };
        QNet::with(vs, spec.spiking()?, input_max, &q, None, true)
    }

    fn hook(&self, cfg: &TrainConfig, net: &QNet) -> Result<Box<dyn Hook>> {
        Ok(Box::new(PenaltyHook {
            penalty: settings(cfg)?.level_penalty,
            device: device_penalty(cfg, net)?,
        }))
    }
}

/// QAC's level penalty on the board (`[quant.qac] cost = "device"`): the spiking network's
/// measured cost as a function of its layers' level counts, and the unit that gives a network
/// of uniform initial level counts the same penalty as the mean level count would.
fn device_penalty(cfg: &TrainConfig, net: &QNet) -> Result<Option<(SnnCost, f64)>> {
    let q = &cfg.quant.qac;
    if q.cost != LevelCost::Device {
        return Ok(None);
    }
    let board = q
        .board
        .as_deref()
        .context("qac cost = \"device\" needs a board")?;
    let table = dc::CostTable::read(&dc::table_path(crate::boards::cost_board(board)?))?;
    let weights = dc::snn::weight_plan(&net.spec, cfg.quant.weight_bits, cfg.quant.first_last_bits);
    let cost = SnnCost::new(
        &net.spec,
        &weights,
        &table,
        &DEVICE_TIMESTEPS,
        net.input_max,
    )?;
    let n = layers(net).len();
    let init: Vec<Tensor> = (0..n).map(|_| Tensor::from(q.initial_levels)).collect();
    let e = cost.interpolated(&init).double_value(&[]);
    // penalty * E(levels) / unit equals penalty * initial_levels at the start.
    Ok(Some((cost, e / q.initial_levels.max(1e-9))))
}

/// QAC's part of the loop.
struct PenaltyHook {
    /// The weight of the level penalty.
    penalty: f64,
    /// The board's cost and its unit, for `cost = "device"`.
    device: Option<(SnnCost, f64)>,
}

impl Hook for PenaltyHook {
    /// QAC's optional pressure towards fewer timesteps: the mean learned level count, or the
    /// board's measured cost of every layer's level count.
    fn loss(&mut self, net: &QNet) -> Option<Tensor> {
        let penalty = self.penalty;
        if penalty <= 0.0 {
            return None;
        }
        if let Some((cost, unit)) = &self.device {
            let levels: Vec<Tensor> = layers(net)
                .into_iter()
                .map(|(_, q)| q.levels_tensor())
                .collect();
            return Some(cost.interpolated(&levels) * (penalty / unit));
        }
        let learned: Vec<Tensor> = layers(net)
            .into_iter()
            .filter(|(_, q)| q.learns_levels())
            .map(|(_, q)| q.levels_tensor())
            .collect();
        if learned.is_empty() {
            return None;
        }
        let n = learned.len() as f64;
        Some(Tensor::stack(&learned, 0).sum(Kind::Float) * (penalty / n))
    }

    fn end_epoch(&mut self, net: &QNet) -> Result<EpochNotes> {
        let mut notes = EpochNotes::default();
        let levels: Vec<f64> = layers(net).iter().map(|(_, q)| q.levels()).collect();
        if !levels.is_empty() {
            let text: Vec<String> = levels.iter().map(|l| format!("{l:.2}")).collect();
            notes
                .lines
                .push(format!("QAC level counts (timesteps): {}", text.join(" ")));
        }
        notes.fields.insert("qac_levels".into(), levels.into());
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TrainArch;

    /// `act_quantizer = "qcfs"` is QAC's case 4 frozen at `2^b - 1` levels: the same
    /// quantizers, a spiking-ready network, nothing learned in the level counts.
    #[test]
    fn qcfs_trains_as_qac_frozen_at_its_levels() {
        let _one = crate::seeded();
        let mut cfg = TrainConfig::default();
        cfg.quant.act_quantizer = ActQuantizer::Qcfs;
        cfg.quant.act_bits = 2;
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 10);
        let net = crate::methods::build_net(&vs, spec.clone(), &cfg, 16).unwrap();
        assert!(net.spiking);
        let l = layers(&net);
        // Every activation quantizer (the three convolutions') is QAC's.
        assert_eq!((l.len(), net.act_quantizers().count()), (3, 3));
        for (_, q) in &l {
            assert_eq!(
                (q.case, q.timesteps(), q.learns_levels()),
                (QacCase::TAlpha, 3, false)
            );
        }
        cfg.quant.act_bits = 7;
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let e = crate::methods::build_net(&vs, spec, &cfg, 16)
            .unwrap_err()
            .to_string();
        assert!(e.contains("up to 6 activation bits"), "{e}");
    }
}

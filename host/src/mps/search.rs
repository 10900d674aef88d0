//! The search as a training method: the supernet's network (placeholder quantizers, the
//! candidates in an overlay) and its part of the training loop.

use anyhow::{bail, Context, Result};
use tch::nn;
use tch::Tensor;

use super::Supernet;
use crate::config::TrainConfig;
use crate::net::{QNet, Spec};
use crate::quant::{ActQuant, ActQuantize, ActQuantizer, Quantizers, WeightQuant, WeightQuantize};
use crate::slots::Slots;
use crate::train::{EpochNotes, Hook, Method};

/// A One-Shot MPS, EdMIPS or DNAS search run (`[mps]`): the network's own quantizers are
/// placeholders without variables, the supernet's candidates run in their place.
pub struct Search;

/// The supernet of `net`, if it is a search's.
pub fn supernet(net: &QNet) -> Option<&Supernet> {
    net.overlay.as_ref()?.as_any().downcast_ref::<Supernet>()
}

/// Quantizers that learn nothing, at the largest candidate bit widths.
struct Placeholders {
    weight_bits: u8,
    act_bits: u8,
}

impl Quantizers for Placeholders {
    fn weight(
        &self,
        path: &nn::Path,
        _node: usize,
        _edge: bool,
        out: i64,
        per_channel: bool,
    ) -> Result<Box<dyn WeightQuantize>> {
        let kind = crate::quant::WeightQuantizer::Lloyd;
        let q = WeightQuant::new(path, kind, self.weight_bits, out, per_channel);
        Ok(Box::new(q))
    }

    fn act(&self, path: &nn::Path, _node: usize, _edge: bool) -> Result<Box<dyn ActQuantize>> {
        let q = ActQuant::new(path, ActQuantizer::Hwgq, self.act_bits);
        Ok(Box::new(q))
    }
}

impl Method for Search {
    fn build(
        &self,
        vs: &nn::VarStore,
        spec: Spec,
        cfg: &TrainConfig,
        input_max: u8,
    ) -> Result<QNet> {
        let m = cfg
            .mps
            .as_ref()
            .context("a search run needs an [mps] table")?;
        cfg.quant.check()?;
        if !cfg.mixed.is_empty() {
            bail!("a search run ([mps]) takes no [mixed] bit plan");
        }
        let slots = Slots::of(&spec, input_max)?;
        let top = |c: &[u8]| c.iter().copied().max().unwrap_or(8);
        let q = Placeholders {
            weight_bits: top(&m.weight_bits),
            act_bits: top(&m.act_bits),
        };
        let mut net = QNet::with(vs, spec, input_max, &q, None, false)?;
        let s = Supernet::new(
            &vs.root(),
            &net.spec,
            slots,
            m,
            cfg.quant.weight_quantizer,
            cfg.quant.act_quantizer,
        )?;
        net.overlay = Some(Box::new(s));
        Ok(net)
    }

    fn holdout(&self, cfg: &TrainConfig) -> i64 {
        cfg.mps.as_ref().map_or(0, |m| m.validation)
    }

    fn hook(&self, _cfg: &TrainConfig, _net: &QNet) -> Result<Box<dyn Hook>> {
        Ok(Box::new(SearchHook))
    }
}

/// The search's part of the loop.
struct SearchHook;

impl Hook for SearchHook {
    /// The bit-width model learns at its own constant rate; draw this step's penalty and
    /// relaxed child before the forward pass, and add the expected cost.
    fn before_step(
        &mut self,
        net: &QNet,
        opt: &mut nn::Optimizer,
        progress: f64,
    ) -> Option<Tensor> {
        let s = supernet(net)?;
        opt.set_lr_group(2, s.cfg.lr_theta);
        let eta = s.sample_eta();
        Some(s.begin_step(eta, progress))
    }

    /// A supernet is evaluated as its most probable child at the middle penalty.
    fn end_epoch(&mut self, net: &QNet) -> Result<EpochNotes> {
        let mut notes = EpochNotes::default();
        if let Some(s) = supernet(net) {
            let eta = (s.cfg.eta[0] * s.cfg.eta[1]).sqrt();
            let plan = s.plan_at(eta);
            s.select(&plan)?;
            notes.fields.insert("mps_mid_eta".into(), eta.into());
            notes
                .fields
                .insert("mps_mid_plan".into(), plan.label().into());
            notes.lines.push(format!(
                "most probable child at eta {eta:.3}: {}",
                plan.label()
            ));
        }
        Ok(notes)
    }
}

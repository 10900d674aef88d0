//! Integer evaluation: the exported model file run by the firmware runtime compiled for the host
//! (the host integer executor, the golden rule of docs/design.md) over a whole split.

use anyhow::{Context, Result};
use bitspike_rt::{argmax, Model};

use crate::data::Split;

/// What the integer model did on a split.
#[derive(Clone, Debug)]
pub struct IntegerRun {
    /// The inputs, HWC codes (kept for golden vectors).
    pub inputs: Vec<Vec<u8>>,
    /// The outputs (raw logits).
    pub outputs: Vec<Vec<i32>>,
    /// The labels.
    pub labels: Vec<u8>,
    /// Multiply-accumulates over all samples (the runtime's counters).
    pub macs: u64,
    /// Accumulates (synaptic operations of spiking layers) over all samples.
    pub accumulates: u64,
}

impl IntegerRun {
    /// Predicted class of every sample.
    pub fn predictions(&self) -> Vec<usize> {
        self.outputs.iter().map(|o| argmax(o)).collect()
    }

    /// Mean multiply-accumulates and accumulates per inference.
    pub fn ops_per_inference(&self) -> (f64, f64) {
        let n = self.labels.len().max(1) as f64;
        (self.macs as f64 / n, self.accumulates as f64 / n)
    }

    /// Accuracy (0..1).
    pub fn accuracy(&self) -> f64 {
        let correct = self
            .predictions()
            .iter()
            .zip(&self.labels)
            .filter(|(p, l)| **p == **l as usize)
            .count();
        correct as f64 / self.labels.len().max(1) as f64
    }
}

/// Run `model` (a model file) on every sample of `split`.
pub fn integer(model: &[u8], split: &Split) -> Result<IntegerRun> {
    let m =
        Model::load(model).map_err(|e| anyhow::anyhow!("the exported model does not load: {e}"))?;
    // A model of another network or dataset: its input shape differs from the samples'.
    let s = split.images.size();
    let input = m.file().input().shape;
    if s.len() == 4 && [s[2], s[3], s[1]] != [input.h as i64, input.w as i64, input.c as i64] {
        anyhow::bail!(
            "the model takes {}x{}x{} inputs (HxWxC), the samples are {}x{}x{}: a model of another network or dataset",
            input.h,
            input.w,
            input.c,
            s[2],
            s[3],
            s[1]
        );
    }
    let mut arena = vec![0u8; m.arena_bytes()];
    let mut interp = m
        .bind(&mut arena)
        .map_err(|e| anyhow::anyhow!("binding the arena: {e}"))?;
    let n = split.len();
    let mut run = IntegerRun {
        inputs: Vec::with_capacity(n as usize),
        outputs: Vec::with_capacity(n as usize),
        labels: Vec::with_capacity(n as usize),
        macs: 0,
        accumulates: 0,
    };
    for i in 0..n {
        let input = split.hwc(i);
        let mut out = vec![0i32; m.output_len()];
        interp
            .run(&input, &mut out)
            .map_err(|e| anyhow::anyhow!("sample {i}: {e}"))?;
        let ops = interp.total_ops();
        run.macs += ops.macs;
        run.accumulates += ops.accumulates;
        run.inputs.push(input);
        run.outputs.push(out);
        run.labels
            .push(u8::try_from(split.label(i)).context("a label above 255")?);
    }
    Ok(run)
}

//! Which method trains a configuration, and the entry points that pick it: a command or a
//! script trains, builds and loads through these; a method's own code names its method.
//!
//! | configuration                        | method                 |
//! |--------------------------------------|------------------------|
//! | `act_quantizer = "qac"` or `"qcfs"`  | [`crate::qac::Qac`]    |
//! | an `[mps]` table                     | [`crate::mps::Search`] |
//! | otherwise (uniform bits or `[mixed]`)| [`crate::train::Qat`]  |

use std::path::Path;

use anyhow::Result;
use tch::{nn, Device};

use crate::config::TrainConfig;
use crate::data::Dataset;
use crate::net::{QNet, Spec};
use crate::quant::ActQuantizer;
use crate::train::{self, Method, RunDir, State, TrainOptions, Trained};

/// The method that trains `cfg`.
pub fn of(cfg: &TrainConfig) -> &'static dyn Method {
    if matches!(
        cfg.quant.act_quantizer,
        ActQuantizer::Qac | ActQuantizer::Qcfs
    ) {
        &crate::qac::Qac
    } else if cfg.mps.is_some() {
        &crate::mps::Search
    } else {
        &train::Qat
    }
}

/// Train `cfg` on `data` into the run folder `o.out` ([`train::train`]).
pub fn train(cfg: &TrainConfig, data: &Dataset, o: &TrainOptions<'_>) -> Result<State> {
    train::train(of(cfg), cfg, data, o)
}

/// Build the network `cfg` describes, for `data`'s input shape.
pub fn build(cfg: &TrainConfig, data: &Dataset, device: Device) -> Result<Trained> {
    train::build(of(cfg), cfg, data, device)
}

/// Build the network `cfg` describes for `spec` with its parameters in `vs`.
pub fn build_net(vs: &nn::VarStore, spec: Spec, cfg: &TrainConfig, input_max: u8) -> Result<QNet> {
    of(cfg).build(vs, spec, cfg, input_max)
}

/// Load the run in `dir`: its network, by the method of its configuration, and weights.
pub fn load(dir: &Path, data: &Dataset, device: Device) -> Result<Trained> {
    let run = RunDir(dir.to_path_buf());
    let cfg = run.read_config()?;
    train::load(of(&cfg), &run, data, device)
}

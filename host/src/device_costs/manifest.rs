//! The probe networks of one architecture, written to a folder with `probes.json` naming each
//! network's plan (or timesteps) and every layer's key, bytes, scratch and kernel: what `cargo
//! xtask costs` runs under QEMU to measure a cost table (`bitspike costs probe`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use bitspike_core::def::random::Rng;
use bitspike_core::format::writer::write;
use bitspike_core::format::ModelFile;
use serde::Serialize;

use super::{
    check_candidates, keys_of_file, layer_flash, layer_kernel, probe_model, probe_plans,
    search_keys, snn, tail_key,
};
use crate::boards;
use crate::data::DatasetName;
use crate::qac::config::MAX_TIMESTEPS;
use crate::slots::{BitPlan, Slots};
use crate::spec::{Spec, TrainArch};
use crate::train::write_atomic;

/// One probe network in `probes.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// The model file, in the same folder.
    pub model: String,
    /// Its bit plan (empty for a spiking network).
    pub plan: BitPlan,
    /// Its spiking layers' timesteps (empty for a QAT network).
    pub timesteps: Vec<u16>,
    /// The key of the instructions after its last layer.
    pub tail: String,
    /// Per layer: key, bytes in the file, scratch bytes and kernel.
    pub layers: Vec<ProbeLayer>,
}

/// One layer of a probe network.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeLayer {
    /// The layer's key (`LayerKey::text`).
    pub key: String,
    /// Bytes of the layer in the file (record and arrays).
    pub flash: u64,
    /// Scratch bytes it needs.
    pub scratch: u64,
    /// The kernel that runs it.
    pub kernel: &'static str,
}

/// `probes.json`: what the probes of one architecture are and what they cover.
#[derive(Clone, Debug, Serialize)]
pub struct Probes {
    /// Spiking networks over timesteps (`--snn`).
    pub snn: bool,
    /// Architecture.
    pub arch: String,
    /// Dataset whose images the probes read.
    pub dataset: String,
    /// The board the table is for.
    pub board: String,
    /// Candidate weight bits (spiking: hidden, then first and last layers).
    pub weight_bits: Vec<u8>,
    /// Candidate activation bits (none for spiking networks).
    pub act_bits: Vec<u8>,
    /// Every key a search over the candidates meets (all covered by the probes).
    pub keys: usize,
    /// The probe networks.
    pub probes: Vec<Probe>,
    /// The random mixed network of `--check`, if written.
    pub check: Option<Probe>,
}

/// Write `def` as `dir/name` and describe it: its layer keys, bytes, scratch and kernels.
fn probe(
    dir: &Path,
    name: String,
    def: bitspike_core::def::ModelDef,
    isa: bitspike_core::kernel::Isa,
) -> Result<Probe> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bytes = write(&def).with_context(|| format!("writing {name}"))?;
    write_atomic(&dir.join(&name), &bytes)?;
    let file = ModelFile::parse(&bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let layers = keys_of_file(&file, isa)
        .iter()
        .enumerate()
        .map(|(i, k)| ProbeLayer {
            key: k.text(),
            flash: layer_flash(&file, i),
            scratch: file.layer(i).scratch_bytes as u64,
            kernel: layer_kernel(&file, i, isa),
        })
        .collect();
    Ok(Probe {
        model: name,
        plan: BitPlan::default(),
        timesteps: Vec::new(),
        tail: tail_key(&file),
        layers,
    })
}

/// Write `probes.json` into `out`; the manifest back.
fn write_manifest(out: &Path, manifest: Probes) -> Result<Probes> {
    let text = serde_json::to_string_pretty(&manifest)?;
    write_atomic(&out.join("probes.json"), text.as_bytes())?;
    Ok(manifest)
}

/// What `write_snn_probes` covers: the spiking network QAC exports (`bitspike snn`) over
/// candidate timesteps of every spiking layer.
#[derive(Clone, Copy, Debug)]
pub struct SnnProbes<'a> {
    /// Architecture, as `train --arch` builds it (made spiking-ready).
    pub arch: TrainArch,
    /// The dataset whose images it reads.
    pub dataset: DatasetName,
    /// The board the table is for.
    pub board: &'a str,
    /// Candidate timesteps of every spiking layer.
    pub timesteps: &'a [u16],
    /// Weight bits of the hidden layers.
    pub hidden_bits: u8,
    /// Weight bits of the first and last layers.
    pub first_last_bits: u8,
    /// Seed of the covering and of the weights.
    pub seed: u64,
    /// Also write `check.bsm`, a network of random candidate timesteps (not a probe).
    pub check: bool,
}

/// Write the spiking probe networks of `r` into `out` with their `probes.json`.
pub fn write_snn_probes(r: &SnnProbes<'_>, out: &Path) -> Result<Probes> {
    let (hidden, first_last, candidates, seed) =
        (r.hidden_bits, r.first_last_bits, r.timesteps, r.seed);
    check_candidates(&[hidden, first_last], &[])?;
    if let Some(&t) = candidates.iter().find(|&&t| t == 0 || t > MAX_TIMESTEPS) {
        bail!("--timesteps {t}: use 1..={MAX_TIMESTEPS}");
    }
    let (input, classes, input_max) = r.dataset.dims();
    let spec = Spec::of(r.arch, input, classes).spiking()?;
    let isa = boards::isa(r.board)?;
    let weights = snn::weight_plan(&spec, hidden, first_last);
    let (keys, plans) = snn::snn_probe_plans(&spec, &weights, candidates, input_max, seed)?;
    let write_probe = |name: String, t: &[u16]| -> Result<Probe> {
        let def = snn::snn_probe_model(&spec, &weights, t, input_max, seed)?;
        let mut p = probe(out, name, def, isa)?;
        p.timesteps = t.to_vec();
        Ok(p)
    };
    let probes = plans
        .iter()
        .enumerate()
        .map(|(i, t)| write_probe(format!("probe-{i:02}.bsm"), t))
        .collect::<Result<Vec<_>>>()?;
    let check = if r.check {
        let mut rng = Rng::new(seed ^ 0x5eed);
        let t: Vec<u16> = (0..snn::spiking_nodes(&spec).len())
            .map(|_| candidates[rng.range(0, candidates.len() as i64 - 1) as usize])
            .collect();
        Some(write_probe("check.bsm".into(), &t)?)
    } else {
        None
    };
    write_manifest(
        out,
        Probes {
            snn: true,
            arch: format!("{:?}", r.arch).to_lowercase(),
            dataset: r.dataset.as_str().into(),
            board: r.board.into(),
            weight_bits: vec![hidden, first_last],
            act_bits: Vec::new(),
            keys,
            probes,
            check,
        },
    )
}

/// What `write_probes` covers: a QAT network over candidate bit widths of every slot.
#[derive(Clone, Copy, Debug)]
pub struct QatProbes<'a> {
    /// Architecture, as `train --arch` builds it.
    pub arch: TrainArch,
    /// The dataset whose images it reads.
    pub dataset: DatasetName,
    /// The board the table is for (its core decides the kernels; Armv6-M gets threshold
    /// tables, as `export --board` writes them).
    pub board: &'a str,
    /// Candidate weight bit widths.
    pub weight_bits: &'a [u8],
    /// Candidate activation bit widths.
    pub act_bits: &'a [u8],
    /// Seed of the covering and of the weights.
    pub seed: u64,
    /// Also write `check.bsm`, a network of a random mixed plan (not a probe).
    pub check: bool,
}

/// Write the probe networks of `r`, whose per-layer counts cover every layer key a search over
/// its candidates meets, into `out` with their `probes.json`.
pub fn write_probes(r: &QatProbes<'_>, out: &Path) -> Result<Probes> {
    let (weight_bits, act_bits, seed) = (r.weight_bits, r.act_bits, r.seed);
    check_candidates(weight_bits, act_bits)?;
    let (input, classes, input_max) = r.dataset.dims();
    let spec = Spec::of(r.arch, input, classes);
    let slots = Slots::of(&spec, input_max)?;
    let isa = boards::isa(r.board)?;
    let armv6m = boards::armv6m(r.board)?;
    let plans = probe_plans(&spec, &slots, weight_bits, act_bits, input_max, seed)?;
    let keys = search_keys(&spec, &slots, weight_bits, act_bits, input_max)?;
    let write_probe = |name: String, plan: &BitPlan| -> Result<Probe> {
        let mut def = probe_model(&spec, &slots, plan, input_max, seed)?;
        if armv6m {
            def.reserve_armv6m_tables();
        }
        let mut p = probe(out, name, def, isa)?;
        p.plan = plan.clone();
        Ok(p)
    };
    let probes = plans
        .iter()
        .enumerate()
        .map(|(i, p)| write_probe(format!("probe-{i:02}.bsm"), p))
        .collect::<Result<Vec<_>>>()?;
    let check = if r.check {
        // A mixed plan drawn from the seed, every slot from its candidates.
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut pick = |c: &[u8]| c[rng.range(0, c.len() as i64 - 1) as usize];
        let plan = BitPlan {
            weight_bits: (0..slots.weight_nodes.len())
                .map(|_| pick(weight_bits))
                .collect(),
            act_bits: (0..slots.act_nodes.len()).map(|_| pick(act_bits)).collect(),
        };
        Some(write_probe("check.bsm".into(), &plan)?)
    } else {
        None
    };
    write_manifest(
        out,
        Probes {
            snn: false,
            arch: format!("{:?}", r.arch).to_lowercase(),
            dataset: r.dataset.as_str().into(),
            board: r.board.into(),
            weight_bits: weight_bits.to_vec(),
            act_bits: act_bits.to_vec(),
            keys: keys.len(),
            probes,
            check,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probes land in a folder that does not exist yet, with a manifest naming every
    /// file written, and cover every key a search meets.
    #[test]
    fn probes_and_their_manifest_are_written_into_a_new_folder() {
        let out = std::env::temp_dir().join(format!("bitspike-probes-{}/a/b", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let r = QatProbes {
            arch: TrainArch::Cnn,
            dataset: DatasetName::Digits,
            board: "qemu-mps2-an386",
            weight_bits: &[2, 8],
            act_bits: &[4],
            seed: 1,
            check: true,
        };
        let p = write_probes(&r, &out).unwrap();
        let (input, classes, input_max) = DatasetName::Digits.dims();
        let spec = Spec::of(TrainArch::Cnn, input, classes);
        let slots = Slots::of(&spec, input_max).unwrap();
        let keys = search_keys(&spec, &slots, &[2, 8], &[4], input_max).unwrap();
        assert_eq!(p.keys, keys.len());
        let covered: std::collections::BTreeSet<&str> = p
            .probes
            .iter()
            .flat_map(|q| q.layers.iter().map(|l| l.key.as_str()))
            .collect();
        assert!(keys.iter().all(|k| covered.contains(k.as_str())));
        for q in p.probes.iter().chain(&p.check) {
            assert!(out.join(&q.model).is_file(), "{}", q.model);
        }
        let manifest = std::fs::read_to_string(out.join("probes.json")).unwrap();
        assert!(manifest.contains("\"check.bsm\""), "{manifest}");
        let _ = std::fs::remove_dir_all(out.parent().unwrap().parent().unwrap());
    }
}

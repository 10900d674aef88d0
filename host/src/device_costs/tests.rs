//! Tests of the keys, probes, tables and the search's device cost.

use super::*;
use crate::spec::TrainArch;
use bitspike_core::def::random::Rng;
use bitspike_core::format::writer::write;
use std::collections::BTreeSet;

fn specs() -> Vec<Spec> {
    [
        TrainArch::Cnn,
        TrainArch::Lenet,
        TrainArch::Vgg,
        TrainArch::Resnet8,
    ]
    .into_iter()
    .flat_map(|a| [Spec::of(a, [1, 28, 28], 10), Spec::of(a, [3, 32, 32], 10)])
    .collect()
}

#[test]
fn a_probe_model_file_has_the_keys_the_search_computes() {
    let _one = crate::seeded();
    for spec in specs() {
        let slots = Slots::of(&spec, 255).unwrap();
        let mut rng = Rng::new(3);
        for _ in 0..3 {
            let plan = BitPlan {
                weight_bits: (0..slots.weight_nodes.len())
                    .map(|_| [2, 3, 4, 8][rng.range(0, 3) as usize])
                    .collect(),
                act_bits: (0..slots.act_nodes.len())
                    .map(|_| [2, 4, 5, 8][rng.range(0, 3) as usize])
                    .collect(),
            };
            let def = probe_model(&spec, &slots, &plan, 255, 1).unwrap();
            let bytes = write(&def).unwrap();
            let file = ModelFile::parse(&bytes).unwrap();
            let from_file: Vec<String> = keys_of_file(&file, Isa::Dsp)
                .iter()
                .map(LayerKey::text)
                .collect();
            let from_spec: Vec<String> = spec_keys(&spec, &slots, &plan, 255)
                .unwrap()
                .iter()
                .map(LayerKey::text)
                .collect();
            assert_eq!(from_file, from_spec, "{}", plan.label());
        }
    }
}

#[test]
fn probe_plans_cover_every_key_of_the_search() {
    let _one = crate::seeded();
    let spec = Spec::of(TrainArch::Resnet8, [1, 28, 28], 10);
    let slots = Slots::of(&spec, 255).unwrap();
    let (w, a) = ([2, 4, 8], [2, 4, 8]);
    let need = search_keys(&spec, &slots, &w, &a, 255).unwrap();
    let plans = probe_plans(&spec, &slots, &w, &a, 255, 7).unwrap();
    let mut got = BTreeSet::new();
    for p in &plans {
        for k in spec_keys(&spec, &slots, p, 255).unwrap() {
            got.insert(k.text());
        }
    }
    assert_eq!(got, need);
    // An add depends on three activation slots: at least 27 networks, and not many more.
    assert!(
        plans.len() >= 27 && plans.len() <= 45,
        "{} plans",
        plans.len()
    );
    // Deterministic.
    assert_eq!(plans, probe_plans(&spec, &slots, &w, &a, 255, 7).unwrap());
}

#[test]
fn prediction_sums_the_entries_and_names_what_is_missing() {
    let _one = crate::seeded();
    let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
    let slots = Slots::of(&spec, 255).unwrap();
    let plan = slots.uniform(4, 2);
    let bytes = write(&probe_model(&spec, &slots, &plan, 255, 1).unwrap()).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let keys = keys_of_file(&file, Isa::Dsp);
    let mut t = CostTable {
        app_flash: 1000,
        app_ram: 100,
        ..empty_table()
    };
    for (i, k) in keys.iter().enumerate() {
        t.entries.insert(
            k.text(),
            Entry {
                insns: 10 * (i as u64 + 1),
                flash: 0,
                scratch: 0,
                kernel: String::new(),
            },
        );
    }
    let p = t.predict(&bytes, Isa::Dsp).unwrap();
    assert_eq!(p.insns, None, "the tail is missing");
    t.tails.insert(tail_key(&file), 7);
    let p = t.predict(&bytes, Isa::Dsp).unwrap();
    let n = keys.len() as u64;
    assert_eq!(p.insns, Some(10 * n * (n + 1) / 2 + 7));
    assert_eq!(p.flash, 1000 + bytes.len() as u64);
    assert_eq!(tail_key(&file), "out 10 i32");
    // Another plan's first layer is not in the table.
    let other = write(&probe_model(&spec, &slots, &slots.uniform(8, 2), 255, 1).unwrap()).unwrap();
    let p = t.predict(&other, Isa::Dsp).unwrap();
    assert_eq!(p.insns, None);
    assert!(p.layers[0].1.is_none());
}

/// A table of board `b` with no entries.
fn empty_table() -> CostTable {
    CostTable {
        version: TABLE_VERSION,
        board: "b".into(),
        kernels: "k".into(),
        entries: BTreeMap::new(),
        tails: BTreeMap::new(),
        app_flash: 0,
        app_ram: 0,
    }
}

/// A table with an entry for every key a search over `w` x `a` meets in `spec`, each a
/// value drawn from the key's text, and a tail.
fn synthetic(spec: &Spec, slots: &Slots, w: &[u8], a: &[u8]) -> CostTable {
    let mut t = empty_table();
    for k in search_keys(spec, slots, w, a, 255).unwrap() {
        let h = k
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        t.entries.insert(
            k,
            Entry {
                insns: 1000 + h % 100_000,
                flash: 0,
                scratch: 0,
                kernel: String::new(),
            },
        );
    }
    t.tails.insert("out 10 i32".into(), 77);
    t
}

#[test]
fn the_device_cost_of_a_child_is_the_prediction_of_its_model() {
    let _one = crate::seeded();
    let (w, a) = ([2, 4, 8], [2, 4, 8]);
    for arch in [TrainArch::Lenet, TrainArch::Resnet8] {
        let spec = Spec::of(arch, [1, 28, 28], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let table = synthetic(&spec, &slots, &w, &a);
        let dc = DeviceCost::new(&spec, &slots, &table, &w, &a, 255).unwrap();
        for seed in 0..4 {
            let mut rng = Rng::new(seed);
            let plan = BitPlan {
                weight_bits: (0..slots.weight_nodes.len())
                    .map(|_| w[rng.range(0, 2) as usize])
                    .collect(),
                act_bits: (0..slots.act_nodes.len())
                    .map(|_| a[rng.range(0, 2) as usize])
                    .collect(),
            };
            let bytes = write(&probe_model(&spec, &slots, &plan, 255, 1).unwrap()).unwrap();
            let p = table.predict(&bytes, Isa::Dsp).unwrap();
            assert_eq!(
                dc.exact(&plan).unwrap(),
                p.insns.unwrap() as f64,
                "{arch:?}"
            );
        }
    }
    // A table without the keys names the first one missing and the command.
    let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
    let slots = Slots::of(&spec, 255).unwrap();
    let table = synthetic(&spec, &slots, &[4, 8], &a);
    let e = DeviceCost::new(&spec, &slots, &table, &w, &a, 255)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("w2") && e.contains("cargo xtask costs --board b"),
        "{e}"
    );
}

#[test]
fn the_expected_device_cost_is_the_mean_over_every_child() {
    let _one = crate::seeded();
    let (w, a) = ([2, 8], [2, 4, 8]);
    let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 10);
    let slots = Slots::of(&spec, 255).unwrap();
    let table = synthetic(&spec, &slots, &w, &a);
    let dc = DeviceCost::new(&spec, &slots, &table, &w, &a, 255).unwrap();
    let (nw, na) = (slots.weight_nodes.len(), slots.act_nodes.len());
    let mut rng = Rng::new(5);
    let probs: Vec<Vec<f64>> = (0..nw + na)
        .map(|s| {
            let n = if s < nw { w.len() } else { a.len() };
            let v: Vec<f64> = (0..n).map(|_| 1.0 + rng.range(0, 100) as f64).collect();
            let sum: f64 = v.iter().sum();
            v.iter().map(|x| x / sum).collect()
        })
        .collect();
    // Every child, weighted by its probability.
    let mut want = 0.0;
    let total = w.len().pow(nw as u32) * a.len().pow(na as u32);
    for mut i in 0..total {
        let mut plan = BitPlan::default();
        let mut p = 1.0;
        for (s, ps) in probs.iter().enumerate() {
            let n = ps.len();
            let j = i % n;
            i /= n;
            p *= ps[j];
            if s < nw {
                plan.weight_bits.push(w[j]);
            } else {
                plan.act_bits.push(a[j]);
            }
        }
        want += p * dc.exact(&plan).unwrap();
    }
    let t: Vec<tch::Tensor> = probs
        .iter()
        .map(|v| tch::Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()))
        .collect();
    let got = dc.expected(&t, nw).double_value(&[]);
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
}

#[test]
fn layer_flash_adds_up_to_the_layers_part_of_the_file() {
    let _one = crate::seeded();
    let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
    let slots = Slots::of(&spec, 255).unwrap();
    let bytes = write(&probe_model(&spec, &slots, &slots.uniform(4, 4), 255, 1).unwrap()).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let sum: u64 = (0..file.layer_count()).map(|i| layer_flash(&file, i)).sum();
    // The rest is the header, the tensor table and alignment padding.
    assert!(
        sum < bytes.len() as u64 && sum + 1024 > bytes.len() as u64,
        "{sum} of {}",
        bytes.len()
    );
    let w: u64 = (0..file.layer_count())
        .map(|i| file.layer(i).weights.len() as u64)
        .sum();
    // LeNet's weights at 4 bits: (150 + 2400 + 48000 + 10080 + 840) / 2 bytes.
    assert_eq!(w, (150 + 2400 + 48000 + 10080 + 840) / 2);
}

#[test]
fn a_spiking_probe_and_a_qac_export_have_the_keys_the_penalty_computes() {
    use super::snn::*;
    use crate::config::TrainConfig;
    use crate::quant::ActQuantizer;
    let _one = crate::seeded();
    for arch in [TrainArch::Cnn, TrainArch::Lenet, TrainArch::Vgg] {
        for input in [[1, 28, 28], [1, 8, 8]] {
            if arch == TrainArch::Lenet && input[1] == 8 {
                continue;
            }
            // A QAC network as `bitspike snn` exports it (untrained: every layer at the
            // initial level count).
            let mut cfg = TrainConfig {
                arch,
                ..Default::default()
            };
            cfg.quant.act_quantizer = ActQuantizer::Qac;
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let net = crate::methods::build_net(&vs, Spec::of(arch, input, 10), &cfg, 255).unwrap();
            let snn =
                crate::qac::snn::Snn::convert(&net, crate::qac::snn::AlignMode::Average).unwrap();
            let def = crate::qac::export::model_def_snn(&net, &snn).unwrap();
            let bytes = write(&def).unwrap();
            let file = ModelFile::parse(&bytes).unwrap();
            let spec = net.spec.clone();
            let weights = weight_plan(&spec, cfg.quant.weight_bits, cfg.quant.first_last_bits);
            let t: Vec<u16> = snn.layers.iter().map(|l| l.timesteps).collect();
            let want: Vec<String> = snn_keys(&spec, &weights, &t, 255)
                .unwrap()
                .iter()
                .map(LayerKey::text)
                .collect();
            let got: Vec<String> = keys_of_file(&file, Isa::Dsp)
                .iter()
                .map(LayerKey::text)
                .collect();
            assert_eq!(got, want, "{arch:?} {input:?}");
            // The probe network of other timesteps has its own keys.
            let mut rng = Rng::new(9);
            let t: Vec<u16> = t
                .iter()
                .map(|_| [1, 2, 3, 5][rng.range(0, 3) as usize])
                .collect();
            let bytes = write(&snn_probe_model(&spec, &weights, &t, 255, 1).unwrap()).unwrap();
            let file = ModelFile::parse(&bytes).unwrap();
            let got: Vec<String> = keys_of_file(&file, Isa::Dsp)
                .iter()
                .map(LayerKey::text)
                .collect();
            let want: Vec<String> = snn_keys(&spec, &weights, &t, 255)
                .unwrap()
                .iter()
                .map(LayerKey::text)
                .collect();
            assert_eq!(got, want, "{arch:?} {input:?} {t:?}");
        }
    }
}

#[test]
fn the_spiking_cost_interpolates_the_table_between_candidate_timesteps() {
    use super::snn::*;
    let _one = crate::seeded();
    let spec = Spec::of(TrainArch::Cnn, [1, 28, 28], 10).spiking().unwrap();
    let weights = weight_plan(&spec, 4, 8);
    let cands = [1u16, 2, 4, 6];
    let (need, plans) = snn_probe_plans(&spec, &weights, &cands, 255, 3).unwrap();
    let mut t = empty_table();
    let mut covered = BTreeSet::new();
    for p in &plans {
        for k in snn_keys(&spec, &weights, p, 255).unwrap() {
            let h = k
                .text()
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
            covered.insert(k.text());
            t.entries.insert(
                k.text(),
                Entry {
                    insns: 1000 + h % 50_000,
                    flash: 0,
                    scratch: 0,
                    kernel: String::new(),
                },
            );
        }
    }
    assert_eq!(covered.len(), need, "the probes cover every key");
    // A node reads one spiking layer and writes another: every pair of timesteps.
    assert!(plans.len() >= cands.len() * cands.len());
    let cost = SnnCost::new(&spec, &weights, &t, &cands, 255).unwrap();
    let lv = |v: &[f64]| -> Vec<tch::Tensor> { v.iter().map(|&x| tch::Tensor::from(x)).collect() };
    // At the candidates, the interpolation is the table's sum.
    for p in &plans {
        let exact = cost.exact(p).unwrap();
        let levels: Vec<f64> = p.iter().map(|&x| x as f64).collect();
        let got = cost.interpolated(&lv(&levels)).double_value(&[]);
        assert!(
            (got - exact).abs() < 1e-3 * exact,
            "{p:?}: {got} vs {exact}"
        );
    }
    // Between two candidates of one layer, linear: halfway between 2 and 4 is the mean.
    let lo = cost.exact(&[2, 1, 1]).unwrap();
    let hi = cost.exact(&[4, 1, 1]).unwrap();
    let mid = cost.interpolated(&lv(&[3.0, 1.0, 1.0])).double_value(&[]);
    assert!(
        (mid - (lo + hi) / 2.0).abs() < 1e-3 * lo,
        "{mid} vs {lo}, {hi}"
    );
    // Differentiable in the level counts, with the slope of the bracketing cell.
    let x = tch::Tensor::from(3.0f64).set_requires_grad(true);
    let y = cost.interpolated(&[
        x.shallow_clone(),
        tch::Tensor::from(1.0),
        tch::Tensor::from(1.0),
    ]);
    y.backward();
    let g = x.grad().double_value(&[]);
    assert!(
        (g - (hi - lo) / 2.0).abs() < 1e-3 * (hi - lo).abs().max(1.0),
        "{g}"
    );
}

/// A signed output is priced as the 8-bit codes it always is, whatever the plan.
#[test]
fn signed_outputs_are_keyed_at_eight_bits() {
    let _one = crate::seeded();
    let spec = Spec::of(TrainArch::Resnet8, [1, 28, 28], 10);
    let slots = Slots::of(&spec, 255).unwrap();
    let keys = spec_keys(&spec, &slots, &slots.uniform(2, 2), 255).unwrap();
    let mut signed = 0;
    for (k, key) in keys.iter().enumerate() {
        if spec.signed(k) {
            assert_eq!(key.out_levels, Some(255), "node {k}");
            signed += 1;
        } else if key.out_levels.is_some() && k > 0 && key.weight_bits > 0 {
            assert_eq!(key.out_levels, Some(3), "node {k}");
        }
    }
    assert_eq!(signed, 5);
}

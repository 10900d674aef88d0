//! SSQL across the crate: BYOL's and MoCo's momentum and stop-gradient rules on a tiny model,
//! MoCo's queue, and a digits pretraining evaluated at two bit widths whose run folder exports
//! to a model file that the integer executor runs as the fake-quantized network predicts.

mod common;

use std::collections::HashMap;

use bitspike::config::QuantConfig;
use bitspike::config::TrainConfig;
use bitspike::data::{self, DatasetName};
use bitspike::net::TrainArch;
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use bitspike::report::Summary;
use bitspike::ssql::{self, Framework, Pretrainer, QuantizedBn, SsqlConfig};
use bitspike::ssql_eval::{self, Bits, EvalConfig};
use bitspike::train::{self, RunDir, TrainOptions};
use bitspike_core::format::ModelFile;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn config(framework: Framework) -> TrainConfig {
    TrainConfig {
        dataset: DatasetName::Digits,
        arch: TrainArch::Cnn,
        quant: QuantConfig {
            weight_quantizer: WeightQuantizer::MaxAbs,
            act_quantizer: ActQuantizer::MinMax,
            first_last_bits: 8,
            ..Default::default()
        },
        ssql: Some(SsqlConfig {
            framework,
            dim: 8,
            hidden: 16,
            predictor_hidden: 4,
            queue: 40,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn values(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// One step of `framework` on 16 digits: the momentum network gets no gradient and moves to
/// `m t + (1 - m) o` (its BatchNorm statistics copied); the online encoder learns.
fn one_step(framework: Framework) -> (Pretrainer, Option<Tensor>) {
    let _one = common::seeded();
    tch::manual_seed(4);
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let cfg = config(framework);
    let mut p = Pretrainer::new(&cfg, cfg.ssql.as_ref().unwrap(), &data, Device::Cpu).unwrap();
    let before_t = values(&p.momentum.as_ref().unwrap().0);
    let before_o = values(&p.vs);
    let queue0 = p.queue.as_ref().map(|(q, _)| q.copy());
    // The momentum network starts as a copy of the online one.
    for (k, v) in &before_t {
        assert_eq!(max_diff(v, &before_o[k]), 0.0, "{k}");
    }
    let mut opt = nn::Sgd::default().build(&p.vs, 0.1).unwrap();
    let x = data::to_input(
        &data.train.images.narrow(0, 0, 16),
        data.max_code,
        Device::Cpu,
    );
    let c = cfg.ssql.clone().unwrap();
    let (v1, v2) = (ssql::view(&x, &c, false), ssql::view(&x, &c, false));
    let (loss, bits) = p.loss(&v1, &v2).unwrap();
    let (wb, ab) = bits.expect("SSQL draws bit widths");
    assert!((2..=8).contains(&wb) && (4..=8).contains(&ab));
    opt.zero_grad();
    loss.backward();
    for (k, v) in p.momentum.as_ref().unwrap().0.variables() {
        assert!(!v.requires_grad(), "{k} of the momentum network learns");
        assert!(
            !v.grad().defined(),
            "{k} of the momentum network got a gradient"
        );
    }
    let w0 = p.vs.variables()["n0.weight"].grad();
    assert!(w0.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    opt.step();
    p.after_step().unwrap();
    let m = c.momentum();
    let after_o = values(&p.vs);
    let trainable: Vec<String> = {
        let v = p.vs.variables_.lock().unwrap();
        v.named_variables
            .iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| n.clone())
            .collect()
    };
    let mut moved = 0;
    for (k, t) in p.momentum.as_ref().unwrap().0.variables() {
        let want = if trainable.contains(&k) {
            &before_t[&k] * m + &after_o[&k] * (1.0 - m)
        } else {
            after_o[&k].shallow_clone()
        };
        assert!(max_diff(&t, &want) < 1e-6, "{k}");
        if max_diff(&t, &before_t[&k]) > 0.0 {
            moved += 1;
        }
    }
    assert!(moved > 0, "the momentum network moved");
    (p, queue0)
}

#[test]
fn byol_target_follows_by_momentum_without_gradient() {
    let (p, _) = one_step(Framework::Byol);
    assert!((p.cfg.momentum() - 0.99).abs() < 1e-12);
    assert!(p.pred.is_some() && p.queue.is_none());
}

#[test]
fn moco_key_encoder_follows_by_momentum_and_keys_enter_the_queue() {
    let (p, queue0) = one_step(Framework::Moco);
    assert!((p.cfg.momentum() - 0.999).abs() < 1e-12);
    let (queue, ptr) = p.queue.as_ref().unwrap();
    assert_eq!(*ptr, 16, "16 keys written");
    let queue0 = queue0.unwrap();
    // The 16 oldest columns were replaced (each differs), the other 24 kept.
    let changed = (queue - &queue0).abs().amax([0i64], false);
    let changed = Vec::<f32>::try_from(changed).unwrap();
    assert!(changed[..16].iter().all(|&d| d > 1e-3), "{changed:?}");
    assert!(changed[16..].iter().all(|&d| d == 0.0), "{changed:?}");
    // The written columns are unit vectors (normalised keys); the rest keep the random start.
    let norms = queue.norm_scalaropt_dim(2, [0i64], false);
    let n = Vec::<f32>::try_from(norms).unwrap();
    assert!(n.iter().all(|v| (v - 1.0).abs() < 1e-5));
    assert!(p.pred.is_none());
}

#[test]
fn simsiam_has_no_momentum_network() {
    let _one = common::seeded();
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let cfg = config(Framework::Simsiam);
    let p = Pretrainer::new(&cfg, cfg.ssql.as_ref().unwrap(), &data, Device::Cpu).unwrap();
    assert!(p.momentum.is_none() && p.queue.is_none() && p.pred.is_some());
}

/// The quantized branch's BatchNorm (encoder and projector): with `Batch` it normalizes each
/// batch by its own statistics (a sample's projection depends on the rest of its batch) and
/// updates the running statistics; with `Float` it uses the full-precision running statistics
/// and changes nothing.
#[test]
fn the_quantized_branch_normalizes_with_the_configured_statistics() {
    let _one = common::seeded();
    tch::manual_seed(6);
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let x = data::to_input(
        &data.train.images.narrow(0, 0, 16),
        data.max_code,
        Device::Cpu,
    );
    for bn in [QuantizedBn::Batch, QuantizedBn::Float] {
        let mut cfg = config(Framework::Simsiam);
        cfg.ssql.as_mut().unwrap().quantized_bn = bn;
        let mut p = Pretrainer::new(&cfg, cfg.ssql.as_ref().unwrap(), &data, Device::Cpu).unwrap();
        // A few full-precision training passes move the running statistics off their start.
        p.net.set_mode(bitspike::net::Mode::Calibrate);
        p.net.reset_ranges();
        for _ in 0..3 {
            let _ = p.net.features(&x, true);
        }
        p.net.set_bits(4, 4).unwrap();
        let before = values(&p.vs);
        let whole = p.quantized_projection(&x);
        let part = p.quantized_projection(&x.narrow(0, 0, 4));
        let moved: Vec<String> = values(&p.vs)
            .into_iter()
            .filter(|(k, v)| max_diff(v, &before[k]) > 0.0)
            .map(|(k, _)| k)
            .collect();
        let gap = max_diff(&whole.narrow(0, 0, 4), &part);
        match bn {
            QuantizedBn::Batch => {
                assert!(gap > 1e-3, "batch statistics depend on the batch: {gap}");
                assert!(
                    moved.iter().any(|k| k.ends_with("running_mean")),
                    "the running statistics follow the quantized batches: {moved:?}"
                );
            }
            QuantizedBn::Float => {
                assert!(
                    gap < 1e-5,
                    "running statistics do not depend on the batch: {gap}"
                );
                assert!(moved.is_empty(), "nothing changes: {moved:?}");
            }
        }
        assert!(whole.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}

/// The model file of `net` and the summary rows of its layers with weights.
fn export(net: &bitspike::net::QNet) -> (Vec<u8>, Vec<bitspike::report::LayerRow>) {
    let bytes =
        bitspike_core::format::writer::write(&bitspike::export::model_def(net).unwrap()).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let layers = Summary::of(&file)
        .layers
        .into_iter()
        .filter(|l| l.weight_bits > 0)
        .collect();
    (bytes, layers)
}

#[test]
fn a_digits_pretraining_evaluates_and_exports_at_its_bit_width() {
    let _one = common::seeded();
    tch::set_num_threads(1);
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("bitspike-ssql-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = config(Framework::Simsiam);
    cfg.epochs = 3;
    cfg.batch_size = 64;
    cfg.optimizer = bitspike::config::Optimizer::Sgd;
    cfg.lr = 0.05;
    let pre = dir.join("pre");
    let state = ssql::pretrain(&cfg, &data, &TrainOptions::cpu(&pre)).unwrap();
    assert_eq!(state.epochs_done, 3);
    // A second pretraining into the same folder is refused, and leaves it as it was.
    assert!(ssql::pretrain(&cfg, &data, &TrainOptions::cpu(&pre)).is_err());
    assert!(RunDir(pre.clone()).weights().unwrap().exists());
    let log = std::fs::read_to_string(pre.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    let e = EvalConfig {
        linear_epochs: 20,
        finetune_epochs: 2,
        calibration: 512,
        bits: vec![Bits::Float, "4w4a".parse().unwrap()],
        ..Default::default()
    };
    let out = dir.join("eval");
    let evaluate = |e: &EvalConfig, out: &std::path::Path| {
        ssql_eval::evaluate(
            &pre,
            DatasetName::Digits,
            &data::default_dir(),
            e,
            out,
            Device::Cpu,
            false,
        )
        .unwrap()
    };
    let r = evaluate(&e, &out);
    assert_eq!(r.method, "SimSiam+SSQL");
    assert_eq!(r.linear.len(), 2);
    assert_eq!(r.finetune.len(), 2);
    // A linear head on a self-supervised encoder is far above chance (10 classes).
    assert!(r.linear[0].accuracy > 40.0, "{:?}", r.linear);
    assert_eq!(r.pretrained_weights.last().unwrap().layer, "mean");
    // The 4w4a linear-evaluated network exports; the integer executor agrees with the
    // fake-quantized network on nearly every test image.
    let run = RunDir(r.linear[1].run.clone());
    let rcfg = run.read_config().unwrap();
    assert_eq!((rcfg.quant.weight_bits, rcfg.quant.act_bits), (4, 4));
    let rdata = rcfg.load_data(&data::default_dir()).unwrap();
    let t = bitspike::methods::load(&run.0, &rdata, Device::Cpu).unwrap();
    let fq = 100.0 * train::accuracy(&t.net, &rdata.test, rdata.max_code, Device::Cpu);
    assert!(
        (fq - r.linear[1].accuracy).abs() < 1e-9,
        "the saved run reproduces the evaluation: {fq} vs {}",
        r.linear[1].accuracy
    );
    let (bytes, layers) = export(&t.net);
    let bits: Vec<u8> = layers.iter().map(|l| l.weight_bits).collect();
    assert_eq!(bits.first(), Some(&8));
    assert_eq!(bits.last(), Some(&8));
    assert!(bits[1..bits.len() - 1].iter().all(|&b| b == 4), "{bits:?}");
    let int = bitspike::eval::integer(&bytes, &rdata.test).unwrap();
    let ia = 100.0 * int.accuracy();
    assert!((ia - fq).abs() < 3.0, "integer {ia} vs fake-quant {fq}");

    // With 8-bit edge activations the 3w3a run folder keeps them and exports them: the layer
    // after the first reads 8-bit codes, the next one 3-bit, the head 8-bit; the integer
    // executor agrees with the fake-quantized network.
    let e = EvalConfig {
        linear_epochs: 5,
        finetune_epochs: 0,
        calibration: 512,
        edge_act_bits: Some(8),
        bits: vec![Bits::Float, "3w3a".parse().unwrap()],
        ..Default::default()
    };
    let r = evaluate(&e, &dir.join("eval-edges"));
    let run = RunDir(r.linear[1].run.clone());
    let rcfg = run.read_config().unwrap();
    assert_eq!(rcfg.quant.edge_act_bits, Some(8));
    let t = bitspike::methods::load(&run.0, &rdata, Device::Cpu).unwrap();
    let fq = 100.0 * train::accuracy(&t.net, &rdata.test, rdata.max_code, Device::Cpu);
    assert!(
        (fq - r.linear[1].accuracy).abs() < 1e-9,
        "{fq} vs {:?}",
        r.linear
    );
    let (bytes, layers) = export(&t.net);
    let inputs: Vec<u32> = layers.iter().map(|l| l.input_bits).collect();
    // The digits' codes 0..=16 take 5 bits.
    assert_eq!(inputs, [5, 8, 3, 8], "input bits of the four layers");
    let ia = 100.0
        * bitspike::eval::integer(&bytes, &rdata.test)
            .unwrap()
            .accuracy();
    assert!((ia - fq).abs() < 3.0, "integer {ia} vs fake-quant {fq}");

    // A head per bit width: full precision is evaluated exactly as before; the 3w3a network
    // carries its own head, trained on the quantized encoder's features, and still exports.
    let eh = EvalConfig {
        head_per_bits: true,
        ..e
    };
    let rh = evaluate(&eh, &dir.join("eval-head"));
    assert_eq!(rh.linear[0].accuracy, r.linear[0].accuracy);
    let head = |run: &std::path::Path| {
        let run = RunDir(run.to_path_buf());
        let c = run.read_config().unwrap();
        let t = bitspike::methods::load(&run.0, &rdata, Device::Cpu).unwrap();
        let Some(bitspike::net::Params::Dense { w, .. }) = t.net.params.last() else {
            panic!("no dense head");
        };
        let acc = 100.0 * train::accuracy(&t.net, &rdata.test, rdata.max_code, Device::Cpu);
        (c, w.copy(), acc, t)
    };
    let (_, float_head, _, _) = head(&rh.linear[0].run);
    let (_, shared_head, _, _) = head(&r.linear[1].run);
    let (hcfg, own_head, acc, t) = head(&rh.linear[1].run);
    assert!(
        max_diff(&float_head, &shared_head) < 1e-9,
        "without it the head is shared"
    );
    assert!(
        max_diff(&float_head, &own_head) > 1e-3,
        "with it 3w3a has its own head"
    );
    assert!(
        (acc - rh.linear[1].accuracy).abs() < 1e-9,
        "{acc} vs {:?}",
        rh.linear
    );
    assert_eq!(hcfg.quant.edge_act_bits, Some(8));
    let (bytes, _) = export(&t.net);
    let ia = 100.0
        * bitspike::eval::integer(&bytes, &rdata.test)
            .unwrap()
            .accuracy();
    assert!((ia - acc).abs() < 3.0, "integer {ia} vs fake-quant {acc}");
    let _ = std::fs::remove_dir_all(dir);
}

/// SSQL's official protocol on ResNet-8 (digits, seconds): the run records its widths
/// scaled with the encoder (4 x 64 features) and its three-layer projector; the evaluation
/// trains a head per bit width, quantizes weights with SSQL's observer and reads the head's
/// input at 8 bits while the first layer's output follows the bit width; the 4w4a network
/// exports (signed tensors with zero points, adds with biases) and the integer executor agrees.
#[test]
fn the_official_protocol_trains_evaluates_and_exports() {
    let _one = common::seeded();
    tch::set_num_threads(1);
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("bitspike-ssql-official-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        dataset: DatasetName::Digits,
        arch: TrainArch::Resnet8,
        epochs: 2,
        batch_size: 128,
        optimizer: bitspike::config::Optimizer::Sgd,
        lr: 0.05,
        quant: QuantConfig {
            weight_quantizer: WeightQuantizer::MaxAbsHalf,
            act_quantizer: ActQuantizer::MinMax,
            first_last_bits: 8,
            head_act_bits: Some(8),
            ..Default::default()
        },
        ssql: Some(SsqlConfig::default().official()),
        ..Default::default()
    };
    let pre = dir.join("pre");
    ssql::pretrain(&cfg, &data, &TrainOptions::cpu(&pre)).unwrap();
    let s = RunDir(pre.clone()).read_config().unwrap().ssql.unwrap();
    assert_eq!((s.dim, s.hidden, s.predictor_hidden), (256, 256, 256));
    assert_eq!((s.projector_layers, s.projector_weight_bits), (3, 8));
    let e = EvalConfig {
        linear_epochs: 10,
        finetune_epochs: 0,
        calibration: 512,
        bits: vec![
            Bits::Float,
            "8w8a".parse().unwrap(),
            "4w4a".parse().unwrap(),
        ],
        // LSQ from the linear-evaluated network trains with the official quantization's
        // settings minus the 8-bit head (a learned step cannot switch width).
        lsq_epochs: 1,
        ..Default::default()
    };
    let r = ssql_eval::evaluate(
        &pre,
        DatasetName::Digits,
        &data::default_dir(),
        &e,
        &dir.join("eval"),
        Device::Cpu,
        false,
    )
    .unwrap();
    assert_eq!(r.method, "SimSiam+SSQL (official)");
    assert_eq!(r.config.protocol, Some(ssql::Protocol::Official));
    assert!(r.config.head_per_bits, "the official linear evaluation");
    assert_eq!(r.lsq.len(), 1);
    let load = |k: usize| {
        let run = RunDir(r.linear[k].run.clone());
        let rcfg = run.read_config().unwrap();
        assert_eq!(rcfg.quant.weight_quantizer, WeightQuantizer::MaxAbsHalf);
        assert_eq!(
            (rcfg.quant.head_act_bits, rcfg.quant.edge_act_bits),
            (Some(8), None)
        );
        let t = bitspike::methods::load(&run.0, &data, Device::Cpu).unwrap();
        let fq = 100.0 * train::accuracy(&t.net, &data.test, data.max_code, Device::Cpu);
        assert!((fq - r.linear[k].accuracy).abs() < 1e-9);
        (t, fq)
    };
    // 4w4a: the stem's output at 4 bits, the signed tensors and the head's input at 8.
    let (t, _) = load(2);
    let levels = t.net.levels();
    let head = t.net.spec.head_input_node().unwrap();
    assert_eq!(levels[1], 15);
    assert_eq!(
        levels[3], 255,
        "the first block's second convolution is signed"
    );
    assert_eq!(levels[head + 1], 255);
    let (bytes, _) = export(&t.net);
    let file = ModelFile::parse(&bytes).unwrap();
    let adds_with_bias = (0..file.layer_count())
        .filter(|&i| {
            file.layer(i).kind == bitspike_core::layer::LayerKind::Add
                && file.layer(i).bias.is_some()
        })
        .count();
    assert_eq!(adds_with_bias, 3);
    // At 8w8a the integer executor predicts what the fake-quantized network predicts on
    // nearly every image.
    let (t, fq) = load(1);
    let (bytes, _) = export(&t.net);
    let int = bitspike::eval::integer(&bytes, &data.test).unwrap();
    let x = data::to_input(&data.test.images, data.max_code, Device::Cpu);
    let fake: Vec<i64> =
        Vec::try_from(tch::no_grad(|| t.net.forward_t(&x, false)).argmax(1, false)).unwrap();
    let agree = int
        .predictions()
        .iter()
        .zip(&fake)
        .filter(|(a, b)| **a as i64 == **b)
        .count();
    let ia = 100.0 * int.accuracy();
    // (The integer biases are whole accumulator units, which moves a code now and then:
    // 347 of 360 agree here. tests/train.rs checks the signed tensors code by code.)
    assert!(
        agree * 100 >= fake.len() * 95,
        "{agree} of {} predictions agree (integer {ia} %, fake-quant {fq} %)",
        fake.len()
    );
    assert!((ia - fq).abs() < 2.0, "integer {ia} vs fake-quant {fq}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn digits_resize_to_the_encoder_input() {
    let d = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let r = data::resized(d, 28);
    assert_eq!(r.train.images.size(), vec![1437, 1, 28, 28]);
    assert_eq!((r.shape.h, r.shape.w, r.max_code), (28, 28, 255));
    let max = r.train.images.max().int64_value(&[]);
    assert!(max > 200 && max <= 255);
}

/// Every tensor of a weights or momentum file, by name.
fn tensors(file: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::load_multi(file).unwrap().into_iter().collect()
}

#[test]
fn an_interrupted_pretraining_resumes_where_it_stopped() {
    let _one = common::seeded();
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("bitspike-ssql-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // MoCo with SSQL's branch: a momentum key encoder and a queue to carry over. Plain SGD at a
    // constant rate, so the first epoch of a two-epoch run is a one-epoch run and a resumed
    // run must equal an uninterrupted one bit for bit (the optimizer keeps no moments).
    let mut cfg = config(Framework::Moco);
    cfg.epochs = 2;
    cfg.batch_size = 128;
    cfg.optimizer = bitspike::config::Optimizer::Sgd;
    cfg.momentum = 0.0;
    cfg.lr = 0.05;
    cfg.schedule = bitspike::config::Schedule::Constant;
    let whole = dir.join("whole");
    ssql::pretrain(&cfg, &data, &TrainOptions::cpu(&whole)).unwrap();

    // The same run stopped after its first epoch: one epoch, then the folder says two.
    let stopped = dir.join("stopped");
    let mut first = cfg.clone();
    first.epochs = 1;
    ssql::pretrain(&first, &data, &TrainOptions::cpu(&stopped)).unwrap();
    std::fs::copy(whole.join("config.toml"), stopped.join("config.toml")).unwrap();
    assert!(stopped.join("momentum-1.ot").exists());
    // Without --resume the folder is refused and left as it was.
    assert!(ssql::pretrain(&cfg, &data, &TrainOptions::cpu(&stopped)).is_err());
    // A resume with another configuration is refused.
    let mut other = cfg.clone();
    other.lr = 0.1;
    let resume = |c: &TrainConfig| {
        let mut o = TrainOptions::cpu(&stopped);
        o.resume = true;
        ssql::pretrain(c, &data, &o)
    };
    let e = resume(&other).unwrap_err().to_string();
    assert!(e.contains("own configuration"), "{e}");
    let state = resume(&cfg).unwrap();
    assert_eq!(state.epochs_done, 2);
    // The previous epoch's momentum file is gone, the last one is there.
    assert!(!stopped.join("momentum-1.ot").exists());
    for file in ["weights-2.ot", "momentum-2.ot"] {
        let (a, b) = (tensors(&whole.join(file)), tensors(&stopped.join(file)));
        assert_eq!(a.len(), b.len(), "{file}");
        for (k, v) in &a {
            assert_eq!(max_diff(v, &b[k]), 0.0, "{file}: {k}");
        }
    }
    let log = std::fs::read_to_string(stopped.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    // A missing momentum state is named.
    std::fs::remove_file(stopped.join("momentum-2.ot")).unwrap();
    let mut more = cfg.clone();
    more.epochs = 3;
    std::fs::write(stopped.join("config.toml"), toml::to_string(&more).unwrap()).unwrap();
    let e = format!("{:#}", resume(&more).unwrap_err());
    assert!(e.contains("momentum-2.ot"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

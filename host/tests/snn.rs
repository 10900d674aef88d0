//! QAC end to end: on the digits (compiled in, seconds) training, conversion, the float
//! simulator against the integer spiking network (the firmware runtime built for the host), and
//! the equivalence of averaging alignment with the quantized network (QAC Theorem 1); on
//! Fashion-MNIST (2 epochs) calibration lowering the output error on held-out images, and the
//! calibrated network's quantized twin.
//!
//! Stated tolerance (see `bitspike::snn`): the float simulator and the integer network make the
//! same prediction on at least 99 % of the images, and their logits differ by at most 0.5 % of
//! the float logits' range on every image.

mod common;

use bitspike::config::TrainConfig;
use bitspike::data::{self, Augment, Dataset, DatasetName};
use bitspike::eval;
use bitspike::net::TrainArch;
use bitspike::qac::QacConfig;
use bitspike::quant::ActQuantizer;
use bitspike::snn::{self, AlignMode, Calibration, Snn};
use bitspike::train::{TrainOptions, Trained};
use bitspike_core::format::writer::write;
use bitspike_rt::{Error, Model, Unsupported};
use tch::{Device, Kind, Tensor};

fn train_qac(name: &str, qac: QacConfig, epochs: usize) -> (Dataset, Trained) {
    train_qac_on(DatasetName::Digits, name, qac, epochs)
}

fn train_qac_on(
    dataset: DatasetName,
    name: &str,
    qac: QacConfig,
    epochs: usize,
) -> (Dataset, Trained) {
    tch::set_num_threads(1);
    let data =
        data::load(dataset, &data::default_dir()).expect("dataset (run `cargo xtask setup`)");
    let mut cfg = TrainConfig {
        dataset,
        arch: TrainArch::Cnn,
        epochs,
        lr: if dataset == DatasetName::Digits {
            0.01
        } else {
            TrainConfig::default().lr
        },
        augment: if dataset == DatasetName::Digits {
            Augment {
                crop_pad: 0,
                ..Augment::default()
            }
        } else {
            Augment::default()
        },
        ..TrainConfig::default()
    };
    cfg.quant.act_quantizer = ActQuantizer::Qac;
    cfg.quant.qac = qac;
    let dir = std::env::temp_dir().join(format!("bitspike-snn-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = TrainOptions::cpu(&dir);
    bitspike::methods::train(&cfg, &data, &opts).expect("training");
    let t = bitspike::methods::load(&dir, &data, Device::Cpu).expect("reload");
    let _ = std::fs::remove_dir_all(&dir);
    (data, t)
}

/// Float logits of the spiking network on the whole test split.
fn float_logits(t: &Trained, snn: &Snn, data: &Dataset) -> Tensor {
    tch::no_grad(|| {
        let x = data::to_input(&data.test.images, data.max_code, Device::Cpu);
        snn.forward(&t.net, &x, false)
    })
}

#[test]
fn qac_on_digits_converts_exports_and_calibrates() {
    let _one = common::seeded();
    let (data, t) = train_qac("qac", QacConfig::default(), 15);
    let snn = Snn::convert(&t.net, AlignMode::Average).expect("converts");
    assert_eq!(snn.layers.len(), 3, "three convolutions spike");
    let n = data.test.len();
    let before = snn::evaluate(&t.net, &snn, &data.test, data.max_code, n);
    assert!(
        before.accuracy > 0.8,
        "SNN accuracy {} on the digits",
        before.accuracy
    );

    // Float simulator vs integer spiking network.
    let def = bitspike::qac::export::model_def_snn(&t.net, &snn).expect("exports");
    let scale = def.layers.last().expect("layers").scale as f64;
    let bytes = write(&def).expect("valid model");
    let r = eval::integer(&bytes, &data.test).expect("runs");
    let agree = r
        .predictions()
        .iter()
        .zip(&before.predictions)
        .filter(|(a, b)| **a as i64 == **b)
        .count();
    assert!(
        agree as f64 >= 0.99 * n as f64,
        "float and integer predictions agree on {agree} of {n}"
    );
    let float: Vec<f32> = Vec::try_from(float_logits(&t, &snn, &data).flatten(0, -1)).unwrap();
    let ints: Vec<f64> = r
        .outputs
        .iter()
        .flatten()
        .map(|&v| v as f64 * scale)
        .collect();
    let range = float.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let worst = float
        .iter()
        .zip(&ints)
        .fold(0f64, |m, (f, i)| m.max((*f as f64 - i).abs()));
    eprintln!(
        "digits QAC: timesteps {:?}, SNN {:.2} %, integer {:.2} %, agree {agree}/{n}, worst logit \
         gap {worst:.4} of range {range:.2}",
        snn.layers.iter().map(|l| l.timesteps).collect::<Vec<_>>(),
        100.0 * before.accuracy,
        100.0 * r.accuracy()
    );
    assert!(worst <= 0.005 * range, "logit gap {worst} vs range {range}");
    // Spiking layers accumulate; only the first (analog input) layer multiplies.
    let (macs, acs) = r.ops_per_inference();
    assert!(acs > 0.0 && macs > 0.0);
}

#[test]
fn calibration_lowers_the_held_out_error_on_fashion_mnist() {
    let _one = common::seeded();
    // The small CNN after 2 QAC epochs; calibration on 2048 unlabelled training images, the
    // error measured on 2000 test images it never saw.
    let (data, t) = train_qac_on(
        DatasetName::FashionMnist,
        "fashion",
        QacConfig::default(),
        2,
    );
    let mut snn = Snn::convert(&t.net, AlignMode::Average).expect("converts");
    let held_out = 2000;
    let before = snn::evaluate(&t.net, &snn, &data.test, data.max_code, held_out);
    let losses = snn::calibrate(
        &t.net,
        &mut snn,
        &data.train,
        data.max_code,
        &Calibration::default(),
    )
    .expect("calibrates");
    let after = snn::evaluate(&t.net, &snn, &data.test, data.max_code, held_out);
    eprintln!(
        "Fashion-MNIST calibration: loss {losses:?}; held-out MSE {:.4} -> {:.4}, accuracy \
         {:.2} % -> {:.2} %",
        before.mse,
        after.mse,
        100.0 * before.accuracy,
        100.0 * after.accuracy
    );
    assert!(
        after.mse < before.mse,
        "held-out MSE {} -> {}",
        before.mse,
        after.mse
    );
    // The calibrated network exports and runs, and its quantized twin (initial potentials folded
    // into the bias) mostly predicts what it predicts: exactly where every calibrated initial
    // potential stays in 0..theta, approximately elsewhere.
    let test = data.test.take(held_out);
    let bytes = write(&bitspike::qac::export::model_def_snn(&t.net, &snn).expect("exports"))
        .expect("valid");
    let spiking = eval::integer(&bytes, &test).expect("runs");
    let twin = write(&bitspike::qac::export::model_def_ann_of(&t.net, &snn).expect("exports"))
        .expect("valid");
    let twin = eval::integer(&twin, &test).expect("runs");
    let same = spiking
        .predictions()
        .iter()
        .zip(twin.predictions())
        .filter(|(a, b)| **a == *b)
        .count();
    assert!(
        same as f64 >= 0.97 * held_out as f64,
        "twin and SNN agree on {same} of {held_out}"
    );
    assert_eq!(twin.accumulates, 0, "the twin does not spike");
}

#[test]
fn averaging_at_integer_level_counts_equals_the_quantized_network() {
    let _one = common::seeded();
    // QCFS (every layer frozen at L = 4): integer T, so with averaging and v0 = theta / 2 the
    // spiking network computes the quantized network's function (QAC Theorem 1).
    let qcfs = QacConfig {
        fixed_levels: 4,
        ..QacConfig::default()
    };
    let (data, t) = train_qac("qcfs", qcfs, 4);
    let snn = Snn::convert(&t.net, AlignMode::Average).expect("converts");
    assert!(snn.layers.iter().all(|l| l.timesteps == 4));
    let x = data::to_input(&data.test.images, data.max_code, Device::Cpu);
    let (o, a) = tch::no_grad(|| (snn.forward(&t.net, &x, false), t.net.forward_t(&x, false)));
    let gap = (&o - &a).abs().max().double_value(&[]);
    let range = a.abs().max().double_value(&[]);
    assert!(gap <= 1e-3 * range, "SNN vs ANN logits: {gap} of {range}");
    let same = o
        .argmax(-1, false)
        .eq_tensor(&a.argmax(-1, false))
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert_eq!(same, data.test.len());

    // Uniform T: replication passes trains through (standard SNN), averaging does not, and the
    // two differ; at T = 1 every mode is the same network.
    let repl = Snn {
        align: AlignMode::Replicate,
        ..snn.uniform(4)
    };
    let o_repl = tch::no_grad(|| repl.forward(&t.net, &x, false));
    assert!((&o_repl - &o).abs().max().double_value(&[]) > 1e-3);
    let one = snn.uniform(1);
    let one_repl = Snn {
        align: AlignMode::Replicate,
        ..snn.uniform(1)
    };
    let (p, q) = tch::no_grad(|| {
        (
            one.forward(&t.net, &x, false),
            one_repl.forward(&t.net, &x, false),
        )
    });
    assert!((&p - &q).abs().max().double_value(&[]) < 1e-6);

    // The runtime executes averaging only: a replication model says so when loaded.
    let mixed = Snn {
        align: AlignMode::Replicate,
        ..snn.scaled(1)
    };
    let mut m = mixed;
    m.layers[1].timesteps = 6; // expansion 4 -> 6 uses replication
    let bytes =
        write(&bitspike::qac::export::model_def_snn(&t.net, &m).expect("exports")).expect("valid");
    assert!(matches!(
        Model::load(&bytes),
        Err(Error::Unsupported {
            feature: Unsupported::Alignment,
            ..
        })
    ));
}

#[test]
fn qac_with_the_board_s_measured_costs_as_its_level_penalty() {
    let _one = common::seeded();
    // Weighted by the measured instructions on a Cortex-M4F board (the table of the emulated
    // board with its core).
    let qac = QacConfig {
        cost: bitspike::qac::LevelCost::Device,
        board: Some("nucleo-l4r5zi".into()),
        level_penalty: 0.05,
        ..QacConfig::default()
    };
    let (data, t) = train_qac("device", qac.clone(), 4);
    let snn = Snn::convert(&t.net, AlignMode::Average).expect("converts");
    let steps: Vec<u16> = snn.layers.iter().map(|l| l.timesteps).collect();
    // The penalty the run trained with, at the learned level counts: the table's cost of the
    // network, interpolated; at the converted (integer) timesteps within the candidates it is
    // the table's exact sum.
    let spec = t.net.spec.clone();
    let weights = bitspike::device_costs::snn::weight_plan(&spec, 4, 8);
    let table = bitspike::device_costs::CostTable::read(&bitspike::device_costs::table_path(
        "qemu-mps2-an386",
    ))
    .expect("committed table");
    let cost = bitspike::device_costs::snn::SnnCost::new(
        &spec,
        &weights,
        &table,
        &bitspike::qac::DEVICE_TIMESTEPS,
        data.max_code,
    )
    .expect("the table covers the digits CNN's spiking layers");
    let near: Vec<u16> = steps
        .iter()
        .map(|&s| {
            *bitspike::qac::DEVICE_TIMESTEPS
                .iter()
                .min_by_key(|&&c| (c as i32 - s as i32).abs())
                .unwrap()
        })
        .collect();
    let exact = cost.exact(&near).unwrap();
    let levels: Vec<Tensor> = near.iter().map(|&s| Tensor::from(s as f64)).collect();
    let interp = cost.interpolated(&levels).double_value(&[]);
    assert!(
        exact > 0.0 && (interp - exact).abs() < 1e-3 * exact,
        "{interp} vs {exact}"
    );
    // The network still learned the digits.
    let r = snn::evaluate(&t.net, &snn, &data.test, data.max_code, data.test.len());
    assert!(r.accuracy > 0.7, "SNN accuracy {}", r.accuracy);
    // Without a board, the configuration is refused with one line that says what is missing.
    let e = QacConfig { board: None, ..qac }
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a board"), "{e}");
}

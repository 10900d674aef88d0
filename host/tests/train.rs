//! Training learns, and the exported integer model agrees with the trained network.
//!
//! * the digits (compiled in, seconds): a 4-bit QAT run must reach 85 % test accuracy (chance is
//!   10 %), and its integer model must be within 2 points of the fake-quant accuracy;
//! * Fashion-MNIST (fetched by `cargo xtask setup`): after 2 epochs at 4-bit weights and
//!   activations, the integer accuracy on all 10 000 test images must be within 0.3 points of
//!   the fake-quant accuracy.

mod common;

use bitspike::config::TrainConfig;
use bitspike::data::{self, Augment, DatasetName};
use bitspike::train::{self, TrainOptions};
use bitspike::{eval, export};
use bitspike_core::format::writer::write;
use tch::Device;

fn run(cfg: &TrainConfig, name: &str) -> (f64, f64) {
    let _one = common::seeded();
    tch::set_num_threads(1);
    let data =
        data::load(cfg.dataset, &data::default_dir()).expect("dataset (run `cargo xtask setup`)");
    let dir = std::env::temp_dir().join(format!("bitspike-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = TrainOptions::cpu(&dir);
    let state = bitspike::methods::train(cfg, &data, &opts).unwrap();
    let t = bitspike::methods::load(&dir, &data, Device::Cpu).unwrap();
    let fake = train::accuracy(&t.net, &data.test, data.max_code, Device::Cpu);
    assert!(
        (fake - state.test_accuracy).abs() < 1e-12,
        "reloaded weights give the same accuracy"
    );
    let bytes = write(&export::model_def(&t.net).unwrap()).unwrap();
    let integer = eval::integer(&bytes, &data.test).unwrap().accuracy();
    let _ = std::fs::remove_dir_all(&dir);
    (fake, integer)
}

#[test]
fn digits_learn_and_export() {
    let cfg = TrainConfig {
        dataset: DatasetName::Digits,
        epochs: 15,
        lr: 0.01,
        augment: Augment {
            crop_pad: 0,
            ..Augment::default()
        },
        ..TrainConfig::default()
    };
    let (fake, integer) = run(&cfg, "digits");
    assert!(fake > 0.85, "fake-quant accuracy {fake}");
    assert!(
        (integer - fake).abs() <= 0.02,
        "fake-quant {fake} vs integer {integer}"
    );
}

#[test]
fn fashion_mnist_integer_gap_is_small() {
    let cfg = TrainConfig {
        dataset: DatasetName::FashionMnist,
        epochs: 2,
        ..TrainConfig::default()
    };
    let (fake, integer) = run(&cfg, "fashion");
    eprintln!(
        "Fashion-MNIST w4a4, 2 epochs: fake-quant {:.2} %, integer {:.2} %",
        100.0 * fake,
        100.0 * integer
    );
    assert!(fake > 0.75, "fake-quant accuracy {fake}");
    assert!(
        (integer - fake).abs() <= 0.003,
        "gap {:.2} points",
        100.0 * (integer - fake)
    );
}

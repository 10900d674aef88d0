//! One-Shot MPS across the crate: a child's exported model file carries its per-layer bits and
//! the costs the search used; a child built from a plan is the supernet run at that plan; the
//! BatchNorm recalibration averages batch statistics; a search, its front and a front point end
//! to end on digits.

mod common;

use bitspike::config::QuantConfig;
use bitspike::config::TrainConfig;
use bitspike::data::{self, DatasetName};
use bitspike::mps::{self, BitPlan, CostKind, MpsConfig, Slots};
use bitspike::mps_report;
use bitspike::net::{Params, QNet, Spec, TrainArch};
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use bitspike::report::Summary;
use bitspike::train::{self, RunDir, TrainOptions};
use bitspike_core::format::ModelFile;
use tch::nn;
use tch::{Device, Kind, Tensor};

fn quant(w: WeightQuantizer, a: ActQuantizer) -> QuantConfig {
    QuantConfig {
        weight_quantizer: w,
        act_quantizer: a,
        ..Default::default()
    }
}

fn plan() -> BitPlan {
    BitPlan {
        weight_bits: vec![8, 2, 4, 6],
        act_bits: vec![4, 3, 8],
    }
}

#[test]
fn a_child_exports_its_bits_and_the_searched_costs() {
    let _one = common::seeded();
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = TrainConfig {
        quant: quant(WeightQuantizer::Lloyd, ActQuantizer::Hwgq),
        mixed: plan(),
        ..Default::default()
    };
    let spec = Spec::of(TrainArch::Cnn, [1, 28, 28], 10);
    let net = bitspike::methods::build_net(&vs, spec.clone(), &cfg, 255).unwrap();
    let def = bitspike::export::model_def(&net).unwrap();
    let bytes = bitspike_core::format::writer::write(&def).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let s = Summary::of(&file);
    let weighted: Vec<(u8, u32)> = s
        .layers
        .iter()
        .filter(|l| l.weight_bits > 0)
        .map(|l| (l.weight_bits, l.input_bits))
        .collect();
    // Weights 8, 2, 4, 6; inputs: the 8-bit image, then the activation slots 4, 3, 8.
    assert_eq!(weighted, vec![(8, 8), (2, 4), (4, 3), (6, 8)]);
    let slots = Slots::of(&spec, 255).unwrap();
    assert_eq!(slots.cost(&plan(), CostKind::Bops), s.bops() as f64);
    let ram = slots.cost(&plan(), CostKind::Ram);
    assert_eq!(ram.ceil() as u64, s.ram_s14_bytes, "S14 RAM {ram}");
}

#[test]
fn a_child_is_the_supernet_at_its_plan() {
    let _one = common::seeded();
    // Trainable quantizers: every candidate has its own learned step, which the child must
    // find under the same name.
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = TrainConfig {
        quant: quant(WeightQuantizer::TrainableLloyd, ActQuantizer::TrainableHwgq),
        mps: Some(MpsConfig::default()),
        ..Default::default()
    };
    let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 10);
    let sup = bitspike::methods::build_net(&vs, spec.clone(), &cfg, 16).unwrap();
    let x = Tensor::rand([6, 1, 8, 8], (Kind::Float, Device::Cpu));
    // One step so that the learned steps are initialised and move away from their start.
    let mut opt = nn::OptimizerConfig::build(nn::Adam::default(), &vs, 0.05).unwrap();
    let s = mps::supernet(&sup).unwrap();
    let extra = s.begin_step(1.0, 0.0);
    opt.backward_step(&(sup.forward_t(&x, true).mean(Kind::Float) + extra));
    let plan = BitPlan {
        weight_bits: vec![2, 8, 4, 2],
        act_bits: vec![8, 2, 4],
    };
    s.select(&plan).unwrap();
    let want = sup.forward_t(&x, false);
    let dir = std::env::temp_dir().join(format!("bitspike-mps-child-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("w.ot");
    vs.save(&file).unwrap();
    let vs2 = nn::VarStore::new(Device::Cpu);
    let child =
        bitspike::methods::build_net(&vs2, spec, &mps_report::child_config(&cfg, &plan), 16)
            .unwrap();
    let mut vs2 = vs2;
    vs2.load(&file).unwrap();
    let got = child.forward_t(&x, false);
    assert!(mps::supernet(&child).is_none());
    assert_eq!(
        Vec::<f32>::try_from(want.flatten(0, -1)).unwrap(),
        Vec::<f32>::try_from(got.flatten(0, -1)).unwrap()
    );
    // A bit width that is no candidate is refused.
    let bad = BitPlan {
        weight_bits: vec![3, 8, 4, 2],
        act_bits: vec![8, 2, 4],
    };
    assert!(s.select(&bad).unwrap_err().to_string().contains("3 bits"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn batchnorm_recalibration_averages_the_batch_statistics() {
    let _one = common::seeded();
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = QNet::new(
        &vs,
        Spec::of(TrainArch::Cnn, [1, 8, 8], 10),
        bitspike::quant::Uniform::default(),
        16,
    )
    .unwrap();
    let images = Tensor::randint(17, [10, 1, 8, 8], (Kind::Uint8, Device::Cpu));
    // Two batches: 6 and 4 images.
    mps::recalibrate_bn(&net, &images, 16, 5, 6);
    let Params::Conv { w, wq, bn, .. } = &net.params[0] else {
        panic!("node 0 is a convolution")
    };
    let stats = |lo: i64, n: i64| {
        let x = data::to_input(&images.narrow(0, lo, n), 16, Device::Cpu);
        let z = x.conv2d(&wq.forward(w), None::<Tensor>, [1], [1], [1], 1);
        (
            z.mean_dim(&[0i64, 2, 3][..], false, Kind::Float),
            z.var_dim(&[0i64, 2, 3][..], true, false),
        )
    };
    let (m1, v1) = stats(0, 6);
    let (m2, v2) = stats(6, 4);
    let close = |a: &Tensor, b: &Tensor| {
        let d = (a - b).abs().max().double_value(&[]);
        assert!(d < 1e-4, "differs by {d}");
    };
    close(&bn.running_mean, &((m1 + m2) / 2.0));
    close(&bn.running_var, &((v1 + v2) / 2.0));
}

#[test]
fn a_search_its_front_and_a_point_on_digits() {
    let _one = common::seeded();
    tch::set_num_threads(1);
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("bitspike-mps-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        dataset: DatasetName::Digits,
        epochs: 12,
        lr: 0.01,
        quant: quant(WeightQuantizer::Lloyd, ActQuantizer::Hwgq),
        mps: Some(MpsConfig {
            validation: 300,
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = TrainOptions::cpu(&dir);
    bitspike::methods::train(&cfg, &data, &opts).unwrap();
    let run = RunDir(dir.clone());
    let front = mps_report::extract(&run, &data, Device::Cpu, 10, None).unwrap();
    assert_eq!(front.evaluations, front.children.len());
    assert!(!front.children.is_empty());
    // Distinct plans; every swept eta belongs to exactly one child.
    for (i, a) in front.children.iter().enumerate() {
        assert!(front.children[..i].iter().all(|b| b.plan != a.plan));
    }
    let swept: usize = front.children.iter().map(|c| c.etas.len()).sum();
    assert_eq!(swept, front.etas.len());
    // The marked points are exactly the Pareto set of (BOPs, validation accuracy).
    let pts: Vec<(f64, f64)> = front
        .children
        .iter()
        .map(|c| (c.bops, c.val_accuracy))
        .collect();
    let marked: Vec<usize> = (0..pts.len())
        .filter(|&i| front.children[i].pareto)
        .collect();
    let mut want = mps::pareto(&pts);
    want.sort();
    assert_eq!(marked, want);
    // The children learned something: the best is far above chance (10 classes).
    let best = front
        .children
        .iter()
        .map(|c| c.test_accuracy)
        .fold(0.0, f64::max);
    assert!(best > 0.6, "best child {best}");
    // Choosing by budget: the most accurate point under the budget.
    let cheapest = front.pareto()[0].bops;
    let c = mps_report::candidates(
        &front,
        &mps_report::Choice {
            max_bops: Some(cheapest),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c[0].bops, cheapest);
    assert!(mps_report::candidates(
        &front,
        &mps_report::Choice {
            max_bops: Some(cheapest - 1.0),
            ..Default::default()
        }
    )
    .is_err());
    // The child network evaluates as the front says.
    let child = mps_report::child(&run, &c[0].plan, &data, Device::Cpu).unwrap();
    let acc = train::accuracy(&child.net, &data.test, data.max_code, Device::Cpu);
    assert_eq!(acc, c[0].test_accuracy);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_search_for_the_board_s_measured_instructions_and_a_point_within_a_time_budget() {
    let _one = common::seeded();
    tch::set_num_threads(1);
    tch::manual_seed(3);
    let data = data::load(DatasetName::Digits, &data::default_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("bitspike-mps-device-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        dataset: DatasetName::Digits,
        epochs: 4,
        lr: 0.01,
        quant: quant(WeightQuantizer::Lloyd, ActQuantizer::Hwgq),
        mps: Some(MpsConfig {
            validation: 300,
            cost: CostKind::Device,
            // A real board: its costs come from the table of the emulated board with its core.
            board: Some("nucleo-l4r5zi".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    bitspike::methods::train(&cfg, &data, &TrainOptions::cpu(&dir)).unwrap();
    let run = RunDir(dir.clone());
    let front = mps_report::extract(&run, &data, Device::Cpu, 6, None).unwrap();
    assert_eq!(front.board.as_deref(), Some("nucleo-l4r5zi"));
    let spec = Spec::of(cfg.arch, [1, 8, 8], 10);
    let slots = Slots::of(&spec, 16).unwrap();
    let m = cfg.mps.as_ref().unwrap();
    let dc = bitspike::device_costs::DeviceCost::for_board(
        "nucleo-l4r5zi",
        &spec,
        &slots,
        &m.weight_bits,
        &m.act_bits,
    )
    .unwrap();
    // Every child's instructions are the table's sum for its plan; its model file and arena are
    // those of the child exported for real (with its trained weights).
    for c in &front.children {
        assert_eq!(c.insns, Some(dc.exact(&c.plan).unwrap()));
    }
    let c0 = front.pareto()[0];
    let child = mps_report::child(&run, &c0.plan, &data, Device::Cpu).unwrap();
    let bytes =
        bitspike_core::format::writer::write(&bitspike::export::model_def(&child.net).unwrap())
            .unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    assert_eq!(c0.model_bytes, Some(bytes.len() as u64));
    assert_eq!(c0.arena_bytes, Some(file.header().arena_bytes as u64));
    // The marked points are the Pareto set of (instructions, validation accuracy).
    let pts: Vec<(f64, f64)> = front
        .children
        .iter()
        .map(|c| (c.insns.unwrap(), c.val_accuracy))
        .collect();
    let mut want = mps::pareto(&pts);
    want.sort();
    let marked: Vec<usize> = (0..pts.len())
        .filter(|&i| front.children[i].pareto)
        .collect();
    assert_eq!(marked, want);
    // A time budget on the board: the fastest point's time admits it, a little less nothing.
    let fastest = front.on_board(c0).unwrap();
    let ms = fastest.ms.unwrap();
    assert!((ms - c0.insns.unwrap() / 120e3).abs() < 1e-12, "120 MHz");
    let within = |max_ms| {
        mps_report::candidates(
            &front,
            &mps_report::Choice {
                max_ms: Some(max_ms),
                ..Default::default()
            },
        )
    };
    assert!(within(ms)
        .unwrap()
        .iter()
        .all(|c| front.on_board(c).unwrap().ms.unwrap() <= ms));
    assert!(within(ms * 0.999).is_err());
    let all = within(1e9).unwrap();
    assert_eq!(all.len(), front.pareto().len());
    assert!(all
        .windows(2)
        .all(|w| w[0].val_accuracy >= w[1].val_accuracy));
    // Flash and RAM budgets count the board app too.
    let ram = mps_report::candidates(
        &front,
        &mps_report::Choice {
            max_ram: Some(fastest.ram as f64),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(ram
        .iter()
        .all(|c| front.on_board(c).unwrap().ram <= fastest.ram));
    assert!(fastest.ram > c0.arena_bytes.unwrap() && fastest.flash > bytes.len() as u64);
    // Fronts side by side on the board.
    let b = bitspike::mps_board::board_fronts(&[("device".into(), front.clone())]).unwrap();
    assert_eq!(b.points.len(), front.pareto().len());
    assert!(b.points.iter().all(|p| p.pareto_on_board));
    assert!(b.markdown().contains("Pareto on nucleo-l4r5zi"));
    // Without board figures, a board budget names the command that adds them.
    let mut bare = front.clone();
    bare.board = None;
    let e = mps_report::candidates(
        &bare,
        &mps_report::Choice {
            max_ms: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mps front --run R --board B"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn correlations() {
    let _one = common::seeded();
    let p = [(1.0, 2.0), (2.0, 4.0), (3.0, 6.5), (4.0, 8.0)];
    assert!((mps_report::pearson(&p).unwrap() - 0.99586).abs() < 1e-4);
    assert_eq!(mps_report::spearman(&p), Some(1.0));
    let q = [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)];
    assert!((mps_report::pearson(&q).unwrap() + 1.0).abs() < 1e-12);
    assert_eq!(mps_report::pearson(&q[..2]), None);
}

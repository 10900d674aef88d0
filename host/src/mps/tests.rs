//! Tests of the slots, costs, supernet and Pareto extraction.

use super::*;
use bitspike_core::cost;

use crate::net::{Node, Op, Spec, TrainArch};
use crate::quant::{ActQuantizer, WeightQuantizer};
use tch::nn;
use tch::{Kind, Tensor};

/// conv 3x3 (1 -> 2, pad 1) on 1x4x4, ReLU; max pool 2; flatten; dense 8 -> 3.
fn tiny() -> Spec {
    Spec {
        input: [1, 4, 4],
        nodes: vec![
            Node {
                op: Op::Conv {
                    out: 2,
                    k: 3,
                    stride: 1,
                    pad: 1,
                    groups: 1,
                    relu: true,
                },
                input: 0,
            },
            Node {
                op: Op::MaxPool { k: 2, stride: 2 },
                input: 1,
            },
            Node {
                op: Op::Flatten,
                input: 2,
            },
            Node {
                op: Op::Dense {
                    out: 3,
                    hidden: false,
                },
                input: 3,
            },
        ],
    }
}

#[test]
fn bops_and_ram_of_a_small_network_by_hand() {
    let _one = crate::seeded();
    let s = Slots::of(&tiny(), 255).unwrap();
    assert_eq!(s.weight_nodes, vec![0, 3]);
    assert_eq!(s.act_nodes, vec![0]);
    let plan = BitPlan {
        weight_bits: vec![4, 2],
        act_bits: vec![3],
    };
    // conv: 4*4 outputs * 2 channels * 9 * 1 = 288 MACs at 4-bit weights and the 8-bit
    // image; dense: 8*3 = 24 MACs at 2-bit weights and 3-bit inputs.
    let bops = 288.0 * 4.0 * 8.0 + 24.0 * 2.0 * 3.0;
    assert_eq!(s.cost(&plan, CostKind::Bops), bops);
    // RAM (S14): image 16 B; conv K = 18 weights at 4 bits (9 B), F = 16 inputs at 8 bits
    // (16 B); pool F = 32 at 3 bits (12 B); flatten F = 8 at 3 bits (3 B); dense K = 24 at
    // 2 bits (6 B), F = 8 at 3 bits (3 B).
    let ram = 16.0 + 9.0 + 16.0 + 12.0 + 3.0 + 6.0 + 3.0;
    assert_eq!(s.cost(&plan, CostKind::Ram), ram);
}

#[test]
fn costs_agree_with_the_shared_cost_model_on_every_arch() {
    let _one = crate::seeded();
    let mut rng = bitspike_core::def::random::Rng::new(5);
    for arch in [
        TrainArch::Cnn,
        TrainArch::Lenet,
        TrainArch::Vgg,
        TrainArch::Resnet8,
    ] {
        let spec = Spec::of(arch, [1, 28, 28], 10);
        let s = Slots::of(&spec, 255).unwrap();
        let plan = BitPlan {
            weight_bits: s
                .weight_nodes
                .iter()
                .map(|_| rng.range(2, 8) as u8)
                .collect(),
            act_bits: s.act_nodes.iter().map(|_| rng.range(2, 8) as u8).collect(),
        };
        // The levels of the tensor each node reads: its activation slot's, or the image's.
        let layers: Vec<_> = spec
            .geometries()
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(k, g)| {
                let levels = s.reads[k].map_or(255, |a| ((1u16 << plan.act_bits[a]) - 1) as u8);
                let bits = s.weight_slot(k).map_or(0, |w| plan.weight_bits[w]);
                (g, bits, levels)
            })
            .collect();
        let bops: u64 = layers.iter().map(|(g, b, l)| cost::bops(g, *b, *l)).sum();
        assert_eq!(s.cost(&plan, CostKind::Bops), bops as f64, "{arch:?} BOPs");
        let ram = cost::ram_s14(s.input_elements, layers.iter().copied());
        let exact = s.cost(&plan, CostKind::Ram);
        assert!(
            exact <= ram as f64 && ram as f64 - exact < 1.0,
            "{arch:?} RAM {exact} vs {ram}"
        );
    }
}

/// ResNet-8's signed outputs (each block's second convolution, the shortcuts) run at 8 bits
/// whatever the plan: they have weight slots but no activation slot, and what reads them is
/// costed at 8-bit codes.
#[test]
fn signed_outputs_have_no_activation_slot() {
    let _one = crate::seeded();
    let spec = Spec::of(TrainArch::Resnet8, [1, 28, 28], 10);
    let s = Slots::of(&spec, 15).unwrap();
    let signed: Vec<usize> = (0..spec.nodes.len()).filter(|&k| spec.signed(k)).collect();
    assert_eq!(signed.len(), 5, "three second convolutions, two shortcuts");
    for &k in &signed {
        assert!(
            s.weight_slot(k).is_some() && s.act_slot(k).is_none(),
            "node {k}"
        );
        assert_eq!(s.tensor_slot[k + 1], None);
    }
    assert!(s.act_nodes.iter().all(|&k| !spec.signed(k)));
    // Each add reads its block's second convolution first and, in two blocks, a shortcut
    // second.
    let (mut first, mut second) = (0, 0);
    for (k, n) in spec.nodes.iter().enumerate() {
        if signed.contains(&(n.input.wrapping_sub(1))) {
            assert_eq!((s.reads[k], s.read_bits[k]), (None, 8), "node {k}");
            first += 1;
        }
        if let crate::spec::Op::Add { other } = n.op {
            if signed.contains(&(other.wrapping_sub(1))) {
                assert_eq!(s.reads2[k], None, "node {k}");
                second += 1;
            }
        }
    }
    assert_eq!((first, second), (3, 2));
    // The first convolution reads the image at its own width (codes 0..=15: 4 bits).
    assert_eq!((s.reads[0], s.read_bits[0]), (None, 4));
    // Its BOPs: what a node reads from a signed output counts 8 bits at any plan.
    let plan = s.uniform(2, 2);
    let bops: f64 = (0..spec.nodes.len())
        .filter_map(|k| {
            let w = s.weight_slot(k)?;
            let bx = match s.reads[k] {
                Some(a) => plan.act_bits[a] as f64,
                None => s.read_bits[k] as f64,
            };
            Some(s.macs[k] as f64 * plan.weight_bits[w] as f64 * bx)
        })
        .sum();
    assert_eq!(s.cost(&plan, CostKind::Bops), bops);
}

#[test]
fn the_expected_cost_of_a_certain_choice_is_the_exact_cost() {
    let _one = crate::seeded();
    for kind in [CostKind::Bops, CostKind::Ram] {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = MpsConfig {
            cost: kind,
            ..Default::default()
        };
        let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
        let slots = Slots::of(&spec, 255).unwrap();
        let s = Supernet::new(
            &vs.root(),
            &spec,
            slots.clone(),
            &cfg,
            WeightQuantizer::Lloyd,
            ActQuantizer::Hwgq,
        )
        .unwrap();
        let plan = BitPlan {
            weight_bits: vec![8, 2, 4, 2, 8],
            act_bits: vec![4, 8, 2, 4],
        };
        let one_hot = |b: u8, c: &[u8]| {
            let v: Vec<f32> = c.iter().map(|&x| (x == b) as i32 as f32).collect();
            Tensor::from_slice(&v)
        };
        let probs: Vec<Tensor> = plan
            .weight_bits
            .iter()
            .map(|&b| one_hot(b, &cfg.weight_bits))
            .chain(plan.act_bits.iter().map(|&b| one_hot(b, &cfg.act_bits)))
            .collect();
        let got = s.expected_cost(&probs).double_value(&[]) * s.unit;
        let want = slots.cost(&plan, kind);
        assert!((got / want - 1.0).abs() < 1e-5, "{kind:?}: {got} vs {want}");
        // The unit is the cost at the largest candidates.
        assert_eq!(s.unit, slots.cost(&slots.uniform(8, 8), kind));
        // Uniform probabilities: the expected bits are the candidates' mean (14/3) in
        // every slot, and BOPs are bilinear in them.
        if kind == CostKind::Bops {
            let u: Vec<Tensor> = probs.iter().map(|p| p.ones_like() / 3.0).collect();
            let m = 14.0 / 3.0;
            let terms = slots.terms(kind);
            let want: f64 = terms
                .iter()
                .map(|t| {
                    t.coef
                        * if t.weight.is_some() { m } else { 1.0 }
                        * if t.act.is_some() { m } else { 1.0 }
                })
                .sum();
            let got = s.expected_cost(&u).double_value(&[]) * s.unit;
            assert!((got / want - 1.0).abs() < 1e-5, "{got} vs {want}");
        }
    }
}

#[test]
fn pareto_keeps_exactly_the_undominated_points() {
    let _one = crate::seeded();
    let pts = [
        (10.0, 0.80), // 0: front
        (12.0, 0.79), // 1: dominated by 0
        (15.0, 0.85), // 2: front
        (15.0, 0.84), // 3: same cost, less accurate
        (20.0, 0.85), // 4: same accuracy, costs more
        (25.0, 0.90), // 5: front
        (10.0, 0.80), // 6: duplicate of 0
        (5.0, 0.50),  // 7: front (cheapest)
        (30.0, 0.89), // 8: dominated by 5
    ];
    assert_eq!(pareto(&pts), vec![7, 0, 2, 5]);
    assert!(pareto(&[]).is_empty());
}

#[test]
fn sweep_is_linear_and_logarithmic() {
    let _one = crate::seeded();
    let v = sweep([0.01, 1.0], 3);
    let want = [0.01, 0.1, 0.505, 1.0];
    assert_eq!(v.len(), want.len(), "{v:?}");
    for (a, b) in v.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{v:?}");
    }
}

#[test]
fn higher_eta_lowers_the_learned_expected_cost() {
    let _one = crate::seeded();
    // A tiny supernet on random data: the bit-width model alone trains (the task loss is
    // the same for all eta values on average), so the hardware term decides.
    tch::manual_seed(3);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let cfg = crate::config::TrainConfig {
        mps: Some(MpsConfig {
            eta: [0.01, 10.0],
            ..Default::default()
        }),
        quant: crate::config::QuantConfig {
            weight_quantizer: WeightQuantizer::Lloyd,
            act_quantizer: ActQuantizer::Hwgq,
            ..Default::default()
        },
        ..Default::default()
    };
    let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 4);
    let net = crate::methods::build_net(&vs, spec, &cfg, 16).unwrap();
    let s = super::supernet(&net).unwrap();
    let mut opt = nn::OptimizerConfig::build(nn::Adam::default(), &vs, 0.02).unwrap();
    let x = Tensor::rand([16, 1, 8, 8], (Kind::Float, tch::Device::Cpu));
    let y = Tensor::randint(4, [16], (Kind::Int64, tch::Device::Cpu));
    for _ in 0..150 {
        let eta = s.sample_eta();
        let extra = s.begin_step(eta, 0.5);
        let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y) + extra;
        opt.backward_step(&loss);
    }
    let cost = |eta: f64| {
        tch::no_grad(|| {
            let p: Vec<Tensor> = s
                .logits(eta)
                .iter()
                .map(|l| l.softmax(0, Kind::Float))
                .collect();
            s.expected_cost(&p).double_value(&[])
        })
    };
    let (lo, mid, hi) = (cost(0.01), cost(0.3), cost(10.0));
    assert!(lo > mid && mid > hi, "{lo} {mid} {hi}");
    // The argmax child at the largest penalty is cheaper than at the smallest.
    let c = |e| s.slots.cost(&s.plan_at(e), CostKind::Bops);
    assert!(
        c(10.0) < c(0.01),
        "{:?} {:?}",
        s.plan_at(10.0),
        s.plan_at(0.01)
    );
}

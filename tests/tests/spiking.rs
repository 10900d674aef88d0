//! The spiking engine: mixed-timestep integrate-and-fire networks through the runtime against
//! the oracle's step-by-step i64 neurons, the synaptic-event counters, the loader's refusals,
//! and the temporal alignment rules on hand-worked examples.
//!
//! The random networks are `bitspike_tests::models::spiking_model`.

use bitspike_core::def::{ModelDef, Requant, SpikingDef};
use bitspike_core::format::writer::write;
use bitspike_core::format::{FormatError, LayerField};
use bitspike_core::layer::{Align, LayerKind};
use bitspike_core::snn::{self, aligned_input, source_step};
use bitspike_rt::{Error, Model, Unsupported};
use bitspike_tests::models::spiking_model as network;
use bitspike_tests::oracle::{
    self,
    gen::{self, Rng},
};

/// Synaptic events of a weighted layer reading `x`, counted synapse by synapse.
fn events(def: &ModelDef, layer: usize, x: &oracle::Tensor) -> u64 {
    let l = &def.layers[layer];
    let s = x.shape;
    match l.kind {
        LayerKind::Dense => x.values.iter().map(|&v| v as u64).sum::<u64>() * l.out_channels as u64,
        LayerKind::Conv2d => {
            let win = l.window;
            let g = l.groups as usize;
            let (cin_g, cout_g) = (s.c as usize / g, l.out_channels as usize / g);
            let oh = (s.h as usize + 2 * win.ph as usize - win.kh as usize) / win.sh as usize + 1;
            let ow = (s.w as usize + 2 * win.pw as usize - win.kw as usize) / win.sw as usize + 1;
            let mut n = 0u64;
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..l.out_channels as usize {
                        for ky in 0..win.kh as usize {
                            for kx in 0..win.kw as usize {
                                let y = (oy * win.sh as usize + ky) as i64 - win.ph as i64;
                                let xx = (ox * win.sw as usize + kx) as i64 - win.pw as i64;
                                if y < 0 || xx < 0 || y >= s.h as i64 || xx >= s.w as i64 {
                                    continue;
                                }
                                for ci in 0..cin_g {
                                    let c = (o / cout_g) * cin_g + ci;
                                    let at = (y as usize * s.w as usize + xx as usize)
                                        * s.c as usize
                                        + c;
                                    n += x.values[at] as u64;
                                }
                            }
                        }
                    }
                }
            }
            n
        }
        _ => 0,
    }
}

#[test]
fn mixed_timestep_networks_match_the_oracle_bit_for_bit() {
    let mut fired = 0u64;
    for seed in 0..150 {
        let def = network(seed);
        let bytes = write(&def).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let model = Model::load(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interp = model.bind(&mut arena).expect("arena fits");
        let mut rng = Rng::new(seed ^ 0x5eed);
        for _ in 0..3 {
            let input = gen::codes(&mut rng, def.input.shape.len(), def.input.levels);
            let trace = oracle::execute(&def, &input);
            let mut out = vec![0i32; 10];
            interp.run(&input, &mut out).expect("lengths match");
            assert_eq!(out, trace.output(), "seed {seed}");
            // Every spike count within its layer's timesteps; the oracle's tensors are the
            // runtime's intermediate codes (the output equality covers them through the chain).
            for (i, l) in def.layers.iter().enumerate() {
                if l.spiking.is_some() {
                    let t = &trace.tensors[i + 1];
                    assert!(t
                        .values
                        .iter()
                        .all(|&v| (0..=l.timesteps as i32).contains(&v)));
                    fired += t.values.iter().map(|&v| v as u64).sum::<u64>();
                }
            }
            // Counters: the first layer (analog input) multiplies; the layers reading spike
            // counts accumulate, once per spike and synapse.
            let ops = interp.layer_ops();
            for (i, l) in def.layers.iter().enumerate() {
                let x = &trace.tensors[l.input as usize];
                match (l.kind.has_weights(), i == 0) {
                    (true, true) => {
                        assert_eq!(ops[i].macs, trace.macs[i], "seed {seed} layer {i}");
                        assert_eq!(ops[i].accumulates, 0);
                    }
                    (true, false) => {
                        assert_eq!(ops[i].macs, 0, "seed {seed} layer {i}");
                        assert_eq!(
                            ops[i].accumulates,
                            events(&def, i, x),
                            "seed {seed} layer {i}"
                        );
                    }
                    _ => assert_eq!((ops[i].macs, ops[i].accumulates), (0, 0)),
                }
            }
        }
    }
    assert!(fired > 10_000, "the random networks barely spike: {fired}");
}

#[test]
fn committed_spiking_fixture_loads_and_matches_the_oracle() {
    use bitspike_tests::models::{SNN_FIXTURE_PATH, SNN_FIXTURE_SEED, SNN_FIXTURE_VECTORS_PATH};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(dir.join(SNN_FIXTURE_PATH)).expect("committed fixture");
    let vbytes = std::fs::read(dir.join(SNN_FIXTURE_VECTORS_PATH)).expect("committed vectors");
    let v = bitspike_core::vectors::Vectors::parse(&vbytes).expect("valid vectors");
    let model = Model::load(&bytes).expect("the committed spiking model loads");
    assert!(model.file().layer(0).spiking.is_some());
    let def = network(SNN_FIXTURE_SEED);
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model.bind(&mut arena).expect("arena");
    for k in 0..v.len() {
        let mut out = vec![0i32; model.output_len()];
        interp.run(v.input(k), &mut out).expect("runs");
        let want: Vec<i32> = (0..v.output_len()).map(|j| v.expected(k, j)).collect();
        assert_eq!(out, want, "vector {k}");
        assert_eq!(oracle::run(&def, v.input(k)), want, "oracle, vector {k}");
    }
}

#[test]
fn constant_current_counts_follow_the_closed_form() {
    // With 0 <= v0 < theta the count is clamp(floor((v0 + T * I) / theta), 0, T): QAC eq. 4-5.
    let mut rng = Rng::new(11);
    for _ in 0..20_000 {
        let theta = rng.int(1, 5000) as i32;
        let v0 = rng.int(0, theta as i64 - 1) as i32;
        let i = rng.int(-3 * theta as i64, 3 * theta as i64) as i32;
        let t = rng.int(1, 64) as u16;
        let closed =
            ((v0 as i64 + t as i64 * i as i64).div_euclid(theta as i64)).clamp(0, t as i64);
        assert_eq!(
            snn::fire(i, v0, theta, t) as i64,
            closed,
            "{theta} {v0} {i} {t}"
        );
    }
}

#[test]
fn integrate_and_fire_follows_hand_worked_traces() {
    // theta 4, v0 = theta / 2 = 2, current 3 over 5 steps:
    // m = 5 fire v=1; m = 4 fire v=0; m = 3 v=3; m = 6 fire v=2; m = 5 fire v=1 -> 4 spikes.
    let mut v = 2;
    let s: Vec<bool> = (0..5).map(|_| snn::step(&mut v, 3, 4)).collect();
    assert_eq!((s, v), (vec![true, true, false, true, true], 1));
    assert_eq!(snn::fire(3, 2, 4, 5), 4);
    // The same current with v0 = 0 fires later and less: 3, 6 fire 2, 5 fire 1, 4 fire 0, 3.
    assert_eq!(snn::fire(3, 0, 4, 5), 3);
    // One step: fires only when v0 + I reaches theta.
    assert_eq!(snn::fire(2, 2, 4, 1), 1);
    assert_eq!(snn::fire(1, 2, 4, 1), 0);
    // A negative initial potential delays the first spike: -5+3=-2, 1, 4 fire 0, 3, 6 fire 2.
    assert_eq!(snn::fire(3, -5, 4, 5), 2);
    // Saturation: T spikes at most, whatever the current.
    assert_eq!(snn::fire(100, 0, 4, 3), 3);
    // Membrane units: acc 3 at shift 2 with bias -1 is a current of 11.
    assert_eq!(snn::current(3, 2, -1), 11);
}

#[test]
fn alignment_modes_follow_hand_worked_examples() {
    // T_l = 4 -> T_{l+1} = 5 (not a multiple), train 1 0 1 1 (3 spikes), units of 1/4 spike.
    let train = [1u8, 0, 1, 1];
    let mut out = [0u32; 5];
    aligned_input(Align::Average, &train, &mut out);
    assert_eq!(out, [3; 5]); // 3/4 of a spike every step: the mean, repeated (eq. 12-13)
    aligned_input(Align::Replicate, &train, &mut out);
    // Steps floor(t * 4 / 5) = 0, 0, 1, 2, 3 -> spikes 1, 1, 0, 1, 1, each worth 4/4.
    assert_eq!(out, [4, 4, 0, 4, 4]);
    aligned_input(Align::Truncate, &train, &mut out);
    assert_eq!(out, [4, 0, 4, 4, 0]); // the fifth step has no source
                                      // Reduction: T_l = 3 -> T_{l+1} = 2, train 0 1 1 (sums after pooling may exceed 1).
    let train = [0u8, 1, 2];
    let mut out = [0u32; 2];
    aligned_input(Align::Average, &train, &mut out);
    assert_eq!(out, [3, 3]);
    aligned_input(Align::Replicate, &train, &mut out);
    assert_eq!(out, [0, 3]); // steps 0 and floor(3 / 2) = 1
    aligned_input(Align::Truncate, &train, &mut out);
    assert_eq!(out, [0, 3]); // the first two steps; the third is dropped
                             // Equal timesteps: replication and truncation pass the train through, averaging does not.
    let train = [1u8, 0, 0];
    let mut out = [0u32; 3];
    aligned_input(Align::Replicate, &train, &mut out);
    assert_eq!(out, [3, 0, 0]);
    aligned_input(Align::Truncate, &train, &mut out);
    assert_eq!(out, [3, 0, 0]);
    aligned_input(Align::Average, &train, &mut out);
    assert_eq!(out, [1, 1, 1]);
    assert_eq!(source_step(Align::Replicate, 7, 2, 8), Some(1));
    assert_eq!(source_step(Align::Truncate, 2, 2, 8), None);
}

#[test]
fn input_codes_above_the_input_levels_are_refused() {
    let mut def = network(9);
    def.input.levels = 100;
    let bytes = write(&def).expect("valid");
    let model = Model::load(&bytes).expect("loads");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model.bind(&mut arena).expect("arena");
    let mut input = vec![100u8; def.input.shape.len()];
    let mut out = vec![0i32; 10];
    interp
        .run(&input, &mut out)
        .expect("codes at the level count run");
    input[3] = 101;
    assert_eq!(
        interp.run(&input, &mut out),
        Err(Error::InputCode {
            index: 3,
            value: 101,
            levels: 100
        })
    );
}

#[test]
fn loader_refuses_what_the_engine_does_not_run() {
    let def = network(3);
    for (align, want) in [
        (Align::Replicate, Unsupported::Alignment),
        (Align::Truncate, Unsupported::Alignment),
    ] {
        let mut d = def.clone();
        d.layers[2].align = align;
        let bytes = write(&d).expect("valid file");
        match Model::load(&bytes) {
            Err(Error::Unsupported { layer: 2, feature }) => assert_eq!(feature, want),
            other => panic!("{align:?}: {other:?}"),
        }
    }
    let mut d = def.clone();
    d.layers[1].timesteps = 3; // a pool with timesteps
    let bytes = write(&d).expect("valid file");
    assert!(matches!(
        Model::load(&bytes),
        Err(Error::Unsupported {
            layer: 1,
            feature: Unsupported::Timesteps
        })
    ));
}

#[test]
fn reader_refuses_inconsistent_spiking_layers() {
    let def = network(5);
    let refuse = |d: &ModelDef| match write(d) {
        Err(bitspike_core::format::writer::WriteError::Invalid(FormatError::Layer {
            field,
            ..
        })) => field,
        other => panic!("expected a refused layer, got {other:?}"),
    };
    // Output levels must equal the timesteps.
    let mut d = def.clone();
    d.layers[0].levels = d.layers[0].timesteps as u8 + 1;
    assert_eq!(refuse(&d), LayerField::Timesteps);
    // A spiking layer does not requantize.
    let mut d = def.clone();
    d.layers[0].requant = vec![Requant::default(); d.layers[0].out_channels as usize];
    assert_eq!(refuse(&d), LayerField::Multiplier);
    // Thresholds are positive.
    let mut d = def.clone();
    d.layers[0].spiking.as_mut().expect("spiking").threshold[0] = 0;
    assert_eq!(refuse(&d), LayerField::Threshold);
    // The membrane must stay inside i32 for every input.
    let mut d = def.clone();
    d.layers[0].spiking.as_mut().expect("spiking").shift = 24;
    assert_eq!(refuse(&d), LayerField::Membrane);
    let mut d = def.clone();
    d.layers[0].spiking.as_mut().expect("spiking").shift = 25;
    assert_eq!(refuse(&d), LayerField::MembraneShift);
    // A spiking output layer cannot also be raw.
    let mut d = def;
    let last = d.layers.len() - 1;
    d.layers[last].spiking = Some(SpikingDef {
        threshold: vec![1; 10],
        v0: vec![0; 10],
        shift: 0,
    });
    assert_eq!(refuse(&d), LayerField::Flags);
}

/// Layers whose measured input density lies below the target's break-even run event by event
/// (the scatter kernels), with the same outputs as the oracle; a dense one keeps its kernel.
#[test]
fn sparse_layers_run_event_by_event_and_match_the_oracle() {
    use bitspike_core::kernel::{density, events_pay, Kernel};
    use bitspike_rt::ISA;
    let sparse = density(1, 100);
    let dense = density(90, 100);
    assert!(events_pay(ISA, sparse) && !events_pay(ISA, dense) && !events_pay(ISA, 0));
    let mut scattered = 0;
    for seed in 0..60 {
        let mut def = network(seed);
        for (i, l) in def.layers.iter_mut().enumerate() {
            if l.kind.has_weights() {
                l.input_density = if i % 2 == 0 { sparse } else { dense };
            }
        }
        let bytes = write(&def).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let model = Model::load(&bytes).unwrap();
        for (i, l) in def.layers.iter().enumerate() {
            if l.kind.has_weights() {
                let events = model.kernel(i).kernel == Kernel::Events;
                assert_eq!(events, i % 2 == 0, "seed {seed} layer {i}");
                scattered += usize::from(events);
            }
        }
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interp = model.bind(&mut arena).expect("arena fits");
        let mut rng = Rng::new(seed ^ 0xe7e7);
        for _ in 0..3 {
            let input = gen::codes(&mut rng, def.input.shape.len(), def.input.levels);
            let mut out = vec![0i32; 10];
            interp.run(&input, &mut out).expect("lengths match");
            assert_eq!(out, oracle::execute(&def, &input).output(), "seed {seed}");
        }
    }
    assert!(scattered > 50, "{scattered} event-driven layers");
}

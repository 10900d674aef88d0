//! Models from the generator (`bitspike_tests::generate`, what the fuzz target `generated`
//! draws from) through the writer, the reader and the runtime against the oracle, and every
//! kernel set on every layer (`bitspike_tests::sets`); that the generator reaches every
//! geometry the reader accepts; and the regressions the fuzzing found.

use arbitrary::Unstructured;
use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::format::writer::{write, write_planned, Budget};
use bitspike_core::layer::{LayerKind, Shape, Window};
use bitspike_rt::Model;
use bitspike_tests::generate::{self, FUZZ};
use bitspike_tests::oracle::{
    self,
    gen::{self, Rng},
};
use bitspike_tests::sets;
use proptest::prelude::*;

/// Write `def` (with in-place layers where the writer wants them, or none), load it, run it on
/// `input` and compare with the oracle; then every kernel set on every layer.
fn check(def: &ModelDef, input: &[u8], budget: Budget) -> Result<(), String> {
    let bytes = write_planned(def, budget).map_err(|e| format!("the writer refused: {e:?}"))?;
    let model = Model::load(&bytes).map_err(|e| format!("the reader refused: {e:?}"))?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model.bind(&mut arena).map_err(|e| format!("bind: {e:?}"))?;
    let mut out = vec![0i32; model.output_len()];
    interp
        .run(input, &mut out)
        .map_err(|e| format!("run: {e:?}"))?;
    let trace = oracle::execute(def, input);
    if out != trace.output() {
        return Err("the runtime differs from the oracle".into());
    }
    let macs: u64 = trace.macs.iter().sum();
    let ran = interp.total_ops().macs;
    if ran > macs {
        return Err(format!("the runtime counted {ran} MACs, the oracle {macs}"));
    }
    let file = model.file();
    let scratch: Vec<u32> = (0..file.layer_count())
        .map(|i| file.layer(i).scratch_bytes)
        .collect();
    sets::check_model(def, &trace, Some(&scratch))
}

/// The model and an input from fuzzer-like bytes (`None` when the bytes run out first).
fn draw(bytes: &[u8]) -> Option<(ModelDef, Vec<u8>)> {
    let mut u = Unstructured::new(bytes);
    let def = generate::model(&mut u, &FUZZ).ok()?;
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let input = gen::codes(&mut Rng::new(seed), def.input.shape.len(), def.input.levels);
    Some((def, input))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_models_run_bit_exact_on_every_kernel(bytes in proptest::collection::vec(any::<u8>(), 16..400), in_place in any::<bool>()) {
        if let Some((def, input)) = draw(&bytes) {
            let budget = if in_place { Budget::Instructions(u64::MAX) } else { Budget::None };
            if let Err(e) = check(&def, &input, budget) {
                prop_assert!(false, "{}\n{:#?}", e, def);
            }
        }
    }
}

/// What the generator draws, counted over many byte strings: every feature the issue lists
/// appears, and every model it returns is one the writer and the reader accept.
#[test]
fn the_generator_reaches_every_geometry() {
    let mut rng = Rng::new(0x9e4e_7a7e);
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let mut note = |k: &'static str, yes: bool| {
        if yes {
            *seen.entry(k).or_default() += 1;
        }
    };
    let mut models = 0;
    for _ in 0..3000 {
        let len = rng.int(8, 600) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.int(0, 255) as u8).collect();
        let Some((def, _)) = draw(&bytes) else {
            continue;
        };
        models += 1;
        let written = write(&def).expect("every generated model writes");
        Model::load(&written).expect("every generated model loads");
        let shapes: Vec<Shape> = def.tensors().unwrap().iter().map(|t| t.shape).collect();
        let mut timesteps = std::collections::BTreeSet::new();
        for l in &def.layers {
            let w = l.window;
            let conv = l.kind == LayerKind::Conv2d;
            let cin = shapes[l.input as usize].c;
            note("conv", conv);
            note("kernel 7..=11", conv && w.kh.max(w.kw) >= 7);
            note("kernel 1", conv && w.kh == 1);
            note("non-square kernel", conv && w.kh != w.kw);
            note("stride 2..=3", conv && w.sh.max(w.sw) > 1);
            note("padding >= kernel", conv && (w.ph >= w.kh || w.pw >= w.kw));
            note("depthwise", conv && l.groups == cin && cin > 1);
            note("grouped", conv && l.groups > 1 && l.groups < cin);
            note(
                "odd channels",
                conv && l.out_channels % 2 == 1 && l.out_channels > 1,
            );
            note("2-bit", l.weight_bits == 2);
            note("8-bit", l.weight_bits == 8);
            note("odd width 3..=7", matches!(l.weight_bits, 3 | 5 | 6 | 7));
            note("spiking", l.spiking.is_some());
            note("bias", l.bias.is_some() && l.spiking.is_none());
            note("max pool", l.kind == LayerKind::MaxPool);
            note(
                "padded average pool",
                l.kind == LayerKind::AvgPool && w.ph > 0,
            );
            note("global average pool", l.kind == LayerKind::GlobalAvgPool);
            note("add", l.kind == LayerKind::Add);
            note("dense", l.kind == LayerKind::Dense);
            note("raw output", l.raw_output);
            note("measured density", l.input_density > 0);
            if l.spiking.is_some() {
                timesteps.insert(l.timesteps);
            }
        }
        note("mixed timesteps", timesteps.len() > 1);
        note("coded output", !def.layers.last().unwrap().raw_output);
    }
    eprintln!("{models} models: {seen:?}");
    assert!(
        models > 2700,
        "only {models} of 3000 byte strings gave a model"
    );
    let features = [
        "conv",
        "kernel 7..=11",
        "kernel 1",
        "non-square kernel",
        "stride 2..=3",
        "padding >= kernel",
        "depthwise",
        "grouped",
        "odd channels",
        "2-bit",
        "8-bit",
        "odd width 3..=7",
        "spiking",
        "bias",
        "max pool",
        "padded average pool",
        "global average pool",
        "add",
        "dense",
        "raw output",
        "measured density",
        "mixed timesteps",
        "coded output",
    ];
    for f in features {
        let n = seen.get(f).copied().unwrap_or(0);
        assert!(
            n >= 20,
            "the generator drew \"{f}\" {n} times in {models} models"
        );
    }
}

/// A convolution with padding at least its kernel (so whole rows and columns of its windows lie
/// in the padding), for every kernel and padding up to 8, every weight width the kernels
/// specialise and the input levels they specialise: every kernel set, with overflow checks on
/// (the test profile), agrees with the oracle.
#[test]
fn padding_at_and_beyond_the_kernel() {
    let mut rng = Rng::new(1);
    for k in 1u8..=5 {
        for p in k.saturating_sub(1)..=k + 3 {
            for cin in [1u16, 3, 4, 8, 16] {
                for (bits, levels) in [(2u8, 1u8), (4, 15), (8, 255), (5, 3)] {
                    let mut def = ModelDef::new(Shape::new(5, 6, cin), levels, 1.0);
                    let fan = k as usize * k as usize * cin as usize;
                    let typ = gen::typical(fan, levels, bits);
                    let w = gen::weights(&mut rng, 3 * fan, bits);
                    let mut l = LayerDef::conv2d(
                        0,
                        3,
                        Window::square(k, 1 + (p % 2), p),
                        1,
                        bits,
                        w,
                        None,
                        Vec::new(),
                    );
                    l.levels = 15;
                    l.requant = gen::requant(&mut rng, 3, typ, 15);
                    def.push(l);
                    let input = gen::codes(&mut rng, def.input.shape.len(), levels);
                    for budget in [Budget::None, Budget::Instructions(u64::MAX)] {
                        if let Err(e) = check(&def, &input, budget) {
                            panic!("kernel {k}, padding {p}, {cin} channels: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// Fan-ins beyond 1024 per output channel (a 7x7 convolution over 21 channels, a 3x3 over 128, an
/// 11x11 over 16, a 1x1 over 1500, and a dense layer over 3000 inputs): the writer gives each the
/// scratch of its fast kernel, on either instruction set that kernel is chosen (not the
/// reference kernel, several times slower per MAC) and runs with that scratch, bit-exact.
#[test]
fn large_fan_ins_keep_their_fast_kernel() {
    use bitspike_core::format::ModelFile;
    use bitspike_core::kernel::{choose, Isa, Kernel};
    let mut rng = Rng::new(3);
    let convs = [(7u8, 21u16, 10u16), (3, 128, 6), (11, 16, 12), (1, 1500, 2)];
    for (k, c, side) in convs {
        for (bits, levels) in [(8u8, 255u8), (4, 15), (2, 3)] {
            let mut def = ModelDef::new(Shape::new(side, side, c), levels, 1.0);
            let fan = k as usize * k as usize * c as usize;
            let typ = gen::typical(fan, levels, bits);
            let w = gen::weights(&mut rng, 4 * fan, bits);
            let mut l = LayerDef::conv2d(
                0,
                4,
                Window::square(k, 1, k / 2),
                1,
                bits,
                w,
                None,
                Vec::new(),
            );
            l.levels = 255;
            l.requant = gen::requant(&mut rng, 4, typ, 255);
            def.push(l);
            let bytes = write(&def).unwrap();
            let file = ModelFile::parse(&bytes).unwrap();
            let g = file.geometry(0);
            for isa in [Isa::Dsp, Isa::Portable] {
                let chosen = choose(
                    &g,
                    bits,
                    levels,
                    file.layer(0).scratch_bytes,
                    isa,
                    false,
                    false,
                );
                assert_ne!(
                    chosen.kernel,
                    Kernel::Reference,
                    "{k}x{k} over {c} channels, {bits}-bit, on {isa:?}: {:?}",
                    chosen.reason
                );
            }
            let input = gen::codes(&mut rng, def.input.shape.len(), levels);
            if let Err(e) = check(&def, &input, Budget::Instructions(u64::MAX)) {
                panic!("{k}x{k} over {c} channels, {bits}-bit: {e}");
            }
        }
    }
    let mut def = ModelDef::new(Shape::vector(3000), 15, 1.0);
    let mut d = LayerDef::dense(
        0,
        10,
        4,
        gen::weights(&mut rng, 30_000, 4),
        None,
        Vec::new(),
    );
    d.raw_output = true;
    def.push(d);
    let input = gen::codes(&mut rng, 3000, 15);
    check(&def, &input, Budget::None).unwrap();
}

/// The board finding of the generated models (`gen-models`, seed 20261211): a convolution with one
/// output channel over a 1x1x1144 input, a 7x9 kernel padded to its centre, got the gather
/// kernel's 1.3 MB of scratch for 72 072 MACs. The writer now gives a layer at most
/// `scratch_cap` of its own bytes: here the row kernel's one channel of weights, which that
/// kernel is chosen for on either instruction set and runs bit-exact.
#[test]
fn scratch_stays_within_a_few_times_the_layer() {
    use bitspike_core::format::ModelFile;
    use bitspike_core::kernel::{choose, fan_in, scratch_bytes, scratch_cap, Isa, Kernel};
    let mut rng = Rng::new(5);
    for (bits, levels) in [(2u8, 3u8), (4, 15), (8, 15)] {
        let mut def = ModelDef::new(Shape::new(1, 1, 1144), levels, 1.0);
        let window = Window {
            kh: 7,
            kw: 9,
            sh: 1,
            sw: 1,
            ph: 3,
            pw: 4,
        };
        let fan = 63 * 1144;
        let typ = gen::typical(fan, levels, bits);
        let w = gen::weights(&mut rng, fan, bits);
        let mut l = LayerDef::conv2d(0, 1, window, 1, bits, w, None, Vec::new());
        l.levels = 255;
        l.requant = gen::requant(&mut rng, 1, typ, 255);
        def.push(l);
        let bytes = write(&def).unwrap();
        let file = ModelFile::parse(&bytes).unwrap();
        let g = file.geometry(0);
        assert_eq!(fan_in(&g), fan);
        let given = file.layer(0).scratch_bytes;
        let own = (fan as u64 * bits as u64).div_ceil(8) + 1144 + 1;
        assert!(
            scratch_bytes(&g, bits) > 1_000_000,
            "the fast layout is the large one"
        );
        assert!(
            given as u64 <= scratch_cap(own),
            "{bits}-bit: {given} B of scratch for a layer of {own} B"
        );
        assert!(given as usize >= fan, "{bits}-bit: room for the row kernel");
        for isa in [Isa::Dsp, Isa::Portable] {
            let c = choose(&g, bits, levels, given, isa, false, false);
            assert_eq!(c.kernel, Kernel::Row, "{bits}-bit on {isa:?}");
        }
        assert!(
            file.header().arena_bytes < 80_000,
            "{bits}-bit: arena {}",
            file.header().arena_bytes
        );
        let input = gen::codes(&mut rng, 1144, levels);
        if let Err(e) = check(&def, &input, Budget::None) {
            panic!("{bits}-bit: {e}");
        }
    }
}

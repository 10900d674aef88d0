//! Structure-aware fuzzing: the fuzzer's bytes become a model the reader accepts
//! (`bitspike_tests::generate`: every geometry, width, level count, spiking layer, add, pool and
//! head the format allows), which is written twice (with in-place layers where the writer wants
//! them, and with none), loaded, bound and run on input codes from the same bytes. Every output
//! must equal the oracle's bit for bit, the executed MACs may not exceed the oracle's, and every
//! kernel set the runtime has (reference, row, gather, narrow, packed, pairs, depthwise, packed
//! dense, event-driven) must agree with the oracle on every layer (`bitspike_tests::sets`), and
//! the kernel chosen for each layer must run with the scratch the file gives it.
//! Anything else is a finding: a panic, an overflow (the fuzz build checks them), a refusal of a
//! valid model, or a different output.
#![no_main]

use arbitrary::Unstructured;
use bitspike_core::format::writer::{write_planned, Budget};
use bitspike_rt::Model;
use bitspike_tests::generate::{self, FUZZ};
use bitspike_tests::oracle::{self, gen};
use bitspike_tests::sets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(def) = generate::model(&mut u, &FUZZ) else {
        return;
    };
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let input = gen::codes(
        &mut gen::Rng::new(seed),
        def.input.shape.len(),
        def.input.levels,
    );
    let trace = oracle::execute(&def, &input);
    let mut scratch = Vec::new();
    for budget in [Budget::Instructions(u64::MAX), Budget::None] {
        let bytes = match write_planned(&def, budget) {
            Ok(b) => b,
            Err(e) => panic!("the writer refused a generated model: {e:?}\n{def:#?}"),
        };
        let model = match Model::load(&bytes) {
            Ok(m) => m,
            Err(e) => panic!("the reader refused a written model: {e:?}\n{def:#?}"),
        };
        let mut arena = vec![0u8; model.arena_bytes()];
        let Ok(mut interp) = model.bind(&mut arena) else {
            panic!("an arena of the declared size must bind");
        };
        let mut out = vec![0i32; model.output_len()];
        if let Err(e) = interp.run(&input, &mut out) {
            panic!("a loaded model refused its input: {e:?}");
        }
        assert_eq!(out, trace.output(), "runtime != oracle\n{def:#?}");
        let macs: u64 = trace.macs.iter().sum();
        assert!(interp.total_ops().macs <= macs, "more MACs than the oracle");
        let file = model.file();
        scratch = (0..file.layer_count())
            .map(|i| file.layer(i).scratch_bytes)
            .collect();
    }
    if let Err(e) = sets::check_model(&def, &trace, Some(&scratch)) {
        panic!("{e}\n{def:#?}");
    }
});

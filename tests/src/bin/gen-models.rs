//! Write generated models (`bitspike_tests::generate`) with golden vectors from the oracle, for
//! the boards: `cargo run -p bitspike-tests --bin gen-models -- DIR COUNT SEED` writes
//! `DIR/generated-<k>.bsm` and `.bsv` for `k` in `0..COUNT`, each from 4096 bytes drawn from
//! `SEED + k`. The expected outputs come from the oracle, never from the runtime, so a board
//! run checks the device kernels against an independent computation.

use std::path::PathBuf;

use arbitrary::Unstructured;
use bitspike_core::format::writer::write;
use bitspike_tests::generate::{self, FUZZ};
use bitspike_tests::oracle::{self, gen};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, count, seed] = args.as_slice() else {
        return Err("usage: gen-models DIR COUNT SEED".into());
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count
        .parse()
        .map_err(|_| format!("COUNT `{count}`: not a number"))?;
    let seed: u64 = seed
        .parse()
        .map_err(|_| format!("SEED `{seed}`: not a number"))?;
    std::fs::create_dir_all(&dir)?;
    for k in 0..count {
        let mut rng = gen::Rng::new(seed.wrapping_add(k));
        let bytes: Vec<u8> = (0..4096).map(|_| rng.int(0, 255) as u8).collect();
        let def = generate::model(&mut Unstructured::new(&bytes), &FUZZ)?;
        let inputs: Vec<Vec<u8>> = (0..4)
            .map(|_| gen::codes(&mut rng, def.input.shape.len(), def.input.levels))
            .collect();
        let outputs: Vec<Vec<i32>> = inputs.iter().map(|i| oracle::run(&def, i)).collect();
        let vectors = bitspike_core::vectors::write(&inputs, &outputs).ok_or("vector lengths")?;
        let model = write(&def).map_err(|e| format!("{e:?}"))?;
        std::fs::write(dir.join(format!("generated-{k}.bsm")), model)?;
        std::fs::write(dir.join(format!("generated-{k}.bsv")), vectors)?;
        println!(
            "generated-{k}: {} layers, input {}x{}x{}",
            def.layers.len(),
            def.input.shape.h,
            def.input.shape.w,
            def.input.shape.c
        );
    }
    Ok(())
}

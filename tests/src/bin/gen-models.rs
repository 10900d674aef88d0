//! Write generated models (`bitspike_tests::generate`) with golden vectors from the oracle, for
//! the boards: `cargo run -p bitspike-tests --bin gen-models -- DIR COUNT SEED` writes
//! `DIR/generated-<k>.bsm` and `.bsv` for `k` in `0..COUNT`, each from 4096 bytes drawn from
//! the next seed from `SEED` on whose model fits the smallest emulated board (the Cortex-M3's
//! 64 KiB of RAM and 256 KiB of flash, with room for the app); the others are named and skipped.
//! The expected outputs come from the oracle, never from the runtime, so a board run checks the
//! device kernels against an independent computation.

use std::path::PathBuf;

use arbitrary::Unstructured;
use bitspike_core::format::writer::write;
use bitspike_tests::generate::{self, FUZZ};
use bitspike_tests::oracle::{self, gen};

/// The largest arena and model file that fit the smallest emulated board with its app.
const MAX_ARENA: usize = 48 * 1024;
const MAX_MODEL: usize = 128 * 1024;

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
    let mut next = seed;
    for k in 0..count {
        let (def, model, mut rng) = loop {
            let s = next;
            next = next.wrapping_add(1);
            let mut rng = gen::Rng::new(s);
            let bytes: Vec<u8> = (0..4096).map(|_| rng.int(0, 255) as u8).collect();
            let def = generate::model(&mut Unstructured::new(&bytes), &FUZZ)?;
            let model = write(&def).map_err(|e| format!("{e:?}"))?;
            let arena = bitspike_rt::Model::load(&model)
                .map_err(|e| format!("seed {s}: {e}"))?
                .arena_bytes();
            if arena <= MAX_ARENA && model.len() <= MAX_MODEL {
                break (def, model, rng);
            }
            println!(
                "seed {s}: skipped, arena {arena} B and model {} B do not fit the smallest board",
                model.len()
            );
        };
        let inputs: Vec<Vec<u8>> = (0..4)
            .map(|_| gen::codes(&mut rng, def.input.shape.len(), def.input.levels))
            .collect();
        let outputs: Vec<Vec<i32>> = inputs.iter().map(|i| oracle::run(&def, i)).collect();
        let vectors = bitspike_core::vectors::write(&inputs, &outputs).ok_or("vector lengths")?;
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

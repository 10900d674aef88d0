//! Regenerate the committed version-1 fixture, its expected outputs and its golden vectors:
//! `cargo run -p bitspike-tests --bin gen-fixture` (from anywhere in the workspace).
//!
//! Run it only when the fixture itself must change (a new fixture for a new format version goes
//! beside the old one, never over it): the point of the committed file is that it keeps loading.

use std::fmt::Write as _;
use std::path::Path;

use bitspike_core::format::writer::write;
use bitspike_rt::Model;
use bitspike_tests::models::{
    fixture_inputs, fixture_model, spiking_model, FIXTURE_EXPECTED_PATH, FIXTURE_PATH,
    FIXTURE_VECTORS_PATH, SNN_FIXTURE_PATH, SNN_FIXTURE_SEED, SNN_FIXTURE_VECTORS_PATH,
};
use bitspike_tests::oracle::gen;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = write(&fixture_model())?;
    let model = Model::load(&bytes)?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model.bind(&mut arena)?;
    let mut text = String::from(
        "# bitspike fixture model-v1.bsm: expected outputs, one line per input of\n\
         # bitspike_tests::models::fixture_inputs(); made by `cargo run -p bitspike-tests --bin gen-fixture`\n",
    );
    let inputs = fixture_inputs();
    let mut outputs = Vec::new();
    for input in &inputs {
        let mut out = vec![0i32; model.output_len()];
        interp.run(input, &mut out)?;
        let line: Vec<String> = out.iter().map(|v| v.to_string()).collect();
        writeln!(text, "{}", line.join(" "))?;
        outputs.push(out);
    }
    let vectors =
        bitspike_core::vectors::write(&inputs, &outputs).ok_or("vector lengths differ")?;
    std::fs::write(dir.join(FIXTURE_PATH), &bytes)?;
    std::fs::write(dir.join(FIXTURE_EXPECTED_PATH), text)?;
    std::fs::write(dir.join(FIXTURE_VECTORS_PATH), vectors)?;
    println!(
        "wrote {} ({} bytes, arena {} bytes) and {}",
        FIXTURE_PATH,
        bytes.len(),
        model.arena_bytes(),
        FIXTURE_EXPECTED_PATH
    );

    // The spiking fixture: a mixed-timestep network and 8 golden vectors.
    let def = spiking_model(SNN_FIXTURE_SEED);
    let bytes = write(&def)?;
    let model = Model::load(&bytes)?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model.bind(&mut arena)?;
    let mut rng = gen::Rng::new(SNN_FIXTURE_SEED);
    let inputs: Vec<Vec<u8>> = (0..8)
        .map(|_| gen::codes(&mut rng, def.input.shape.len(), def.input.levels))
        .collect();
    let mut outputs = Vec::new();
    for input in &inputs {
        let mut out = vec![0i32; model.output_len()];
        interp.run(input, &mut out)?;
        outputs.push(out);
    }
    let vectors =
        bitspike_core::vectors::write(&inputs, &outputs).ok_or("vector lengths differ")?;
    std::fs::write(dir.join(SNN_FIXTURE_PATH), &bytes)?;
    std::fs::write(dir.join(SNN_FIXTURE_VECTORS_PATH), vectors)?;
    println!(
        "wrote {SNN_FIXTURE_PATH} ({} bytes) and its vectors",
        bytes.len()
    );
    Ok(())
}

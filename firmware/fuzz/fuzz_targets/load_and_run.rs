//! Fuzz `Model::load` and, for whatever loads, `bind` and one inference.
//!
//! The first byte chooses the mode: even, the rest is a model file as is (the CRC checks guard
//! the rest); odd, the harness recomputes both CRCs first, so that mutations reach every deeper
//! check (tables, shapes, arrays, the arena plan) and the kernels. The input codes come from the
//! file bytes, so the inference sees varied data.
#![no_main]

use bitspike_rt::bitspike_core::format::{crc32, HEADER_LEN};
use bitspike_rt::Model;
use libfuzzer_sys::fuzz_target;

/// Keep the arena within what a fuzzer iteration can afford.
const MAX_ARENA: usize = 1 << 20;
/// Keep one inference within what a fuzzer iteration can afford (kernel inner-loop steps).
const MAX_WORK: u64 = 1 << 22;

fn reseal(b: &mut [u8]) {
    if b.len() < HEADER_LEN {
        return;
    }
    let payload = u32::from_le_bytes([b[20], b[21], b[22], b[23]]) as usize;
    if let Some(p) = b.get(HEADER_LEN..HEADER_LEN.saturating_add(payload)) {
        let crc = crc32(p);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
    }
    let h = crc32(&b[..60]);
    b[60..64].copy_from_slice(&h.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        reseal(&mut bytes);
    }
    let Ok(model) = Model::load(&bytes) else {
        return;
    };
    if model.arena_bytes() > MAX_ARENA {
        return;
    }
    let file = model.file();
    let geometry = |i| file.geometry(i);
    let work: u64 = (0..file.layer_count())
        .map(|i| bitspike_rt::bitspike_core::cost::work(&geometry(i)))
        .fold(0u64, u64::saturating_add);
    if work > MAX_WORK {
        return;
    }
    let macs: u64 = (0..file.layer_count())
        .map(|i| bitspike_rt::bitspike_core::cost::macs(&geometry(i)))
        .sum();
    let mut arena = vec![0u8; model.arena_bytes()];
    let Ok(mut interp) = model.bind(&mut arena) else {
        panic!("an arena of the declared size must bind");
    };
    let levels = file.input().levels;
    let mut input: Vec<u8> = (0..model.input_len())
        .map(|i| bytes.get(i % bytes.len().max(1)).copied().unwrap_or(0))
        .collect();
    let mut output = vec![0i32; model.output_len()];
    // Codes above the input levels are refused before anything runs.
    if input.iter().any(|&v| v > levels) && interp.run(&input, &mut output).is_ok() {
        panic!("an input code above the input levels must be refused");
    }
    for v in &mut input {
        *v = (*v).min(levels);
    }
    if interp.run(&input, &mut output).is_err() {
        panic!("a loaded model with matching lengths and codes must run");
    }
    // Executed MACs never exceed the analytic count (padding is skipped, never added).
    assert!(interp.total_ops().macs <= macs);
});

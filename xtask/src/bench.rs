//! `cargo xtask bench`: the benchmark models on one board, their figures and per-layer counts,
//! written to `boards/bench/<board>.{md,json}`.

use std::fmt::Write as _;
use std::path::Path;

use crate::board::{self, Board, Data};
use crate::root;
use crate::tasks::*;

/// The benchmark models: (label, `bitspike model --arch`, weight bits, vectors). Hidden layers
/// carry 4-bit activations (codes 0..=15) in every model, so `resnet8-w4` is 4-bit weights x
/// 4-bit inputs; the spiking network's hidden layers read pooled counts of codes up to 12.
const BENCH: [(&str, &str, u8, u32); 14] = [
    ("resnet8-int8", "resnet8", 8, 1),
    ("resnet8-w4", "resnet8", 4, 1),
    ("resnet8-w2", "resnet8", 2, 1),
    ("resnet8-mixed", "resnet8-mixed", 8, 1),
    ("cnn-w4", "cnn", 4, 2),
    ("cnn-int8", "cnn", 8, 2),
    ("dscnn-int8", "dscnn", 8, 1),
    ("dscnn-w4", "dscnn", 4, 1),
    ("snn-qac", "snn", 4, 2),
    ("snn-twin", "snn-twin", 4, 2),
    ("snn-twin-int8", "snn-twin", 8, 2),
    ("cnn28-int8", "cnn28", 8, 2),
    ("mlp-int8", "mlp", 8, 2),
    ("mlp-w4", "mlp", 4, 2),
];

/// ARM's CMSIS-NN on the ResNet-8 layers, measured by us under the same QEMU (`qemu-mps2-an386`,
/// Cortex-M4) and instruction counter: int8 kernels, and the 4-bit-weight path.
const CMSIS_NN_RESNET8: [(&str, u64); 2] = [("int8", 29_840_000), ("4-bit weights", 51_850_000)];

/// `cargo xtask bench [--board B]`: benchmark figures, printed and written to
/// `boards/bench/<board>.{md,json}` (committed, so that a change shows in a diff).
pub fn bench(board: &str) -> Result<(), String> {
    let board = board::load(board)?;
    let dir = work_dir("bench")?;
    let mut rows = Vec::new();
    for (label, arch, bits, count) in BENCH {
        let model = dir.join(format!("{label}.bsm"));
        // Sized for the board's core (Armv6-M boards get the threshold tables).
        bitspike(&[
            "model",
            "--arch",
            arch,
            "--bits",
            &bits.to_string(),
            "--board",
            &board.name,
            "--out",
            &model.to_string_lossy(),
        ])?;
        // Random inputs: the event-driven kernels' work depends on the data, and an all-zero
        // image would time them at almost nothing.
        let vectors = vectors_with(&model, None, count, true)?;
        let f = measured(&board, label, &model, Data::Embedded(&vectors))?;
        print!("{}", f.table(&board));
        let layers = layer_table(&board, &model, &f)?;
        print!("{layers}");
        rows.push((f, layers));
    }
    let mut md = format!(
        "# Benchmarks on {}\n\nMade by `cargo xtask bench --board {}`: random weights (speed, memory and bit-exactness do not depend on them) \
         and random input codes (the event-driven kernels' speed does), \
         the runtime's default kernels for the board's core, release profile of `boards/Cargo.toml`. \
         Instructions are QEMU TCG counts between the inference markers (not cycles); MACs count \
         the products inside the input (padding skipped); for a spiking model, instructions per MAC \
         are left out (its work is synaptic operations). `.text` is the board app's code: the runtime \
         with every kernel, the board harness, defmt and semihosting. Energy is the 45 nm analytic \
         estimate (4.6 pJ per MAC), not a measurement.\n\n\
         | model | MACs | instructions / inference | instructions / MAC | .text B | flash B | RAM B (static + stack) | arena B | stack B | model B | 45 nm nJ |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        board.name, board.name
    );
    for (f, _) in &rows {
        let mean = f.insns_mean();
        let per_mac = if f.spiking {
            "-".to_string()
        } else {
            format!("{:.2}", mean / f.macs.max(1) as f64)
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {per_mac} | {} | {} | {} | {} | {} | {} | {:.1} |",
            f.model,
            f.macs,
            mean,
            f.built.sizes.text,
            f.built.sizes.flash(),
            f.ram(),
            f.arena,
            f.stack,
            f.model_bytes,
            f.energy_nj()
        );
    }
    let insns = |label: &str| {
        rows.iter()
            .find(|(f, _)| f.model == label)
            .map_or(0.0, |(f, _)| f.insns_mean())
    };
    if board
        .qemu
        .as_ref()
        .is_some_and(|q| q.cpu.as_deref() == Some("cortex-m4"))
    {
        let int8 = insns("resnet8-int8");
        let _ = write!(
            md,
            "\n## Beside CMSIS-NN\n\nARM's CMSIS-NN (int8 kernels: im2col to 16 bits and SMLAD) on the same \
             ResNet-8 layers, measured by us under the same QEMU and instruction counter, against \
             bitspike on this board:\n\n| ResNet-8 | CMSIS-NN instructions | bitspike instructions | bitspike / CMSIS-NN |\n|---|---:|---:|---:|\n"
        );
        for ((what, cmsis), ours) in CMSIS_NN_RESNET8.iter().zip(["resnet8-int8", "resnet8-w4"]) {
            let b = insns(ours);
            let _ = writeln!(
                md,
                "| {what} | {cmsis} | {b:.0} | {:.2} |",
                b / *cmsis as f64
            );
        }
        let _ = write!(
            md,
            "\nSub-byte weights against bitspike's own int8: 4-bit {:.3}x, 2-bit {:.3}x, the mixed plan \
             {:.3}x. The spiking network against its quantized twin {:.3}x; the twin (4-bit hidden \
             weights) against the same net with int8 weights {:.3}x. The MLP (dense layers only) \
             with 4-bit weights against int8 {:.3}x.\n",
            insns("resnet8-w4") / int8.max(1.0),
            insns("resnet8-w2") / int8.max(1.0),
            insns("resnet8-mixed") / int8.max(1.0),
            insns("snn-qac") / insns("snn-twin").max(1.0),
            insns("snn-twin") / insns("snn-twin-int8").max(1.0),
            insns("mlp-w4") / insns("mlp-int8").max(1.0),
        );
    }
    let mut json = String::from("[\n");
    for (i, (f, _)) in rows.iter().enumerate() {
        let _ = writeln!(
            json,
            "  {}{}",
            f.json(),
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    json.push_str("]\n");
    md.push_str("\n## Per layer\n\nInstructions of each layer in the first inference (the runtime calls a marker after each layer; the counter records how far it got). The kernel is the one the runtime chose for the layer on this board.\n");
    for (f, layers) in &rows {
        let _ = write!(md, "\n### {}\n\n{layers}", f.model);
    }
    let out = root().join("boards/bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    for (ext, text) in [("md", &md), ("json", &json)] {
        let p = out.join(format!("{}.{ext}", board.name));
        std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// Per-layer figures of one measured model as a Markdown table: kind, shapes, weight bits,
/// the kernel the runtime chose on `board`, MACs, instructions and instructions per MAC.
fn layer_table(board: &Board, model: &Path, f: &Figures) -> Result<String, String> {
    use bitspike_core::kernel::{choose, Isa};
    let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let file = bitspike_core::format::ModelFile::parse(&bytes)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let isa = if board.target.starts_with("thumbv7em") {
        Isa::Dsp
    } else {
        Isa::Portable
    };
    let shape = |s: bitspike_core::layer::Shape| format!("{}x{}x{}", s.h, s.w, s.c);
    let mut t = String::from(
        "| # | kind | input | output | w bits | kernel | MACs | instructions | per MAC |\n|---:|---|---|---|---:|---|---:|---:|---:|\n",
    );
    for i in 0..file.layer_count() {
        let l = file.layer(i);
        let g = file.geometry(i);
        let macs = bitspike_core::cost::macs(&g);
        let insns = f.layer_insns.get(i).copied().unwrap_or(0);
        let kernel = choose(
            &g,
            l.weight_bits,
            file.tensor(l.input as usize).levels,
            l.scratch_bytes,
            isa,
            false,
            false,
        )
        .kernel;
        let per = if macs > 0 {
            format!("{:.2}", insns as f64 / macs as f64)
        } else {
            "-".into()
        };
        let _ = writeln!(
            t,
            "| {i} | {} | {} | {} | {} | {} | {macs} | {insns} | {per} |",
            g.kind.name(),
            shape(g.input),
            shape(g.output),
            if l.weight_bits > 0 {
                l.weight_bits.to_string()
            } else {
                "-".into()
            },
            kernel.name(),
        );
    }
    Ok(t)
}

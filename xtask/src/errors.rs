//! Bad input to the board tasks, as a user would give it: each must end in one clear line on
//! stderr naming the file, value or board at fault, a non-zero exit code, and no file written
//! (the golden vectors a run would have made do not appear). Run by `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::layer::Shape;

use crate::root;
use crate::steps::Steps;
use crate::tasks::work_dir;

/// A model of 1.2 MB of weights (a dense layer of 3000 inputs and 400 outputs): larger than the
/// flash of the Cortex-M3 and STM32F4 boards, smaller than the emulated Cortex-M4's.
fn big_model(dir: &Path) -> Result<PathBuf, String> {
    let mut m = ModelDef::new(Shape::vector(3000), 255, 1.0);
    let mut d = LayerDef::dense(0, 400, 8, vec![1; 1_200_000], None, Vec::new());
    d.raw_output = true;
    m.push(d);
    let bytes = bitspike_core::format::writer::write(&m).map_err(|e| format!("{e:?}"))?;
    let path = dir.join("big.bsm");
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Run `cargo xtask <args>` (this binary) and check its refusal: exit code not 0, exactly one
/// line on stderr, starting with `error:` and containing `needle`.
fn refused(args: &[&str], needle: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask itself: {e}"))?;
    let out = Command::new(exe)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run xtask: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.trim_end().lines().collect();
    if out.status.success() {
        return Err(format!("`cargo xtask {}` succeeded", args.join(" ")));
    }
    if lines.len() != 1 || !lines[0].starts_with("error: ") || !lines[0].contains(needle) {
        return Err(format!(
            "`cargo xtask {}`: expected one line with `{needle}`, got:\n{err}",
            args.join(" ")
        ));
    }
    println!("{}", lines[0]);
    Ok(())
}

/// Every case, one step each.
pub fn check(s: &mut Steps) {
    let dir = match work_dir("errors") {
        Ok(d) => d,
        Err(e) => return s.fail("errors: a work folder", &e),
    };
    let big = match big_model(&dir) {
        Ok(p) => p,
        Err(e) => return s.fail("errors: a model too large for most boards", &e),
    };
    let corrupt = dir.join("corrupt.bsm");
    if let Err(e) = std::fs::write(&corrupt, b"BITSPIKE\x01\x00 then nothing") {
        return s.fail("errors: a corrupt model", &e.to_string());
    }
    let fixture = root().join("tests/fixtures/model-v1.bsm");
    let snn_vectors = root().join("tests/fixtures/snn-v1.bsv");
    let (big_s, corrupt_s, fixture_s, snn_s) = (
        big.to_string_lossy().into_owned(),
        corrupt.to_string_lossy().into_owned(),
        fixture.to_string_lossy().into_owned(),
        snn_vectors.to_string_lossy().into_owned(),
    );
    // The golden vectors the tasks would write for the big model.
    let vectors = root().join("target/bitspike/vectors/big.bsv");
    let _ = std::fs::remove_file(&vectors);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "qemu with a model too large for the board",
            vec!["qemu", "--board", "qemu-lm3s6965", "--model", &big_s],
            "does not fit qemu-lm3s6965",
        ),
        (
            "measure with a model too large for the board",
            vec!["measure", "--board", "qemu-lm3s6965", "--model", &big_s],
            "does not fit qemu-lm3s6965",
        ),
        (
            "flash with a model too large for the board",
            vec!["flash", "--board", "stm32f4-discovery", "--model", &big_s],
            "does not fit stm32f4-discovery",
        ),
        (
            "a missing model file",
            vec![
                "qemu",
                "--board",
                "qemu-mps2-an386",
                "--model",
                "no/such.bsm",
            ],
            "--model no/such.bsm: no such file",
        ),
        (
            "a corrupt model file",
            vec!["qemu", "--board", "qemu-mps2-an386", "--model", &corrupt_s],
            "corrupt.bsm: model file truncated",
        ),
        (
            "golden vectors of another network",
            vec![
                "qemu",
                "--board",
                "qemu-mps2-an386",
                "--model",
                &fixture_s,
                "--vectors",
                &snn_s,
            ],
            "snn-v1.bsv holds",
        ),
        (
            "an unknown board",
            vec!["qemu", "--board", "nope", "--model", &fixture_s],
            "unknown board `nope`",
        ),
        (
            "a missing flag",
            vec!["qemu", "--model", &fixture_s],
            "--board",
        ),
        ("an unknown task", vec!["nope"], "unknown task `nope`"),
        (
            "an unknown fuzz target",
            vec!["fuzz", "--target", "nope"],
            "unknown fuzz target `nope`",
        ),
    ];
    for (what, args, needle) in cases {
        let name = format!("errors: {what} is one line");
        s.begin(&name);
        let r = refused(&args, needle);
        if let Err(e) = &r {
            eprintln!("{e}");
        }
        s.end(&name, r.is_ok());
    }
    let name = "errors: nothing written before refusing";
    s.begin(name);
    let clean = !vectors.exists();
    if !clean {
        eprintln!("{} was written", vectors.display());
    }
    s.end(name, clean);
}

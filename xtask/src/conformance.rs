//! `cargo xtask conformance`: host golden vectors against QEMU on every emulated board, the
//! runner's self-tests, the probe session over QEMU, and trained models end to end.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::board::{self, Board, Data};
use crate::root;
use crate::steps::Steps;
use crate::tasks::*;

/// The conformance models: every layer kind at every weight width, the mixed-width demo, six
/// random networks, the committed version-1 fixture and the committed mixed-timestep spiking
/// fixture.
fn conformance_models() -> Result<Vec<(String, PathBuf, PathBuf)>, String> {
    let dir = work_dir("conformance")?;
    let mut out = Vec::new();
    let mut make = |name: String, args: Vec<String>| -> Result<(), String> {
        let model = dir.join(format!("{name}.bsm"));
        let vectors = dir.join(format!("{name}.bsv"));
        let mut a: Vec<&str> = vec!["model"];
        a.extend(args.iter().map(String::as_str));
        let m = model.to_string_lossy().into_owned();
        a.extend(["--out", &m]);
        bitspike(&a)?;
        bitspike(&[
            "golden",
            "--model",
            &m,
            "--count",
            "8",
            "--seed",
            "7",
            "--out",
            &vectors.to_string_lossy(),
        ])?;
        out.push((name, model, vectors));
        Ok(())
    };
    for bits in 2..=8u8 {
        let b = bits.to_string();
        make(
            format!("kinds-w{bits}"),
            vec![
                "--arch".into(),
                "kinds".into(),
                "--bits".into(),
                b.clone(),
                "--seed".into(),
                b,
            ],
        )?;
    }
    make("demo-mixed".into(), vec!["--arch".into(), "demo".into()])?;
    // The same network sized for an Armv6-M board: the pairs kernel's threshold tables there.
    make(
        "demo-armv6m".into(),
        vec![
            "--arch".into(),
            "demo".into(),
            "--board".into(),
            "qemu-an386-v6m".into(),
        ],
    )?;
    // Random geometries: every kernel (gather, row, depthwise, pools, add, dense) on shapes
    // nobody chose, at random widths, on every emulated board (the DSP assembly on the M4).
    for seed in 1..=6u32 {
        make(
            format!("random-{seed}"),
            vec![
                "--arch".into(),
                "random".into(),
                "--seed".into(),
                seed.to_string(),
            ],
        )?;
    }
    // The packed and pairs kernels' flush intervals at their edge, in the assembly each board
    // runs: every weight at its extreme, the golden vectors' all-top input, raw accumulators out.
    for bits in [8u8, 4, 2] {
        for (arch, name) in [("bound", "bound"), ("bound-neg", "bound-neg")] {
            make(
                format!("{name}-w{bits}"),
                vec![
                    "--arch".into(),
                    arch.into(),
                    "--bits".into(),
                    bits.to_string(),
                ],
            )?;
        }
    }
    // The packed dense kernel's flush interval at its edge: all-255 codes, every weight at its
    // largest, an odd number of words and a tail.
    for bits in [4u8, 2] {
        make(
            format!("bound-dense-w{bits}"),
            vec![
                "--arch".into(),
                "bound-dense".into(),
                "--bits".into(),
                bits.to_string(),
            ],
        )?;
    }
    out.push((
        "fixture-v1".into(),
        root().join("tests/fixtures/model-v1.bsm"),
        root().join("tests/fixtures/model-v1.bsv"),
    ));
    out.push((
        "snn-fixture".into(),
        root().join("tests/fixtures/snn-v1.bsm"),
        root().join("tests/fixtures/snn-v1.bsv"),
    ));
    Ok(out)
}

fn expected_path(board: &Board) -> PathBuf {
    root()
        .join("boards/expected")
        .join(format!("{}.txt", board.name))
}

/// `cargo xtask conformance [--board B] [--bless]`: host golden vectors against QEMU on every
/// emulated board, with the expected output and sizes committed; plus the runner's self-tests
/// (a wrong expected output, a hang, a panic and a stack overflow must each fail the run) and
/// generated models on apps built with overflow checks.
pub fn conformance(steps: &mut Steps, board: Option<&str>, bless: bool) {
    let boards = match board.map(board::load).transpose() {
        Ok(Some(b)) => vec![b],
        Ok(None) => match board::all() {
            Ok(all) => all.into_iter().filter(|b| b.qemu.is_some()).collect(),
            Err(e) => return steps.fail("conformance: boards", &e),
        },
        Err(e) => return steps.fail("conformance: boards", &e),
    };
    let models = match conformance_models() {
        Ok(m) => m,
        Err(e) => return steps.fail("conformance: models", &e),
    };
    for b in &boards {
        let mut text = format!(
            "# cargo xtask conformance on {}: host golden vectors vs QEMU (instructions are TCG counts).\n\
             # Regenerate deliberately with `cargo xtask conformance --bless`.\n\
             # model       vectors mismatches instructions(min..max) stack arena flash ram\n",
            b.name
        );
        let mut all_ok = true;
        for (name, model, vectors) in &models {
            let step = format!("conformance: {name} on {}", b.name);
            steps.begin(&step);
            let run = measured(b, name, model, Data::Embedded(vectors))
                .and_then(|f| confidence_agrees(&f, vectors).map(|()| f));
            match run {
                Ok(f) => {
                    let (lo, hi) = f.insns_range();
                    let _ = writeln!(
                        text,
                        "{name:<13} {:>7} {:>10} {lo:>10}..{hi:<10} {:>5} {:>5} {:>6} {:>6}",
                        f.vectors,
                        f.mismatches,
                        f.stack,
                        f.arena,
                        f.built.sizes.flash(),
                        f.ram()
                    );
                    println!(
                        "{} vectors, 0 mismatches, {lo}..{hi} instructions",
                        f.vectors
                    );
                    steps.end(&step, true);
                }
                Err(e) => {
                    eprintln!("{e}");
                    all_ok = false;
                    steps.end(&step, false);
                }
            }
        }
        let step = format!("conformance: expected output of {}", b.name);
        steps.begin(&step);
        let path = expected_path(b);
        let ok = if !all_ok {
            eprintln!("not compared: a run failed");
            false
        } else if bless {
            let written = path
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| std::fs::write(&path, &text));
            match written {
                Ok(()) => {
                    println!("wrote {}", path.display());
                    true
                }
                Err(e) => {
                    eprintln!("cannot write {}: {e}", path.display());
                    false
                }
            }
        } else {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            // Flash within the path slack, everything else (instructions, stack, arena, RAM)
            // exactly.
            if tables_agree(&old, &text, &[6]) {
                println!("matches {}", path.display());
                true
            } else {
                eprintln!("{} differs from this run:", path.display());
                eprintln!("--- committed\n{old}+++ this run\n{text}");
                eprintln!("if the change is deliberate: cargo xtask conformance --bless");
                false
            }
        };
        steps.end(&step, ok);
        selftests(steps, b, &models);
        probe_session_on_qemu(steps, b);
    }
    overflow_checked(steps, &boards, GENERATED);
}

/// The real-board path on an emulated board: the session logic and the `defmt-print` decoder
/// behind the [`crate::probe::Probe`] seam, with QEMU in the probe's place; a run of the fixture
/// must pass with the same result fields as `board::run`, and one with a wrong expected value
/// must end with exit code 1.
pub fn probe_session_on_qemu(steps: &mut Steps, b: &Board) {
    let Some(q) = &b.qemu else { return };
    let step = format!(
        "probe session: verdict and defmt decoding through the probe seam, QEMU {} as the probe",
        b.name
    );
    steps.begin(&step);
    let outcome = (|| -> Result<(), String> {
        let fixture = root().join("tests/fixtures/model-v1.bsm");
        let mut results = Vec::new();
        for (vectors, want) in [
            (root().join("tests/fixtures/model-v1.bsv"), 0),
            (work_dir("selftest")?.join("fixture-v1-wrong.bsv"), 1),
        ] {
            if want == 1 {
                bitspike(&[
                    "golden",
                    "--model",
                    &fixture.to_string_lossy(),
                    "--count",
                    "3",
                    "--perturb",
                    "1",
                    "--out",
                    &vectors.to_string_lossy(),
                ])?;
            }
            let built = board::build(b, &fixture, &vectors, &[])?;
            let mut probe = crate::probe::QemuProbe::new(q);
            let mut decoder = crate::probe::DefmtPrint::start(&built.elf)?;
            let run = crate::probe::session(
                &mut probe,
                &mut decoder,
                &built.elf,
                std::time::Duration::from_secs(RUN_TIMEOUT),
                &mut |_| {},
            )?;
            if run.exit != Some(want) {
                run.print_failure();
                return Err(format!("expected exit code {want}, got {:?}", run.exit));
            }
            results.push(run);
        }
        let (good, bad) = (&results[0], &results[1]);
        if !good.passed() || good.field("vectors") != Some(6) || good.field("macs").is_none() {
            return Err(format!(
                "the passing run's result is incomplete: {:?}",
                good.result
            ));
        }
        if bad.field("mismatches") != Some(1) {
            return Err(format!("the wrong vector gave {:?}", bad.result));
        }
        println!(
            "passing run: exit 0, {:?} vectors; wrong vector: exit 1, 1 mismatch",
            good.field("vectors")
        );
        Ok(())
    })();
    if let Err(e) = &outcome {
        eprintln!("{e}");
    }
    steps.end(&step, outcome.is_ok());
}

/// A wrong expected output, a hang, a panic and a stack overflow must each fail a board run
/// (the overflow with the hard-fault code: flip-link places the stack below the statics).
fn selftests(steps: &mut Steps, b: &Board, models: &[(String, PathBuf, PathBuf)]) {
    let Some((name, model, _)) = models.first() else {
        return;
    };
    // A wrong expected value in the golden vectors: exit 1, one mismatch.
    let step = format!("self-test: a wrong output fails on {}", b.name);
    steps.begin(&step);
    let ok = (|| -> Result<bool, String> {
        let wrong = work_dir("selftest")?.join(format!("{name}-wrong.bsv"));
        bitspike(&[
            "golden",
            "--model",
            &model.to_string_lossy(),
            "--count",
            "3",
            "--perturb",
            "1",
            "--out",
            &wrong.to_string_lossy(),
        ])?;
        let built = board::build(b, model, &wrong, &[])?;
        let run = board::run(b, &built, false, RUN_TIMEOUT)?;
        Ok(run.exit == Some(1) && run.field("mismatches") == Some(1))
    })();
    steps.end(&step, report(ok, "exit 1 with 1 mismatch"));
    for (feature, want, timeout) in [
        ("selftest-hang", "a timeout", 10),
        ("selftest-panic", "exit 101 (panic)", RUN_TIMEOUT),
        (
            "selftest-stack-overflow",
            "exit 102 (hard fault: the overflow faulted before reaching the statics)",
            RUN_TIMEOUT,
        ),
    ] {
        let step = format!("self-test: {feature} fails on {}", b.name);
        steps.begin(&step);
        let vectors = root().join("tests/fixtures/model-v1.bsv");
        let fixture = root().join("tests/fixtures/model-v1.bsm");
        let ok = board::build(b, &fixture, &vectors, &[feature])
            .and_then(|built| board::run(b, &built, false, timeout))
            .map(|run| match feature {
                "selftest-hang" => run.timed_out,
                "selftest-panic" => run.exit == Some(101),
                _ => run.exit == Some(102),
            });
        steps.end(&step, report(ok, want));
    }
}

/// How many generated models run with overflow checks on each board.
const GENERATED: u32 = 6;

/// Generated models (`tests/src/generate.rs`: every geometry the reader accepts, padding at and
/// beyond the kernel among them) on every emulated board, the app built with overflow checks and
/// debug assertions on: the device kernels (the assembly and its Rust around it) must give the
/// oracle's outputs and never overflow, where a release build would wrap silently.
fn overflow_checked(steps: &mut Steps, boards: &[Board], count: u32) {
    let made = (|| -> Result<PathBuf, String> {
        let dir = work_dir("generated")?;
        let ok = crate::cargo(&[
            "run",
            "--quiet",
            "-p",
            "bitspike-tests",
            "--bin",
            "gen-models",
            "--",
            &dir.to_string_lossy(),
            &count.to_string(),
            "20261207",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?
        .success();
        if ok {
            Ok(dir)
        } else {
            Err("gen-models failed".into())
        }
    })();
    let dir = match made {
        Ok(d) => d,
        Err(e) => return steps.fail("conformance: generated models", &e),
    };
    for b in boards {
        let step = format!(
            "conformance: {count} generated models with overflow checks on {}",
            b.name
        );
        steps.begin(&step);
        let mut ok = true;
        for k in 0..count {
            let (model, vectors) = (
                dir.join(format!("generated-{k}.bsm")),
                dir.join(format!("generated-{k}.bsv")),
            );
            let run = board::build_checked(b, &model, &vectors)
                .and_then(|built| board::run(b, &built, false, RUN_TIMEOUT));
            match run {
                Ok(r) if r.passed() => println!(
                    "generated-{k}: {} vectors, 0 mismatches, no overflow",
                    r.field("vectors").unwrap_or(0)
                ),
                Ok(r) => {
                    eprintln!("generated-{k} ({}):", model.display());
                    r.print_failure();
                    ok = false;
                }
                Err(e) => {
                    eprintln!("generated-{k}: {e}");
                    ok = false;
                }
            }
        }
        steps.end(&step, ok);
    }
}

/// The board's `bitspike-confidence` line against the golden vectors: the class is the argmax
/// of the last expected output, and both probabilities lie in `[1/n, 1]` for `n` outputs (a
/// softmax's top share). A model whose output has no scale prints no line.
fn confidence_agrees(f: &Figures, vectors: &Path) -> Result<(), String> {
    let bytes = std::fs::read(vectors).map_err(|e| format!("{}: {e}", vectors.display()))?;
    let v = bitspike_core::vectors::Vectors::parse(&bytes)
        .map_err(|e| format!("{}: {e}", vectors.display()))?;
    let Some((class, p, mean)) = f.confidence else {
        return Ok(());
    };
    let n = v.output_len();
    let Some(k) = v.len().checked_sub(1) else {
        return Ok(());
    };
    let last: Vec<i32> = (0..n).map(|j| v.expected(k, j)).collect();
    // The first of equal values, as the runtime's argmax.
    let want = (0..n).fold(0, |b, j| if last[j] > last[b] { j } else { b }) as u64;
    let share = 1.0 / n as f64 - 1e-3..=1.0 + 1e-6;
    if class != want || !share.contains(&p) || !share.contains(&mean) {
        return Err(format!(
            "{} on {}: confidence class {class} probability {p} mean {mean}; the last expected \
             output's class is {want}, and a top share lies in [1/{n}, 1]",
            f.model, f.board
        ));
    }
    println!("confidence: class {class}, probability {p:.4}, mean {mean:.4}");
    Ok(())
}

fn report(outcome: Result<bool, String>, want: &str) -> bool {
    match outcome {
        Ok(true) => {
            println!("failed as it must: {want}");
            true
        }
        Ok(false) => {
            eprintln!("expected {want}, got something else");
            false
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

/// Trained, exported models on every emulated board: QAT (uniform and mixed precision), a QAC
/// mixed-timestep spiking network, a One-Shot MPS front point, SSQL's linear-evaluated
/// encoders (bitspike's protocol, and ResNet-8 under the official one), all trained on the
/// digits; the host integer outputs of 64 test images
/// (golden vectors written by `bitspike export` / `bitspike snn`) must equal QEMU's, bit for bit.
pub fn trained_on_qemu(steps: &mut Steps) {
    let qat: &[&str] = &["train", "qat", "--epochs", "3"];
    let qac: &[&str] = &["train", "qac", "--epochs", "6"];
    trained_case(steps, "digits QAT", "digits", qat, &[], &["export"], RUN);
    trained_case(
        steps,
        "digits QAC spiking",
        "digits-snn",
        qac,
        &[],
        &["snn", "--calibrate", "1", "--calibration-images", "256"],
        RUN,
    );
    // A mixed-precision child with different weight and input bits in every layer.
    let mixed: &[&str] = &[
        "train",
        "qat",
        "--epochs",
        "3",
        "--weight-quantizer",
        "lloyd",
        "--act-quantizer",
        "hwgq",
        "--weight-plan",
        "8,2,4,6",
        "--act-plan",
        "4,3,8",
    ];
    trained_case(
        steps,
        "digits mixed precision",
        "digits-mixed",
        mixed,
        &[],
        &["export"],
        RUN,
    );
    // A One-Shot search, its front, and a front point exported.
    let search: &[&str] = &["train", "mps", "--epochs", "8", "--validation", "300"];
    trained_case(
        steps,
        "digits One-Shot MPS front point",
        "digits-mps",
        search,
        &["mps", "front", "--sweep", "8"],
        &["export", "--pareto-point", "0"],
        RUN,
    );
    // An SSQL pretraining, linear-evaluated and quantized after training at 4w4a.
    let ssql: &[&str] = &["train", "ssql", "--epochs", "3", "--arch", "cnn"];
    trained_case(
        steps,
        "digits SSQL linear-evaluated at 4w4a",
        "digits-ssql",
        ssql,
        SSQL_EVAL_4W4A,
        &["export"],
        "{run}-eval/linear/4w4a",
    );
    // ResNet-8 under SSQL's official protocol: signed block ends with zero points, residual
    // adds with a bias, a head per bit width reading 8-bit features.
    let official: &[&str] = &[
        "train",
        "ssql",
        "--epochs",
        "2",
        "--arch",
        "resnet8",
        "--protocol",
        "official",
    ];
    trained_case(
        steps,
        "digits ResNet-8, official SSQL protocol, at 4w4a",
        "digits-resnet8-official",
        official,
        SSQL_EVAL_4W4A,
        &["export"],
        "{run}-eval/linear/4w4a",
    );
}

/// The run folder a trained case writes (`{run}` in its arguments).
const RUN: &str = "{run}";

/// A pretraining's linear evaluation at 4w4a only (what an SSQL case exports).
const SSQL_EVAL_4W4A: &[&str] = &[
    "ssql",
    "eval",
    "--out",
    "{run}-eval",
    "--bits",
    "4w4a",
    "--linear-epochs",
    "20",
    "--finetune-epochs",
    "0",
    "--calibration",
    "512",
    "--quiet",
];

fn trained_case(
    steps: &mut Steps,
    what: &str,
    name: &str,
    train: &[&str],
    between: &[&str],
    export: &[&str],
    export_run: &str,
) {
    let step = format!("trained model: {what}, export, golden vectors");
    steps.begin(&step);
    let made = (|| -> Result<(PathBuf, PathBuf), String> {
        let dir = work_dir("trained")?;
        let run = dir.join(format!("{name}-run"));
        let _ = std::fs::remove_dir_all(&run);
        let _ = std::fs::remove_dir_all(dir.join(format!("{name}-run-eval")));
        let (model, vectors) = (
            dir.join(format!("{name}.bsm")),
            dir.join(format!("{name}.bsv")),
        );
        let r = run.to_string_lossy().into_owned();
        let mut args: Vec<&str> = train.to_vec();
        args.extend([
            "--dataset",
            "digits",
            "--lr",
            "0.01",
            "--quiet",
            "--threads",
            "1",
            "--out",
            &r,
        ]);
        bitspike(&args)?;
        if !between.is_empty() {
            let filled: Vec<String> = between.iter().map(|a| a.replace(RUN, &r)).collect();
            let mut args: Vec<&str> = filled.iter().map(|a| a.as_str()).collect();
            args.extend(["--run", &r, "--threads", "1"]);
            bitspike(&args)?;
        }
        let (m, v) = (model.to_string_lossy(), vectors.to_string_lossy());
        let from = export_run.replace(RUN, &r);
        let mut args: Vec<&str> = export.to_vec();
        args.extend([
            "--run",
            &from,
            "--threads",
            "1",
            "--out",
            &m,
            "--vectors",
            &v,
            "--count",
            "64",
        ]);
        bitspike(&args)?;
        Ok((model, vectors))
    })();
    steps.end(&step, made.is_ok());
    let (model, vectors) = match made {
        Ok(m) => m,
        Err(e) => return eprintln!("{e}"),
    };
    let boards = match board::all() {
        Ok(b) => b.into_iter().filter(|b| b.qemu.is_some()),
        Err(e) => return steps.fail("trained model: boards", &e),
    };
    for b in boards {
        let step = format!(
            "trained model: {what}: host integer == {} on 64 test images",
            b.name
        );
        steps.begin(&step);
        let ok = match measured(&b, name, &model, Data::Embedded(&vectors)) {
            Ok(f) => {
                println!("{} vectors, {} mismatches", f.vectors, f.mismatches);
                f.vectors == 64 && f.mismatches == 0
            }
            Err(e) => {
                eprintln!("{e}");
                false
            }
        };
        steps.end(&step, ok);
    }
}

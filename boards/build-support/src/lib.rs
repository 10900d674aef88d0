//! Build-script support for bitspike board packages.
//!
//! A board's `build.rs` calls [`build`] with its memory map. It places `memory.x` where
//! cortex-m-rt's `link.x` finds it, adds the link arguments (cortex-m-rt and defmt linker
//! scripts), and embeds the model and golden vectors that xtask chose through the environment:
//!
//! * `BITSPIKE_MODEL`: path of the model file (default: the committed version-1 fixture);
//! * `BITSPIKE_VECTORS`: path of the golden vector file (default: the fixture's vectors);
//! * `BITSPIKE_STREAM`: path of a stream file (`bitspike export --stream`): instead of embedding
//!   vectors, the app reads this file through semihosting at run time (whole test sets).
//!
//! Both are validated here, with the same reader the device uses, so a bad file is a build error
//! that names it. The app then finds `MODEL`, `VECTORS` and `ARENA_BYTES` in
//! `$OUT_DIR/embedded.rs`, with `OUTPUT_LEN` for its output buffer.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use bitspike_core::format::ModelFile;
use bitspike_core::vectors::{StreamHeader, Vectors, STREAM_HEADER_LEN};

/// Fail unless the vector file's sizes match the model's.
fn check_fit(v: &Vectors<'_>, input_len: usize, output_len: usize, vectors: &Path, model: &Path) {
    if v.input_len() != input_len || v.output_len() != output_len {
        fail(&format!(
            "{} holds vectors of {} inputs -> {} outputs, but {} takes {} -> {}",
            vectors.display(),
            v.input_len(),
            v.output_len(),
            model.display(),
            input_len,
            output_len
        ));
    }
}

/// The ORIGIN of the RAM region in a memory map (`RAM : ORIGIN = 0x20000000, LENGTH = ...`).
fn ram_origin(memory_x: &str) -> u64 {
    let origin = memory_x
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("RAM"))
        .and_then(|l| l.split("ORIGIN").nth(1))
        .and_then(|rest| rest.trim_start().strip_prefix('='))
        .and_then(|rest| rest.split(',').next())
        .map(str::trim);
    let parsed = origin.and_then(|o| match o.strip_prefix("0x").or(o.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => o.parse().ok(),
    });
    parsed.unwrap_or_else(|| fail("memory.x has no `RAM : ORIGIN = <address>, ...` line"))
}

/// Fail the build with one clear line.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn path_from_env(var: &str, default: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    match env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => default.to_path_buf(),
    }
}

fn read(path: &Path, what: &str) -> Vec<u8> {
    println!("cargo:rerun-if-changed={}", path.display());
    fs::read(path)
        .unwrap_or_else(|e| fail(&format!("cannot read the {what} {}: {e}", path.display())))
}

/// Everything a board's build script does. `memory_x` is the board's memory map in the linker
/// script syntax cortex-m-rt expects (`MEMORY { FLASH ..., RAM ... }`).
pub fn build(memory_x: &str) {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR is not set")));
    let manifest = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| fail("CARGO_MANIFEST_DIR is not set")),
    );
    let fixtures = manifest.join("../../tests/fixtures");

    fs::write(out.join("memory.x"), memory_x)
        .unwrap_or_else(|e| fail(&format!("cannot write memory.x: {e}")));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=--nmagic");
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rustc-link-arg=-Tdefmt.x");
    println!("cargo:rerun-if-changed=build.rs");

    let stream = env::var_os("BITSPIKE_STREAM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    println!("cargo:rerun-if-env-changed=BITSPIKE_STREAM");
    let model_path = path_from_env("BITSPIKE_MODEL", &fixtures.join("model-v1.bsm"));
    let vectors_path = path_from_env("BITSPIKE_VECTORS", &fixtures.join("model-v1.bsv"));
    let model = read(&model_path, "model");
    let file = ModelFile::parse(&model)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", model_path.display())));
    let (input_len, output_len) = (file.input().shape.len(), file.output().shape.len());
    let (vectors, record_len, source) = match &stream {
        Some(path) => {
            let mut head = [0u8; STREAM_HEADER_LEN];
            let ok = fs::File::open(path).and_then(|mut f| {
                use std::io::Read;
                f.read_exact(&mut head)
            });
            if let Err(e) = ok {
                fail(&format!(
                    "cannot read the stream file {}: {e}",
                    path.display()
                ));
            }
            let h = StreamHeader::parse(&head)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
            if h.input_len != input_len || h.output_len != output_len {
                fail(&format!(
                    "{} holds records of {} inputs -> {} outputs, but {} takes {} -> {}",
                    path.display(),
                    h.input_len,
                    h.output_len,
                    model_path.display(),
                    input_len,
                    output_len
                ));
            }
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let text = abs
                .to_str()
                .unwrap_or_else(|| fail("the stream path is not UTF-8"));
            if text.contains('"') || text.contains('\\') {
                fail("the stream path may not contain quotes or backslashes");
            }
            (
                Vec::new(),
                h.record_len().unwrap_or(1),
                format!("Source::Stream(c\"{text}\")"),
            )
        }
        None => (
            read(&vectors_path, "vector file"),
            1,
            "Source::Embedded(VECTORS)".to_string(),
        ),
    };
    if stream.is_none() {
        let v = Vectors::parse(&vectors)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", vectors_path.display())));
        check_fit(&v, input_len, output_len, &vectors_path, &model_path);
    }
    fs::write(out.join("model.bsm"), &model)
        .unwrap_or_else(|e| fail(&format!("cannot copy the model: {e}")));
    fs::write(out.join("vectors.bsv"), &vectors)
        .unwrap_or_else(|e| fail(&format!("cannot copy the vectors: {e}")));
    let mut code = String::new();
    let _ = writeln!(
        code,
        "/// The board's RAM origin (its memory map): the floor of the stack, which flip-link\n\
         /// places below the statics.\n\
         pub const RAM_START: usize = {:#x};",
        ram_origin(memory_x)
    );
    let _ = writeln!(
        code,
        "/// Arena bytes the embedded model needs (from its header).\n\
         pub const ARENA_BYTES: usize = {};\n\
         /// Output elements of the embedded model.\n\
         pub const OUTPUT_LEN: usize = {};\n\
         /// The embedded model file, on a word boundary (its tensors are word-aligned inside the\n\
         /// file, so cores without unaligned loads can read weights a word at a time).\n\
         pub static MODEL: &[u8] = &ALIGNED_MODEL.0;\n\
         #[repr(C, align(4))]\n\
         struct Aligned<B: ?Sized>(B);\n\
         static ALIGNED_MODEL: &Aligned<[u8]> =\n\
             &Aligned(*include_bytes!(concat!(env!(\"OUT_DIR\"), \"/model.bsm\")));\n\
         /// The embedded golden vectors (empty when streaming).\n\
         pub static VECTORS: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/vectors.bsv\"));\n\
         /// Bytes of one stream record (1 when the vectors are embedded).\n\
         pub const RECORD_LEN: usize = {};\n\
         /// Where the app takes its vectors from.\n\
         pub const SOURCE: bitspike_board::Source<'static> = bitspike_board::{};",
        file.header().arena_bytes,
        output_len,
        record_len,
        source
    );
    fs::write(out.join("embedded.rs"), code)
        .unwrap_or_else(|e| fail(&format!("cannot write embedded.rs: {e}")));
}

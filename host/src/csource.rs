//! A model file as C sources for a C build (`bitspike export --c-source DIR`, `bitspike
//! c-source`): `model.h` declares the model's bytes, its arena, input and output sizes, the label
//! names and the golden vectors; `model.c` defines them. Both compile with `-std=c99 -Wall
//! -Wextra -Werror -pedantic` (`cargo xtask test` checks it), and the arrays are `const`, so a
//! microcontroller build keeps them in flash.

use anyhow::{bail, ensure, Context, Result};
use bitspike_core::format::ModelFile;
use bitspike_core::layer::Dtype;
use bitspike_core::vectors::Vectors;
use std::fmt::Write;
use std::path::Path;

/// The two files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSource {
    /// `model.h`.
    pub header: String,
    /// `model.c`.
    pub source: String,
}

/// A C string literal of `s` (printable ASCII kept, everything else escaped in octal).
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e if b != b'?' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

/// `values` as the body of a C array initializer, `per_line` to a line.
fn rows<T: std::fmt::Display>(values: impl Iterator<Item = T>, per_line: usize) -> String {
    let mut out = String::new();
    for (i, v) in values.enumerate() {
        if i % per_line == 0 {
            out.push_str("\n    ");
        } else {
            out.push(' ');
        }
        let _ = write!(out, "{v},");
    }
    out.push('\n');
    out
}

/// The C sources of the model file `model` (checked by the reader first), with the golden vectors
/// of the vector file `vectors` when given, and the class names `labels` when the model's output
/// is one value per class.
pub fn c_source(model: &[u8], vectors: Option<&[u8]>, labels: Option<&[&str]>) -> Result<CSource> {
    let rt = bitspike_rt::Model::load(model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = ModelFile::parse(model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let input = file.input();
    let output = file.output();
    let (in_len, out_len) = (rt.input_len(), rt.output_len());
    let vectors = vectors
        .map(|b| Vectors::parse(b).map_err(|e| anyhow::anyhow!("not a vector file: {e}")))
        .transpose()?;
    if let Some(v) = &vectors {
        ensure!(!v.is_empty(), "the vector file holds no vectors");
        ensure!(
            v.input_len() == in_len && v.output_len() == out_len,
            "the vectors have {} inputs and {} outputs each, the model {in_len} and {out_len}",
            v.input_len(),
            v.output_len()
        );
    }
    let labels = match labels {
        Some(l) if l.len() == out_len => Some(l),
        Some(l) => bail!("{} class names for a model with {out_len} outputs", l.len()),
        None => None,
    };
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* A bitspike model as C sources, written by `bitspike export --c-source` or `bitspike\n * c-source`: do not edit. Run it with the C API (bitspike.h, docs/c.md). */"
    );
    h.push_str("#ifndef BITSPIKE_MODEL_H\n#define BITSPIKE_MODEL_H\n\n#include <stdint.h>\n\n");
    let _ = writeln!(h, "/* The model file's bytes. */");
    let _ = writeln!(h, "#define BITSPIKE_MODEL_BYTES {}u", model.len());
    let _ = writeln!(
        h,
        "/* The arena the model needs (bitspike_bind); the caller owns it. */"
    );
    let _ = writeln!(h, "#define BITSPIKE_ARENA_BYTES {}u", rt.arena_bytes());
    let _ = writeln!(
        h,
        "/* The input: height x width x channels codes, each 0..BITSPIKE_INPUT_LEVELS. */"
    );
    let _ = writeln!(h, "#define BITSPIKE_INPUT_H {}u", input.shape.h);
    let _ = writeln!(h, "#define BITSPIKE_INPUT_W {}u", input.shape.w);
    let _ = writeln!(h, "#define BITSPIKE_INPUT_C {}u", input.shape.c);
    let _ = writeln!(h, "#define BITSPIKE_INPUT_LEN {in_len}u");
    let _ = writeln!(h, "#define BITSPIKE_INPUT_LEVELS {}u", input.levels);
    let _ = writeln!(
        h,
        "/* The output: {} values{}. */",
        if output.dtype == Dtype::Acc32 {
            "int32_t raw"
        } else {
            "int32_t code"
        },
        if labels.is_some() {
            ", one per class"
        } else {
            ""
        }
    );
    let _ = writeln!(h, "#define BITSPIKE_OUTPUT_LEN {out_len}u\n");
    let _ = writeln!(
        h,
        "/* The model file (8-byte aligned with GCC and Clang), in flash on a microcontroller. */"
    );
    let _ = writeln!(
        h,
        "extern const uint8_t bitspike_model_data[BITSPIKE_MODEL_BYTES];"
    );
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* A bitspike model as C sources (model.h): do not edit. */\n#include \"model.h\"\n"
    );
    c.push_str("#if defined(__GNUC__) || defined(__clang__)\n#define BITSPIKE_ALIGNED __attribute__((aligned(8)))\n#else\n#define BITSPIKE_ALIGNED\n#endif\n\n");
    let _ = writeln!(
        c,
        "const uint8_t bitspike_model_data[BITSPIKE_MODEL_BYTES] BITSPIKE_ALIGNED = {{{}}};",
        rows(model.iter().map(|b| format!("0x{b:02x}")), 16)
    );
    if let Some(l) = labels {
        let _ = writeln!(h, "\n/* The name of each class, by output index. */");
        let _ = writeln!(h, "#define BITSPIKE_HAS_LABELS 1");
        let _ = writeln!(
            h,
            "extern const char *const bitspike_labels[BITSPIKE_OUTPUT_LEN];"
        );
        let _ = writeln!(
            c,
            "\nconst char *const bitspike_labels[BITSPIKE_OUTPUT_LEN] = {{{}}};",
            rows(l.iter().map(|s| c_string(s)), 4)
        );
    }
    if let Some(v) = &vectors {
        let n = v.len();
        let _ = writeln!(
            h,
            "\n/* Golden vectors: inputs and the outputs the host computed for them. */"
        );
        let _ = writeln!(h, "#define BITSPIKE_VECTORS {n}u");
        let _ = writeln!(
            h,
            "extern const uint8_t bitspike_vector_inputs[BITSPIKE_VECTORS][BITSPIKE_INPUT_LEN];"
        );
        let _ = writeln!(
            h,
            "extern const int32_t bitspike_vector_outputs[BITSPIKE_VECTORS][BITSPIKE_OUTPUT_LEN];"
        );
        c.push_str(
            "\nconst uint8_t bitspike_vector_inputs[BITSPIKE_VECTORS][BITSPIKE_INPUT_LEN] = {",
        );
        for k in 0..n {
            let _ = write!(c, "\n  {{{}  }},", rows(v.input(k).iter(), 24));
        }
        c.push_str("\n};\n");
        c.push_str(
            "\nconst int32_t bitspike_vector_outputs[BITSPIKE_VECTORS][BITSPIKE_OUTPUT_LEN] = {",
        );
        for k in 0..n {
            // INT32_MIN has no literal: write it as an expression.
            let vals = (0..out_len).map(|j| match v.expected(k, j) {
                i32::MIN => "(-2147483647 - 1)".to_string(),
                x => x.to_string(),
            });
            let _ = write!(c, "\n  {{{}  }},", rows(vals, 12));
        }
        c.push_str("\n};\n");
    }
    h.push_str("\n#endif /* BITSPIKE_MODEL_H */\n");
    Ok(CSource {
        header: h,
        source: c,
    })
}

/// Write `model.h` and `model.c` into `dir` (created when missing); names the directory in
/// errors.
pub fn write_dir(dir: &Path, c: &CSource) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in [("model.h", &c.header), ("model.c", &c.source)] {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_sources_declare_what_a_c_build_needs_and_refuse_what_does_not_fit() {
        let model = fixture("model-v1.bsm");
        let vectors = fixture("model-v1.bsv");
        let names = crate::data::DatasetName::FashionMnist.class_names();
        let c = c_source(&model, Some(&vectors), Some(names)).unwrap();
        for line in [
            format!("#define BITSPIKE_MODEL_BYTES {}u", model.len()),
            "#define BITSPIKE_ARENA_BYTES 768u".into(),
            "#define BITSPIKE_INPUT_LEN 64u".into(),
            "#define BITSPIKE_INPUT_LEVELS 255u".into(),
            "#define BITSPIKE_OUTPUT_LEN 10u".into(),
            "#define BITSPIKE_VECTORS 6u".into(),
            "#define BITSPIKE_HAS_LABELS 1".into(),
        ] {
            assert!(c.header.contains(&line), "{line}");
        }
        // Every byte of the model, in order, and the vectors' first expected output.
        let hex: Vec<u8> = c
            .source
            .split("BITSPIKE_ALIGNED = {")
            .nth(1)
            .unwrap()
            .split("};")
            .next()
            .unwrap()
            .split(',')
            .filter_map(|t| u8::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
            .collect();
        assert_eq!(hex, model);
        let v = Vectors::parse(&vectors).unwrap();
        assert!(c.source.contains(&format!("{},", v.expected(0, 0))));
        assert!(c.source.contains("\"Ankle boot\","));
        // Without vectors or names, neither is declared.
        let bare = c_source(&model, None, None).unwrap();
        assert!(!bare.header.contains("BITSPIKE_VECTORS") && !bare.header.contains("LABELS"));
        // Another model's vectors, names of another count, a corrupt model: one clear error.
        let snn = fixture("snn-v1.bsv");
        let e = c_source(&model, Some(&snn), None).unwrap_err().to_string();
        assert!(e.contains("the vectors have"), "{e}");
        let e = c_source(&model, None, Some(&names[..3]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "3 class names for a model with 10 outputs");
        let mut bad = model.clone();
        bad[0] ^= 1;
        assert!(c_source(&bad, None, None).is_err());
    }

    #[test]
    fn strings_escape_what_c_would_read_otherwise() {
        assert_eq!(c_string("T-shirt/top"), "\"T-shirt/top\"");
        assert_eq!(c_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        // `??` would start a trigraph; a newline cannot stand in a literal.
        assert_eq!(c_string("?\n"), "\"\\077\\012\"");
    }
}

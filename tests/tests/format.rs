//! The model file: write/read round trip, the committed version-1 fixture, and corruption of every
//! kind returning an `Err` without a panic.

use bitspike_core::format::writer::{write, write_planned, Budget};
use bitspike_core::format::{
    crc32, parse_header, FormatError, LayerField, ModelFile, TensorField, HEADER_LEN,
    LAYER_RECORD_LEN, MAX_ARENA_BYTES, MAX_LAYERS, TENSOR_RECORD_LEN, VERSION,
};
use bitspike_core::layer::{LayerKind, ShapeError};
use bitspike_core::pack::unpack_one;
use bitspike_rt::{Error, Model};
use bitspike_tests::models::{fixture_inputs, fixture_model, FIXTURE_EXPECTED_PATH, FIXTURE_PATH};
use bitspike_tests::oracle;
use proptest::prelude::*;

fn fixture_bytes() -> Vec<u8> {
    write(&fixture_model()).expect("fixture model writes")
}

fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}

/// Recompute both CRCs so that a deliberate corruption reaches the deeper checks.
fn reseal(b: &mut [u8]) {
    let payload = rd_u32(b, 20) as usize;
    let crc = crc32(&b[HEADER_LEN..HEADER_LEN + payload]);
    put_u32(b, 24, crc);
    let hcrc = crc32(&b[..60]);
    put_u32(b, 60, hcrc);
}

fn layer_record(b: &[u8], i: usize) -> usize {
    rd_u32(b, 40) as usize + i * LAYER_RECORD_LEN
}

fn tensor_record(i: usize) -> usize {
    HEADER_LEN + i * TENSOR_RECORD_LEN
}

/// Parse with both the reader and the runtime; they must agree on refusing.
fn refuse(b: &[u8]) -> FormatError {
    let e = ModelFile::parse(b).expect_err("corrupt file must be refused");
    assert_eq!(Model::load(b).err(), Some(Error::Format(e)));
    e
}

/// Run every fixture input through a model that loaded; must not panic.
fn exercise(bytes: &[u8]) {
    if let Ok(model) = Model::load(bytes) {
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut interp = model
            .bind(&mut arena)
            .expect("arena of the declared size binds");
        // Codes up to the input's levels (the runtime refuses larger ones).
        let input = vec![200u8.min(model.file().input().levels); model.input_len()];
        let mut out = vec![0i32; model.output_len()];
        interp
            .run(&input, &mut out)
            .expect("lengths and codes match");
    }
}

#[test]
fn round_trip_keeps_every_field() {
    let def = fixture_model();
    let bytes = write(&def).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let tensors = def.tensors().unwrap();
    assert_eq!(file.header().version, VERSION);
    assert_eq!(file.layer_count(), def.layers.len());
    for (t, want) in tensors.iter().enumerate() {
        let got = file.tensor(t);
        assert_eq!(
            (got.shape, got.dtype, got.levels, got.scale),
            (want.shape, want.dtype, want.levels, want.scale),
            "tensor {t}"
        );
    }
    for (i, l) in def.layers.iter().enumerate() {
        let v = file.layer(i);
        assert_eq!(v.kind, l.kind, "layer {i}");
        assert_eq!(v.input, l.input);
        assert_eq!(v.input2, l.input2.unwrap_or(u16::MAX));
        assert_eq!(v.window, l.window);
        assert_eq!(v.groups, l.groups);
        assert_eq!(v.weight_bits, l.weight_bits);
        assert_eq!(v.offset, l.offset);
        assert_eq!(v.add_weights, l.add_weights);
        assert_eq!(v.timesteps, l.timesteps);
        assert_eq!(v.raw_output(), l.raw_output);
        let unpacked: Vec<i8> = (0..l.weights.len())
            .map(|k| unpack_one(v.weights, v.weight_bits, k))
            .collect();
        assert_eq!(unpacked, l.weights, "layer {i} weights");
        assert_eq!(v.bias.map(|b| b.iter().collect::<Vec<_>>()), l.bias);
        let m: Vec<i32> = v.multipliers.iter().collect();
        let s: Vec<i8> = v.shifts.iter().map(|&s| s as i8).collect();
        assert_eq!(
            m,
            l.requant.iter().map(|r| r.multiplier).collect::<Vec<_>>()
        );
        assert_eq!(s, l.requant.iter().map(|r| r.shift).collect::<Vec<_>>());
    }
    // Writing is deterministic.
    assert_eq!(write(&def).unwrap(), bytes);
}

#[test]
fn committed_v1_fixture_keeps_loading_and_computing() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(dir.join(FIXTURE_PATH)).unwrap();
    let expected = std::fs::read_to_string(dir.join(FIXTURE_EXPECTED_PATH)).unwrap();
    let expected: Vec<Vec<i32>> = expected
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    let model = Model::load(&bytes).expect("the committed version-1 fixture must load");
    assert_eq!(model.file().header().version, 1);
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model.bind(&mut arena).unwrap();
    let inputs = fixture_inputs();
    assert_eq!(inputs.len(), expected.len());
    let def = fixture_model();
    for (input, want) in inputs.iter().zip(&expected) {
        let mut out = vec![0i32; model.output_len()];
        interp.run(input, &mut out).unwrap();
        assert_eq!(
            &out, want,
            "runtime output drifted from the committed golden vector"
        );
        assert_eq!(&oracle::run(&def, input), want, "oracle disagrees");
    }
    // The committed file predates the kernels' scratch and in-place layers: every layer runs on
    // the reference path (checked above), every tensor apart. The writer now gives each layer
    // the scratch of its fast kernel and runs layers in place, which moves the arena plan;
    // everything else it writes is still the committed bytes.
    assert!((0..model.file().layer_count()).all(|i| model.file().layer(i).scratch_bytes == 0));
    let mut now = write(&def).unwrap();
    let now_model = Model::load(&now).unwrap();
    let (layers, tensors) = (now_model.file().layer_count(), layers_and_tensors(&bytes));
    assert_eq!((layers, tensors.1), (tensors.0, tensors.1));
    for (i, l) in (0..layers).map(|i| (i, now_model.file().layer(i))) {
        let g = now_model.file().geometry(i);
        assert_eq!(
            l.scratch_bytes,
            bitspike_core::kernel::scratch_bytes(&g, l.weight_bits),
            "layer {i} gets its kernel's scratch"
        );
    }
    let mut old = bytes.clone();
    for b in [&mut now, &mut old] {
        // Producer version, payload CRC, arena bytes, peak live and peak scratch, header CRC.
        for r in [12..16, 24..32, 48..56, 60..64] {
            b[r].fill(0);
        }
        // Each tensor's arena offset.
        for t in 0..tensors.1 {
            let o = HEADER_LEN + t * TENSOR_RECORD_LEN + 8;
            b[o..o + 4].fill(0);
        }
        // Each layer's scratch bytes and offset, and its in-place rows (byte 19, reserved when
        // the fixture was written).
        let table = HEADER_LEN + tensors.1 * TENSOR_RECORD_LEN;
        for i in 0..tensors.0 {
            let o = table + i * LAYER_RECORD_LEN;
            b[o + 52..o + 60].fill(0);
            b[o + 19] = 0;
        }
    }
    assert_eq!(now, old, "the writer's version-1 output changed");
}

/// Layer and tensor counts from a file's header.
fn layers_and_tensors(b: &[u8]) -> (usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    (u16_at(34), u16_at(32))
}

#[test]
fn truncation_at_every_offset_is_refused() {
    let bytes = fixture_bytes();
    for n in 0..bytes.len() {
        match refuse(&bytes[..n]) {
            FormatError::Truncated { len, needed } => {
                assert_eq!(len as usize, n);
                assert!(needed as usize > n);
            }
            e => panic!("truncated to {n}: {e:?}"),
        }
    }
    // Trailing bytes after the declared payload are ignored (a flash partition, say).
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xAB; 100]);
    assert!(Model::load(&longer).is_ok());
}

#[test]
fn flipped_bit_in_every_header_field_is_refused() {
    let bytes = fixture_bytes();
    for bit in 0..HEADER_LEN * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let e = refuse(&b);
        let byte = bit / 8;
        let ok = match byte {
            0..=7 => e == FormatError::BadMagic,
            8..=9 => matches!(e, FormatError::Version { supported: 1, .. }),
            10..=11 => matches!(e, FormatError::HeaderLength(_)),
            _ => e == FormatError::HeaderCrc,
        };
        assert!(ok, "bit {bit} (byte {byte}): {e:?}");
    }
}

#[test]
fn flipped_bit_in_payload_is_refused_by_crc() {
    let bytes = fixture_bytes();
    for bit in (HEADER_LEN * 8..bytes.len() * 8).step_by(3) {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(refuse(&b), FormatError::PayloadCrc, "bit {bit}");
    }
}

#[test]
fn wrong_crcs_are_refused() {
    let mut b = fixture_bytes();
    let crc = rd_u32(&b, 24);
    put_u32(&mut b, 24, crc ^ 1);
    let hcrc = crc32(&b[..60]);
    put_u32(&mut b, 60, hcrc);
    assert_eq!(refuse(&b), FormatError::PayloadCrc);
    let mut b = fixture_bytes();
    b[60] ^= 0x80;
    assert_eq!(refuse(&b), FormatError::HeaderCrc);
}

#[test]
fn newer_version_names_both_versions() {
    let mut b = fixture_bytes();
    put_u16(&mut b, 8, 2);
    reseal(&mut b);
    let e = refuse(&b);
    assert_eq!(
        e,
        FormatError::Version {
            found: 2,
            supported: 1
        }
    );
    let msg = Error::Format(e).to_string();
    assert!(msg.contains("version 2") && msg.contains("version 1") && msg.contains("newer"));
    // Checked before the header CRC: a newer file's header may be laid out differently.
    let mut b = fixture_bytes();
    put_u16(&mut b, 8, 7);
    assert!(matches!(refuse(&b), FormatError::Version { found: 7, .. }));
    put_u16(&mut b, 8, 0);
    assert!(refuse(&b).to_string().contains("not supported"));
}

#[test]
fn shapes_that_do_not_chain_are_refused() {
    let bytes = fixture_bytes();
    // Tensor 1 (conv output, 8x8x4): claim height 7.
    let mut b = bytes.clone();
    put_u16(&mut b, tensor_record(1), 7);
    reseal(&mut b);
    assert!(matches!(refuse(&b), FormatError::Shape { index: 0, .. }));
    // Layer 0: stride 2 makes a 4x4 output, not 8x8.
    let mut b = bytes.clone();
    b[layer_record(&bytes, 0) + 10] = 2;
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Shape {
            index: 0,
            error: ShapeError::Output
        }
    );
    // Layer 1 (depthwise, 4 channels): 3 groups do not divide 4.
    let mut b = bytes.clone();
    put_u16(&mut b, layer_record(&bytes, 1) + 14, 3);
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Shape {
            index: 1,
            error: ShapeError::Groups
        }
    );
    // Layer 2 (add): second input of another shape (tensor 0 is 8x8x1).
    let mut b = bytes.clone();
    put_u16(&mut b, layer_record(&bytes, 2) + 6, 0);
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Shape {
            index: 2,
            error: ShapeError::AddInputs
        }
    );
    // An input that is not an earlier tensor.
    let mut b = bytes.clone();
    put_u16(&mut b, layer_record(&bytes, 3) + 4, 5);
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Layer {
            index: 3,
            field: LayerField::Input
        }
    );
}

#[test]
fn offsets_out_of_bounds_are_refused() {
    let bytes = fixture_bytes();
    let len = bytes.len() as u32;
    let l0 = layer_record(&bytes, 0);
    let cases: [(usize, u32, LayerField); 7] = [
        (28, len, LayerField::Weights),
        (28, len - 2, LayerField::Weights),
        (28, 8, LayerField::Weights), // inside the header, not the data section
        (32, len - 8, LayerField::Bias),
        (32, rd_u32(&bytes, l0 + 32) + 2, LayerField::Bias), // misaligned
        (36, u32::MAX - 3, LayerField::Multiplier),
        (40, len, LayerField::Shift),
    ];
    for (field_off, value, field) in cases {
        let mut b = bytes.clone();
        put_u32(&mut b, l0 + field_off, value);
        reseal(&mut b);
        assert_eq!(
            refuse(&b),
            FormatError::Layer { index: 0, field },
            "offset field {field_off} = {value}"
        );
    }
    // A tensor placed past the end of the arena.
    let mut b = bytes.clone();
    let arena = rd_u32(&b, 28);
    put_u32(&mut b, tensor_record(2) + 8, arena - 10);
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Tensor {
            index: 2,
            field: TensorField::ArenaOffset
        }
    );
    // Two live tensors on top of each other (the add reads tensors 1 and 2 together).
    let mut b = bytes.clone();
    let t1 = rd_u32(&b, tensor_record(1) + 8);
    put_u32(&mut b, tensor_record(2) + 8, t1);
    reseal(&mut b);
    assert_eq!(refuse(&b), FormatError::ArenaOverlap { a: 1, b: 2 });
    // Table offsets where version 1 does not put them.
    let mut b = bytes.clone();
    put_u32(&mut b, 44, rd_u32(&bytes, 44) + 4);
    reseal(&mut b);
    assert_eq!(refuse(&b), FormatError::Tables);
}

#[test]
fn weight_bits_0_1_9_are_refused() {
    let bytes = fixture_bytes();
    for bits in [0u8, 1, 9, 255] {
        let mut b = bytes.clone();
        b[layer_record(&bytes, 0) + 2] = bits;
        reseal(&mut b);
        assert_eq!(
            refuse(&b),
            FormatError::Layer {
                index: 0,
                field: LayerField::WeightBits
            },
            "bits {bits}"
        );
    }
    // A pool with a weight width is refused too.
    let mut b = bytes.clone();
    b[layer_record(&bytes, 3) + 2] = 4;
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Layer {
            index: 3,
            field: LayerField::WeightBits
        }
    );
}

#[test]
fn other_fields_are_checked() {
    let bytes = fixture_bytes();
    let l0 = layer_record(&bytes, 0);
    let cases: Vec<(usize, u8, FormatError)> = vec![
        (
            l0,
            9,
            FormatError::Layer {
                index: 0,
                field: LayerField::Kind,
            },
        ),
        (
            l0 + 1,
            0x81,
            FormatError::Layer {
                index: 0,
                field: LayerField::Flags,
            },
        ),
        (
            l0 + 3,
            3,
            FormatError::Layer {
                index: 0,
                field: LayerField::Align,
            },
        ),
        (
            l0 + 18,
            1,
            FormatError::Layer {
                index: 0,
                field: LayerField::MembraneShift,
            },
        ),
        (
            l0 + 19,
            1,
            FormatError::Layer {
                index: 0,
                field: LayerField::InPlace,
            },
        ),
        (
            l0 + 61,
            1,
            FormatError::Layer {
                index: 0,
                field: LayerField::Reserved,
            },
        ),
        (
            l0 + 16,
            0,
            FormatError::Layer {
                index: 0,
                field: LayerField::Timesteps,
            },
        ),
        (
            tensor_record(1) + 6,
            2,
            FormatError::Tensor {
                index: 1,
                field: TensorField::Dtype,
            },
        ),
        (
            tensor_record(1) + 7,
            0,
            FormatError::Tensor {
                index: 1,
                field: TensorField::Levels,
            },
        ),
        (
            tensor_record(1),
            0,
            FormatError::Tensor {
                index: 1,
                field: TensorField::Shape,
            },
        ),
        (16, 2, FormatError::HeaderFlags),
        (56, 1, FormatError::HeaderReserved),
        (48, 1, FormatError::ArenaSummary),
    ];
    for (at, value, want) in cases {
        let mut b = bytes.clone();
        b[at] = value;
        if at == tensor_record(1) {
            b[at + 1] = 0;
        }
        reseal(&mut b);
        assert_eq!(refuse(&b), want, "byte {at} = {value}");
    }
    // Layer and tensor counts.
    for (layers, tensors) in [
        (0u16, 1u16),
        (MAX_LAYERS as u16 + 1, MAX_LAYERS as u16 + 2),
        (9, 9),
    ] {
        let mut b = bytes.clone();
        put_u16(&mut b, 32, tensors);
        put_u16(&mut b, 34, layers);
        reseal(&mut b);
        assert_eq!(refuse(&b), FormatError::Counts);
    }
    // A negative multiplier.
    let mut b = bytes.clone();
    let m = rd_u32(&b, l0 + 36) as usize;
    put_u32(&mut b, m, (-5i32) as u32);
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Layer {
            index: 0,
            field: LayerField::Multiplier
        }
    );
    // A shift out of range.
    let mut b = bytes.clone();
    let s = rd_u32(&b, l0 + 40) as usize;
    b[s] = 40;
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Layer {
            index: 0,
            field: LayerField::Shift
        }
    );
    // Magic.
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(refuse(&b), FormatError::BadMagic);
    assert!(parse_header(b"BITSPIKE").is_err());
}

#[test]
fn runtime_refuses_small_arena_and_wrong_lengths() {
    let bytes = fixture_bytes();
    let model = Model::load(&bytes).unwrap();
    let need = model.arena_bytes();
    let mut small = vec![0u8; need - 1];
    assert_eq!(
        model.bind(&mut small).err(),
        Some(Error::ArenaTooSmall {
            needed: need as u32,
            given: need as u32 - 1
        })
    );
    let mut arena = vec![0u8; need + 16];
    let mut interp = model.bind(&mut arena).unwrap();
    let mut out = vec![0i32; 10];
    assert!(matches!(
        interp.run(&[0u8; 63], &mut out),
        Err(Error::InputLength {
            expected: 64,
            given: 63
        })
    ));
    assert!(matches!(
        interp.run(&[0u8; 64], &mut out[..9]),
        Err(Error::OutputLength {
            expected: 10,
            given: 9
        })
    ));
    interp.run(&[0u8; 64], &mut out).unwrap();
    let kinds: Vec<LayerKind> = (0..model.file().layer_count())
        .map(|i| model.file().layer(i).kind)
        .collect();
    assert_eq!(kinds.len(), 9);
}

#[test]
fn raw_output_layers_carry_no_offset() {
    let bytes = fixture_bytes();
    let last = layer_record(&bytes, 8); // the raw dense layer
    let mut b = bytes.clone();
    put_u32(&mut b, last + 20, 1000);
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Layer {
            index: 8,
            field: LayerField::Constants
        }
    );
}

#[test]
fn accumulators_that_could_wrap_are_refused() {
    use bitspike_core::def::{LayerDef, ModelDef, Requant};
    use bitspike_core::format::writer::WriteError;
    use bitspike_core::layer::Shape;
    // A global average pool over 4096 x 4096 codes of up to 255: the sum can reach 4.3e9.
    let mut m = ModelDef::new(Shape::new(4096, 4096, 1), 255, 1.0);
    let mut gap = LayerDef::new(LayerKind::GlobalAvgPool, 0).with_output(255, 1.0);
    gap.requant = vec![Requant {
        multiplier: 1 << 30,
        shift: 20,
    }];
    m.push(gap);
    assert_eq!(
        write(&m).err(),
        Some(WriteError::Invalid(FormatError::Layer {
            index: 0,
            field: LayerField::Accumulator
        }))
    );
    // With codes up to 127 the sum stays below 2^31 and the model loads.
    m.input.levels = 127;
    assert!(write(&m).is_ok());
    // A bias that pushes a dense layer over the bound.
    let mut m = ModelDef::new(Shape::vector(4), 255, 1.0);
    let mut d = LayerDef::dense(0, 1, 8, vec![1; 4], Some(vec![i32::MAX - 1000]), Vec::new());
    d.raw_output = true;
    m.push(d);
    assert!(matches!(
        write(&m),
        Err(WriteError::Invalid(FormatError::Layer {
            field: LayerField::Accumulator,
            ..
        }))
    ));
}

/// A residual add may carry a bias (its inputs' zero points), which counts towards its
/// accumulator bound; a layer without weights other than the add may not.
#[test]
fn an_add_bias_is_checked() {
    use bitspike_core::def::{LayerDef, ModelDef, Requant};
    use bitspike_core::format::writer::WriteError;
    use bitspike_core::layer::Shape;
    let rq = Requant {
        multiplier: 1 << 30,
        shift: 0,
    };
    let model = |bias: Option<Vec<i32>>, kind: LayerKind| {
        let mut m = ModelDef::new(Shape::new(2, 2, 2), 255, 1.0);
        let mut l = LayerDef::new(kind, 0).with_output(255, 1.0);
        if kind == LayerKind::Add {
            l.input2 = Some(0);
            l.add_weights = [3, -2];
        }
        l.requant = vec![rq; 2];
        l.bias = bias;
        m.push(l);
        write(&m)
    };
    assert!(model(Some(vec![-300, 7]), LayerKind::Add).is_ok());
    // 255 * 3 + 255 * 2 + the bias must stay below 2^31.
    assert!(matches!(
        model(Some(vec![i32::MAX - 1000, 0]), LayerKind::Add),
        Err(WriteError::Invalid(FormatError::Layer {
            field: LayerField::Accumulator,
            ..
        }))
    ));
    assert!(matches!(
        model(Some(vec![1, 2]), LayerKind::GlobalAvgPool),
        Err(WriteError::Invalid(FormatError::Layer {
            field: LayerField::Flags,
            ..
        }))
    ));
}

#[test]
fn writer_refuses_inputs_that_are_not_earlier_tensors() {
    use bitspike_core::def::{LayerDef, ModelDef};
    use bitspike_core::format::writer::WriteError;
    use bitspike_core::layer::Shape;
    let mut m = ModelDef::new(Shape::new(2, 2, 1), 255, 1.0);
    let mut add = LayerDef::new(LayerKind::Add, 0);
    add.input2 = Some(7);
    m.push(add);
    let e = write(&m).err();
    assert_eq!(
        e,
        Some(WriteError::Shape {
            layer: 0,
            error: ShapeError::Input
        })
    );
    m.layers[0].input2 = None;
    assert!(matches!(
        write(&m),
        Err(WriteError::Shape {
            error: ShapeError::Input,
            ..
        })
    ));
    m.layers[0] = LayerDef::new(LayerKind::MaxPool, 3);
    assert!(matches!(
        write(&m),
        Err(WriteError::Shape {
            error: ShapeError::Input,
            ..
        })
    ));
}

#[test]
fn records_past_the_end_are_empty_not_a_panic() {
    let bytes = fixture_bytes();
    let file = ModelFile::parse(&bytes).unwrap();
    for i in [9, 1000, usize::MAX / 2, usize::MAX] {
        let l = file.layer(i);
        assert_eq!(
            (l.kind, l.input2, l.groups, l.timesteps),
            (LayerKind::Flatten, u16::MAX, 1, 1)
        );
        assert!(l.weights.is_empty() && l.bias.is_none());
        let _ = file.geometry(i);
        let _ = file.tensor(i);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Random byte mutations, resealed so they reach the deep checks: never a panic, and a
    /// model that still loads runs.
    #[test]
    fn random_resealed_mutations_never_panic(
        edits in prop::collection::vec((0usize..4096, any::<u8>()), 1..6)
    ) {
        let mut b = fixture_bytes();
        for (at, v) in edits {
            let at = HEADER_LEN + at % (b.len() - HEADER_LEN);
            b[at] = v;
        }
        reseal(&mut b);
        exercise(&b);
    }
}

/// A chain of three 3x3 "same" convolutions over 8x8x4: the middle one runs in place, its
/// output two input rows (64 bytes) below its input.
fn chain() -> bitspike_core::def::ModelDef {
    use bitspike_core::def::{LayerDef, ModelDef, Requant};
    use bitspike_core::layer::{Shape, Window};
    let mut def = ModelDef::new(Shape::new(8, 8, 4), 255, 1.0 / 255.0);
    let mut t = 0;
    for _ in 0..3 {
        let requant = vec![
            Requant {
                multiplier: 1 << 30,
                shift: 8,
            };
            4
        ];
        let w = (0..144).map(|k| (k % 7) as i8 - 3).collect();
        t = def.push(LayerDef::conv2d(
            t,
            4,
            Window::square(3, 1, 1),
            1,
            8,
            w,
            None,
            requant,
        ));
    }
    def
}

#[test]
fn in_place_layers_are_checked() {
    let bytes = write_planned(&chain(), Budget::Instructions(u64::MAX)).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let rows: Vec<u8> = (0..3).map(|i| file.layer(i).in_place_rows).collect();
    assert_eq!(
        rows,
        [0, 1, 1],
        "both layers over a tensor that dies there run in place"
    );
    let (t1, t2) = (file.tensor(1).arena_offset, file.tensor(2).arena_offset);
    assert!(
        t1 >= t2 + 64,
        "layer 1's output starts two rows below its input"
    );
    let off = write_planned(&chain(), Budget::None).unwrap();
    let apart = ModelFile::parse(&off).unwrap().header().arena_bytes;
    // Apart: two 256-byte tensors at once; in place: one with 128 bytes of overlap margin.
    assert_eq!(apart - file.header().arena_bytes, 256 - 128);
    let in_place = |i: u16| FormatError::Layer {
        index: i,
        field: LayerField::InPlace,
    };
    // The output one byte too close to the input.
    let mut b = bytes.clone();
    put_u32(&mut b, tensor_record(2) + 8, t1 - 63);
    reseal(&mut b);
    assert_eq!(refuse(&b), in_place(1));
    // In place over the caller's input.
    let mut b = bytes.clone();
    let o = layer_record(&b, 0);
    b[o + 19] = 1;
    reseal(&mut b);
    assert_eq!(refuse(&b), in_place(0));
    // Not in place although the output overlaps the input: the overlap is refused.
    let mut b = bytes.clone();
    let o = layer_record(&b, 1);
    b[o + 19] = 0;
    reseal(&mut b);
    assert!(matches!(refuse(&b), FormatError::ArenaOverlap { .. }));
    // In place over a tensor a later layer reads: layer 2 reading tensor 1 as well.
    let mut def = chain();
    def.layers[2].input = 1;
    let b = write(&def).unwrap();
    let file = ModelFile::parse(&b).unwrap();
    assert_eq!(file.layer(1).in_place_rows, 0);
    let mut b = b.clone();
    let o = layer_record(&b, 1);
    b[o + 19] = 1;
    reseal(&mut b);
    assert_eq!(refuse(&b), in_place(1));
    // The in-place model computes what the plan without in-place layers computes.
    let input: Vec<u8> = (0..256).map(|k| (k * 37 % 256) as u8).collect();
    let outs: Vec<Vec<i32>> = [&bytes, &off]
        .iter()
        .map(|b| {
            let m = Model::load(b).unwrap();
            let mut arena = vec![0xA5u8; m.arena_bytes()];
            let mut out = vec![0; m.output_len()];
            m.bind(&mut arena).unwrap().run(&input, &mut out).unwrap();
            out
        })
        .collect();
    assert_eq!(outs[0], outs[1]);
}

/// The input density byte: any value on conv and dense layers, refused elsewhere.
#[test]
fn input_density_only_on_weighted_layers() {
    let bytes = fixture_bytes();
    let file = ModelFile::parse(&bytes).unwrap();
    let n = file.layer_count();
    let weighted = (0..n).find(|&i| file.layer(i).kind.has_weights()).unwrap();
    let other = (0..n).find(|&i| !file.layer(i).kind.has_weights()).unwrap();
    let mut b = bytes.clone();
    let o = layer_record(&b, weighted);
    b[o + 60] = 255;
    reseal(&mut b);
    assert_eq!(
        ModelFile::parse(&b).unwrap().layer(weighted).input_density,
        255
    );
    let mut b = bytes.clone();
    let o = layer_record(&b, other);
    b[o + 60] = 7;
    reseal(&mut b);
    assert_eq!(
        refuse(&b),
        FormatError::Layer {
            index: other as u16,
            field: LayerField::InputDensity,
        }
    );
}

/// The header's arena size is bounded: no more than the plan needs (the end of the last tensor
/// or scratch in the arena), and never beyond `MAX_ARENA_BYTES`, so that no tool sizes an
/// allocation from an unchecked field. The error names both sizes.
#[test]
fn arena_sizes_beyond_the_plan_or_the_limit_are_refused() {
    let bytes = fixture_bytes();
    let needed = rd_u32(&bytes, 28);
    for declared in [
        needed + 1,
        needed + 4096,
        MAX_ARENA_BYTES,
        MAX_ARENA_BYTES + 1,
        u32::MAX,
    ] {
        let mut b = bytes.clone();
        put_u32(&mut b, 28, declared);
        reseal(&mut b);
        let want = FormatError::ArenaSize {
            declared,
            needed: if declared > MAX_ARENA_BYTES {
                MAX_ARENA_BYTES
            } else {
                needed
            },
        };
        assert_eq!(refuse(&b), want, "arena of {declared} bytes");
        let line = want.to_string();
        assert!(
            line.contains(&declared.to_string()) && !line.contains('\n'),
            "{line}"
        );
    }
    // One byte short: the last tensor or scratch lies outside it.
    let mut b = bytes.clone();
    put_u32(&mut b, 28, needed - 1);
    reseal(&mut b);
    assert!(Model::load(&b).is_err());
}

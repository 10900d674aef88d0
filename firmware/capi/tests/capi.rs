//! The C functions called as C calls them, on the host: the fixtures' golden vectors through
//! load, bind and run; every pointer and handle check; every runtime error with its own status
//! and its one-line text.
#![allow(clippy::unwrap_used)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::ptr;

use bitspike::*;
use bitspike_rt::bitspike_core::vectors::Vectors;

fn fixture(name: &str) -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
    std::fs::read(format!("{p}{name}")).unwrap()
}

/// Zeroed storage for a handle, as a C caller's static would be.
fn zeroed<T>() -> Box<T> {
    // SAFETY: the handles are plain words; all zeros is a valid (unfilled) handle.
    Box::new(unsafe { MaybeUninit::<T>::zeroed().assume_init() })
}

/// `bitspike_load` on a byte slice.
fn load(bytes: &[u8], model: &mut BitspikeModel, err: &mut BitspikeError) -> BitspikeStatus {
    // SAFETY: a slice and two handles.
    unsafe { bitspike_load(bytes.as_ptr(), bytes.len(), model, err) }
}

/// `bitspike_bind` on an arena slice.
fn bind(
    model: &BitspikeModel,
    arena: &mut [u8],
    interp: &mut BitspikeInterpreter,
    err: &mut BitspikeError,
) -> BitspikeStatus {
    // SAFETY: a slice and three handles.
    unsafe { bitspike_bind(model, arena.as_mut_ptr(), arena.len(), interp, err) }
}

fn text(e: &BitspikeError) -> String {
    let mut buf = [0 as std::ffi::c_char; 200];
    // SAFETY: a valid error and a buffer of its length.
    let n = unsafe { bitspike_error_text(e, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated by the call.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(n, s.len(), "not cut at 200 bytes");
    s
}

fn status_text(s: i32) -> String {
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(bitspike_status_str(s)) }
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn golden_vectors_through_the_c_calls_match_the_rust_runtime() {
    for (model_file, vectors_file) in [
        ("model-v1.bsm", "model-v1.bsv"),
        ("snn-v1.bsm", "snn-v1.bsv"),
    ] {
        let bytes = fixture(model_file);
        let vbytes = fixture(vectors_file);
        let v = Vectors::parse(&vbytes).unwrap();
        let mut model = zeroed::<BitspikeModel>();
        let mut err = zeroed::<BitspikeError>();
        // SAFETY: valid pointers and lengths throughout.
        unsafe {
            assert_eq!(load(&bytes, &mut model, &mut err), BitspikeStatus::Ok);
            let rust = bitspike_rt::Model::load(&bytes).unwrap();
            assert_eq!(bitspike_arena_bytes(&*model), rust.arena_bytes());
            assert_eq!(bitspike_input_len(&*model), v.input_len());
            assert_eq!(bitspike_output_len(&*model), v.output_len());
            let mut arena = vec![0u8; bitspike_arena_bytes(&*model)];
            let mut interp = zeroed::<BitspikeInterpreter>();
            assert_eq!(
                bind(&model, &mut arena, &mut interp, &mut err),
                BitspikeStatus::Ok
            );
            for k in 0..v.len() {
                let input = v.input(k);
                let mut out = vec![0i32; v.output_len()];
                assert_eq!(
                    bitspike_run(
                        &mut *interp,
                        input.as_ptr(),
                        input.len(),
                        out.as_mut_ptr(),
                        out.len(),
                        &mut *err
                    ),
                    BitspikeStatus::Ok
                );
                let expected: Vec<i32> = (0..v.output_len()).map(|j| v.expected(k, j)).collect();
                assert_eq!(out, expected, "{model_file}, vector {k}");
                assert_eq!(
                    bitspike_argmax(out.as_ptr(), out.len()),
                    bitspike_rt::argmax(&expected)
                );
            }
        }
    }
}

#[test]
fn null_misaligned_and_unfilled_pointers_are_refused() {
    let bytes = fixture("model-v1.bsm");
    let mut model = zeroed::<BitspikeModel>();
    let mut interp = zeroed::<BitspikeInterpreter>();
    let mut err = zeroed::<BitspikeError>();
    let mut arena = vec![0u8; 1 << 16];
    let mut out = vec![0i32; 11];
    // SAFETY: every pointer is null, misaligned or valid for its length; the calls check them.
    unsafe {
        // An unfilled handle: no call accepts it.
        assert_eq!(bitspike_arena_bytes(&*model), 0);
        assert_eq!(
            bind(&model, &mut arena, &mut interp, &mut err),
            BitspikeStatus::NotLoaded
        );
        assert_eq!(err.status, BitspikeStatus::NotLoaded as i32);
        assert_eq!(
            text(&err),
            "the handle was not filled by a successful load or bind"
        );
        let input = [0u8; 784];
        assert_eq!(
            bitspike_run(
                &mut *interp,
                input.as_ptr(),
                784,
                out.as_mut_ptr(),
                10,
                &mut *err
            ),
            BitspikeStatus::NotLoaded
        );
        // Null pointers, with or without an error record.
        assert_eq!(
            bitspike_load(ptr::null(), 10, &mut *model, &mut *err),
            BitspikeStatus::NullPointer
        );
        assert_eq!(
            bitspike_load(
                bytes.as_ptr(),
                bytes.len(),
                ptr::null_mut(),
                ptr::null_mut()
            ),
            BitspikeStatus::NullPointer
        );
        assert_eq!(bitspike_arena_bytes(ptr::null()), 0);
        assert_eq!(bitspike_argmax(ptr::null(), 3), usize::MAX);
        // A length no buffer can have.
        assert_eq!(
            bitspike_load(bytes.as_ptr(), usize::MAX, &mut *model, &mut *err),
            BitspikeStatus::TooLong
        );
        // A handle storage off its 8-byte alignment.
        let mut raw = vec![0u64; 2 * BITSPIKE_MODEL_WORDS];
        let off = (raw.as_mut_ptr() as *mut u8).add(4) as *mut BitspikeModel;
        assert_eq!(
            bitspike_load(bytes.as_ptr(), bytes.len(), off, &mut *err),
            BitspikeStatus::Misaligned
        );
        // A good load, then a misaligned output.
        assert_eq!(load(&bytes, &mut model, &mut err), BitspikeStatus::Ok);
        assert_eq!(
            bind(&model, &mut arena, &mut interp, &mut err),
            BitspikeStatus::Ok
        );
        let n = bitspike_input_len(&*model);
        let input = vec![0u8; n];
        let odd = (out.as_mut_ptr() as *mut u8).add(2) as *mut i32;
        assert_eq!(
            bitspike_run(&mut *interp, input.as_ptr(), n, odd, 10, &mut *err),
            BitspikeStatus::Misaligned
        );
        assert_eq!(bitspike_argmax(odd, 3), usize::MAX);
        // A failed load leaves the handle unfilled, though it held a model before.
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(load(&bad, &mut model, &mut err), BitspikeStatus::BadMagic);
        assert_eq!(bitspike_input_len(&*model), 0);
    }
}

#[test]
fn every_runtime_error_has_its_status_and_its_line() {
    let bytes = fixture("model-v1.bsm");
    let mut model = zeroed::<BitspikeModel>();
    let mut interp = zeroed::<BitspikeInterpreter>();
    let mut err = zeroed::<BitspikeError>();
    // SAFETY: valid pointers and lengths throughout.
    unsafe {
        // Corrupt files: each with its own status and the Rust runtime's line.
        let cases: [(usize, u8, BitspikeStatus); 3] = [
            (0, b'X', BitspikeStatus::BadMagic),
            (bytes.len() - 1, 0x5a, BitspikeStatus::PayloadCrc),
            (20, 0xff, BitspikeStatus::HeaderCrc),
        ];
        for (at, v, want) in cases {
            let mut b = bytes.clone();
            b[at] ^= v;
            let got = load(&b, &mut model, &mut err);
            assert_eq!(got, want, "byte {at}");
            let rust = bitspike_rt::Model::load(&b).err().unwrap();
            assert_eq!(BitspikeStatus::of(&rust), want);
            assert_eq!(text(&err), rust.to_string());
        }
        let got = bitspike_load(bytes.as_ptr(), 40, &mut *model, &mut *err);
        assert_eq!(got, BitspikeStatus::Truncated);
        assert_eq!(text(&err), "model file truncated: 40 bytes, needs 64");
        // An arena one byte short.
        assert_eq!(load(&bytes, &mut model, &mut err), BitspikeStatus::Ok);
        let need = bitspike_arena_bytes(&*model);
        let mut arena = vec![0u8; need];
        assert_eq!(
            bitspike_bind(
                &*model,
                arena.as_mut_ptr(),
                need - 1,
                &mut *interp,
                &mut *err
            ),
            BitspikeStatus::ArenaTooSmall
        );
        assert_eq!(
            text(&err),
            bitspike_rt::Error::ArenaTooSmall {
                needed: need as u32,
                given: need as u32 - 1
            }
            .to_string()
        );
        assert_eq!(
            bitspike_bind(&*model, arena.as_mut_ptr(), need, &mut *interp, &mut *err),
            BitspikeStatus::Ok
        );
        // Wrong lengths and an input code above the levels; the output is untouched.
        let n = bitspike_input_len(&*model);
        let m = bitspike_output_len(&*model);
        let input = vec![1u8; n];
        let mut out = vec![7i32; m];
        let run = |interp: &mut BitspikeInterpreter,
                   input: &[u8],
                   out: &mut [i32],
                   err: &mut BitspikeError| {
            bitspike_run(
                interp,
                input.as_ptr(),
                input.len(),
                out.as_mut_ptr(),
                out.len(),
                err,
            )
        };
        assert_eq!(
            run(&mut interp, &input[1..], &mut out, &mut err),
            BitspikeStatus::InputLength
        );
        assert_eq!(
            run(&mut interp, &input, &mut out[1..], &mut err),
            BitspikeStatus::OutputLength
        );
        assert!(
            out.iter().all(|&o| o == 7),
            "nothing written on a refused run"
        );
        // The spiking fixture reads 7-bit codes: 255 is above its levels.
        let snn = fixture("snn-v1.bsm");
        assert_eq!(load(&snn, &mut model, &mut err), BitspikeStatus::Ok);
        let mut arena = vec![0u8; bitspike_arena_bytes(&*model)];
        assert_eq!(
            bind(&model, &mut arena, &mut interp, &mut err),
            BitspikeStatus::Ok
        );
        let mut input = vec![1u8; bitspike_input_len(&*model)];
        let mut out = vec![7i32; bitspike_output_len(&*model)];
        input[5] = 255;
        assert_eq!(
            run(&mut interp, &input, &mut out, &mut err),
            BitspikeStatus::InputCode
        );
        let rust = bitspike_rt::Model::load(&snn).unwrap();
        let mut a = vec![0u8; rust.arena_bytes()];
        let e = rust
            .bind(&mut a)
            .unwrap()
            .run(&input, &mut out.clone())
            .err()
            .unwrap();
        assert_eq!(text(&err), e.to_string());
        assert!(
            out.iter().all(|&o| o == 7),
            "nothing written on a refused run"
        );
        // A cut text still counts its full length, and ends in a NUL.
        let mut small = [1 as std::ffi::c_char; 8];
        let full = bitspike_error_text(&*err, small.as_mut_ptr(), small.len());
        assert_eq!(full, text(&err).len());
        assert_eq!(small[7], 0);
        assert_eq!(bitspike_error_text(&*err, ptr::null_mut(), 0), full);
    }
    // Every code has its own text; an unknown code says so.
    let texts: Vec<String> = (-1..50).map(status_text).collect();
    let known: Vec<&String> = texts.iter().filter(|t| *t != "unknown status").collect();
    assert_eq!(known.len(), 28);
    let mut unique = known.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 28);
    assert_eq!(status_text(0), "success");
}

#[test]
fn softmax_gives_the_class_and_probabilities_of_the_dequantized_outputs() {
    let bytes = fixture("model-v1.bsm");
    let vbytes = fixture("model-v1.bsv");
    let v = Vectors::parse(&vbytes).unwrap();
    let mut model = zeroed::<BitspikeModel>();
    let mut err = zeroed::<BitspikeError>();
    assert_eq!(load(&bytes, &mut model, &mut err), BitspikeStatus::Ok);
    // SAFETY: valid pointers and lengths throughout, except where a check is the point.
    unsafe {
        let scale = bitspike_output_scale(&*model);
        assert_eq!(
            scale,
            bitspike_rt::Model::load(&bytes).unwrap().output_scale()
        );
        assert!(scale > 0.0);
        let n = v.output_len();
        for k in 0..v.len() {
            let out: Vec<i32> = (0..n).map(|j| v.expected(k, j)).collect();
            let mut probs = vec![-1.0f32; n];
            let mut class = usize::MAX;
            let s = bitspike_softmax(&*model, out.as_ptr(), n, probs.as_mut_ptr(), &mut class);
            assert_eq!(s, BitspikeStatus::Ok);
            assert_eq!(class, bitspike_rt::argmax(&out));
            // Against the exact softmax of code * scale, in f64.
            let m = f64::from(out[class]);
            let e: Vec<f64> = out
                .iter()
                .map(|&c| ((f64::from(c) - m) * f64::from(scale)).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            for (p, x) in probs.iter().zip(&e) {
                assert!((f64::from(*p) - x / sum).abs() < 2e-3, "{p} vs {}", x / sum);
            }
        }
        let out = vec![0i32; v.output_len()];
        let mut probs = vec![7.0f32; v.output_len()];
        // A wrong length, null pointers, an unfilled model: refused, nothing written.
        let refused = [
            bitspike_softmax(
                &*model,
                out.as_ptr(),
                n - 1,
                probs.as_mut_ptr(),
                ptr::null_mut(),
            ),
            bitspike_softmax(&*model, ptr::null(), n, probs.as_mut_ptr(), ptr::null_mut()),
            bitspike_softmax(&*model, out.as_ptr(), n, ptr::null_mut(), ptr::null_mut()),
            bitspike_softmax(
                &*zeroed(),
                out.as_ptr(),
                n,
                probs.as_mut_ptr(),
                ptr::null_mut(),
            ),
        ];
        assert_eq!(
            refused,
            [
                BitspikeStatus::OutputLength,
                BitspikeStatus::NullPointer,
                BitspikeStatus::NullPointer,
                BitspikeStatus::NotLoaded
            ]
        );
        // Probabilities written over the outputs they are computed from.
        let mut shared = vec![0i32; n];
        let p = shared.as_mut_ptr();
        assert_eq!(
            bitspike_softmax(&*model, p, n, p.cast::<f32>(), ptr::null_mut()),
            BitspikeStatus::Overlap
        );
        assert!(probs.iter().all(|&p| p == 7.0));
        // Without a class pointer the probabilities still come.
        assert_eq!(
            bitspike_softmax(
                &*model,
                out.as_ptr(),
                n,
                probs.as_mut_ptr(),
                ptr::null_mut()
            ),
            BitspikeStatus::Ok
        );
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    assert_eq!(status_text(5), "the model records no scale for its output");
    assert_eq!(status_text(6), "two buffers that must be distinct overlap");
}

/// Counts the callback's calls in the `Vec<usize>` its context points at.
unsafe extern "C" fn note_layer(layer: usize, context: *mut std::ffi::c_void) {
    // SAFETY: the test passes a `Vec<usize>` as the context.
    unsafe { (*context.cast::<Vec<usize>>()).push(layer) };
}

#[test]
fn an_observed_run_calls_back_after_each_layer_and_computes_the_same() {
    let bytes = fixture("snn-v1.bsm");
    let vbytes = fixture("snn-v1.bsv");
    let v = Vectors::parse(&vbytes).unwrap();
    let layers = bitspike_rt::Model::load(&bytes)
        .unwrap()
        .file()
        .layer_count();
    let mut model = zeroed::<BitspikeModel>();
    let mut err = zeroed::<BitspikeError>();
    assert_eq!(load(&bytes, &mut model, &mut err), BitspikeStatus::Ok);
    // SAFETY: valid handles, buffers and lengths; the context is the Vec the callback expects.
    unsafe {
        let mut arena = vec![0u8; bitspike_arena_bytes(&*model)];
        let mut interp = zeroed::<BitspikeInterpreter>();
        assert_eq!(
            bind(&model, &mut arena, &mut interp, &mut err),
            BitspikeStatus::Ok
        );
        let input = v.input(0);
        let mut out = vec![0i32; v.output_len()];
        let mut seen: Vec<usize> = Vec::new();
        let ctx = (&mut seen as *mut Vec<usize>).cast::<std::ffi::c_void>();
        let s = bitspike_run_observed(
            &mut *interp,
            input.as_ptr(),
            input.len(),
            out.as_mut_ptr(),
            out.len(),
            Some(note_layer),
            ctx,
            &mut *err,
        );
        assert_eq!(s, BitspikeStatus::Ok);
        assert_eq!(seen, (0..layers).collect::<Vec<_>>());
        let expected: Vec<i32> = (0..v.output_len()).map(|j| v.expected(0, j)).collect();
        assert_eq!(out, expected);
        // No callback: the same outputs.
        let mut again = vec![0i32; v.output_len()];
        let s = bitspike_run_observed(
            &mut *interp,
            input.as_ptr(),
            input.len(),
            again.as_mut_ptr(),
            again.len(),
            None,
            ptr::null_mut(),
            &mut *err,
        );
        assert_eq!(s, BitspikeStatus::Ok);
        assert_eq!(again, expected);
        // A refused run calls nothing back.
        seen.clear();
        let ctx = (&mut seen as *mut Vec<usize>).cast::<std::ffi::c_void>();
        let s = bitspike_run_observed(
            &mut *interp,
            input.as_ptr(),
            input.len() - 1,
            again.as_mut_ptr(),
            again.len(),
            Some(note_layer),
            ctx,
            &mut *err,
        );
        assert_eq!(s, BitspikeStatus::InputLength);
        assert!(seen.is_empty());
    }
}

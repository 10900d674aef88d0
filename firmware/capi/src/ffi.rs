//! The C functions and types. Each function checks its pointers (null, alignment, length) and
//! its handles (filled by a successful call) before it reads them, then calls the safe runtime.

use core::fmt::{self, Write};
use core::mem::{align_of, size_of};
use core::ptr;

use bitspike_rt::bitspike_core::format::FormatError;
use bitspike_rt::{Error, Interpreter, Model};

/// Words (8 bytes each) of a `bitspike_model`.
pub const BITSPIKE_MODEL_WORDS: usize = 12;

/// Words (8 bytes each) of a `bitspike_interpreter`.
pub const BITSPIKE_INTERPRETER_WORDS: usize = 16;

/// Words (8 bytes each) of a `bitspike_error`'s detail.
pub const BITSPIKE_ERROR_WORDS: usize = 3;

/// Storage for a loaded model (`bitspike_model`): filled by `bitspike_load`, read by the
/// other calls. Its contents are private.
#[repr(C)]
pub struct BitspikeModel {
    storage: [u64; BITSPIKE_MODEL_WORDS],
}

/// Storage for a model bound to its arena (`bitspike_interpreter`): filled by
/// `bitspike_bind`, used by `bitspike_run`. Its contents are private.
#[repr(C)]
pub struct BitspikeInterpreter {
    storage: [u64; BITSPIKE_INTERPRETER_WORDS],
}

/// What went wrong (`bitspike_error`), filled by a failing call given one: its status, and the
/// detail (indices, sizes) that `bitspike_error_text` puts into words.
#[repr(C)]
pub struct BitspikeError {
    /// The status the call returned (a `bitspike_status`).
    pub status: i32,
    detail: [u64; BITSPIKE_ERROR_WORDS],
}

/// Why a call failed: the runtime's errors (a model file refused, an arena too small, an input
/// or output of the wrong length, an input code above the model's levels), one code each, and
/// the C boundary's own (a null or misaligned pointer, a handle no call filled).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitspikeStatus {
    /// Success.
    Ok = 0,
    /// A pointer that must not be null is null.
    NullPointer = 1,
    /// A pointer is not aligned for its type (4 bytes for `int32_t` outputs, 8 for the handles).
    Misaligned = 2,
    /// A handle that no successful `bitspike_load` or `bitspike_bind` filled.
    NotLoaded = 3,
    /// A length larger than `PTRDIFF_MAX` bytes.
    TooLong = 4,
    /// The model file records no usable scale for its output (not finite and positive): its
    /// outputs have no real value to take a softmax of.
    NoScale = 5,
    /// Two buffers that must be distinct overlap.
    Overlap = 6,
    /// The model file is shorter than its header or than the payload it declares.
    Truncated = 10,
    /// Not a bitspike model file (its magic is not `BITSPIKE`).
    BadMagic = 11,
    /// A format version this runtime does not read.
    Version = 12,
    /// The header length field is not 64.
    HeaderLength = 13,
    /// The header CRC does not match: the file is corrupt.
    HeaderCrc = 14,
    /// The payload CRC does not match: the file is corrupt.
    PayloadCrc = 15,
    /// Unknown header flags, or the spiking flag disagrees with the layers.
    HeaderFlags = 16,
    /// A reserved header field is not 0.
    HeaderReserved = 17,
    /// The layer or tensor count is out of range.
    Counts = 18,
    /// The tables are not where the format puts them.
    Tables = 19,
    /// A tensor record is invalid (the text names the tensor and the field).
    Tensor = 20,
    /// A layer record is invalid (the text names the layer and the field).
    Layer = 21,
    /// A layer's shapes do not chain.
    Shape = 22,
    /// Two tensors live at the same time overlap in the arena.
    ArenaOverlap = 23,
    /// The header's peak live bytes or peak scratch disagree with the layers.
    ArenaSummary = 24,
    /// The declared arena is larger than the plan needs or than the format allows.
    ArenaSize = 25,
    /// A layer uses a feature this runtime does not execute.
    Unsupported = 40,
    /// The arena is smaller than the model needs (`bitspike_arena_bytes`).
    ArenaTooSmall = 41,
    /// The input does not have the model's length (`bitspike_input_len`).
    InputLength = 42,
    /// An input code is above the model's input levels.
    InputCode = 43,
    /// The output does not have the model's length (`bitspike_output_len`).
    OutputLength = 44,
}

impl BitspikeStatus {
    /// The status of a runtime error.
    pub const fn of(e: &Error) -> Self {
        match e {
            Error::Format(f) => match f {
                FormatError::Truncated { .. } => Self::Truncated,
                FormatError::BadMagic => Self::BadMagic,
                FormatError::Version { .. } => Self::Version,
                FormatError::HeaderLength(_) => Self::HeaderLength,
                FormatError::HeaderCrc => Self::HeaderCrc,
                FormatError::PayloadCrc => Self::PayloadCrc,
                FormatError::HeaderFlags => Self::HeaderFlags,
                FormatError::HeaderReserved => Self::HeaderReserved,
                FormatError::Counts => Self::Counts,
                FormatError::Tables => Self::Tables,
                FormatError::Tensor { .. } => Self::Tensor,
                FormatError::Layer { .. } => Self::Layer,
                FormatError::Shape { .. } => Self::Shape,
                FormatError::ArenaOverlap { .. } => Self::ArenaOverlap,
                FormatError::ArenaSummary => Self::ArenaSummary,
                FormatError::ArenaSize { .. } => Self::ArenaSize,
            },
            Error::Unsupported { .. } => Self::Unsupported,
            Error::ArenaTooSmall { .. } => Self::ArenaTooSmall,
            Error::InputLength { .. } => Self::InputLength,
            Error::InputCode { .. } => Self::InputCode,
            Error::OutputLength { .. } => Self::OutputLength,
        }
    }

    /// Every status, for lookups by code.
    const ALL: [Self; 28] = [
        Self::Ok,
        Self::NullPointer,
        Self::Misaligned,
        Self::NotLoaded,
        Self::TooLong,
        Self::NoScale,
        Self::Overlap,
        Self::Truncated,
        Self::BadMagic,
        Self::Version,
        Self::HeaderLength,
        Self::HeaderCrc,
        Self::PayloadCrc,
        Self::HeaderFlags,
        Self::HeaderReserved,
        Self::Counts,
        Self::Tables,
        Self::Tensor,
        Self::Layer,
        Self::Shape,
        Self::ArenaOverlap,
        Self::ArenaSummary,
        Self::ArenaSize,
        Self::Unsupported,
        Self::ArenaTooSmall,
        Self::InputLength,
        Self::InputCode,
        Self::OutputLength,
    ];

    /// The status with code `code`, if there is one.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as i32 == code)
    }

    /// What the status means, in a few words.
    pub const fn text(self) -> &'static core::ffi::CStr {
        match self {
            Self::Ok => c"success",
            Self::NullPointer => c"a pointer that must not be null is null",
            Self::Misaligned => c"a pointer is not aligned for its type",
            Self::NotLoaded => c"the handle was not filled by a successful load or bind",
            Self::TooLong => c"a length is larger than PTRDIFF_MAX bytes",
            Self::NoScale => c"the model records no scale for its output",
            Self::Overlap => c"two buffers that must be distinct overlap",
            Self::Truncated => c"the model file is truncated",
            Self::BadMagic => c"not a bitspike model file",
            Self::Version => c"the model format version is not supported",
            Self::HeaderLength => c"the model header length is not 64",
            Self::HeaderCrc => c"the model header CRC does not match: the file is corrupt",
            Self::PayloadCrc => c"the model payload CRC does not match: the file is corrupt",
            Self::HeaderFlags => c"the model header flags are invalid",
            Self::HeaderReserved => c"a reserved model header field is not 0",
            Self::Counts => c"the model's layer or tensor count is out of range",
            Self::Tables => c"the model's tables are not where the format puts them",
            Self::Tensor => c"a tensor record of the model is invalid",
            Self::Layer => c"a layer record of the model is invalid",
            Self::Shape => c"a layer's shapes do not chain",
            Self::ArenaOverlap => c"two live tensors overlap in the model's arena plan",
            Self::ArenaSummary => c"the model header's arena summary disagrees with its layers",
            Self::ArenaSize => c"the model's declared arena is larger than its plan needs",
            Self::Unsupported => c"a layer uses a feature this runtime does not execute",
            Self::ArenaTooSmall => c"the arena is smaller than the model needs",
            Self::InputLength => c"the input does not have the model's length",
            Self::InputCode => c"an input code is above the model's input levels",
            Self::OutputLength => c"the output does not have the model's length",
        }
    }
}

/// A handle's first word says which call filled it; anything else is a handle no call filled.
const MODEL_TAG: u32 = 0x4253_4d4c;
const INTERPRETER_TAG: u32 = 0x4253_4950;
const ERROR_TAG: u32 = 0x4253_4552;

/// What a handle's storage holds: the tag of the call that filled it, then the value.
#[repr(C)]
struct Slot<T> {
    tag: u32,
    value: T,
}

type ModelSlot = Slot<Model<'static>>;
type InterpreterSlot = Slot<Interpreter<'static, 'static>>;
type ErrorSlot = Slot<Error>;

impl<T> Slot<T> {
    /// Mark the slot at `p` unfilled (its value is left as it is, and never read again).
    ///
    /// # Safety
    /// `p` must be non-null, aligned and point to writable storage of a slot's size.
    unsafe fn clear(p: *mut Self) {
        // SAFETY: the caller's promise.
        unsafe { ptr::addr_of_mut!((*p).tag).write(0) }
    }

    /// Fill the slot at `p` with `value` under `tag`.
    ///
    /// # Safety
    /// As [`Slot::clear`]; whatever `value` borrows must outlive the slot's use.
    unsafe fn fill(p: *mut Self, tag: u32, value: T) {
        // SAFETY: the caller's promise.
        unsafe { p.write(Self { tag, value }) }
    }

    /// The value of the slot at `p` if a call filled it under `tag`: the tag is read first, the
    /// value only when it matches.
    ///
    /// # Safety
    /// `p` must be non-null, aligned and point to readable storage of a slot's size, which no
    /// one writes while the reference lives.
    unsafe fn value<'a>(p: *const Self, tag: u32) -> Option<&'a T> {
        // SAFETY: the caller's promise; a matching tag means `fill` wrote the value.
        unsafe { (ptr::addr_of!((*p).tag).read() == tag).then(|| &*ptr::addr_of!((*p).value)) }
    }

    /// [`Slot::value`], mutable.
    ///
    /// # Safety
    /// As [`Slot::value`], writable, and no other reference to the value lives meanwhile.
    unsafe fn value_mut<'a>(p: *mut Self, tag: u32) -> Option<&'a mut T> {
        // SAFETY: as in `value`.
        unsafe {
            (ptr::addr_of!((*p).tag).read() == tag).then(|| &mut *ptr::addr_of_mut!((*p).value))
        }
    }
}

// The handles are large and aligned enough for what they hold, on every target.
const _: () = assert!(size_of::<ModelSlot>() <= size_of::<BitspikeModel>());
const _: () = assert!(align_of::<ModelSlot>() <= align_of::<BitspikeModel>());
const _: () = assert!(size_of::<InterpreterSlot>() <= size_of::<BitspikeInterpreter>());
const _: () = assert!(align_of::<InterpreterSlot>() <= align_of::<BitspikeInterpreter>());
const _: () = assert!(size_of::<ErrorSlot>() <= BITSPIKE_ERROR_WORDS * 8);
const _: () = assert!(align_of::<ErrorSlot>() <= 8);

/// Whether `p` is null or not aligned for `T`.
fn check<T>(p: *const T) -> Result<(), BitspikeStatus> {
    if p.is_null() {
        Err(BitspikeStatus::NullPointer)
    } else if !(p as usize).is_multiple_of(align_of::<T>()) {
        Err(BitspikeStatus::Misaligned)
    } else {
        Ok(())
    }
}

/// `len` elements of `T` from `p`, checked for null, alignment and size.
///
/// # Safety
/// `p` must point to `len` readable elements that nothing writes while the slice lives.
unsafe fn slice<'a, T>(p: *const T, len: usize) -> Result<&'a [T], BitspikeStatus> {
    check(p)?;
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(BitspikeStatus::TooLong);
    }
    // SAFETY: non-null and aligned (checked), the size fits an isize (checked); the caller
    // promises `len` readable elements.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// `len` elements of `T` at `p`, checked for null, alignment and size.
///
/// # Safety
/// `p` must point to `len` writable elements that nothing else reads or writes while the slice
/// lives.
unsafe fn slice_mut<'a, T>(p: *mut T, len: usize) -> Result<&'a mut [T], BitspikeStatus> {
    check(p)?;
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(BitspikeStatus::TooLong);
    }
    // SAFETY: as in `slice`, writable and unaliased as the caller promises.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// The model a successful `bitspike_load` put into `m`.
///
/// # Safety
/// `m` must be null or point to a `bitspike_model`.
unsafe fn model_in<'a>(m: *const BitspikeModel) -> Result<&'a Model<'static>, BitspikeStatus> {
    check(m)?;
    // SAFETY: aligned and large enough for a slot (checked, asserted above); the caller's
    // promise that it is a `bitspike_model`.
    unsafe { ModelSlot::value(m.cast(), MODEL_TAG) }.ok_or(BitspikeStatus::NotLoaded)
}

/// Record `e` in `error` when it is given (null: not wanted), and return its status.
///
/// # Safety
/// `error` must be null or point to a `bitspike_error`.
unsafe fn fail(
    error: *mut BitspikeError,
    status: BitspikeStatus,
    e: Option<Error>,
) -> BitspikeStatus {
    if check(error).is_ok() {
        // SAFETY: non-null and aligned (checked); a `bitspike_error` holds an `ErrorSlot` in
        // its detail (asserted above).
        unsafe {
            ptr::addr_of_mut!((*error).status).write(status as i32);
            let slot = ptr::addr_of_mut!((*error).detail).cast::<ErrorSlot>();
            match e {
                Some(e) => ErrorSlot::fill(slot, ERROR_TAG, e),
                None => ErrorSlot::clear(slot),
            }
        }
    }
    status
}

/// Validate the model file `bytes[0..len]` (everything is checked here, once) and fill `model`.
/// The bytes must stay in place while the model and interpreters bound to it are used. Returns
/// `BITSPIKE_STATUS_OK` or the reason; `error` (may be null) receives the detail.
///
/// # Safety
/// `bytes` must point to `len` readable bytes; `model` to a `bitspike_model`; `error` must be
/// null or point to a `bitspike_error`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_load(
    bytes: *const u8,
    len: usize,
    model: *mut BitspikeModel,
    error: *mut BitspikeError,
) -> BitspikeStatus {
    if let Err(s) = check(model) {
        // SAFETY: the caller's promise on `error`.
        return unsafe { fail(error, s, None) };
    }
    let slot = model.cast::<ModelSlot>();
    // SAFETY: `model` is non-null and aligned (checked) and large enough for a slot; the tag
    // is cleared first, so a failed load leaves a handle that no call accepts.
    unsafe { ModelSlot::clear(slot) };
    // SAFETY: the caller's promise on `bytes`.
    let bytes: &'static [u8] = match unsafe { slice(bytes, len) } {
        Ok(b) => b,
        // SAFETY: the caller's promise on `error`.
        Err(s) => return unsafe { fail(error, s, None) },
    };
    match Model::load(bytes) {
        Ok(m) => {
            // SAFETY: as above; the bytes outlive the model as the caller promises.
            unsafe { ModelSlot::fill(slot, MODEL_TAG, m) };
            BitspikeStatus::Ok
        }
        // SAFETY: the caller's promise on `error`.
        Err(e) => unsafe { fail(error, BitspikeStatus::of(&e), Some(e)) },
    }
}

/// Bytes of arena the model in `model` needs; 0 for a handle no load filled.
///
/// # Safety
/// `model` must be null or point to a `bitspike_model`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_arena_bytes(model: *const BitspikeModel) -> usize {
    // SAFETY: the caller's promise on `model`.
    unsafe { model_in(model) }.map_or(0, |m| m.arena_bytes())
}

/// Input codes (one byte each) the model in `model` takes; 0 for a handle no load filled.
///
/// # Safety
/// `model` must be null or point to a `bitspike_model`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_input_len(model: *const BitspikeModel) -> usize {
    // SAFETY: the caller's promise on `model`.
    unsafe { model_in(model) }.map_or(0, |m| m.input_len())
}

/// Outputs (`int32_t` each) the model in `model` produces; 0 for a handle no load filled.
///
/// # Safety
/// `model` must be null or point to a `bitspike_model`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_output_len(model: *const BitspikeModel) -> usize {
    // SAFETY: the caller's promise on `model`.
    unsafe { model_in(model) }.map_or(0, |m| m.output_len())
}

/// Bind the model in `model` to `arena[0..arena_len]` (at least `bitspike_arena_bytes`; any
/// alignment) and fill `interp`. The arena must stay in place, and nothing else may use it, while
/// `interp` is used.
///
/// # Safety
/// `model` must point to a `bitspike_model`; `arena` to `arena_len` writable bytes that
/// nothing else uses while `interp` runs; `interp` to a `bitspike_interpreter`; `error` must
/// be null or point to a `bitspike_error`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_bind(
    model: *const BitspikeModel,
    arena: *mut u8,
    arena_len: usize,
    interp: *mut BitspikeInterpreter,
    error: *mut BitspikeError,
) -> BitspikeStatus {
    if let Err(s) = check(interp) {
        // SAFETY: the caller's promise on `error`.
        return unsafe { fail(error, s, None) };
    }
    let slot = interp.cast::<InterpreterSlot>();
    // SAFETY: non-null and aligned (checked), large enough for a slot (asserted); cleared
    // first, so a failed bind leaves a handle that no call accepts.
    unsafe { InterpreterSlot::clear(slot) };
    // SAFETY: the caller's promises on `model` and `arena`.
    let parts = unsafe { model_in(model).and_then(|m| Ok((m, slice_mut(arena, arena_len)?))) };
    let (m, arena): (&Model<'static>, &'static mut [u8]) = match parts {
        Ok(p) => p,
        // SAFETY: the caller's promise on `error`.
        Err(s) => return unsafe { fail(error, s, None) },
    };
    match m.bind(arena) {
        Ok(i) => {
            // SAFETY: as above; the arena outlives the interpreter as the caller promises.
            unsafe { InterpreterSlot::fill(slot, INTERPRETER_TAG, i) };
            BitspikeStatus::Ok
        }
        // SAFETY: the caller's promise on `error`.
        Err(e) => unsafe { fail(error, BitspikeStatus::of(&e), Some(e)) },
    }
}

/// Called after each layer of [`bitspike_run_observed`] with the layer's index (0 first) and the
/// caller's `context`: a profiler's hook (read a cycle counter, mark a trace).
pub type BitspikeLayerCallback =
    Option<unsafe extern "C" fn(layer: usize, context: *mut core::ffi::c_void)>;

/// Run one inference: `input[0..input_len]` (codes up to the model's input levels) to
/// `output[0..output_len]` (4-byte aligned). Fails only on the lengths and codes, checked before
/// anything is written.
///
/// # Safety
/// `interp` must point to a `bitspike_interpreter`; `input` to `input_len` readable bytes;
/// `output` to `output_len` writable `int32_t`; `error` must be null or point to a
/// `bitspike_error`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_run(
    interp: *mut BitspikeInterpreter,
    input: *const u8,
    input_len: usize,
    output: *mut i32,
    output_len: usize,
    error: *mut BitspikeError,
) -> BitspikeStatus {
    // SAFETY: the caller's promises, passed on.
    unsafe { run_with(interp, input, input_len, output, output_len, error, |_| {}) }
}

/// [`bitspike_run`], calling `callback(layer, context)` after each layer (nothing when
/// `callback` is null): per-layer timing without changing what runs. The callback must not
/// call back into this interpreter.
///
/// # Safety
/// As [`bitspike_run`]; `callback`, when not null, must be safe to call with `context`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_run_observed(
    interp: *mut BitspikeInterpreter,
    input: *const u8,
    input_len: usize,
    output: *mut i32,
    output_len: usize,
    callback: BitspikeLayerCallback,
    context: *mut core::ffi::c_void,
    error: *mut BitspikeError,
) -> BitspikeStatus {
    let after = |layer: usize| {
        if let Some(f) = callback {
            // SAFETY: the caller's promise on `callback` and `context`.
            unsafe { f(layer, context) }
        }
    };
    // SAFETY: the caller's promises, passed on.
    unsafe { run_with(interp, input, input_len, output, output_len, error, after) }
}

/// The body of [`bitspike_run`] and [`bitspike_run_observed`].
///
/// # Safety
/// As [`bitspike_run`].
unsafe fn run_with(
    interp: *mut BitspikeInterpreter,
    input: *const u8,
    input_len: usize,
    output: *mut i32,
    output_len: usize,
    error: *mut BitspikeError,
    after_layer: impl FnMut(usize),
) -> BitspikeStatus {
    let run = || -> Result<(), (BitspikeStatus, Option<Error>)> {
        check(interp).map_err(|s| (s, None))?;
        // SAFETY: non-null and aligned (checked) and large enough (asserted); the caller's
        // promise that it is a `bitspike_interpreter`.
        let it = unsafe { InterpreterSlot::value_mut(interp.cast(), INTERPRETER_TAG) }
            .ok_or((BitspikeStatus::NotLoaded, None))?;
        // SAFETY: the caller's promises on `input` and `output`.
        let input = unsafe { slice(input, input_len) }.map_err(|s| (s, None))?;
        // SAFETY: as above.
        let output = unsafe { slice_mut(output, output_len) }.map_err(|s| (s, None))?;
        it.run_observed(input, output, after_layer)
            .map_err(|e| (BitspikeStatus::of(&e), Some(e)))
    };
    match run() {
        Ok(()) => BitspikeStatus::Ok,
        // SAFETY: the caller's promise on `error`.
        Err((s, e)) => unsafe { fail(error, s, e) },
    }
}

/// The real value of one output code of the model in `model` (`bitspike_softmax` uses it), as
/// its file records it; 0 for a handle no load filled.
///
/// # Safety
/// `model` must be null or point to a `bitspike_model`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_output_scale(model: *const BitspikeModel) -> f32 {
    // SAFETY: the caller's promise on `model`.
    unsafe { model_in(model) }.map_or(0.0, |m| m.output_scale())
}

/// The softmax probability of each of `output[0..len]` (an output of `bitspike_run`) over the
/// dequantized outputs (`code * bitspike_output_scale`), written to `probs[0..len]`, and the
/// predicted class (the first largest output) to `*class` unless `class` is null. `exp` is
/// micromath's approximation: each probability within 0.002 of the exact one. Nothing is
/// written unless the status is `BITSPIKE_STATUS_OK`; `probs` overlapping `output` gives
/// `BITSPIKE_STATUS_OVERLAP`.
///
/// # Safety
/// `model` must point to a `bitspike_model`; `output` to `len` readable `int32_t`; `probs` to
/// `len` writable `float`; `class` must be null or point to a writable `size_t` outside both.
#[no_mangle]
pub unsafe extern "C" fn bitspike_softmax(
    model: *const BitspikeModel,
    output: *const i32,
    len: usize,
    probs: *mut f32,
    class: *mut usize,
) -> BitspikeStatus {
    let run = || -> Result<usize, BitspikeStatus> {
        // SAFETY: the caller's promise on `model`.
        let m = unsafe { model_in(model) }?;
        if len != m.output_len() {
            return Err(BitspikeStatus::OutputLength);
        }
        if !class.is_null() && !class.is_aligned() {
            return Err(BitspikeStatus::Misaligned);
        }
        let bytes = len.saturating_mul(4);
        let (o, p) = (output as usize, probs as usize);
        if len > 0 && o < p.saturating_add(bytes) && p < o.saturating_add(bytes) {
            return Err(BitspikeStatus::Overlap);
        }
        // SAFETY: the caller's promises on `output` and `probs` (which do not overlap: checked).
        let output = unsafe { slice(output, len) }?;
        // SAFETY: as above.
        let probs = unsafe { slice_mut(probs, len) }?;
        bitspike_rt::scores::softmax(output, m.output_scale(), probs)
            .map(|(top, _)| top)
            .ok_or(BitspikeStatus::NoScale)
    };
    match run() {
        Ok(top) => {
            if !class.is_null() {
                // SAFETY: non-null and aligned (checked); the caller's promise that it is
                // writable.
                unsafe { class.write(top) };
            }
            BitspikeStatus::Ok
        }
        Err(s) => s,
    }
}

/// Index of the largest of `values[0..len]` (the first on ties; 0 when `len` is 0), or
/// `SIZE_MAX` when `values` is null or not 4-byte aligned (whatever `len`).
///
/// # Safety
/// `values` must point to `len` readable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn bitspike_argmax(values: *const i32, len: usize) -> usize {
    // SAFETY: the caller's promise on `values`.
    match unsafe { slice(values, len) } {
        Ok(v) => bitspike_rt::argmax(v),
        Err(_) => usize::MAX,
    }
}

/// What status code `status` means, as a static NUL-terminated string ("unknown status" for a
/// code that is none).
#[no_mangle]
pub extern "C" fn bitspike_status_str(status: i32) -> *const core::ffi::c_char {
    match BitspikeStatus::from_code(status) {
        Some(s) => s.text().as_ptr(),
        None => c"unknown status".as_ptr(),
    }
}

/// Writes into a byte buffer, keeping the first `len - 1` bytes and counting them all.
struct Truncating<'a> {
    buf: &'a mut [u8],
    written: usize,
}

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.written) {
                *slot = b;
            }
            self.written += 1;
        }
        Ok(())
    }
}

/// Put the one-line text of `error` (what is wrong, with the layer, tensor or sizes at fault)
/// into `buf[0..len]`, NUL-terminated and cut to fit; returns the text's full length without
/// the NUL (as `snprintf` does), so a caller can tell it was cut. `buf` may be null when `len`
/// is 0; a null `buf` with a nonzero `len` gets nothing written and 0 returned. A
/// `bitspike_error` that no failing call filled gives "no error recorded".
///
/// # Safety
/// `error` must be null or point to a `bitspike_error`; `buf` to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitspike_error_text(
    error: *const BitspikeError,
    buf: *mut core::ffi::c_char,
    len: usize,
) -> usize {
    let mut out = Truncating {
        buf: &mut [],
        written: 0,
    };
    if len > 0 {
        // SAFETY: the caller's promise on `buf`.
        match unsafe { slice_mut(buf.cast::<u8>(), len) } {
            // Room for the NUL.
            Ok(b) => out.buf = &mut b[..len - 1],
            Err(_) => return 0,
        }
    }
    let _ = match check(error) {
        Err(_) => out.write_str("no error recorded"),
        Ok(()) => {
            // SAFETY: non-null and aligned (checked); the slot's tag is read first and its
            // error only when a failing call wrote it.
            let (status, detail) = unsafe {
                let slot = ptr::addr_of!((*error).detail).cast::<ErrorSlot>();
                let detail = ErrorSlot::value(slot, ERROR_TAG).copied();
                (ptr::addr_of!((*error).status).read(), detail)
            };
            match (BitspikeStatus::from_code(status), detail) {
                (Some(s), Some(e)) if s != BitspikeStatus::Ok && BitspikeStatus::of(&e) == s => {
                    write!(out, "{e}")
                }
                (Some(BitspikeStatus::Ok), _) | (None, _) => out.write_str("no error recorded"),
                (Some(s), _) => out.write_str(s.text().to_str().unwrap_or("")),
            }
        }
    };
    let n = out.written;
    if len > 0 {
        // SAFETY: `buf` has `len` writable bytes (checked above); the NUL goes after the text
        // or at the last byte when it was cut.
        unsafe { buf.add(n.min(len - 1)).write(0) };
    }
    n
}

//! The board-independent bitspike app (CONVENTIONS 8: boards are data plus a thin seam).
//!
//! [`run`] loads the embedded model, runs every golden vector, compares each output with what the
//! host executor computed, and reports over defmt:
//!
//! ```text
//! bitspike-result board=.. vectors=.. mismatches=.. arena=.. stack=.. model=.. macs=.. cycles=..
//! ```
//!
//! then exits through the board: 0 only when every vector matched. A model that does not load,
//! a panic and a hard fault all exit non-zero; a hang is the runner's timeout.
//!
//! Each inference is bracketed by [`bitspike_mark_start`] and [`bitspike_mark_end`], whose
//! addresses the QEMU instruction-counting plugin watches.
#![no_std]

mod stack;

use bitspike_rt::bitspike_core::cost::macs;
use bitspike_rt::bitspike_core::vectors::Vectors;
use bitspike_rt::Model;

use defmt_semihosting as _;

/// Exit code: every vector matched.
pub const EXIT_OK: i32 = 0;
/// Exit code: at least one output differed from the host's.
pub const EXIT_MISMATCH: i32 = 1;
/// Exit code: the model or the vectors did not load, or the arena is too small.
pub const EXIT_LOAD: i32 = 2;
/// Exit code: a panic.
pub const EXIT_PANIC: i32 = 101;
/// Exit code: a hard fault.
pub const EXIT_FAULT: i32 = 102;

/// What the app needs from a board.
pub trait Board {
    /// The board's name, as reports print it.
    const NAME: &'static str;

    /// A free-running cycle (or tick) counter, where the board has one that works; read before
    /// and after each inference as a cross-check of the instruction count.
    fn cycles(&mut self) -> Option<u32>;

    /// End the program with `code` (through semihosting on emulated boards).
    fn exit(&mut self, code: i32) -> !;
}

/// Marks the start of one inference for the instruction counter. Never inlined, never merged
/// with [`bitspike_mark_end`] (each writes its own value).
#[no_mangle]
#[inline(never)]
pub extern "C" fn bitspike_mark_start() {
    mark(1);
}

/// Marks the end of one inference for the instruction counter.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bitspike_mark_end() {
    mark(2);
}

static MARK: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// A volatile store: the optimizer may neither drop it nor the marker call around it.
#[inline(always)]
fn mark(v: u32) {
    // SAFETY: a valid, aligned pointer to a static that nothing else touches non-atomically.
    unsafe { core::ptr::write_volatile(MARK.as_ptr(), v) };
}

/// Run the app: `model` and `vectors` are the embedded files, `arena` and `output` static
/// buffers sized from the model at build time.
pub fn run<B: Board>(
    board: &mut B,
    model: &[u8],
    vectors: &[u8],
    arena: &mut [u8],
    output: &mut [i32],
) -> ! {
    stack::paint();
    let model = match Model::load(model) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("model does not load: {}", e);
            board.exit(EXIT_LOAD)
        }
    };
    let vectors = match Vectors::parse(vectors) {
        Ok(v) => v,
        Err(e) => {
            defmt::error!("vectors do not load: {}", e);
            board.exit(EXIT_LOAD)
        }
    };
    let out_len = model.output_len();
    if vectors.input_len() != model.input_len()
        || vectors.output_len() != out_len
        || output.len() != out_len
    {
        defmt::error!(
            "vectors ({=usize} -> {=usize}) or the output buffer ({=usize}) do not fit the model ({=usize} -> {=usize})",
            vectors.input_len(),
            vectors.output_len(),
            output.len(),
            model.input_len(),
            out_len
        );
        board.exit(EXIT_LOAD)
    }
    if cfg!(feature = "selftest-hang") {
        loop {
            cortex_m::asm::nop();
        }
    }
    if cfg!(feature = "selftest-panic") {
        panic!("selftest-panic: a deliberate panic");
    }

    let file = *model.file();
    let model_macs: u64 = (0..file.layer_count())
        .map(|i| macs(&file.geometry(i)))
        .sum();
    let arena_bytes = model.arena_bytes();
    let mut interp = match model.bind(arena) {
        Ok(i) => i,
        Err(e) => {
            defmt::error!("arena: {}", e);
            board.exit(EXIT_LOAD)
        }
    };
    defmt::println!(
        "bitspike board={=str} model={=usize}B layers={=usize} arena={=usize}B vectors={=usize}",
        B::NAME,
        file.bytes().len(),
        file.layer_count(),
        arena_bytes,
        vectors.len()
    );

    let mut mismatches = 0usize;
    let mut cycles_last = 0u32;
    for k in 0..vectors.len() {
        let before = board.cycles();
        bitspike_mark_start();
        let ran = interp.run(vectors.input(k), output);
        bitspike_mark_end();
        if let (Some(a), Some(b)) = (before, board.cycles()) {
            cycles_last = b.wrapping_sub(a);
        }
        if let Err(e) = ran {
            defmt::error!("vector {=usize}: {}", k, e);
            mismatches += 1;
            continue;
        }
        let mut first_bad = None;
        for (j, &got) in output.iter().enumerate() {
            if got != vectors.expected(k, j) {
                first_bad = first_bad.or(Some(j));
            }
        }
        if let Some(j) = first_bad {
            mismatches += 1;
            defmt::error!(
                "vector {=usize}: output {=usize} is {=i32}, the host computed {=i32}",
                k,
                j,
                output[j],
                vectors.expected(k, j)
            );
        }
    }
    let stack = stack::peak();
    defmt::println!(
        "bitspike-result board={=str} vectors={=usize} mismatches={=usize} arena={=usize} stack={=usize} model={=usize} macs={=u64} cycles={=u32}",
        B::NAME,
        vectors.len(),
        mismatches,
        arena_bytes,
        stack,
        file.bytes().len(),
        model_macs,
        cycles_last
    );
    board.exit(if mismatches == 0 {
        EXIT_OK
    } else {
        EXIT_MISMATCH
    })
}

/// Exit through semihosting: QEMU passes `code` to the shell (0 success, anything else failure).
pub fn semihosting_exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    semihosting_exit(EXIT_PANIC)
}

#[defmt::panic_handler]
fn defmt_panic() -> ! {
    semihosting_exit(EXIT_PANIC)
}

#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault at pc {=u32:#x}", frame.pc());
    semihosting_exit(EXIT_FAULT)
}

//! The board-independent bitspike app (CONVENTIONS 8: boards are data plus a thin seam).
//!
//! [`run`] loads the embedded model, runs every golden vector, compares each output with what the
//! host executor computed, and reports over defmt:
//!
//! ```text
//! bitspike-result board=.. vectors=.. mismatches=.. arena=.. stack=.. model=.. macs=.. cycles=..
//! bitspike-accuracy correct=.. of=..        (streamed, labelled test sets only)
//! ```
//!
//! The golden vectors are embedded in flash, or streamed from a file on the host through
//! semihosting when they are too large (a whole test set).
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

/// Where the golden vectors come from.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// A vector file embedded in flash (`bitspike_core::vectors`).
    Embedded(&'a [u8]),
    /// A stream file on the host, read record by record through semihosting
    /// (`bitspike_core::vectors::StreamHeader`): for test sets larger than the flash.
    Stream(&'a core::ffi::CStr),
}

/// The static buffers a board provides, sized from the model at build time.
pub struct Buffers<'a> {
    /// The model's arena.
    pub arena: &'a mut [u8],
    /// One output.
    pub output: &'a mut [i32],
    /// One stream record (empty when the vectors are embedded).
    pub record: &'a mut [u8],
}

/// Counts of a run.
#[derive(Default)]
struct Tally {
    vectors: usize,
    mismatches: usize,
    correct: usize,
    cycles: u32,
}

/// Run one inference between the markers and compare it with `expected(j)`; `false` when the
/// inference itself failed (its output is then not a prediction).
fn check<B: Board>(
    board: &mut B,
    interp: &mut bitspike_rt::Interpreter<'_, '_>,
    k: usize,
    input: &[u8],
    output: &mut [i32],
    expected: impl Fn(usize) -> i32,
    t: &mut Tally,
) -> bool {
    let before = board.cycles();
    bitspike_mark_start();
    let ran = interp.run(input, output);
    bitspike_mark_end();
    if let (Some(a), Some(b)) = (before, board.cycles()) {
        t.cycles = b.wrapping_sub(a);
    }
    t.vectors += 1;
    if let Err(e) = ran {
        defmt::error!("vector {=usize}: {}", k, e);
        t.mismatches += 1;
        return false;
    }
    if let Some(j) = (0..output.len()).find(|&j| output[j] != expected(j)) {
        t.mismatches += 1;
        if t.mismatches <= 10 {
            defmt::error!(
                "vector {=usize}: output {=usize} is {=i32}, the host computed {=i32}",
                k,
                j,
                output[j],
                expected(j)
            );
        }
    }
    true
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    match b.get(at..at + 4) {
        Some(s) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Run every streamed record; `Err` names what went wrong with the stream itself.
fn run_stream<B: Board>(
    board: &mut B,
    interp: &mut bitspike_rt::Interpreter<'_, '_>,
    path: &core::ffi::CStr,
    input_len: usize,
    output: &mut [i32],
    record: &mut [u8],
    t: &mut Tally,
) -> Result<(), &'static str> {
    use bitspike_rt::bitspike_core::format::Crc32;
    use bitspike_rt::bitspike_core::vectors::{StreamHeader, STREAM_HEADER_LEN};
    use semihosting::io::Read;
    let mut f = semihosting::fs::File::open(path).map_err(|_| "cannot open the stream file")?;
    let mut head = [0u8; STREAM_HEADER_LEN];
    f.read_exact(&mut head)
        .map_err(|_| "the stream file is truncated")?;
    let h = StreamHeader::parse(&head).map_err(|_| "not a stream file")?;
    let rec_len = h.record_len().unwrap_or(0);
    if h.input_len != input_len || h.output_len != output.len() || rec_len != record.len() {
        return Err("the stream's sizes do not fit the model");
    }
    let mut crc = Crc32::new();
    crc.update(&head);
    for k in 0..h.count {
        f.read_exact(record)
            .map_err(|_| "the stream file is truncated")?;
        crc.update(record);
        let (input, rest) = record.split_at(input_len);
        let ran = check(board, interp, k, input, output, |j| i32_at(rest, 4 * j), t);
        if ran && bitspike_rt::argmax(output) == rest.last().copied().unwrap_or(u8::MAX) as usize {
            t.correct += 1;
        }
    }
    let mut tail = [0u8; 4];
    f.read_exact(&mut tail)
        .map_err(|_| "the stream file is truncated")?;
    if u32::from_le_bytes(tail) != crc.finish() {
        return Err("the stream file's CRC does not match: it is corrupt");
    }
    Ok(())
}

/// Run the app on `model` with golden vectors from `source`, then exit through the board.
pub fn run<B: Board>(board: &mut B, model: &[u8], source: Source<'_>, bufs: Buffers<'_>) -> ! {
    stack::paint();
    let Buffers {
        arena,
        output,
        record,
    } = bufs;
    let model = match Model::load(model) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("model does not load: {}", e);
            board.exit(EXIT_LOAD)
        }
    };
    if output.len() != model.output_len() {
        defmt::error!(
            "the output buffer ({=usize}) does not fit the model ({=usize})",
            output.len(),
            model.output_len()
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
    let input_len = model.input_len();
    let mut interp = match model.bind(arena) {
        Ok(i) => i,
        Err(e) => {
            defmt::error!("arena: {}", e);
            board.exit(EXIT_LOAD)
        }
    };
    defmt::println!(
        "bitspike board={=str} model={=usize}B layers={=usize} arena={=usize}B",
        B::NAME,
        file.bytes().len(),
        file.layer_count(),
        arena_bytes
    );
    let mut t = Tally::default();
    let labelled = matches!(source, Source::Stream(_));
    match source {
        Source::Embedded(bytes) => {
            let vectors = match Vectors::parse(bytes) {
                Ok(v) if v.input_len() == input_len && v.output_len() == output.len() => v,
                Ok(_) => {
                    defmt::error!("the vectors do not fit the model");
                    board.exit(EXIT_LOAD)
                }
                Err(e) => {
                    defmt::error!("vectors do not load: {}", e);
                    board.exit(EXIT_LOAD)
                }
            };
            for k in 0..vectors.len() {
                let _ = check(
                    board,
                    &mut interp,
                    k,
                    vectors.input(k),
                    output,
                    |j| vectors.expected(k, j),
                    &mut t,
                );
            }
        }
        Source::Stream(path) => {
            if let Err(why) =
                run_stream(board, &mut interp, path, input_len, output, record, &mut t)
            {
                defmt::error!("stream: {=str}", why);
                board.exit(EXIT_LOAD)
            }
        }
    }
    if t.vectors == 0 {
        defmt::error!("no golden vectors: nothing was checked");
        board.exit(EXIT_LOAD)
    }
    let stack = stack::peak();
    defmt::println!(
        "bitspike-result board={=str} vectors={=usize} mismatches={=usize} arena={=usize} stack={=usize} model={=usize} macs={=u64} cycles={=u32}",
        B::NAME,
        t.vectors,
        t.mismatches,
        arena_bytes,
        stack,
        file.bytes().len(),
        model_macs,
        t.cycles
    );
    if labelled {
        defmt::println!(
            "bitspike-accuracy correct={=usize} of={=usize}",
            t.correct,
            t.vectors
        );
    }
    board.exit(if t.mismatches == 0 {
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

/// The program entry of a board package: embeds what the build script chose (model, vectors or
/// stream, buffer sizes), defines the static buffers, and runs the app on `$board`.
///
/// ```ignore
/// bitspike_board::main!(MyBoard);
/// ```
#[macro_export]
macro_rules! main {
    ($board:expr) => {
        include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

        static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
        static mut OUTPUT: [i32; OUTPUT_LEN] = [0; OUTPUT_LEN];
        static mut RECORD: [u8; RECORD_LEN] = [0; RECORD_LEN];

        #[cortex_m_rt::entry]
        fn main() -> ! {
            // SAFETY: the only references to the buffers, taken once before anything else runs.
            let bufs = unsafe {
                $crate::Buffers {
                    arena: &mut *core::ptr::addr_of_mut!(ARENA),
                    output: &mut *core::ptr::addr_of_mut!(OUTPUT),
                    record: &mut *core::ptr::addr_of_mut!(RECORD),
                }
            };
            $crate::run(&mut $board, MODEL, SOURCE, bufs)
        }
    };
}

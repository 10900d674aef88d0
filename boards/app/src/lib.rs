//! The board-independent bitspike app (docs/conventions.md, 8: boards are data plus a thin seam).
//!
//! [`run`] loads the embedded model, runs every golden vector, compares each output with what the
//! host executor computed, and reports over defmt:
//!
//! ```text
//! bitspike board=.. model=..B layers=.. arena=..B clock=..
//! bitspike-result board=.. vectors=.. mismatches=.. arena=.. stack=.. model=.. macs=.. cycles=.. cycles_min=.. cycles_max=.. cycles_sum=.. clock=..
//! bitspike-accuracy correct=.. of=..        (streamed, labelled test sets only)
//! bitspike-confidence class=.. probability=.. mean=..   (models whose output has a scale)
//! bitspike-exit code=..
//! ```
//!
//! then ends through the board: exit code 0 only when every vector matched. A model that does
//! not load, a panic and a hard fault all end with a non-zero code; a hang is the runner's
//! timeout. The `bitspike-exit` line is the verdict where no exit code reaches the host (a real
//! board read over RTT); emulated boards print it too and also exit through semihosting.
//!
//! The transport is a feature (exactly one): `semihosting` (emulated boards: defmt over
//! semihosting, exit codes, test sets streamed from host files) or `rtt` (real boards: defmt over
//! RTT, read by the probe; the verdict also on an LED through [`show_and_park`]).
//!
//! The golden vectors are embedded in flash, or (semihosting only) streamed from a file on the
//! host when they are too large (a whole test set).
//!
//! Each inference is bracketed by [`bitspike_mark_start`] and [`bitspike_mark_end`], whose
//! addresses the QEMU instruction-counting plugin watches; real boards read their cycle counter
//! around the same call.
#![no_std]

#[cfg(all(feature = "semihosting", feature = "rtt"))]
compile_error!("bitspike-board: enable one transport, `semihosting` or `rtt`, not both");
#[cfg(not(any(feature = "semihosting", feature = "rtt")))]
compile_error!(
    "bitspike-board: enable a transport: `semihosting` (emulated) or `rtt` (real boards)"
);

mod stack;

use bitspike_rt::bitspike_core::cost::macs;
use bitspike_rt::bitspike_core::vectors::Vectors;
use bitspike_rt::Model;

#[cfg(feature = "rtt")]
use defmt_rtt as _;
#[cfg(feature = "semihosting")]
use defmt_semihosting as _;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;

/// Exit code: every vector matched.
pub const EXIT_OK: i32 = 0;
/// Exit code: at least one output differed from the host's.
pub const EXIT_MISMATCH: i32 = 1;
/// Exit code: the model or the vectors did not load, or the arena is too small.
pub const EXIT_LOAD: i32 = 2;
/// Exit code: the board could not be set up (its peripherals were already taken).
pub const EXIT_BOARD: i32 = 3;
/// Exit code: a panic.
pub const EXIT_PANIC: i32 = 101;
/// Exit code: a hard fault.
pub const EXIT_FAULT: i32 = 102;

/// What the app needs from a board.
pub trait Board {
    /// The board's name, as reports print it.
    const NAME: &'static str;

    /// The core clock the board set up, in hertz (0 on an emulated board, which has none that
    /// means anything). The host checks it against `board.toml` before it turns cycles into time
    /// and energy.
    const CLOCK_HZ: u32;

    /// A free-running cycle counter at the core clock (DWT's CYCCNT, or SysTick where the core
    /// has no DWT counter), where the board has one that works; read before and after each
    /// inference. Differences are taken modulo 2^32.
    fn cycles(&mut self) -> Option<u32>;

    /// End the program with `code`, 0 meaning every vector matched: through semihosting on
    /// emulated boards; on real boards by showing the verdict ([`show_and_park`]).
    fn exit(&mut self, code: i32) -> !;
}

/// Show a verdict on an LED and stay there (real boards, after the `bitspike-exit` line): the
/// LED on for `code == 0`, blinking at 5 Hz for a failure. Never returns; the probe keeps
/// reading the log.
pub fn show_and_park<L: OutputPin, D: DelayNs>(led: &mut L, delay: &mut D, code: i32) -> ! {
    // A pin that cannot be driven leaves nothing to show; the log line has said it already.
    if code == EXIT_OK {
        let _ = led.set_high();
        loop {
            delay.delay_ms(1000);
        }
    }
    loop {
        let _ = led.set_high();
        delay.delay_ms(100);
        let _ = led.set_low();
        delay.delay_ms(100);
    }
}

/// [`show_and_park`] on a board with two LEDs: `pass` on for `code == 0`, `fail` blinking
/// otherwise, timed by [`SpinDelay`] at `clock_hz`.
pub fn show_on_two_leds<P: OutputPin, F: OutputPin>(
    pass: &mut P,
    fail: &mut F,
    clock_hz: u32,
    code: i32,
) -> ! {
    let mut delay = SpinDelay { clock_hz };
    if code == EXIT_OK {
        show_and_park(pass, &mut delay, code)
    } else {
        show_and_park(fail, &mut delay, code)
    }
}

/// An LED wired to light when its pin is low (nRF52840-DK's): [`OutputPin`] with the levels
/// swapped, so that `set_high` lights it.
pub struct ActiveLow<P>(pub P);

impl<P: OutputPin> embedded_hal::digital::ErrorType for ActiveLow<P> {
    type Error = P::Error;
}

impl<P: OutputPin> OutputPin for ActiveLow<P> {
    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.0.set_low()
    }

    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.0.set_high()
    }
}

/// A busy-wait [`DelayNs`] at a known core clock (`cortex_m::asm::delay`): enough for an LED.
pub struct SpinDelay {
    /// Core clock in hertz.
    pub clock_hz: u32,
}

impl DelayNs for SpinDelay {
    fn delay_ns(&mut self, ns: u32) {
        let cycles = (u64::from(ns) * u64::from(self.clock_hz) / 1_000_000_000) as u32;
        cortex_m::asm::delay(cycles.max(1));
    }
}

/// The DWT cycle counter (Cortex-M3/M4/M7; feature `dwt`), started by [`DwtCycles::start`].
#[cfg(feature = "dwt")]
pub struct DwtCycles;

#[cfg(feature = "dwt")]
impl DwtCycles {
    /// Enable tracing (DEMCR.TRCENA) and start CYCCNT from 0.
    pub fn start(dcb: &mut cortex_m::peripheral::DCB, dwt: &mut cortex_m::peripheral::DWT) -> Self {
        dcb.enable_trace();
        dwt.set_cycle_count(0);
        dwt.enable_cycle_counter();
        Self
    }

    /// The counter now.
    pub fn now(&self) -> u32 {
        cortex_m::peripheral::DWT::cycle_count()
    }
}

/// Print the verdict line the host waits for on a real board (emulated boards print it too).
fn verdict(code: i32) {
    defmt::println!("bitspike-exit code={=i32}", code);
}

/// Print the verdict and end through the board.
fn finish<B: Board>(board: &mut B, code: i32) -> ! {
    verdict(code);
    board.exit(code)
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

/// Called after each layer of a counted inference: the instruction counter records how far it
/// got, which gives per-layer instruction counts.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bitspike_mark_layer() {
    mark(3);
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
    #[cfg(feature = "semihosting")]
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
    /// The board's RAM origin: the lowest address the stack may use (flip-link places the
    /// stack there, below the statics).
    pub stack_floor: usize,
}

/// Counts of a run.
#[derive(Default)]
struct Tally {
    vectors: usize,
    mismatches: usize,
    correct: usize,
    /// Inferences whose cycles were counted; cycles of the last, the fewest, the most and their
    /// sum.
    counted: usize,
    cycles: u32,
    cycles_min: u32,
    cycles_max: u32,
    cycles_sum: u64,
    /// The real value of one output code (the model file's output scale).
    scale: f32,
    /// The last output's predicted class and softmax probability, and the sum of every
    /// output's top probability ([`bitspike_rt::scores`]).
    last_confidence: Option<(usize, f32)>,
    confidence_sum: f32,
    /// Outputs whose confidence was taken.
    confident: usize,
}

impl Tally {
    fn add_cycles(&mut self, c: u32) {
        self.cycles_min = if self.counted == 0 {
            c
        } else {
            self.cycles_min.min(c)
        };
        self.counted += 1;
        self.cycles_max = self.cycles_max.max(c);
        self.cycles_sum += u64::from(c);
        self.cycles = c;
    }
}

/// One inference between the markers. Never inlined: the embedded vectors and a stream run the
/// same machine code, and changes to the app around it cannot move the instruction counts.
#[inline(never)]
fn infer(
    interp: &mut bitspike_rt::Interpreter<'_, '_>,
    input: &[u8],
    output: &mut [i32],
) -> Result<(), bitspike_rt::Error> {
    bitspike_mark_start();
    let ran = interp.run_observed(input, output, |_| bitspike_mark_layer());
    bitspike_mark_end();
    ran
}

/// Run one inference between the markers and compare it with `expected(j)`; `false` when the
/// inference itself failed (its output is then not a prediction). The softmax confidence is
/// taken outside the markers, on the output.
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
    let ran = infer(interp, input, output);
    if let (Some(a), Some(b)) = (before, board.cycles()) {
        t.add_cycles(b.wrapping_sub(a));
    }
    t.vectors += 1;
    if let Err(e) = ran {
        defmt::error!("vector {=usize}: {}", k, e);
        t.mismatches += 1;
        return false;
    }
    if let Some((class, p)) = bitspike_rt::scores::confidence(output, t.scale) {
        t.last_confidence = Some((class, p));
        t.confidence_sum += p;
        t.confident += 1;
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

#[cfg(feature = "semihosting")]
fn i32_at(b: &[u8], at: usize) -> i32 {
    match b.get(at..at + 4) {
        Some(s) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Run every streamed record; `Err` names what went wrong with the stream itself.
#[cfg(feature = "semihosting")]
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
    stack::paint(bufs.stack_floor);
    let Buffers {
        arena,
        output,
        record,
        stack_floor,
    } = bufs;
    #[cfg(not(feature = "semihosting"))]
    let _ = record;
    let model = match Model::load(model) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("model does not load: {}", e);
            finish(board, EXIT_LOAD)
        }
    };
    if output.len() != model.output_len() {
        defmt::error!(
            "the output buffer ({=usize}) does not fit the model ({=usize})",
            output.len(),
            model.output_len()
        );
        finish(board, EXIT_LOAD)
    }
    if cfg!(feature = "selftest-hang") {
        loop {
            cortex_m::asm::nop();
        }
    }
    if cfg!(feature = "selftest-panic") {
        panic!("selftest-panic: a deliberate panic");
    }
    if cfg!(feature = "selftest-stack-overflow") {
        // More stack than there is: the overflow must fault (flip-link), never reach the arena.
        let canary = arena.first().copied();
        let deepest = stack::overflow(stack_floor);
        defmt::error!(
            "selftest-stack-overflow: the stack reached {=usize:#x} without a fault (arena byte 0 {=?} -> {=?})",
            deepest,
            canary,
            arena.first().copied()
        );
        finish(board, EXIT_MISMATCH)
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
            finish(board, EXIT_LOAD)
        }
    };
    defmt::println!(
        "bitspike board={=str} model={=usize}B layers={=usize} arena={=usize}B clock={=u32}",
        B::NAME,
        file.bytes().len(),
        file.layer_count(),
        arena_bytes,
        B::CLOCK_HZ
    );
    let mut t = Tally {
        scale: model.output_scale(),
        ..Tally::default()
    };
    #[cfg_attr(not(feature = "semihosting"), allow(unused_mut))]
    let mut labelled = false;
    match source {
        Source::Embedded(bytes) => {
            let vectors = match Vectors::parse(bytes) {
                Ok(v) if v.input_len() == input_len && v.output_len() == output.len() => v,
                Ok(_) => {
                    defmt::error!("the vectors do not fit the model");
                    finish(board, EXIT_LOAD)
                }
                Err(e) => {
                    defmt::error!("vectors do not load: {}", e);
                    finish(board, EXIT_LOAD)
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
        #[cfg(feature = "semihosting")]
        Source::Stream(path) => {
            labelled = true;
            if let Err(why) =
                run_stream(board, &mut interp, path, input_len, output, record, &mut t)
            {
                defmt::error!("stream: {=str}", why);
                finish(board, EXIT_LOAD)
            }
        }
    }
    if t.vectors == 0 {
        defmt::error!("no golden vectors: nothing was checked");
        finish(board, EXIT_LOAD)
    }
    let stack = stack::peak(stack_floor);
    defmt::println!(
        "bitspike-result board={=str} vectors={=usize} mismatches={=usize} arena={=usize} stack={=usize} model={=usize} macs={=u64} cycles={=u32} cycles_min={=u32} cycles_max={=u32} cycles_sum={=u64} clock={=u32}",
        B::NAME,
        t.vectors,
        t.mismatches,
        arena_bytes,
        stack,
        file.bytes().len(),
        model_macs,
        t.cycles,
        t.cycles_min,
        t.cycles_max,
        t.cycles_sum,
        B::CLOCK_HZ
    );
    if labelled {
        defmt::println!(
            "bitspike-accuracy correct={=usize} of={=usize}",
            t.correct,
            t.vectors
        );
    }
    if let Some((class, p)) = t.last_confidence {
        defmt::println!(
            "bitspike-confidence class={=usize} probability={=f32} mean={=f32}",
            class,
            p,
            t.confidence_sum / t.confident as f32
        );
    }
    let code = if t.mismatches == 0 {
        EXIT_OK
    } else {
        EXIT_MISMATCH
    };
    finish(board, code)
}

/// Exit through semihosting: QEMU passes `code` to the shell (0 success, anything else failure).
#[cfg(feature = "semihosting")]
pub fn semihosting_exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

/// End where no board is at hand (a panic, a fault, a board that cannot be set up): the
/// verdict line, then the semihosting exit (emulated) or a parked core (real boards: the probe
/// reads the line).
pub fn abort(code: i32) -> ! {
    verdict(code);
    #[cfg(feature = "semihosting")]
    semihosting_exit(code);
    #[cfg(not(feature = "semihosting"))]
    loop {
        cortex_m::asm::nop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    abort(EXIT_PANIC)
}

#[defmt::panic_handler]
fn defmt_panic() -> ! {
    abort(EXIT_PANIC)
}

/// The hard-fault handler proper, entered from `stack::HardFault` on a fresh stack with the
/// address of the faulting frame: its pc when that frame lies on the stack, else a stack
/// overflow (the frame could not be pushed below the stack's floor).
#[no_mangle]
extern "C" fn bitspike_hard_fault(frame: usize) -> ! {
    match stack::frame_pc(frame) {
        Some(pc) => defmt::error!("hard fault at pc {=u32:#x}", pc),
        None => defmt::error!(
            "hard fault: stack overflow (stack pointer {=usize:#x})",
            frame
        ),
    }
    abort(EXIT_FAULT)
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
                    stack_floor: RAM_START,
                }
            };
            $crate::run(&mut $board, MODEL, SOURCE, bufs)
        }
    };
}

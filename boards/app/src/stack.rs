//! The stack: its layout, the peak-use measurement, the hard-fault entry, and the overflow
//! self-test.
//!
//! Every board app links through flip-link, which places the stack at the bottom of RAM, below
//! the statics: it grows down from `_stack_start` towards the RAM origin (the "floor"), so an
//! overflow leaves RAM and faults instead of overwriting the arena. Linked without it
//! (cortex-m-rt's own layout), the stack grows down from the top of RAM towards `__sheap`, the
//! end of the statics; both layouts are handled here.
//!
//! Peak use: paint the free stack with a pattern at start, scan for the deepest overwritten word
//! after the work.

use core::sync::atomic::{AtomicUsize, Ordering};

const PATTERN: u32 = 0xB175_B175;
/// The stack's floor as [`paint`] was given it, for the hard-fault handler.
static FLOOR: AtomicUsize = AtomicUsize::new(0);
/// Words left unpainted just below the stack pointer, for `paint`'s own frame.
const MARGIN: usize = 16;

extern "C" {
    static mut __sheap: u32;
    static mut _stack_start: u32;
}

/// The free stack's range: from its floor (`floor`, the RAM origin, when flip-link placed the
/// stack below the statics; else the end of the statics) to its top.
fn bounds(floor: usize) -> (usize, usize) {
    // Only the addresses of the linker symbols are taken (no access): no `unsafe` needed.
    let (sheap, top) = (
        core::ptr::addr_of_mut!(__sheap) as usize,
        core::ptr::addr_of_mut!(_stack_start) as usize,
    );
    let low = if top <= sheap { floor } else { sheap };
    (low.min(top), top)
}

/// Fill the free stack with the pattern.
pub fn paint(floor: usize) {
    FLOOR.store(floor, Ordering::Relaxed);
    let (low, _) = bounds(floor);
    let sp = cortex_m::register::msp::read() as usize;
    let high = sp.saturating_sub(MARGIN * 4) & !3;
    let mut p = (low + 3) & !3;
    while p < high {
        // SAFETY: [low, high) is RAM below the live stack and clear of every static: unused.
        unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
        p += 4;
    }
}

/// Bytes of stack used at the deepest point since [`paint`]: from the top of the stack down to
/// the lowest word that no longer holds the pattern.
pub fn peak(floor: usize) -> usize {
    let (low, top) = bounds(floor);
    let mut p = (low + 3) & !3;
    while p < top {
        // SAFETY: reading RAM between the stack's floor and its top.
        if unsafe { core::ptr::read_volatile(p as *const u32) } != PATTERN {
            break;
        }
        p += 4;
    }
    top.saturating_sub(p)
}

/// The faulting pc in the exception frame at `frame`, when the whole frame lies on the stack
/// (`None` after an overflow: the core could not push it there).
pub fn frame_pc(frame: usize) -> Option<u32> {
    let (low, top) = bounds(FLOOR.load(Ordering::Relaxed));
    // An exception frame: r0-r3, r12, lr, pc, xpsr (8 words, the pc at offset 24).
    let on_stack = frame.is_multiple_of(4) && frame >= low && top.saturating_sub(frame) >= 32;
    // SAFETY: an aligned word inside the stack region, which is RAM.
    on_stack.then(|| unsafe { core::ptr::read_volatile((frame + 24) as *const u32) })
}

/// Bytes each level of [`overflow`] puts on the stack.
const FRAME: usize = 256;

/// Use more stack than there is, a frame of [`FRAME`] bytes at a time, until the stack pointer
/// is a kilobyte below the floor; returns the lowest stack address reached, which only happens
/// when the overflow did not fault.
pub fn overflow(floor: usize) -> usize {
    let (low, top) = bounds(floor);
    let levels = (top - low) / FRAME + 1024 / FRAME + 1;
    descend(levels)
}

#[inline(never)]
fn descend(levels: usize) -> usize {
    let frame = core::hint::black_box([levels as u8; FRAME]);
    let sp = cortex_m::register::msp::read() as usize;
    let deeper = if levels > 1 { descend(levels - 1) } else { sp };
    // The frame stays live across the call (no tail call, no frame reuse).
    core::hint::black_box(&frame);
    deeper.min(sp)
}

// The hard-fault entry, straight from the vector table: after a stack overflow the stack pointer
// lies below RAM, where nothing can be pushed, so the faulting frame's address (the main stack
// pointer: the app runs on it) goes to r0 and the stack pointer is reset to the top of the stack
// (the app only reports and exits from here) before the handler runs.
core::arch::global_asm!(
    ".section .HardFault.user, \"ax\"",
    ".global HardFault",
    ".type HardFault, %function",
    ".thumb_func",
    "HardFault:",
    "mrs r0, msp",
    "ldr r1, =_stack_start",
    "mov sp, r1",
    "bl bitspike_hard_fault",
    "b .",
);

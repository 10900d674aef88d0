//! Peak stack measurement: paint the free stack with a pattern at start, scan for the deepest
//! overwritten word after the work.
//!
//! With cortex-m-rt the stack grows down from `_stack_start` (the top of RAM) towards `__sheap`
//! (the end of `.bss` and `.uninit`; nothing allocates, so no heap lives there). Everything
//! between `__sheap` and the current stack pointer is free when [`paint`] runs.

const PATTERN: u32 = 0xB175_B175;
/// Words left unpainted just below the stack pointer, for `paint`'s own frame.
const MARGIN: usize = 16;

extern "C" {
    static mut __sheap: u32;
    static mut _stack_start: u32;
}

fn bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken (no access): no `unsafe` needed.
    (
        core::ptr::addr_of_mut!(__sheap) as usize,
        core::ptr::addr_of_mut!(_stack_start) as usize,
    )
}

/// Fill the free stack with the pattern.
pub fn paint() {
    let (low, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let high = sp.saturating_sub(MARGIN * 4) & !3;
    let mut p = (low + 3) & !3;
    while p < high {
        // SAFETY: [low, high) is RAM below the live stack and above every static: unused.
        unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
        p += 4;
    }
}

/// Bytes of stack used at the deepest point since [`paint`]: from the top of the stack down to
/// the lowest word that no longer holds the pattern.
pub fn peak() -> usize {
    let (low, top) = bounds();
    let mut p = (low + 3) & !3;
    while p < top {
        // SAFETY: reading RAM between the statics and the top of the stack.
        if unsafe { core::ptr::read_volatile(p as *const u32) } != PATTERN {
            break;
        }
        p += 4;
    }
    top - p
}

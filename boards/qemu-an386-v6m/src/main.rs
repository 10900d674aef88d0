//! bitspike as ARMv6-M code (`thumbv6m-none-eabi`) on QEMU's `mps2-an386`, whose Cortex-M4 runs it
//! unchanged (see `board.toml`).
//!
//! Runner: `qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -display none -semihosting-config
//! enable=on,target=native -kernel <elf>` (xtask adds `-icount shift=0,sleep=off` and the
//! instruction-counting plugin when it measures). The cycle cross-check is the FPGAIO 25 MHz
//! counter, which under `-icount shift=0` advances with virtual time (1 ns per instruction).
#![no_std]
#![no_main]

use bitspike_board::{semihosting_exit, Board};

/// FPGAIO COUNTER register (mps2 FPGA system control block at 0x4002_8000, offset 0x18).
const FPGAIO_COUNTER: *const u32 = 0x4002_8018 as *const u32;

struct An386V6m;

impl Board for An386V6m {
    const NAME: &'static str = "qemu-an386-v6m";
    const CLOCK_HZ: u32 = 0;

    fn cycles(&mut self) -> Option<u32> {
        // SAFETY: a read-only memory-mapped counter of this board.
        Some(unsafe { core::ptr::read_volatile(FPGAIO_COUNTER) })
    }

    fn exit(&mut self, code: i32) -> ! {
        semihosting_exit(code)
    }
}

bitspike_board::main!(An386V6m);

//! bitspike on QEMU's `lm3s6965evb` (Cortex-M3, `thumbv7m-none-eabi`; 256 KiB flash, 64 KiB RAM).
//!
//! Runner: `qemu-system-arm -machine lm3s6965evb -display none -semihosting-config
//! enable=on,target=native -kernel <elf>`. The board has no counter that QEMU models usefully,
//! so the instruction count comes from the QEMU plugin alone.
#![no_std]
#![no_main]

use bitspike_board::{semihosting_exit, Board};

struct Lm3s6965;

impl Board for Lm3s6965 {
    const NAME: &'static str = "qemu-lm3s6965";
    const CLOCK_HZ: u32 = 0;

    fn cycles(&mut self) -> Option<u32> {
        None
    }

    fn exit(&mut self, code: i32) -> ! {
        semihosting_exit(code)
    }
}

bitspike_board::main!(Lm3s6965);

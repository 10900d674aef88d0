//! bitspike on the NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F, `thumbv7em-none-eabihf`), the
//! MLPerf Tiny reference board.
//!
//! No HAL supports the STM32L4+ line with embedded-hal 1.0, so this seam sets the clock and
//! drives the LEDs on registers (RM0432, the STM32L4+ reference manual; each step cites its
//! section) and implements `OutputPin` itself ([`Led`]).
//!
//! Clock: MSI at its reset 4 MHz through the main PLL (M 1, N 60, R 2: VCO 240 MHz) to 120 MHz,
//! in voltage range 1 boost mode with 5 flash wait states. Cycles: DWT CYCCNT. Log: defmt over
//! RTT through the on-board ST-LINK. Verdict: LD1 (green, PC7) on when every vector matched, LD3
//! (red, PB14) blinking otherwise.
#![no_std]
#![no_main]

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use bitspike_board::{abort, show_on_two_leds, Board, DwtCycles, EXIT_BOARD};
use embedded_hal::digital::{ErrorType, OutputPin};

/// The core clock set up below (must equal `clock_mhz` in `board.toml`).
const CLOCK_HZ: u32 = 120_000_000;

/// Register blocks (RM0432, memory map).
const RCC: usize = 0x4002_1000;
const PWR: usize = 0x4000_7000;
const FLASH: usize = 0x4002_2000;
const GPIOB: usize = 0x4800_0400;
const GPIOC: usize = 0x4800_0800;

/// RCC registers (RM0432 section 6.4).
const RCC_CR: usize = RCC;
const RCC_CFGR: usize = RCC + 0x08;
const RCC_PLLCFGR: usize = RCC + 0x0C;
const RCC_AHB2ENR: usize = RCC + 0x4C;
const RCC_APB1ENR1: usize = RCC + 0x58;
/// PWR registers (RM0432 section 5.4).
const PWR_SR2: usize = PWR + 0x14;
const PWR_CR5: usize = PWR + 0x80;
/// FLASH access control (RM0432 section 3.7.1).
const FLASH_ACR: usize = FLASH;

fn read(addr: usize) -> u32 {
    // SAFETY: `addr` is one of the register addresses above, valid on this chip.
    unsafe { read_volatile(addr as *const u32) }
}

fn write(addr: usize, v: u32) {
    // SAFETY: as in `read`; nothing else touches these registers while the board is set up.
    unsafe { write_volatile(addr as *mut u32, v) }
}

fn modify(addr: usize, clear: u32, set: u32) {
    write(addr, (read(addr) & !clear) | set);
}

/// Spin until `(read(addr) & mask) == want`, at most a million reads (a stuck oscillator ends the
/// run with [`EXIT_BOARD`] instead of hanging unseen).
fn wait(addr: usize, mask: u32, want: u32) {
    for _ in 0..1_000_000 {
        if read(addr) & mask == want {
            return;
        }
    }
    abort(EXIT_BOARD)
}

/// 120 MHz from MSI 4 MHz (RM0432 section 5.1.8, "Dynamic voltage scaling management": above
/// 80 MHz the core needs range 1 boost mode, and the switch to the higher clock goes through
/// an AHB prescaler of 2 for at least 1 us).
fn clock_120mhz() {
    // PWR's bus clock (APB1ENR1.PWREN), then range 1 boost (CR5.R1MODE = 0); wait VOSF = 0.
    modify(RCC_APB1ENR1, 0, 1 << 28);
    let _ = read(RCC_APB1ENR1);
    modify(PWR_CR5, 1 << 8, 0);
    wait(PWR_SR2, 1 << 10, 0);
    // 5 wait states for 120 MHz in range 1 (RM0432 table 12), prefetch and both caches on;
    // read back before the clock rises.
    modify(FLASH_ACR, 0xF, 5 | (1 << 8) | (1 << 9) | (1 << 10));
    wait(FLASH_ACR, 0xF, 5);
    // Main PLL: source MSI (PLLSRC = 01), M = 1 (PLLM = 0), N = 60, R = 2 (PLLR = 00), R output
    // on (PLLREN); then PLLON and wait for PLLRDY.
    write(RCC_PLLCFGR, 0b01 | (60 << 8) | (1 << 24));
    modify(RCC_CR, 0, 1 << 24);
    wait(RCC_CR, 1 << 25, 1 << 25);
    // AHB / 2, switch SYSCLK to the PLL (SW = 11), wait for SWS = 11, wait 1 us, AHB / 1.
    modify(RCC_CFGR, 0xF << 4, 0b1000 << 4);
    modify(RCC_CFGR, 0b11, 0b11);
    wait(RCC_CFGR, 0b11 << 2, 0b11 << 2);
    cortex_m::asm::delay(CLOCK_HZ / 1_000_000 * 2);
    modify(RCC_CFGR, 0xF << 4, 0);
}

/// An output pin on registers: MODER = 01 (general-purpose output), driven through BSRR.
struct Led {
    port: usize,
    pin: u32,
}

impl Led {
    /// Clock the port (AHB2ENR bit `port_index`) and make `pin` an output, driven low.
    fn new(port: usize, port_index: u32, pin: u32) -> Self {
        modify(RCC_AHB2ENR, 0, 1 << port_index);
        let _ = read(RCC_AHB2ENR);
        let led = Self { port, pin };
        write(port + 0x18, 1 << (pin + 16));
        modify(port, 0b11 << (2 * pin), 0b01 << (2 * pin));
        led
    }
}

impl ErrorType for Led {
    type Error = Infallible;
}

impl OutputPin for Led {
    fn set_high(&mut self) -> Result<(), Infallible> {
        write(self.port + 0x18, 1 << self.pin);
        Ok(())
    }

    fn set_low(&mut self) -> Result<(), Infallible> {
        write(self.port + 0x18, 1 << (self.pin + 16));
        Ok(())
    }
}

struct Nucleo {
    cycles: DwtCycles,
    green: Led,
    red: Led,
}

impl Nucleo {
    fn new() -> Self {
        let Some(mut cp) = cortex_m::Peripherals::take() else {
            abort(EXIT_BOARD)
        };
        clock_120mhz();
        Self {
            cycles: DwtCycles::start(&mut cp.DCB, &mut cp.DWT),
            green: Led::new(GPIOC, 2, 7),
            red: Led::new(GPIOB, 1, 14),
        }
    }
}

impl Board for Nucleo {
    const NAME: &'static str = "nucleo-l4r5zi";
    const CLOCK_HZ: u32 = CLOCK_HZ;

    fn cycles(&mut self) -> Option<u32> {
        Some(self.cycles.now())
    }

    fn exit(&mut self, code: i32) -> ! {
        show_on_two_leds(&mut self.green, &mut self.red, CLOCK_HZ, code)
    }
}

bitspike_board::main!(Nucleo::new());

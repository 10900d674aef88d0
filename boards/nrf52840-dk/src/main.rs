//! bitspike on the nRF52840-DK (nRF52840, Cortex-M4F, `thumbv7em-none-eabihf`).
//!
//! Clock: the CPU runs at its fixed 64 MHz; the high-frequency clock is switched to the 32 MHz
//! crystal (HFXO) so that the figure is exact, and the DC/DC regulator (REG1, whose inductors
//! the DK fits) is enabled, as the datasheet's current figure assumes. Cycles: DWT CYCCNT. Log:
//! defmt over RTT through the on-board J-Link. Verdict: LED1 (P0.13, lit when low) on when every
//! vector matched, LED2 (P0.14) blinking otherwise, through embedded-hal 1.0's `OutputPin`.
#![no_std]
#![no_main]

use bitspike_board::{abort, show_on_two_leds, ActiveLow, Board, DwtCycles, EXIT_BOARD};
use nrf52840_hal::clocks::Clocks;
use nrf52840_hal::gpio::{p0, Level, Output, Pin, PushPull};
use nrf52840_hal::pac;

/// The core clock (fixed on the nRF52840; must equal `clock_mhz` in `board.toml`).
const CLOCK_HZ: u32 = 64_000_000;

struct Dk {
    cycles: DwtCycles,
    led1: ActiveLow<Pin<Output<PushPull>>>,
    led2: ActiveLow<Pin<Output<PushPull>>>,
}

impl Dk {
    fn new() -> Self {
        let (Some(p), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
        else {
            abort(EXIT_BOARD)
        };
        p.POWER.dcdcen.write(|w| w.dcdcen().enabled());
        // Kept running for the rest of the program: the clock stays on the crystal.
        let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
        let port0 = p0::Parts::new(p.P0);
        Self {
            cycles: DwtCycles::start(&mut cp.DCB, &mut cp.DWT),
            led1: ActiveLow(port0.p0_13.into_push_pull_output(Level::High).degrade()),
            led2: ActiveLow(port0.p0_14.into_push_pull_output(Level::High).degrade()),
        }
    }
}

impl Board for Dk {
    const NAME: &'static str = "nrf52840-dk";
    const CLOCK_HZ: u32 = CLOCK_HZ;

    fn cycles(&mut self) -> Option<u32> {
        Some(self.cycles.now())
    }

    fn exit(&mut self, code: i32) -> ! {
        show_on_two_leds(&mut self.led1, &mut self.led2, CLOCK_HZ, code)
    }
}

bitspike_board::main!(Dk::new());

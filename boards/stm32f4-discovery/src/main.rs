//! bitspike on the STM32F4-Discovery (STM32F407VG, Cortex-M4F, `thumbv7em-none-eabihf`).
//!
//! Clock: the board's 8 MHz crystal (HSE) through the PLL to 168 MHz (stm32f4xx-hal sets the
//! flash wait states and bus prescalers). Cycles: DWT CYCCNT. Log: defmt over RTT through the
//! on-board ST-LINK. Verdict: LD4 (green, PD12) on when every vector matched, LD5 (red, PD14)
//! blinking otherwise, both through embedded-hal 1.0's `OutputPin`.
#![no_std]
#![no_main]

use bitspike_board::{abort, show_on_two_leds, Board, DwtCycles, EXIT_BOARD};
use stm32f4xx_hal::gpio::{Output, Pin};
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config;

/// The core clock set up below (must equal `clock_mhz` in `board.toml`).
const CLOCK_HZ: u32 = 168_000_000;

struct Discovery {
    cycles: DwtCycles,
    green: Pin<'D', 12, Output>,
    red: Pin<'D', 14, Output>,
}

impl Discovery {
    fn new() -> Self {
        let (Some(dp), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
        else {
            abort(EXIT_BOARD)
        };
        let mut rcc = dp.RCC.freeze(Config::hse(8.MHz()).sysclk(CLOCK_HZ.Hz()));
        let gpiod = dp.GPIOD.split(&mut rcc);
        Self {
            cycles: DwtCycles::start(&mut cp.DCB, &mut cp.DWT),
            green: gpiod.pd12.into_push_pull_output(),
            red: gpiod.pd14.into_push_pull_output(),
        }
    }
}

impl Board for Discovery {
    const NAME: &'static str = "stm32f4-discovery";
    const CLOCK_HZ: u32 = CLOCK_HZ;

    fn cycles(&mut self) -> Option<u32> {
        Some(self.cycles.now())
    }

    fn exit(&mut self, code: i32) -> ! {
        show_on_two_leds(&mut self.green, &mut self.red, CLOCK_HZ, code)
    }
}

bitspike_board::main!(Discovery::new());

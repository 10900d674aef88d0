/* The C application's startup: the vector table, the reset handler (initialized data copied
 * from flash, .bss zeroed, the FPU enabled, main called) and the semihosting calls that report
 * to the host and end the run with main's exit code. */
#include <stdint.h>

#include "semihosting.h"

extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;

int main(void);

void reset_handler(void);

void reset_handler(void) {
    const uint32_t *src = &_data_load;
    uint32_t *dst = &_data_start;
    while (dst < &_data_end) {
        *dst++ = *src++;
    }
    for (dst = &_bss_start; dst < &_bss_end;) {
        *dst++ = 0;
    }
    /* Full access to the FPU (CP10, CP11): the hard-float library may use its registers. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    semihosting_exit(main());
}

/* Any fault ends the run with exit code 3 (not a result). */
static void fault(void) {
    semihosting_write("bitspike-exit code=3 (a fault)\n");
    semihosting_exit(3);
}

__attribute__((section(".vectors"), used)) static const uintptr_t vectors[16] = {
    (uintptr_t)&_stack_top,
    (uintptr_t)reset_handler,
    (uintptr_t)fault, /* NMI */
    (uintptr_t)fault, /* HardFault */
    (uintptr_t)fault, /* MemManage */
    (uintptr_t)fault, /* BusFault */
    (uintptr_t)fault, /* UsageFault */
    0, 0, 0, 0,
    (uintptr_t)fault, /* SVCall */
    (uintptr_t)fault, /* DebugMonitor */
    0,
    (uintptr_t)fault, /* PendSV */
    (uintptr_t)fault, /* SysTick */
};

/* ARM semihosting: the operation in r0, its argument in r1, `bkpt 0xab`. */
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void semihosting_write(const char *text) {
    semihost(0x04, text); /* SYS_WRITE0 */
}

void semihosting_exit(int code) {
    /* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit and the exit code. */
    const uint32_t block[2] = {0x20026u, (uint32_t)code};
    semihost(0x20, block);
    for (;;) {
    }
}

/* Reporting to the host through semihosting (startup.c). */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

/* Write a NUL-terminated string to the host's standard output. */
void semihosting_write(const char *text);

/* End the run with `code` as QEMU's exit code. */
void semihosting_exit(int code) __attribute__((noreturn));

#endif

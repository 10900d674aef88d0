#!/usr/bin/env bash
# Cargo runner for the emulated boards: qemu-run.sh MACHINE CPU|- ELF
# Runs ELF under QEMU with semihosting (at most 300 s), decodes the defmt output with defmt-print,
# and exits with the app's exit code (0 = every golden vector matched).
set -u
machine=$1 cpu=$2 elf=$3
cpu_args=()
[ "$cpu" != "-" ] && cpu_args=(-cpu "$cpu")
timeout --signal=KILL 300 qemu-system-arm -machine "$machine" "${cpu_args[@]}" \
    -display none -monitor none -serial null \
    -semihosting-config enable=on,target=native -kernel "$elf" | defmt-print -e "$elf"
status=${PIPESTATUS[0]}
[ "$status" -eq 137 ] && echo "qemu-run: timed out after 300 s" >&2
exit "$status"

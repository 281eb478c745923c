// power.hpp: the end of every boot: flush and power the VM off. PID 1 must never exit (the kernel
// panics when init dies), so this is the only way out of main.
#pragma once

namespace benchrun::guest {

// sync(), then reboot(RB_POWER_OFF): QEMU's microvm powers off through its ACPI GED device and
// QEMU exits. Should that fail, RB_AUTOBOOT (the host runs QEMU with -no-reboot, which turns a
// reboot into an exit too); should that fail as well, waits forever for the host's timeout.
[[noreturn]] void power_off() noexcept;

}  // namespace benchrun::guest

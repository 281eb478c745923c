// console.hpp: one-line boot breadcrumbs on /dev/console (the kernel's console, ttyS0: the host's
// serial log), so a boot that fails shows where it stopped.
#pragma once

#include <string_view>

namespace benchrun::guest {

// Makes sure fds 0, 1 and 2 are open (on /dev/console, else /dev/null) so that no fd init opens
// later lands on them: a breadcrumb must never be written into the host channel. Call once /dev
// is mounted; never throws.
void ensure_std_fds() noexcept;

// "[  1.234] benchrun-init: <what>" on stderr (the console), time since boot. Never throws.
void breadcrumb(std::string_view what) noexcept;

}  // namespace benchrun::guest

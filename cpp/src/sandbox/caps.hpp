// caps.hpp: dropping every capability (bounding, ambient, inheritable, effective, permitted).
#pragma once

#include <string>

namespace benchrun::sandbox {

// Parent: the highest capability number this kernel knows. Throws SysError / ConfigError.
int read_cap_last_cap(const std::string& path = "/proc/sys/kernel/cap_last_cap");

// Child dialect (no allocation; 0 or an errno).
// Empties the bounding set (PR_CAPBSET_DROP 0..cap_last). Needs CAP_SETPCAP, so it runs before
// the uid switch.
int drop_bounding_set(int cap_last) noexcept;
// Clears the ambient set and capset()s effective, permitted and inheritable to zero.
int clear_capabilities() noexcept;

}  // namespace benchrun::sandbox

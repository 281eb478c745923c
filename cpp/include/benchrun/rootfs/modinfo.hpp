// modinfo.hpp: reads the .modinfo section of a kernel module (.ko, an ELF64 relocatable object).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace benchrun::rootfs {

// The "key=value" strings of the module's .modinfo section, in file order. elf is the whole .ko
// file; what names it in messages. The bytes are untrusted: every offset and size is checked, and
// anything that is not a little-endian ELF64 file with a well-formed .modinfo section throws
// ConfigError naming what.
std::vector<std::pair<std::string, std::string>> read_modinfo(std::string_view elf,
                                                              std::string_view what);

// The module names in the "depends=" entry of a .modinfo (empty when there is none or it is empty).
std::vector<std::string> module_depends(std::string_view elf, std::string_view what);

}  // namespace benchrun::rootfs

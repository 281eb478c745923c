// modules.hpp: which kernel module files to load, in which order, for a set of module names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace benchrun::rootfs {

// The module name a path or name stands for: the basename without ".ko" (and a compression suffix),
// with '-' spelled '_' the way the kernel compares them ("virtio-rng.ko" -> "virtio_rng").
std::string module_name(std::string_view path_or_name);

// modules_dir is a kernel's lib/modules/<release>. Returns the module files (paths relative to
// modules_dir) that must be loaded for names, dependencies before their users, each once.
// Dependencies come from modules.dep when it exists, otherwise from each .ko's .modinfo "depends="
// (Debian's packages ship no modules.dep: depmod runs at install time). Modules listed in
// modules.builtin are skipped. ConfigError for an unknown module or dependency (naming it and the
// directory), a dependency cycle, a malformed .ko, or a compressed module (.ko.xz/.zst/.gz: only
// plain .ko files are supported).
std::vector<std::string> resolve_modules(const std::string& modules_dir,
                                         const std::vector<std::string>& names);

}  // namespace benchrun::rootfs

// modules.hpp: loading the kernel modules the initramfs lists (virtio transport, block, console,
// vsock), without modprobe: the list is already in dependency order.
#pragma once

#include <string>

namespace benchrun::guest {

// Loads every module named in list_path (one path per line, in load order; blank lines and '#'
// comments skipped) with finit_module(2). Already loaded (EEXIST) is fine; a missing list file
// means a kernel with everything built in. Throws SysError naming the module.
void load_modules(const std::string& list_path = "/etc/benchrun/modules");

}  // namespace benchrun::guest

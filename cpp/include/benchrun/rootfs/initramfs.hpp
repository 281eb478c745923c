// initramfs.hpp: the cached initramfs the microVM boots: the guest init plus the modules it loads.
#pragma once

#include <string>
#include <vector>

namespace benchrun::rootfs {

struct InitramfsSpec {
  std::string init_binary;  // host path of the static guest init; becomes /init
  std::string modules_dir;  // the kernel's lib/modules/<release>; may be empty without modules
  std::vector<std::string> modules;  // module names; dependencies are added (resolve_modules)
};

// Builds (once) an uncompressed newc initramfs and returns its path,
// <cache_dir>/initramfs/<sha256>.cpio. The key covers the init binary's bytes and the resolved
// modules' relative paths and contents, so a rebuilt init or another kernel gets a new file.
// Contents: directories dev proc sys tmp newroot etc etc/benchrun lib lib/modules; /init (0755);
// dev/console (char 5:1, 0600); each module at lib/modules/<relative path>; and
// etc/benchrun/modules, the load order, one absolute initramfs path per line. Written to a temp
// file in the same directory and renamed into place, so concurrent builders are safe.
std::string build_initramfs(const InitramfsSpec& spec, const std::string& cache_dir);

}  // namespace benchrun::rootfs

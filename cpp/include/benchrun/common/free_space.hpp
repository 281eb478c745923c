// free_space.hpp: refuse work that would fill a filesystem past a reserve (statvfs).
#pragma once

#include <cstdint>
#include <string>

namespace benchrun {

// The default reserve kept free on a store's filesystem: 5 % of its size, at most 1 GiB.
constexpr uint64_t kAutoReserve = UINT64_MAX;

// Bytes available to unprivileged writers on the filesystem holding path (f_bavail), and its size.
struct FsSpace {
  uint64_t available = 0;
  uint64_t size = 0;
};
FsSpace fs_space(const std::string& path);

// The reserve in bytes for a filesystem of size bytes: reserve itself, or with kAutoReserve 5 % of
// size capped at 1 GiB.
uint64_t reserve_for(uint64_t size, uint64_t reserve);

// Throws ImageTooLarge when writing need more bytes to path's filesystem would leave less than the
// reserve free; what names the work in the message.
void require_free_space(const std::string& path, uint64_t need, uint64_t reserve,
                        const std::string& what);

}  // namespace benchrun

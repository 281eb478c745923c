// free_space.cpp: statvfs-based free-space checks for the store and the VM image cache.
#include "benchrun/common/free_space.hpp"

#include <sys/statvfs.h>

#include <algorithm>

#include "benchrun/common/error.hpp"

namespace benchrun {

FsSpace fs_space(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) throw_errno("statvfs", path);
  const uint64_t unit = st.f_frsize ? st.f_frsize : st.f_bsize;
  return FsSpace{static_cast<uint64_t>(st.f_bavail) * unit,
                 static_cast<uint64_t>(st.f_blocks) * unit};
}

uint64_t reserve_for(uint64_t size, uint64_t reserve) {
  if (reserve != kAutoReserve) return reserve;
  return std::min<uint64_t>(size / 20, 1ull << 30);
}

void require_free_space(const std::string& path, uint64_t need, uint64_t reserve,
                        const std::string& what) {
  const FsSpace s = fs_space(path);
  const uint64_t keep = reserve_for(s.size, reserve);
  if (s.available >= keep && s.available - keep >= need) return;
  constexpr uint64_t kMiB = 1ull << 20;
  throw ImageTooLarge(what + ": the filesystem of '" + path + "' has " +
                      std::to_string(s.available / kMiB) + " MiB free, " +
                      std::to_string(need / kMiB) + " MiB more are needed and " +
                      std::to_string(keep / kMiB) +
                      " MiB are kept in reserve (hint: free space, benchrun prune, or lower the "
                      "reserve with min_free_bytes / BENCHRUN_STORE_RESERVE)");
}

}  // namespace benchrun

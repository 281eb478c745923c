// idmap.hpp: the host uid/gid range a root run's user namespace maps to, one per concurrent run.
//
// A root run's workload must not be uid 0 of the initial user namespace: it would share host root's
// per-user kernel quotas (inotify instances and watches, epoll watches, keys, RLIMIT_NPROC) and
// identity. Its user namespace maps ids 0..count-1 to an unprivileged host range taken from the
// "benchrun" entries of /etc/subuid and /etc/subgid (kDefaultBase.. when there is none), cut into
// slots of kSlotSize ids; a run holds an exclusive flock(2) on its slot's lock file, which the
// kernel releases whatever ends the runner (also SIGKILL), so a slot never leaks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::sandbox {

// Host ids base..base+count-1 seen as 0..count-1 inside the run's user namespace.
struct IdRange {
  uid_t uid = 0;
  gid_t gid = 0;
  uint32_t count = 0;  // 0: no range (rootless runs map the caller only)
};

struct IdMapConfig {
  std::string subuid = "/etc/subuid";
  std::string subgid = "/etc/subgid";
  std::string lock_dir = "/run/benchrun/idmap";  // host-wide: shared by every store
  std::string name = "benchrun";                 // the entry looked up in subuid/subgid
};

constexpr uint32_t kSlotSize = 65536;
// Without a "benchrun" entry: 64 slots from 0x70000000 (above what useradd allocates,
// 100000..600100000, and below the 32-bit overflow ids).
constexpr uint32_t kDefaultBase = 0x70000000u;
constexpr uint32_t kDefaultCount = 64 * kSlotSize;

// The first "<name>:<start>:<count>" entry of a subordinate id file, as {start, count}; count 0
// when there is none or the file does not exist. Throws ConfigError for a malformed entry of name.
struct SubIdEntry {
  uint64_t start = 0, count = 0;
};
SubIdEntry read_subid(const std::string& path, const std::string& name);

// A locked slot; the lock is released on destruction (or when the process dies).
class IdSlot {
 public:
  const IdRange& range() const noexcept { return range_; }
  int index() const noexcept { return index_; }

 private:
  friend IdSlot acquire_id_slot(const IdMapConfig& config);
  UniqueFd lock_;
  IdRange range_;
  int index_ = -1;
};

// Locks the first free slot of the configured range. Throws ConfigError when the range holds no
// whole slot, SandboxError{stage="user namespace"} when every slot is in use.
IdSlot acquire_id_slot(const IdMapConfig& config = {});

}  // namespace benchrun::sandbox

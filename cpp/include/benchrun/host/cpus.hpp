// cpus.hpp: CPU lists ("0-2,5") as the kernel writes them, and thread affinity (RAII restore).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace benchrun::host {

using CpuList = std::vector<int>;  // sorted, without duplicates

// Parses the kernel's list format ("0-3,8,10-11"; "" is the empty list). ConfigError naming what
// (e.g. "cpus") for anything else.
CpuList parse_cpu_list(std::string_view text, const std::string& what);
// The kernel's list format, ranges collapsed: {0,1,2,5} -> "0-2,5".
std::string format_cpu_list(const CpuList& cpus);
// a without b; and the union of both.
CpuList cpu_difference(const CpuList& a, const CpuList& b);
CpuList cpu_union(const CpuList& a, const CpuList& b);
bool cpu_subset(const CpuList& a, const CpuList& b);  // every CPU of a is in b

// A thread's allowed CPUs (tid 0: the calling thread). SysError.
CpuList thread_affinity(pid_t tid = 0);
// Sets a thread's allowed CPUs; returns 0 or the errno (EINVAL: none of them allowed by its
// cpuset; ESRCH: gone).
int try_set_thread_affinity(pid_t tid, const CpuList& cpus) noexcept;

// The calling thread moved to cpus for this object's lifetime (its children inherit that), then
// back to what it had. Does nothing for an empty list, or when the kernel refuses (the cpuset does
// not allow them): applied() says which.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const CpuList& cpus);
  ~ScopedAffinity();
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;
  bool applied() const noexcept { return applied_; }

 private:
  CpuList saved_;
  bool applied_ = false;
};

}  // namespace benchrun::host

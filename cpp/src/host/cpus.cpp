// cpus.cpp: CPU list parsing/formatting and thread affinity.
#include "benchrun/host/cpus.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <set>

#include "benchrun/common/error.hpp"

namespace benchrun::host {

namespace {

constexpr int kMaxCpu = CPU_SETSIZE - 1;  // 1023: what a cpu_set_t holds

int parse_cpu(std::string_view s, std::string_view text, const std::string& what) {
  int v = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0 || v > kMaxCpu)
    throw ConfigError(what + " '" + std::string(text) + "': '" + std::string(s) +
                      "' is not a CPU number 0.." + std::to_string(kMaxCpu) +
                      " (expected a list like 0-3,8)");
  return v;
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

CpuList parse_cpu_list(std::string_view text, const std::string& what) {
  std::set<int> out;
  std::string_view rest = strip(text);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = strip(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      out.insert(parse_cpu(item, text, what));
      continue;
    }
    const int lo = parse_cpu(item.substr(0, dash), text, what);
    const int hi = parse_cpu(item.substr(dash + 1), text, what);
    if (hi < lo)
      throw ConfigError(what + " '" + std::string(text) + "': range '" + std::string(item) +
                        "' goes backwards");
    for (int c = lo; c <= hi; ++c) out.insert(c);
  }
  return CpuList(out.begin(), out.end());
}

std::string format_cpu_list(const CpuList& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

CpuList cpu_difference(const CpuList& a, const CpuList& b) {
  CpuList out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

CpuList cpu_union(const CpuList& a, const CpuList& b) {
  CpuList out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

bool cpu_subset(const CpuList& a, const CpuList& b) {
  return std::includes(b.begin(), b.end(), a.begin(), a.end());
}

CpuList thread_affinity(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(tid, sizeof set, &set) != 0)
    throw_errno("sched_getaffinity", "thread " + std::to_string(tid));
  CpuList out;
  for (int c = 0; c <= kMaxCpu; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

int try_set_thread_affinity(pid_t tid, const CpuList& cpus) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus)
    if (c >= 0 && c <= kMaxCpu) CPU_SET(c, &set);
  return ::sched_setaffinity(tid, sizeof set, &set) == 0 ? 0 : errno;
}

ScopedAffinity::ScopedAffinity(const CpuList& cpus) {
  if (cpus.empty()) return;
  saved_ = thread_affinity(0);
  applied_ = try_set_thread_affinity(0, cpus) == 0;
}

ScopedAffinity::~ScopedAffinity() {
  if (applied_) (void)try_set_thread_affinity(0, saved_);
}

}  // namespace benchrun::host

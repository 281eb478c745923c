// pinning.cpp: QEMU's vCPU threads one to one on the run's CPUs, the rest on housekeeping CPUs.
#include "vm/pinning.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "benchrun/common/error.hpp"

namespace benchrun::vm {

std::vector<std::pair<int, pid_t>> parse_vcpu_threads(const std::string& text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_array() || doc.empty())
    throw VmError("QMP query-cpus-fast: expected a non-empty list of CPUs, got '" +
                  text.substr(0, 200) + "'");
  std::vector<std::pair<int, pid_t>> out;
  for (const auto& cpu : doc) {
    if (!cpu.is_object() || !cpu.contains("cpu-index") || !cpu.contains("thread-id") ||
        !cpu["cpu-index"].is_number_integer() || !cpu["thread-id"].is_number_integer())
      throw VmError("QMP query-cpus-fast: a CPU without an integer cpu-index and thread-id: " +
                    cpu.dump().substr(0, 200));
    const auto index = cpu["cpu-index"].get<int64_t>();
    const auto tid = cpu["thread-id"].get<int64_t>();
    if (index < 0 || index > 255 || tid <= 0 || tid > INT32_MAX)
      throw VmError("QMP query-cpus-fast: implausible cpu-index/thread-id: " + cpu.dump());
    out.emplace_back(static_cast<int>(index), static_cast<pid_t>(tid));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Pinning pin_qemu_threads(pid_t pid, const std::vector<std::pair<int, pid_t>>& vcpu_threads,
                         const host::CpuList& vcpu_cpus, const host::CpuList& housekeeping) {
  Pinning p;
  std::map<pid_t, host::CpuList> want;  // vCPU thread -> its CPUs
  for (size_t i = 0; i < vcpu_threads.size(); ++i) {
    if (vcpu_cpus.empty()) break;
    const int cpu = vcpu_cpus[std::min(i, vcpu_cpus.size() - 1)];
    host::CpuList& l = want[vcpu_threads[i].second];
    l = host::cpu_union(l, {cpu});
  }
  std::string failed;
  for (const auto& [tid, cpus] : want) {
    const int err = host::try_set_thread_affinity(tid, cpus);
    if (err == 0) {
      for (int c : cpus) p.vcpus.emplace_back(tid, c);
    } else if (err != ESRCH) {
      failed += " vCPU thread " + std::to_string(tid) + " -> " + host::format_cpu_list(cpus) +
                ": " + std::strerror(err) + ";";
    }
  }
  if (!housekeeping.empty()) {
    std::error_code ec;
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    int refused = 0;
    for (const auto& e : std::filesystem::directory_iterator(tasks, ec)) {
      pid_t tid = 0;
      try {
        tid = static_cast<pid_t>(std::stoi(e.path().filename().string()));
      } catch (const std::exception&) {
        continue;
      }
      if (want.count(tid)) continue;
      const int err = host::try_set_thread_affinity(tid, housekeeping);
      if (err == 0)
        ++p.others;
      else if (err != ESRCH)
        ++refused;
    }
    if (refused)
      failed += " " + std::to_string(refused) + " QEMU threads -> housekeeping CPUs " +
                host::format_cpu_list(housekeeping) +
                ": not allowed by the run's cpuset (under a partition the run's cgroup holds "
                "only its own CPUs; they share them with the vCPUs);";
  }
  if (!failed.empty()) {
    failed.pop_back();
    p.notice = "vm: pinning QEMU threads:" + failed;
  }
  return p;
}

}  // namespace benchrun::vm

// oci_bundle.cpp: a run's runtime-spec config.json (see oci_bundle.hpp). Field names follow the
// OCI runtime specification 1.0 (config.md, config-linux.md).
#include "run/oci_bundle.hpp"

#include <map>
#include <tuple>

#include "benchrun/sandbox/seccomp.hpp"
#include "sandbox/mounts.hpp"

namespace benchrun::run {

using nlohmann::json;

json oci_seccomp() {
  // Rules with the same errno and argument comparisons share one entry with several names.
  std::map<std::tuple<int, std::vector<std::tuple<unsigned, uint64_t, uint64_t>>>,
           std::vector<std::string>>
      groups;
  std::vector<std::tuple<int, std::vector<std::tuple<unsigned, uint64_t, uint64_t>>>> order;
  for (const auto& r : sandbox::seccomp_rules()) {
    std::vector<std::tuple<unsigned, uint64_t, uint64_t>> args;
    for (const auto& a : r.args) args.emplace_back(a.index, a.mask, a.value);
    auto key = std::make_tuple(r.errno_ret, args);
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(r.name);
  }
  json syscalls = json::array();
  for (const auto& key : order) {
    json entry = {
        {"names", groups[key]}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", std::get<0>(key)}};
    json args = json::array();
    for (const auto& [index, mask, value] : std::get<1>(key))
      args.push_back(
          {{"index", index}, {"value", mask}, {"valueTwo", value}, {"op", "SCMP_CMP_MASKED_EQ"}});
    if (!args.empty()) entry["args"] = args;
    syscalls.push_back(entry);
  }
  // Only the native ABI (x86_64): other architectures' syscalls are refused by the runtime's
  // bad-architecture action, as in the sandbox.
  return {{"defaultAction", "SCMP_ACT_ALLOW"},
          {"architectures", {"SCMP_ARCH_X86_64"}},
          {"syscalls", syscalls}};
}

namespace {

json string_list(const char* (*at)(int) noexcept) {
  json out = json::array();
  for (int i = 0; const char* p = at(i); ++i) out.push_back(p);
  return out;
}

json empty_caps() {
  const json none = json::array();
  return {{"bounding", none},
          {"effective", none},
          {"inheritable", none},
          {"permitted", none},
          {"ambient", none}};
}

}  // namespace

json make_oci_config(const BundlePlan& p) {
  const ProcessConfig& proc = p.process;
  json mounts = json::array({
      {{"destination", "/proc"},
       {"type", "proc"},
       {"source", "proc"},
       {"options", {"nosuid", "noexec", "nodev"}}},
      {{"destination", "/dev"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
      {{"destination", "/dev/pts"},
       {"type", "devpts"},
       {"source", "devpts"},
       {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
      {{"destination", "/dev/shm"},
       {"type", "tmpfs"},
       {"source", "shm"},
       {"options",
        {"nosuid", "noexec", "nodev", "mode=1777", "size=" + std::to_string(p.limits.tmpfs)}}},
      {{"destination", "/dev/mqueue"},
       {"type", "mqueue"},
       {"source", "mqueue"},
       {"options", {"nosuid", "noexec", "nodev"}}},
      {{"destination", "/sys"},
       {"type", "sysfs"},
       {"source", "sysfs"},
       {"options", {"nosuid", "noexec", "nodev", "ro"}}},
      {{"destination", "/tmp"},
       {"type", "bind"},
       {"source", p.tmp_source},
       {"options", {"rbind", "nosuid", "nodev", "rw"}}},
  });

  json user = {{"uid", proc.uid}, {"gid", proc.gid}};
  if (!proc.groups.empty()) user["additionalGids"] = proc.groups;
  json process = {
      {"terminal", false},
      {"user", user},
      {"args", proc.argv},
      {"env", proc.env},
      {"cwd", proc.cwd},
      {"capabilities", empty_caps()},
      {"rlimits",
       {{{"type", "RLIMIT_NOFILE"}, {"hard", p.nofile}, {"soft", p.nofile}},
        {{"type", "RLIMIT_CORE"}, {"hard", 0}, {"soft", 0}}}},
      {"noNewPrivileges", true},
  };

  json net = {{"type", "network"}};
  if (!p.netns_path.empty()) net["path"] = p.netns_path;
  json namespaces = json::array(
      {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}, net});

  json resources = json::object();
  // The memory limit is on the run's cgroup, the parent of cgroupsPath (run/oci_backend.cpp):
  // the OOM kill happens, and is counted, where benchrun reads it.
  if (p.limits.pids.value) resources["pids"] = {{"limit", *p.limits.pids.value}};
  json cpu = json::object();
  if (p.cgroup.cpu_quota_us) {
    cpu["quota"] = *p.cgroup.cpu_quota_us;
    cpu["period"] = p.cgroup.cpu_period_us;
  }
  if (!p.cgroup.cpuset_cpus.empty()) cpu["cpus"] = p.cgroup.cpuset_cpus;
  if (!cpu.empty()) resources["cpu"] = cpu;

  json linux_ = {
      {"namespaces", namespaces},
      {"resources", resources},
      {"seccomp", oci_seccomp()},
      {"maskedPaths", string_list(&sandbox::masked_path)},
      {"readonlyPaths", string_list(&sandbox::readonly_path)},
  };
  if (!p.cgroups_path.empty()) linux_["cgroupsPath"] = p.cgroups_path;

  return {{"ociVersion", "1.0.2"},
          {"process", process},
          {"root", {{"path", p.rootfs}, {"readonly", false}}},
          {"hostname", p.hostname},
          {"mounts", mounts},
          {"linux", linux_}};
}

}  // namespace benchrun::run

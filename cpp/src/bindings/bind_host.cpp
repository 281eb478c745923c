// bind_host.cpp: the CPU partition and CPU allocation (host/cpu_partition.hpp, host/cpu_alloc.hpp).
#include <pybind11/stl.h>

#include "benchrun/host/cpu_alloc.hpp"
#include "benchrun/host/cpu_partition.hpp"
#include "bindings/bindings.hpp"

namespace py = pybind11;

namespace benchrun::bindings {

namespace {

host::PartitionConfig partition_config(const std::string& root, const std::string& name,
                                       const std::string& version, const std::string& online) {
  host::PartitionConfig c{root, name, std::nullopt, online};
  if (version == "v1")
    c.version = host::CgroupVersion::kV1;
  else if (version == "v2")
    c.version = host::CgroupVersion::kV2;
  else if (!version.empty())
    throw ConfigError("cgroup version '" + version + "': expected v1, v2 or empty (detect)");
  return c;
}

py::dict status_dict(const host::PartitionStatus& st) {
  py::dict d;
  d["exists"] = st.exists;
  d["version"] = st.version == host::CgroupVersion::kV1 ? "v1" : "v2";
  d["path"] = st.path;
  d["cpus"] = st.cpus;
  d["housekeeping"] = st.housekeeping;
  d["mode"] = st.mode;
  d["exclusive"] = st.exclusive;
  d["note"] = st.note;
  return d;
}

}  // namespace

void bind_host(py::module_& m) {
  m.def(
      "partition_create",
      [](const std::vector<int>& cpus, bool require_exclusive, bool isolated,
         const std::string& root, const std::string& name, const std::string& version,
         const std::string& online) {
        host::CpuList l(cpus.begin(), cpus.end());
        std::sort(l.begin(), l.end());
        l.erase(std::unique(l.begin(), l.end()), l.end());
        host::PartitionStatus st;
        {
          py::gil_scoped_release nogil;
          st = host::create_partition(partition_config(root, name, version, online), l,
                                      require_exclusive, isolated);
        }
        return status_dict(st);
      },
      py::kw_only(), py::arg("cpus"), py::arg("require_exclusive") = true,
      py::arg("isolated") = true, py::arg("root") = "/sys/fs/cgroup", py::arg("name") = "benchrun",
      py::arg("version") = "", py::arg("online") = "/sys/devices/system/cpu/online",
      "Make the runs' parent cgroup an exclusive cpuset of these CPUs; returns its status. "
      "SandboxError(stage='cpu partition') naming what is in the way.");
  m.def(
      "partition_remove",
      [](const std::string& root, const std::string& name, const std::string& version,
         const std::string& online) {
        py::gil_scoped_release nogil;
        host::remove_partition(partition_config(root, name, version, online));
      },
      py::kw_only(), py::arg("root") = "/sys/fs/cgroup", py::arg("name") = "benchrun",
      py::arg("version") = "", py::arg("online") = "/sys/devices/system/cpu/online",
      "Undo partition_create (idempotent).");
  m.def(
      "partition_status",
      [](const std::string& root, const std::string& name, const std::string& version,
         const std::string& online) {
        return status_dict(host::partition_status(partition_config(root, name, version, online)));
      },
      py::kw_only(), py::arg("root") = "/sys/fs/cgroup", py::arg("name") = "benchrun",
      py::arg("version") = "", py::arg("online") = "/sys/devices/system/cpu/online",
      "The partition as the kernel reports it: exists, version, path, cpus, housekeeping, mode, "
      "exclusive, note.");
  m.def(
      "parse_cpu_list",
      [](const std::string& text, const std::string& what) {
        return host::parse_cpu_list(text, what);
      },
      py::arg("text"), py::arg("what") = "cpus", "'0-2,5' -> [0, 1, 2, 5]; ConfigError otherwise.");
  m.def(
      "cpu_holder",
      [](int cpu, const std::string& lock_dir) { return host::cpu_holder(lock_dir, cpu); },
      py::arg("cpu"), py::kw_only(), py::arg("lock_dir") = "/run/benchrun/cpus",
      "Who holds a CPU for a run ('run-12-ab (pid 12)'), or '' when it is free.");
}

}  // namespace benchrun::bindings

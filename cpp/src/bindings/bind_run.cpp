// bind_run.cpp: type conversion for the run component (sandbox and vm backends). No logic here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <filesystem>
#include <optional>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/pull.hpp"
#include "benchrun/run/runner.hpp"
#include "bindings/bindings.hpp"

namespace py = pybind11;

namespace benchrun::bindings {

void bind_run(py::module_& m) {
  m.def(
      "cleanup_leftovers",
      [](const std::string& store, const std::string& cgroup_root) {
        run::RunSpec spec;
        spec.cgroup.root = cgroup_root;
        py::gil_scoped_release nogil;
        return run::cleanup_leftovers((std::filesystem::path(store) / "runs").string(),
                                      spec.cgroup);
      },
      py::kw_only(), py::arg("store"), py::arg("cgroup_root") = "/sys/fs/cgroup",
      "Remove what a killed runner left (its run cgroups, with their processes, and run "
      "directories); returns how many. Every run does this first; agents also at start.");
  m.def(
      "run",
      [](const std::string& image, const std::string& store,
         std::optional<std::vector<std::string>> entrypoint,
         std::optional<std::vector<std::string>> command, std::vector<std::string> env,
         std::optional<std::string> workdir, std::optional<std::string> user,
         std::optional<uint64_t> memory, std::optional<uint64_t> pids_limit, std::vector<int> cpus,
         std::optional<double> cpu_quota, double timeout, std::vector<std::string> outputs,
         uint64_t max_output_bytes, bool network, const std::string& cgroup_root,
         const std::string& hostname, const std::string& backend, const std::string& accel,
         const std::string& kernel, uint64_t vm_memory_mib, const std::string& init_binary,
         const std::string& qemu, double boot_timeout, const std::string& vm_cache,
         const std::string& kernel_modules, std::optional<py::function> should_stop) {
        if (backend != "sandbox" && backend != "vm")
          throw ConfigError("backend '" + backend + "': unknown (choose sandbox or vm)");
        oci::Store st(store);
        oci::Image img = oci::load_image(st, image);
        if (img.rootfs.empty())
          throw ImageError("image '" + image + "' is not unpacked (hint: benchrun pull it)");
        run::RunSpec spec;
        spec.entrypoint = std::move(entrypoint);
        spec.command = std::move(command);
        spec.env = std::move(env);
        spec.workdir = std::move(workdir);
        spec.user = std::move(user);
        spec.memory_bytes = memory;
        spec.pids_limit = pids_limit;
        spec.cpus = std::move(cpus);
        spec.cpu_quota = cpu_quota;
        spec.timeout_s = timeout;
        spec.outputs = std::move(outputs);
        spec.max_output_bytes = max_output_bytes;
        spec.network = network;
        spec.hostname = hostname;
        spec.cgroup.root = cgroup_root;
        spec.run_dir = (st.root() / "runs").string();
        // Ctrl-C (or any Python signal handler raising) stops the run: the workload is killed and
        // cleaned up, then the exception is re-raised here with the GIL held.
        std::optional<py::error_already_set> pending;
        // should_stop (e.g. a job's cancel flag, from another thread) stops it the same way,
        // without an exception: the Result says interrupted.
        spec.interrupted = [&pending, &should_stop] {
          py::gil_scoped_acquire gil;
          if (PyErr_CheckSignals() != 0) {
            pending.emplace();
            return true;
          }
          if (!should_stop) return false;
          try {
            return (*should_stop)().cast<bool>();
          } catch (py::error_already_set& e) {
            pending.emplace(std::move(e));
            return true;
          }
        };
        run::RunResult r = [&] {
          py::gil_scoped_release nogil;
          run::cleanup_leftovers(spec.run_dir, spec.cgroup);
          if (backend == "sandbox") return run::run_sandbox(img.config, img.rootfs.string(), spec);
          run::VmOptions vo;
          vo.accel = accel == "kvm" ? vm::Accel::kKvm : accel == "tcg" ? vm::Accel::kTcg
                                                                        : vm::Accel::kAuto;
          vo.qemu = qemu;
          vo.kernel = kernel;
          vo.kernel_modules = kernel_modules;
          vo.memory_mib = vm_memory_mib;
          vo.init_binary = init_binary;
          vo.cache_dir = vm_cache.empty() ? (st.root() / "vm").string() : vm_cache;
          vo.boot_timeout_s = boot_timeout;
          if (!img.record.chain_id) throw ImageError("image '" + image + "' has no unpacked rootfs");
          return run::run_vm(img.config, img.rootfs.string(), img.record.chain_id->str(), spec, vo);
        }();
        if (pending) throw *pending;
        py::dict d;
        d["exit_code"] = r.exit_code;
        d["signal"] = r.signal;
        d["stdout"] = py::bytes(r.stdout_data);
        d["stderr"] = py::bytes(r.stderr_data);
        d["stdout_truncated"] = r.stdout_truncated;
        d["stderr_truncated"] = r.stderr_truncated;
        py::dict outs;
        for (const auto& [k, v] : r.outputs) outs[py::str(k)] = py::bytes(v);
        d["outputs"] = outs;
        d["missing_outputs"] = r.missing_outputs;
        d["timed_out"] = r.timed_out;
        d["oom_killed"] = r.oom_killed;
        d["wall_time"] = r.wall_s;
        d["cpu_user"] = r.cpu_user_s;
        d["cpu_system"] = r.cpu_system_s;
        d["peak_memory"] = r.peak_memory_bytes;
        d["start_time"] = r.start_time;
        d["end_time"] = r.end_time;
        py::dict phases;
        phases["prepare"] = r.phases.prepare_s;
        phases["start"] = r.phases.start_s;
        phases["run"] = r.phases.run_s;
        phases["collect"] = r.phases.collect_s;
        d["phases"] = phases;
        d["interrupted"] = r.interrupted;
        d["notices"] = r.notices;
        d["image_digest"] = img.record.manifest_digest.str();
        d["backend"] = backend;
        if (r.vm) {
          py::dict v;
          v["kernel_release"] = r.vm->kernel_release;
          v["accel"] = r.vm->accel;
          v["vcpus"] = r.vm->vcpus;
          v["memory_mib"] = r.vm->memory_mib;
          v["boot_time"] = r.vm->boot_s;
          v["guest_boot_time"] = r.vm->guest_boot_s;
          v["rootfs_time"] = r.vm->rootfs_s;
          v["rootfs_cached"] = r.vm->rootfs_cached;
          v["vmm_cpu"] = r.vm->vmm_cpu_s;
          v["vmm_peak_memory"] = r.vm->vmm_peak_memory_bytes;
          d["vm"] = v;
        } else {
          d["vm"] = py::none();
        }
        return d;
      },
      py::kw_only(), py::arg("image"), py::arg("store"), py::arg("entrypoint") = py::none(),
      py::arg("command") = py::none(), py::arg("env") = std::vector<std::string>{},
      py::arg("workdir") = py::none(), py::arg("user") = py::none(), py::arg("memory") = py::none(),
      py::arg("pids_limit") = py::none(), py::arg("cpus") = std::vector<int>{},
      py::arg("cpu_quota") = py::none(), py::arg("timeout") = 0.0,
      py::arg("outputs") = std::vector<std::string>{},
      py::arg("max_output_bytes") = uint64_t{64} << 20, py::arg("network") = false,
      py::arg("cgroup_root") = "/sys/fs/cgroup", py::arg("hostname") = "benchrun",
      py::arg("backend") = "sandbox", py::arg("accel") = "auto", py::arg("kernel") = "",
      py::arg("vm_memory_mib") = 0, py::arg("init_binary") = "",
      py::arg("qemu") = "qemu-system-x86_64", py::arg("boot_timeout") = 60.0,
      py::arg("vm_cache") = "", py::arg("kernel_modules") = "", py::arg("should_stop") = py::none(),
      "Run an image from the store in the namespace sandbox or a microVM (backend='vm'); returns "
      "the result as a dict. Releases the GIL.");
}

}  // namespace benchrun::bindings

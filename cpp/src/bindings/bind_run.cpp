// bind_run.cpp: type conversion for the run component: RunSpec (its properties come from the one
// option list in run/spec.hpp), RunImage, run() and the backend registry. No logic here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string.h>

#include <optional>
#include <variant>

#include "benchrun/run/runner.hpp"
#include "bindings/bindings.hpp"

namespace py = pybind11;

namespace benchrun::bindings {

namespace {

// The captured stream read straight into a bytes object of its size: the one copy in the runner's
// memory (the file is the run's; nothing is held twice, issue 11 finding 6).
py::bytes output_bytes(const OutputFile& f) {
  py::bytes b = py::reinterpret_steal<py::bytes>(
      PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(f.size())));
  if (!b) throw py::error_already_set();
  char* dst = PyBytes_AS_STRING(b.ptr());
  py::gil_scoped_release nogil;
  f.read_into(dst);
  return b;
}

py::dict result_dict(run::RunResult& r) {
  py::dict d;
  d["exit_code"] = r.exit_code;
  d["signal"] = r.signal;
  d["stdout"] = output_bytes(r.stdout_data);
  r.stdout_data = OutputFile();  // closed: the file is gone
  d["stderr"] = output_bytes(r.stderr_data);
  r.stderr_data = OutputFile();
  d["stdout_truncated"] = r.stdout_truncated;
  d["stderr_truncated"] = r.stderr_truncated;
  py::dict outs;
  for (auto& [k, v] : r.outputs) {
    outs[py::str(k)] = py::bytes(v);
    std::string().swap(v);  // each file once in memory at a time, not twice
  }
  d["outputs"] = outs;
  d["missing_outputs"] = r.missing_outputs;
  d["timed_out"] = r.timed_out;
  d["oom_killed"] = r.oom_killed;
  d["interrupted"] = r.interrupted;
  d["start_time"] = r.start_time;
  d["end_time"] = r.end_time;
  py::dict metrics;
  for (const auto& [name, m] : r.metrics) metrics[py::str(name)] = py::make_tuple(m.value, m.unit);
  d["metrics"] = metrics;
  py::dict phases;
  phases["prepare"] = r.phases.prepare_s;
  phases["start"] = r.phases.start_s;
  phases["run"] = r.phases.run_s;
  phases["collect"] = r.phases.collect_s;
  d["phases"] = phases;
  py::dict facts;
  for (const auto& [k, v] : r.facts) std::visit([&](const auto& x) { facts[py::str(k)] = x; }, v);
  d["facts"] = facts;
  d["notices"] = r.notices;
  d["limits"] = r.limits;
  d["backend"] = r.backend;
  d["image_digest"] = r.image_digest;
  return d;
}

}  // namespace

void bind_run(py::module_& m) {
  py::class_<run::RunSpec> spec(m, "RunSpec",
                                "The options of one run (C++ run::RunSpec); see benchrun.options "
                                "for the user-facing table. validate() checks every rule.");
  spec.def(py::init<>());
  py::list options;
#define BENCHRUN_BIND_OPTION(type, name, init, scope, doc) \
  spec.def_readwrite(#name, &run::RunSpec::name, doc);     \
  options.append(py::make_tuple(#name, scope, doc));
  BENCHRUN_RUN_OPTIONS(BENCHRUN_BIND_OPTION)
#undef BENCHRUN_BIND_OPTION
  spec.attr("OPTIONS") = py::tuple(options);
  m.attr("UNLIMITED") = run::kUnlimited;
  spec.def_readwrite("rootless", &run::RunSpec::rootless,
                     "None: rootless exactly when not root (a test setting, not an option)");
  spec.def(
      "validate", [](const run::RunSpec& s) { run::validate(s); },
      "ConfigError naming the option and the rule it breaks; None when the spec is valid.");

  py::class_<run::RunImage>(m, "RunImage",
                            "An image loaded from the store, ready to run (load once, run many).")
      .def_readonly("digest", &run::RunImage::digest)
      .def_readonly("chain_id", &run::RunImage::chain_id)
      .def_readonly("rootfs", &run::RunImage::rootfs);
  m.def(
      "load_run_image",
      [](const std::string& store, const std::string& reference) {
        py::gil_scoped_release nogil;
        return run::load_run_image(oci::Store(store), reference);
      },
      py::kw_only(), py::arg("store"), py::arg("reference"),
      "The image (reference or manifest digest) from the store, ready to run. ImageNotFound; "
      "ImageError if it is not unpacked. Releases the GIL.");

  m.def(
      "backends", [] { return run::backend_names(); }, "The registered backends' names.");
  m.def(
      "backend_unavailable",
      [](const std::string& name) {
        py::gil_scoped_release nogil;
        return run::backend(name).unavailable(run::HostConfig{});
      },
      py::arg("name"),
      "Why backend `name` cannot run on this host (e.g. its OCI runtime is not installed), or '' "
      "when it can. ConfigError for an unknown name. Releases the GIL.");

  m.def(
      "cleanup_leftovers",
      [](const std::string& store, const std::string& cgroup_root,
         const std::string& cgroup_parent) {
        run::HostConfig host;
        host.store = store;
        host.cgroup.root = cgroup_root;
        host.cgroup.parent = cgroup_parent;
        py::gil_scoped_release nogil;
        return run::cleanup_leftovers(host);
      },
      py::kw_only(), py::arg("store"), py::arg("cgroup_root") = "/sys/fs/cgroup",
      py::arg("cgroup_parent") = "benchrun",
      "Remove what a killed runner left (its run cgroups, with their processes, and run "
      "directories); returns how many. Every run does this first; agents also at start.");

  m.def(
      "run",
      [](const run::RunImage& image, const run::RunSpec& spec, const std::string& store,
         const std::string& cgroup_root, const std::string& vm_cache,
         const std::string& init_binary, const std::string& qemu, double boot_timeout,
         std::optional<py::function> should_stop, const std::string& meminfo,
         const std::string& cgroup_parent, const std::string& cpu_lock_dir,
         const std::string& valgrind_dir, const std::string& valgrind_launcher,
         const std::string& pid1_binary,
         const std::vector<std::pair<std::string, py::bytes>>& secrets) {
        run::HostConfig host;
        host.pid1_binary = pid1_binary;
        host.valgrind_dir = valgrind_dir;
        host.valgrind_launcher = valgrind_launcher;
        host.meminfo = meminfo;
        host.cgroup.parent = cgroup_parent;
        host.cpu_lock_dir = cpu_lock_dir;
        host.store = store;
        host.cgroup.root = cgroup_root;
        host.vm_cache = vm_cache;
        host.init_binary = init_binary;
        host.qemu = qemu;
        host.vm_boot_timeout = boot_timeout;
        // Ctrl-C (or any Python signal handler raising) stops the run: the workload is killed
        // and cleaned up, then the exception is re-raised here with the GIL held. should_stop
        // (e.g. a job's cancel flag, from another thread) stops it the same way, without an
        // exception: the result says interrupted.
        std::optional<py::error_already_set> pending;
        run::Interrupt interrupt = [&pending, &should_stop] {
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
          if (secrets.empty()) return run::run_image(image, spec, host, interrupt);
          run::RunSpec with_secrets = spec;
          {
            py::gil_scoped_acquire gil;
            for (const auto& [name, value] : secrets)
              with_secrets.secrets.emplace_back(name, std::string(value));
          }
          run::RunResult result = run::run_image(image, with_secrets, host, interrupt);
          for (auto& [name, value] : with_secrets.secrets)
            explicit_bzero(value.data(), value.size());
          return result;
        }();
        if (pending) throw *pending;
        return result_dict(r);
      },
      py::kw_only(), py::arg("image"), py::arg("spec"), py::arg("store"),
      py::arg("cgroup_root") = "/sys/fs/cgroup", py::arg("vm_cache") = "",
      py::arg("init_binary") = "", py::arg("qemu") = "qemu-system-x86_64",
      py::arg("boot_timeout") = 60.0, py::arg("should_stop") = py::none(),
      py::arg("meminfo") = "/proc/meminfo", py::arg("cgroup_parent") = "benchrun",
      py::arg("cpu_lock_dir") = "/run/benchrun/cpus",
      py::arg("valgrind_dir") = "/usr/libexec/valgrind", py::arg("valgrind_launcher") = "",
      py::arg("pid1_binary") = "",
      py::arg("secrets") = std::vector<std::pair<std::string, py::bytes>>{},
      "Run a loaded image with a RunSpec in its backend; returns the result as a dict (metrics: "
      "name -> (value, unit)). Releases the GIL.");
}

}  // namespace benchrun::bindings

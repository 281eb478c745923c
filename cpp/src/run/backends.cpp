// backends.cpp: the registry of backends: one line per backend. Every list of backend names (the
// CLI, the agent, the pytest plugin, job specs) comes from here through benchrun.backends().
#include <memory>

#include "benchrun/common/error.hpp"
#include "benchrun/run/backend.hpp"

namespace benchrun::run {

std::unique_ptr<Backend> make_sandbox_backend();  // run/sandbox_backend.cpp
std::unique_ptr<Backend> make_vm_backend();       // run/vm_backend.cpp
std::unique_ptr<Backend> make_runc_backend();     // run/oci_backend.cpp (OCI runtimes)
std::unique_ptr<Backend> make_runsc_backend();
std::unique_ptr<Backend> make_crun_backend();
std::unique_ptr<Backend> make_oci_backend();  // --runtime PATH

namespace {

struct Registry {
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::string> names;
  Registry() {
    backends.push_back(make_sandbox_backend());
    backends.push_back(make_vm_backend());
    for (auto make : {make_runc_backend, make_runsc_backend, make_crun_backend, make_oci_backend})
      backends.push_back(make());
    for (const auto& b : backends) names.push_back(b->name());
  }
};

const Registry& registry() {
  static const Registry r;
  return r;
}

}  // namespace

const std::vector<std::string>& backend_names() { return registry().names; }

const Backend& backend(const std::string& name) {
  for (const auto& b : registry().backends)
    if (b->name() == name) return *b;
  std::string known;
  for (const auto& n : registry().names) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("backend '" + name + "': unknown (choose " + known + ")");
}

}  // namespace benchrun::run

// spec.cpp: every rule of every run option, in one place (tests/cpp/run/spec_test.cpp walks them).
#include "benchrun/run/spec.hpp"

#include <cmath>
#include <set>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/perf/counters.hpp"
#include "benchrun/run/backend.hpp"

namespace benchrun::run {

namespace {

constexpr uint64_t kMinMemory = uint64_t{6} << 20;  // docker's minimum: below it nothing starts
constexpr uint64_t kMinDisk = uint64_t{16} << 20;   // an ext4 of less holds little but metadata

[[noreturn]] void bad(const std::string& option, const std::string& why) {
  throw ConfigError(option + ": " + why);
}

void check_text(const std::string& option, const std::string& s) {
  if (s.find('\0') != std::string::npos) bad(option, "'" + printable(s) + "' contains NUL");
}

void check_argv(const std::string& option, const std::optional<Argv>& argv) {
  if (!argv) return;
  for (const auto& a : *argv) check_text(option, a);
}

void check_abs_path(const std::string& option, const std::string& p) {
  check_text(option, p);
  if (p.empty() || p[0] != '/')
    bad(option, "'" + printable(p) + "' must be an absolute path inside the image");
}

void check_seconds(const std::string& option, double v, bool zero_ok) {
  if (!std::isfinite(v) || v < 0 || (!zero_ok && v == 0))
    bad(option, std::to_string(v) + " must be a positive number of seconds");
}

void check_secrets(const RunSpec& s) {
  if (s.secrets.size() > kMaxSecrets)
    bad("secrets",
        std::to_string(s.secrets.size()) + " given; at most " + std::to_string(kMaxSecrets));
  size_t total = 0;
  for (size_t i = 0; i < s.secrets.size(); ++i) {
    const std::string& name = s.secrets[i].first;
    // Never the content in a message: names only.
    if (name.empty() || name.size() > kMaxSecretName || name == "." || name == ".." ||
        name.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
            std::string::npos)
      bad("secrets", "name '" + printable(name) + "': expected 1-" +
                         std::to_string(kMaxSecretName) +
                         " of A-Z a-z 0-9 _ . - (a file name in /run/secrets; not . or ..)");
    for (size_t j = 0; j < i; ++j)
      if (s.secrets[j].first == name) bad("secrets", "name '" + name + "' given twice");
    if (s.secrets[i].second.size() > kMaxSecretBytes)
      bad("secrets", "'" + name + "' is " + std::to_string(s.secrets[i].second.size()) +
                         " bytes; at most " + std::to_string(kMaxSecretBytes));
    total += s.secrets[i].second.size();
  }
  if (total > kMaxSecretTotal)
    bad("secrets",
        "together " + std::to_string(total) + " bytes; at most " + std::to_string(kMaxSecretTotal));
}

}  // namespace

void validate(const RunSpec& s) {
  const Backend& b = backend(s.backend);  // ConfigError naming the registered backends
  // A backend-specific option may only differ from its default for its backend.
#define BENCHRUN_CHECK_SCOPE(type, name, init, scope, doc)                    \
  if (std::string(scope) != "" && s.backend != scope && s.name != type(init)) \
    bad(#name,                                                                \
        std::string("applies to backend '") + scope + "' only (backend is '" + s.backend + "')");
  BENCHRUN_RUN_OPTIONS(BENCHRUN_CHECK_SCOPE)
#undef BENCHRUN_CHECK_SCOPE
  check_secrets(s);
  check_argv("entrypoint", s.entrypoint);
  check_argv("command", s.command);
  for (const auto& e : s.env) {
    check_text("env", e);
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      bad("env", "'" + printable(e) + "' is not of the form K=V with a non-empty K");
  }
  if (s.workdir) check_abs_path("workdir", *s.workdir);
  if (s.user) {
    check_text("user", *s.user);
    if (s.user->empty()) bad("user", "empty (expected a name, uid, name:group or uid:gid)");
  }
  if (s.memory && *s.memory != kUnlimited && *s.memory < kMinMemory)
    bad("memory", std::to_string(*s.memory) + " bytes: the minimum is 6m (" +
                      std::to_string(kMinMemory) + " bytes)");
  if (s.pids_limit && *s.pids_limit < 1) bad("pids_limit", "must be at least 1");
  if (s.disk && *s.disk != kUnlimited && *s.disk < kMinDisk)
    bad("disk", std::to_string(*s.disk) + " bytes: the minimum is 16m (" +
                    std::to_string(kMinDisk) + " bytes)");
  std::set<int> cpus;
  for (int c : s.cpus) {
    if (c < 0) bad("cpus", "cpu " + std::to_string(c) + " must be >= 0");
    if (!cpus.insert(c).second) bad("cpus", "cpu " + std::to_string(c) + " is listed twice");
  }
  if (!s.instructions.empty() && s.instructions != "count" && s.instructions != "cache" &&
      s.instructions != "sections")
    bad("instructions",
        "'" + printable(s.instructions) + "': expected count, cache or sections (empty: off)");
  if (s.cpu_count && *s.cpu_count < 1) bad("cpu_count", "must be at least 1");
  if (s.cpu_count && !s.cpus.empty())
    bad("cpu_count", "give either a CPU count or a CPU list (cpus), not both");
  check_seconds("cpu_wait", s.cpu_wait, true);
  if (s.cpu_quota && (!std::isfinite(*s.cpu_quota) || *s.cpu_quota <= 0))
    bad("cpu_quota", std::to_string(*s.cpu_quota) + " must be a positive number of CPUs");
  check_seconds("timeout", s.timeout, true);
  check_seconds("stop_timeout", s.stop_timeout, true);
  std::set<std::string> outputs;
  for (const auto& o : s.outputs) {
    check_abs_path("outputs", o);
    if (!outputs.insert(o).second) bad("outputs", "'" + printable(o) + "' is listed twice");
  }
  if (s.outputs.size() > s.max_files)
    bad("outputs", std::to_string(s.outputs.size()) + " paths: at most max_files (" +
                       std::to_string(s.max_files) + ")");
  if (s.nofile < 16) bad("nofile", "must be at least 16");
  check_text("hostname", s.hostname);
  if (s.hostname.empty() || s.hostname.size() > 64)
    bad("hostname", "'" + printable(s.hostname) + "' must be 1 to 64 bytes");
  if (s.vm_memory && *s.vm_memory == kUnlimited)
    bad("vm_memory", "a guest's RAM cannot be unlimited (give a size, e.g. 4g)");
  if (s.vm_memory && *s.vm_memory < (uint64_t{64} << 20))
    bad("vm_memory", std::to_string(*s.vm_memory) + " bytes: a guest needs at least 64m");
  if (s.counters) (void)perf::resolve(*s.counters);  // ConfigError listing the known names
  check_text("runtime", s.runtime);
  if (s.runsc_platform != "auto" && s.runsc_platform != "systrap" && s.runsc_platform != "ptrace" &&
      s.runsc_platform != "kvm")
    bad("runsc_platform",
        "'" + printable(s.runsc_platform) + "': choose auto, systrap, ptrace or kvm");
  b.validate(s);
}

uint64_t timeout_ms(const RunSpec& spec) {
  if (spec.timeout <= 0) return 0;
  const auto ms = static_cast<uint64_t>(std::ceil(spec.timeout * 1000.0));
  return ms == 0 ? 1 : ms;
}

}  // namespace benchrun::run

// oci_runtime.cpp: finding an OCI runtime and checking it can run here (see oci_runtime.hpp).
// Each binary is asked `--version` (and runsc `flags`) once per process: a run must not pay a
// runtime's start-up twice over.
#include "run/oci_runtime.hpp"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "benchrun/common/error.hpp"
#include "benchrun/common/subprocess.hpp"
#include "benchrun/host/cgroup.hpp"
#include "benchrun/vm/config.hpp"

namespace benchrun::run {

namespace detail {

std::string parse_runtime_version(const std::string& kind, const std::string& output) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string w, prev;
    while (words >> w) {
      // "<name> version X" (runc, runsc, crun, youki); "X" must start with a digit.
      if (prev == "version" && !w.empty() && std::isdigit(static_cast<unsigned char>(w[0])))
        return w;
      prev = w;
    }
  }
  (void)kind;
  return "";
}

namespace {
// The leading numbers of a version ("1.1.5+ds1" -> 1,1,5).
std::vector<long> numbers(const std::string& v) {
  std::vector<long> out;
  size_t i = 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) {
    size_t j = i;
    while (j < v.size() && std::isdigit(static_cast<unsigned char>(v[j]))) ++j;
    out.push_back(std::stol(v.substr(i, j - i)));
    if (j >= v.size() || v[j] != '.') break;
    i = j + 1;
  }
  return out;
}

// runsc versions are release dates: "0.0~20221219.0" (Debian), "release-20221219.0".
long runsc_date(const std::string& v) {
  for (size_t i = 0; i + 8 <= v.size(); ++i) {
    if (std::all_of(v.begin() + static_cast<long>(i), v.begin() + static_cast<long>(i) + 8,
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return std::stol(v.substr(i, 8));
  }
  return 0;
}
}  // namespace

bool runtime_version_ok(const std::string& kind, const std::string& version, std::string* minimum) {
  if (kind == "runsc") {
    // --oci-seccomp and the v1/v2 cgroup support benchrun uses: 2021 releases on.
    if (minimum) *minimum = "release-20210101";
    return runsc_date(version) >= 20210101;
  }
  std::vector<long> want;
  if (kind == "runc") want = {1, 0, 0};  // --root, `delete --force`, runtime-spec 1.0 seccomp
  if (kind == "crun") want = {1, 0};     // runtime-spec 1.0
  if (minimum) {
    *minimum = "";
    for (long n : want) *minimum += (minimum->empty() ? "" : ".") + std::to_string(n);
  }
  const std::vector<long> have = numbers(version);
  if (have.empty()) return want.empty();
  return !std::lexicographical_compare(have.begin(), have.end(), want.begin(), want.end());
}

std::vector<std::string> runsc_platforms(const std::string& flags_help) {
  std::vector<std::string> out;
  const size_t at = flags_help.find("-platform ");
  if (at == std::string::npos) return out;
  const size_t end = flags_help.find("\n  -", at + 1);
  const std::string text = flags_help.substr(at, end == std::string::npos ? end : end - at);
  for (const char* p : {"systrap", "ptrace", "kvm"})
    if (text.find(p) != std::string::npos) out.emplace_back(p);
  return out;
}

bool cgroup_hybrid(const std::string& cgroup_root) {
  struct statfs root {
  }, unified{};
  if (::statfs(cgroup_root.c_str(), &root) != 0) return false;
  if (static_cast<unsigned long>(root.f_type) == CGROUP2_SUPER_MAGIC) return false;
  const std::string u = cgroup_root + "/unified";
  return ::statfs(u.c_str(), &unified) == 0 &&
         static_cast<unsigned long>(unified.f_type) == CGROUP2_SUPER_MAGIC;
}

}  // namespace detail

namespace {

[[noreturn]] void unavailable(const std::string& kind, const std::string& reason,
                              const std::string& message) {
  throw RuntimeUnavailable(message, kind, reason);
}

std::string locate(const std::string& kind, const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    unavailable(kind, "not-installed",
                "runtime '" + name +
                    "': not an executable file (hint: give the runtime's path "
                    "with --runtime)");
  }
  for (const auto& dir : kRuntimeDirs) {
    const std::string p = dir + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  std::string hint = kind == "runsc" ? "apt-get install runsc (gVisor)"
                     : kind == "oci" ? "install it, or give its path with --runtime"
                                     : "apt-get install " + kind;
  unavailable(kind, "not-installed",
              "runtime '" + name +
                  "': not installed (not in /usr/local/sbin, /usr/local/bin, "
                  "/usr/sbin, /usr/bin, /sbin or /bin) (hint: " +
                  hint + ")");
}

struct Probe {
  std::string version;
  std::vector<std::string> platforms;  // runsc
};

// `--version` (and for runsc `flags`) of a binary, once per (path, mtime, size).
Probe probe(const std::string& kind, const std::string& path) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, long, long, long>, Probe> cache;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_errno("stat", path);
  const auto key =
      std::make_tuple(path, static_cast<long>(st.st_mtim.tv_sec),
                      static_cast<long>(st.st_mtim.tv_nsec), static_cast<long>(st.st_size));
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  SubprocessOptions opts;
  opts.timeout = std::chrono::seconds(10);
  SubprocessResult v;
  try {
    v = run_subprocess({path, "--version"}, opts);
  } catch (const SysError& e) {
    unavailable(kind, "not-installed", "runtime '" + path + "': cannot run it: " + e.what());
  }
  if (!v.ok())
    unavailable(kind, "not-installed",
                "runtime '" + path + "': '--version' failed (" +
                    (v.timed_out ? std::string("timed out") : v.stderr_data.substr(0, 200)) +
                    "): not an OCI runtime, or broken");
  Probe p;
  p.version = detail::parse_runtime_version(kind, v.stdout_data);
  if (p.version.empty()) p.version = "unknown";
  if (kind == "runsc") {
    SubprocessResult f = run_subprocess({path, "flags"}, opts);
    p.platforms = detail::runsc_platforms(f.stdout_data + f.stderr_data);
  }
  std::lock_guard<std::mutex> lock(mu);
  cache[key] = p;
  return p;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

OciRuntime find_oci_runtime(const std::string& kind, const RunSpec& spec, const HostConfig& host) {
  OciRuntime rt;
  rt.kind = kind;
  if (kind == "oci" && spec.runtime.empty())
    throw ConfigError(
        "backend 'oci': needs --runtime PATH (the OCI runtime to drive; for runc, "
        "runsc or crun use --backend runc|runsc|crun)");
  rt.path = locate(kind, kind == "oci" ? spec.runtime : kind);
  const Probe p = probe(kind, rt.path);
  rt.version = p.version;
  std::string minimum;
  if (kind != "oci" && !detail::runtime_version_ok(kind, rt.version, &minimum))
    unavailable(kind, "wrong-version",
                kind + " '" + rt.path + "' is version " + rt.version + ": benchrun needs " +
                    minimum + " or later (hint: upgrade the " + kind + " package)");
  if (kind == "crun" && detail::cgroup_hybrid(host.cgroup.root))
    unavailable(kind, "unsupported-host",
                "crun " + rt.version + " refuses cgroup v1 hybrid hosts ('" + host.cgroup.root +
                    "' has v1 controllers and a cgroup2 mount at '" + host.cgroup.root +
                    "/unified'): use --backend runc or runsc here, or boot the host with "
                    "systemd.unified_cgroup_hierarchy=1 (cgroup v2)");
  if (kind == "runsc") {
    const auto has = [&](const std::string& name) {
      return std::find(p.platforms.begin(), p.platforms.end(), name) != p.platforms.end();
    };
    std::string want = spec.runsc_platform;
    if (want == "auto") want = has("systrap") ? "systrap" : "ptrace";
    if (!has(want))
      unavailable(kind, "unsupported-host",
                  "runsc " + rt.version + " has no platform '" + want +
                      "' (it has: " + join(p.platforms) + "; systrap came with 2023 releases)");
    if (want == "kvm") {
      vm::AccelChoice a = vm::choose_accel(vm::Accel::kAuto, host.cpuinfo, host.kvm_device);
      if (a.accel != vm::Accel::kKvm)
        unavailable(kind, "unsupported-host",
                    "runsc platform kvm: no usable hardware virtualisation here (needs vmx or "
                    "svm in " +
                        host.cpuinfo + " and a usable " + host.kvm_device +
                        ") (hint: --runsc-platform ptrace" + (has("systrap") ? " or systrap" : "") +
                        ")");
    }
    rt.platform = want;
  }
  return rt;
}

}  // namespace benchrun::run

// kernel.cpp: find the guest kernel: Debian's package unpacked into the cache, or a given bzImage.
//
// Provisioning never installs anything: `apt-get download` fetches the .deb files (using the host's
// package lists) and `dpkg-deb -x` unpacks them into a temp dir under <cache>/kernels, from which
// boot/vmlinuz-<release> and lib/modules/<release> (usr/lib/modules on merged-/usr releases) move
// into <cache>/kernels/<release>, renamed into place as a whole. apt-get download writes to its
// working directory, so it runs under `env -C <dir>`; as root, apt would drop to user _apt for the
// download and warn that our 0700 temp dir is not accessible to it, hence APT::Sandbox::User=root.
//
// The bzImage header layout is Documentation/arch/x86/boot.rst (boot protocol 2.00 and later).
#include "benchrun/vm/kernel.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/subprocess.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::vm {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kImagePrefix = "linux-image-";
constexpr std::chrono::milliseconds kAptTimeout = std::chrono::minutes(15);
constexpr std::chrono::milliseconds kDpkgTimeout = std::chrono::minutes(5);

// Debian policy 5.6.1: lowercase letters, digits, '+', '-', '.'; at least two characters,
// starting with an alphanumeric. It names a file and an argv entry, so check it.
bool valid_package(std::string_view name) {
  if (name.size() < 2 || name.size() > 200) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '+' && c != '-' && c != '.'))) return false;
  }
  return true;
}

// A kernel release (uname -r) becomes a directory name: a single safe path component.
bool valid_release(std::string_view r) {
  if (r.empty() || r.size() > 64 || r.front() == '.' || r.front() == '-') return false;
  for (char c : r) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == '+' || c == '~';
    if (!ok) return false;
  }
  return true;
}

bool is_regular(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// For paths inside an extracted package: a symlink there must not stand in for the real thing.
bool is_own(const fs::path& p, mode_t type) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && (st.st_mode & S_IFMT) == type;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

std::string one_line(const std::string& text) {
  std::string out;
  for (char c : trim(text)) out += c == '\n' ? ' ' : c;
  return printable(out, 600);
}

std::optional<Kernel> complete_kernel(const fs::path& dir, const std::string& release) {
  if (!is_regular(dir / "vmlinuz") || !is_dir(dir / "modules")) return std::nullopt;
  return Kernel{(dir / "vmlinuz").string(), (dir / "modules").string(), release};
}

// The kernel the package resolved to last time, when it is still complete.
std::optional<Kernel> cached(const fs::path& kernels, const std::string& package) {
  const fs::path record = kernels / (package + ".release");
  if (!is_regular(record)) return std::nullopt;
  std::string release;
  try {
    release = trim(read_file(record, 4096));
  } catch (const Error&) {
    return std::nullopt;
  }
  if (!valid_release(release)) return std::nullopt;
  return complete_kernel(kernels / release, release);
}

SubprocessResult run_tool(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& what) {
  SubprocessOptions options;
  options.timeout = timeout;
  SubprocessResult r;
  try {
    r = run_subprocess(argv, options);
  } catch (const SysError& e) {
    throw VmError(what + ": " + e.what());
  }
  if (r.timed_out)
    throw VmError(what + ": no answer within " + std::to_string(timeout.count() / 1000) + " s");
  if (!r.ok()) {
    std::string msg = one_line(r.stderr_data.empty() ? r.stdout_data : r.stderr_data);
    std::string status = r.signal != 0 ? "killed by signal " + std::to_string(r.signal)
                                       : "exit " + std::to_string(r.exit_code);
    throw VmError(what + ": " + status + ": " + msg);
  }
  return r;
}

// Downloads package's .deb into dir (created) and returns its path.
fs::path apt_download(const std::string& apt_get, const fs::path& dir, const std::string& package) {
  make_dirs(dir);
  // env -C changes directory before exec, so a relative program path must be made absolute.
  std::string program = apt_get;
  if (program.find('/') != std::string::npos) program = fs::absolute(program).string();
  const std::string what = "apt-get download '" + package + "'";
  try {
    run_tool({"env", "-C", dir.string(), program, "-q", "-o", "APT::Sandbox::User=root", "download",
              package},
             kAptTimeout, what);
  } catch (const VmError& e) {
    std::string msg = e.what();
    if (msg.find("Unable to locate package") != std::string::npos)
      msg += " (hint: apt-get update, or check that the package exists for this architecture)";
    throw VmError(msg);
  }
  std::optional<fs::path> deb;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".deb") == 0 &&
        name.compare(0, package.size() + 1, package + "_") == 0) {
      if (deb) throw VmError(what + ": more than one .deb in '" + dir.string() + "'");
      deb = entry.path();
    }
  }
  if (ec) throw SysError(ec.value(), "scan", dir.string());
  if (!deb) throw VmError(what + ": apt-get reported success but left no .deb");
  return *deb;
}

// "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2), ..." -> "6.1.0-56-cloud-amd64"; empty when no
// dependency (first alternative of each) is a linux-image-* package.
std::string release_from_depends(const std::string& depends, const std::string& package) {
  size_t start = 0;
  while (start < depends.size()) {
    size_t comma = depends.find(',', start);
    if (comma == std::string::npos) comma = depends.size();
    std::string dep = trim(depends.substr(start, comma - start));
    start = comma + 1;
    size_t end = dep.find_first_of(" (|:");
    std::string name = dep.substr(0, end);
    if (name.compare(0, kImagePrefix.size(), kImagePrefix) != 0 || name == package) continue;
    return name.substr(kImagePrefix.size());
  }
  return "";
}

// Removes temp dirs of a provisioner that died; called with the provisioning lock held.
void sweep_leftovers(const fs::path& kernels) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kernels, ec)) {
    if (entry.path().filename().string().rfind(".tmp-", 0) == 0) {
      try {
        remove_tree(entry.path());
      } catch (const Error&) {
        // Best effort: a leftover we cannot remove does not stop this provisioning.
      }
    }
  }
}

// The extracted package's modules directory: lib/modules, or usr/lib/modules (merged /usr).
std::optional<fs::path> extracted_modules(const fs::path& root, const std::string& release) {
  for (const char* base : {"lib/modules", "usr/lib/modules"}) {
    fs::path p = root / base / release;
    if (is_own(p, S_IFDIR)) return p;
  }
  return std::nullopt;
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("rename", from.string());
}

}  // namespace

std::string bzimage_release(const std::string& path) {
  UniqueFd fd;
  try {
    fd = open_file(path, O_RDONLY);
  } catch (const SysError& e) {
    throw VmError("read kernel '" + path + "': " + e.what());
  }
  // The setup area is at most (255 + 1) sectors of 512 bytes; the version string lies inside it.
  std::string head(256 * 512, '\0');
  head.resize(read_full(fd.get(), head.data(), head.size(), path));
  auto fail = [&](const std::string& why) -> std::string {
    throw VmError("read kernel '" + path + "': " + why);
  };
  auto u8 = [&](size_t off) {
    return static_cast<unsigned>(static_cast<unsigned char>(head[off]));
  };
  auto u16 = [&](size_t off) { return u8(off) | (u8(off + 1) << 8); };
  if (head.size() < 0x210 || head.compare(0x202, 4, "HdrS") != 0)
    return fail("not a bzImage (no \"HdrS\" setup header at 0x202)");
  if (u16(0x1FE) != 0xAA55) return fail("not a bzImage (boot flag 0xAA55 missing at 0x1FE)");
  const unsigned protocol = u16(0x206);
  if (protocol < 0x0200) return fail("boot protocol " + std::to_string(protocol) + " too old");
  const unsigned setup_sects = u8(0x1F1) == 0 ? 4 : u8(0x1F1);
  const size_t setup_end = std::min<size_t>((setup_sects + 1) * 512, head.size());
  const unsigned pointer = u16(0x20E);
  if (pointer == 0) return fail("the setup header carries no version string");
  const size_t at = static_cast<size_t>(pointer) + 0x200;
  if (at >= setup_end)
    return fail("version string pointer " + std::to_string(at) + " lies outside the setup area");
  const size_t nul = head.find('\0', at);
  if (nul == std::string::npos || nul >= setup_end || nul - at > 512)
    return fail("unterminated version string");
  const std::string version = head.substr(at, nul - at);
  const std::string release = version.substr(0, version.find(' '));
  if (!valid_release(release))
    return fail("implausible release '" + printable(release) + "' in version string");
  return release;
}

Kernel kernel_from_path(const std::string& image, const std::string& modules_dir) {
  if (!is_regular(image)) throw ConfigError("kernel '" + image + "': no such file");
  if (!modules_dir.empty() && !is_dir(modules_dir))
    throw ConfigError("kernel modules '" + modules_dir + "': not a directory");
  return Kernel{image, modules_dir, bzimage_release(image)};
}

Kernel provision_debian_kernel(const std::string& cache_dir, const std::string& package,
                               const std::string& apt_get, const std::string& dpkg_deb) {
  if (!valid_package(package))
    throw ConfigError("kernel package '" + printable(package) + "': not a Debian package name");
  if (cache_dir.empty()) throw ConfigError("provision kernel: no cache directory given");
  const fs::path kernels = fs::path(cache_dir) / "kernels";
  if (auto hit = cached(kernels, package)) return *hit;

  make_dirs(kernels);
  FileLock lock(kernels / ".provision.lock");
  if (auto hit = cached(kernels, package)) return *hit;  // provisioned while we waited
  sweep_leftovers(kernels);
  TempDir work(kernels, ".tmp-");

  fs::path deb = apt_download(apt_get, work.path() / "meta", package);
  const std::string depends = run_tool({dpkg_deb, "-f", deb.string(), "Depends"}, kDpkgTimeout,
                                       "dpkg-deb -f '" + deb.filename().string() + "' Depends")
                                  .stdout_data;
  std::string release = release_from_depends(depends, package);
  const bool metapackage = !release.empty();
  if (!metapackage) {
    // Not a metapackage: package is linux-image-<release> itself.
    if (package.compare(0, kImagePrefix.size(), kImagePrefix) != 0)
      throw VmError("kernel package '" + package + "': neither linux-image-<release> nor a " +
                    "package depending on one (Depends: " + printable(trim(depends)) + ")");
    release = package.substr(kImagePrefix.size());
  }
  if (!valid_release(release))
    throw VmError("kernel package '" + package + "': implausible release '" + printable(release) +
                  "'");

  const fs::path dest = kernels / release;
  std::optional<Kernel> kernel = complete_kernel(dest, release);
  if (!kernel) {
    if (metapackage)
      deb = apt_download(apt_get, work.path() / "image", std::string(kImagePrefix) + release);
    const fs::path root = work.path() / "root";
    run_tool({dpkg_deb, "-x", deb.string(), root.string()}, kDpkgTimeout,
             "dpkg-deb -x '" + deb.filename().string() + "'");
    const fs::path vmlinuz = root / "boot" / ("vmlinuz-" + release);
    if (!is_own(vmlinuz, S_IFREG))
      throw VmError("kernel package '" + deb.filename().string() + "': no boot/vmlinuz-" + release);
    const std::optional<fs::path> modules = extracted_modules(root, release);
    if (!modules)
      throw VmError("kernel package '" + deb.filename().string() + "': no lib/modules/" + release);
    const std::string found = bzimage_release(vmlinuz.string());
    if (found != release)
      throw VmError("kernel package '" + deb.filename().string() + "': vmlinuz reports release '" +
                    found + "', expected '" + release + "'");
    const fs::path staged = work.path() / "kernel";
    make_dirs(staged);
    rename_or_throw(vmlinuz, staged / "vmlinuz");
    rename_or_throw(*modules, staged / "modules");
    const fs::path config = root / "boot" / ("config-" + release);
    if (is_own(config, S_IFREG)) rename_or_throw(config, staged / "config");
    if (::rename(staged.c_str(), dest.c_str()) != 0) {
      // A directory left incomplete by hand (we only ever rename whole ones): replace it.
      if (errno != EEXIST && errno != ENOTEMPTY) throw_errno("rename", dest.string());
      remove_tree(dest);
      rename_or_throw(staged, dest);
    }
    kernel = complete_kernel(dest, release);
    if (!kernel) throw VmError("provision kernel '" + release + "': incomplete after install");
  }
  write_file_atomic(kernels / (package + ".release"), release + "\n");
  return *kernel;
}

}  // namespace benchrun::vm

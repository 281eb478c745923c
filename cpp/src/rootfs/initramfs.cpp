// initramfs.cpp: assemble the guest's initramfs (init + modules) into a content-addressed cache.
//
// The inputs are read into memory once (the init is a few MiB, the modules a few hundred KiB), so
// the bytes that are hashed are exactly the bytes that are archived even if a file changes
// meanwhile. sha256 over a 2 MB init plus the VM's eight modules (2.5 MB) takes 4-8 ms on a loaded
// 2-core VM, less than reading them; comparing sizes and mtimes instead would save little and
// would miss an init rebuilt within the same second. Concurrent builders each write their own
// temp file and rename it over the same name: identical contents, atomic replacement, no lock.
#include "benchrun/rootfs/initramfs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <set>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/scope_exit.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/oci/digest.hpp"
#include "benchrun/rootfs/cpio.hpp"
#include "benchrun/rootfs/modules.hpp"

namespace benchrun::rootfs {

namespace fs = std::filesystem;

namespace {

// Bump when the archive layout changes, so old cache entries are not reused.
constexpr std::string_view kLayoutVersion = "benchrun-initramfs-v1";
constexpr size_t kMaxInit = 512 << 20;
constexpr size_t kMaxModule = 256 << 20;

constexpr const char* kDirectories[] = {"dev", "proc",         "sys", "tmp",        "newroot",
                                        "etc", "etc/benchrun", "lib", "lib/modules"};

struct Input {
  std::string path;  // inside the archive
  std::string data;
};

void hash_entry(oci::Hasher& h, std::string_view name, std::string_view data) {
  h.update(name);
  h.update(std::string_view("\0", 1));
  uint64_t size = data.size();
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(size >> (8 * i));
  h.update(le, sizeof le);
  h.update(data);
}

void write_archive(int fd, const Input& init, const std::vector<Input>& modules,
                   const std::string& load_order) {
  CpioWriter w(fd);
  std::set<std::string> dirs(std::begin(kDirectories), std::end(kDirectories));
  for (const char* d : kDirectories) w.add_directory(d, 0755);
  // Parents of every module, each once; in sorted order a parent precedes its children.
  std::set<std::string> module_dirs;
  for (const Input& m : modules) {
    for (size_t slash = m.path.find('/'); slash != std::string::npos;
         slash = m.path.find('/', slash + 1)) {
      std::string parent = m.path.substr(0, slash);
      if (dirs.count(parent) == 0) module_dirs.insert(parent);
    }
  }
  for (const std::string& d : module_dirs) w.add_directory(d, 0755);
  w.add_char_device("dev/console", 0600, 5, 1);
  w.add_file(init.path, 0755, init.data);
  for (const Input& m : modules) w.add_file(m.path, 0644, m.data);
  w.add_file("etc/benchrun/modules", 0644, load_order);
  w.finish();
}

}  // namespace

std::string build_initramfs(const InitramfsSpec& spec, const std::string& cache_dir) {
  if (spec.init_binary.empty()) throw ConfigError("build initramfs: no init binary given");
  if (cache_dir.empty()) throw ConfigError("build initramfs: no cache directory given");
  if (!spec.modules.empty() && spec.modules_dir.empty())
    throw ConfigError("build initramfs: modules requested but no modules directory given");

  Input init{"init", read_file(spec.init_binary, kMaxInit)};
  std::vector<Input> modules;
  std::string load_order;
  for (const std::string& rel : resolve_modules(spec.modules_dir, spec.modules)) {
    modules.push_back({"lib/modules/" + rel, read_file(spec.modules_dir + "/" + rel, kMaxModule)});
    load_order += "/" + modules.back().path + "\n";
  }

  oci::Hasher hasher(oci::DigestAlgorithm::kSha256);
  hasher.update(kLayoutVersion);
  hash_entry(hasher, init.path, init.data);
  for (const Input& m : modules) hash_entry(hasher, m.path, m.data);
  const std::string hex = hasher.finish().hex();

  const fs::path dir = fs::path(cache_dir) / "initramfs";
  const fs::path target = dir / (hex + ".cpio");
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return target.string();
  make_dirs(dir);

  std::string tmp = (dir / ("." + hex + ".cpio.XXXXXX")).string();
  int raw = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (raw < 0) throw_errno("mkstemp", tmp);
  UniqueFd fd(raw);
  ScopeExit remove_tmp([&] { ::unlink(tmp.c_str()); });
  write_archive(fd.get(), init, modules, load_order);
  publish_file(fd.get(), tmp, target);
  remove_tmp.release();
  return target.string();
}

}  // namespace benchrun::rootfs

// scratch_fs.cpp: a run's writable layer on a size-bounded ext4 (host/scratch_fs.hpp).
//
// Design note. Per run: a sparse image file, a loop device (loop(4): LOOP_CTL_GET_FREE, then
// LOOP_CONFIGURE, Linux 5.8, which attaches and sets flags in one step; another process may grab
// the same free device first, EBUSY, so we retry) and a mount made with the new mount API
// (fsopen/fsconfig/fsmount, Linux 5.2) that is never attached in the host's namespace. Formatting
// is done once per size: mkfs.ext4 writes ~200 KiB into a sparse template, and each run copies only
// the template's data extents (SEEK_DATA/SEEK_HOLE), which costs far less than running mkfs. The
// filesystem has no journal (nothing to replay: it dies with the run), no resize inode, and is
// mounted noinit_itable so the kernel's lazy inode-table zeroing never writes behind a benchmark.
// The loop device uses direct I/O where the backing filesystem supports it, so file data is cached
// once (in the run's filesystem), not twice.
#include "benchrun/host/scratch_fs.hpp"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/subprocess.hpp"

namespace benchrun::host {

namespace {

constexpr int kLoopTries = 32;

[[noreturn]] void fail(int err, const std::string& op, const std::string& what,
                       const std::string& hint = "") {
  throw SandboxError(
      op + " '" + what + "': " + std::strerror(err) + (hint.empty() ? "" : " (hint: " + hint + ")"),
      "disk");
}

// <template_dir>/ext4-<size>.img, formatted once (temp file + rename: concurrent builders race
// harmlessly, the last rename wins with an identical file).
std::string template_for(uint64_t size, const std::string& template_dir, const std::string& mkfs) {
  const std::string path = template_dir + "/ext4-" + std::to_string(size) + ".img";
  if (::access(path.c_str(), R_OK) == 0) return path;
  make_dirs(template_dir, 0700);
  std::string tmp = path + ".XXXXXX";
  UniqueFd fd(::mkstemp(tmp.data()));
  if (!fd) fail(errno, "create", tmp);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(err, "truncate", tmp);
  }
  SubprocessOptions opts;
  opts.timeout = std::chrono::seconds(60);
  SubprocessResult res;
  try {
    // sparse_super2 without backups: fewer metadata blocks to copy per run.
    res = run_subprocess({mkfs, "-q", "-F", "-t", "ext4", "-b", "4096", "-O",
                          "^has_journal,^resize_inode,sparse_super2", "-E",
                          "lazy_itable_init=1,nodiscard,num_backup_sb=0,root_owner=0:0", "-m", "0",
                          "-L", "benchrun-rw", tmp},
                         opts);
  } catch (const Error& e) {
    ::unlink(tmp.c_str());
    throw SandboxError("run '" + mkfs + "': " + e.what() + " (hint: install e2fsprogs)", "disk");
  }
  if (!res.ok()) {
    ::unlink(tmp.c_str());
    std::string msg = res.stderr_data.substr(0, 300);
    for (char& c : msg)
      if (c == '\n') c = ' ';
    throw SandboxError("mkfs '" + tmp + "': " + (res.timed_out ? "timed out" : msg), "disk");
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(err, "publish", path);
  }
  return path;
}

// Copies the data extents of src into dst (which is truncated to size first: holes stay holes).
void copy_sparse(const std::string& src_path, int dst, uint64_t size, const std::string& dst_path) {
  UniqueFd src = open_file(src_path, O_RDONLY);
  if (::ftruncate(dst, static_cast<off_t>(size)) != 0) fail(errno, "truncate", dst_path);
  off_t pos = 0;
  for (;;) {
    off_t data = ::lseek(src.get(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data after pos
      fail(errno, "seek", src_path);
    }
    off_t hole = ::lseek(src.get(), data, SEEK_HOLE);
    if (hole < 0) fail(errno, "seek", src_path);
    off_t in = data, out = data;
    while (in < hole) {
      ssize_t n = ::copy_file_range(src.get(), &in, dst, &out, static_cast<size_t>(hole - in), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(errno, "copy", src_path + "' to '" + dst_path);
      if (n == 0) break;
    }
    pos = hole;
  }
}

// Attaches backing to a free loop device; returns its open fd and path.
UniqueFd attach_loop(int backing, std::string& device) {
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl)
    fail(errno, "open", "/dev/loop-control",
         "the disk limit needs loop devices (modprobe loop; run as root), or --disk unlimited");
  for (int i = 0; i < kLoopTries; ++i) {
    const int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) fail(errno, "LOOP_CTL_GET_FREE", "/dev/loop-control");
    device = "/dev/loop" + std::to_string(n);
    UniqueFd loop(::open(device.c_str(), O_RDWR | O_CLOEXEC));
    if (!loop) {
      if (errno == ENOENT) continue;  // udev has not made the node yet
      fail(errno, "open", device);
    }
    loop_config cfg;
    std::memset(&cfg, 0, sizeof cfg);
    cfg.fd = static_cast<uint32_t>(backing);
    cfg.block_size = 4096;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
    int rc = ::ioctl(loop.get(), LOOP_CONFIGURE, &cfg);
    if (rc != 0 && errno == EINVAL) {  // no direct I/O on the backing filesystem (e.g. tmpfs)
      cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      rc = ::ioctl(loop.get(), LOOP_CONFIGURE, &cfg);
    }
    if (rc == 0) return loop;
    if (errno != EBUSY) fail(errno, "LOOP_CONFIGURE", device, "needs Linux >= 5.8");
  }
  fail(EBUSY, "attach a loop device for", "the run's disk");
}

}  // namespace

ScratchFs ScratchFs::create(const std::string& image_path, uint64_t size,
                            const std::string& template_dir, const std::string& mkfs) {
  const std::string tpl = template_for(size, template_dir, mkfs);
  UniqueFd image(::open(image_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!image) fail(errno, "create", image_path);
  copy_sparse(tpl, image.get(), size, image_path);

  std::string device;
  UniqueFd loop = attach_loop(image.get(), device);
  // The loop device holds the file now: without a name, its blocks are freed when the device lets
  // go of it (after the last unmount, in the kernel's own time), not by whoever removes the run
  // directory (with the store mounted -o discard that took 40-70 ms on a run's critical path).
  if (::unlink(image_path.c_str()) != 0) fail(errno, "unlink", image_path);
  UniqueFd fsfd(::fsopen("ext4", FSOPEN_CLOEXEC));
  if (!fsfd) fail(errno, "fsopen", "ext4", "needs Linux >= 5.2");
  auto config = [&](const char* key, const char* value) {
    const int cmd = value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG;
    if (::fsconfig(fsfd.get(), cmd, key, value, 0) != 0) fail(errno, "fsconfig", key);
  };
  config("source", device.c_str());
  config("noinit_itable", nullptr);
  if (::fsconfig(fsfd.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    fail(errno, "mount ext4 from", device);
  ScratchFs fs;
  fs.mount_.reset(::fsmount(fsfd.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID));
  if (!fs.mount_) fail(errno, "fsmount", device);
  // The superblock holds the device open now: closing ours lets autoclear act at the last unmount.
  loop.reset();
  for (const char* sub : {"upper", "work"})
    if (::mkdirat(fs.mount_.get(), sub, 0755) != 0) fail(errno, "mkdir", image_path + ":/" + sub);
  return fs;
}

int clear_stale_loop_devices(const std::string& run_dir, bool (*is_stale)(std::string_view),
                             const std::string& sys_block) {
  int cleared = 0;
  const std::string prefix = std::filesystem::path(run_dir).lexically_normal().string() + "/";
  for (const std::string& name : list_dir_if_exists(sys_block)) {
    if (name.rfind("loop", 0) != 0) continue;
    std::string backing;
    try {
      backing = read_file(sys_block + "/" + name + "/loop/backing_file", 8192);
    } catch (const Error&) {
      continue;  // not attached
    }
    while (!backing.empty() && backing.back() == '\n') backing.pop_back();
    if (backing.rfind(prefix, 0) != 0) continue;
    const std::string run =
        backing.substr(prefix.size(), backing.find('/', prefix.size()) - prefix.size());
    if (!is_stale(run)) continue;
    UniqueFd loop(::open(("/dev/" + name).c_str(), O_RDWR | O_CLOEXEC));
    if (loop && ::ioctl(loop.get(), LOOP_CLR_FD, 0) == 0) ++cleared;
  }
  return cleared;
}

}  // namespace benchrun::host

// mounts.cpp: the sandbox's filesystem steps, run by the child between clone and exec.
//
// Follows runc's layout (libcontainer/rootfs_linux.go, specconv defaults): proc
// nosuid,nodev,noexec; /dev a small tmpfs with the six standard nodes, a private devpts instance
// (newinstance) and /dev/ptmx -> pts/ptmx; masked paths get /dev/null bound over files and an empty
// read-only tmpfs over directories; read-only paths are bind-mounted onto themselves and remounted
// read-only. Mount points at the top of the image (/proc, /dev, /tmp, /sys) must be real
// directories: an image symlink there would be resolved against the host's root, since we have not
// pivoted yet, so a symlink is refused (ELOOP) rather than followed.
#include "sandbox/mounts.hpp"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <iterator>

namespace benchrun::sandbox {

namespace {

struct DevNode {
  const char* path;  // absolute: the host node to bind when mknod is not allowed; +1: in the root
  unsigned major, minor;
};
constexpr DevNode kDevNodes[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

struct DevLink {
  const char* path;  // +1: relative to the new root
  const char* target;
};
constexpr DevLink kDevLinks[] = {
    {"/dev/fd", "/proc/self/fd"},       {"/dev/stdin", "/proc/self/fd/0"},
    {"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"},
    {"/dev/ptmx", "pts/ptmx"},
};

// runc's defaults, plus Docker's /sys/devices/virtual/powercap (CVE-2020-8694). Missing ones are
// skipped.
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};

constexpr const char* kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

int err_of(int rc) noexcept { return rc < 0 ? errno : 0; }

// mkdir rel (mode exact: the child runs with umask 0) unless it exists; it must end up a real
// directory, not a symlink.
int ensure_dir(const char* rel, mode_t mode) noexcept {
  if (::mkdir(rel, mode) == 0) return 0;
  if (errno != EEXIST) return errno;
  struct stat st;
  if (::fstatat(AT_FDCWD, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (S_ISLNK(st.st_mode)) return ELOOP;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int make_node(const DevNode& node) noexcept {
  const char* rel = node.path + 1;
  if (::mknod(rel, S_IFCHR | 0666, makedev(node.major, node.minor)) == 0) return 0;
  if (errno != EPERM) return errno;
  // No CAP_MKNOD (e.g. a user namespace): bind the host's node onto an empty file, as runc does.
  int fd = ::open(rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return errno;
  ::close(fd);
  if (::mount(node.path, rel, nullptr, MS_BIND, nullptr) == 0) return 0;
  int err = errno;
  ::unlink(rel);
  return err == ENOENT ? 0 : err;  // the host lacks it: so does the sandbox
}

}  // namespace

int make_mounts_private() noexcept {
  return err_of(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
}

int mount_overlay_and_enter(const char* merged, const char* options) noexcept {
  if (::mount("overlay", merged, "overlay", 0, options) != 0) return errno;
  return err_of(::chdir(merged));
}

int mount_proc() noexcept {
  if (int err = ensure_dir("proc", 0555)) return err;
  return err_of(::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
}

int mount_dev_tmpfs() noexcept {
  if (int err = ensure_dir("dev", 0755)) return err;
  return err_of(::mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME,
                        "mode=755,size=65536k"));
}

int create_dev_nodes(int* failed_index) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kDevNodes)); ++i) {
    if (int err = make_node(kDevNodes[i])) {
      *failed_index = i;
      return err;
    }
  }
  return 0;
}

int mount_devpts(bool tty_gid) noexcept {
  if (::mkdir("dev/pts", 0755) != 0) return errno;
  // A private instance: the sandbox sees only its own ptys. gid 5 is "tty" by convention; in a
  // user namespace it is not mapped (EINVAL), so ptys keep the creator's group there.
  return err_of(::mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                        tty_gid ? "newinstance,ptmxmode=0666,mode=0620,gid=5"
                                : "newinstance,ptmxmode=0666,mode=0620"));
}

int mount_dev_shm(const char* options) noexcept {
  if (::mkdir("dev/shm", 01777) != 0) return errno;
  // size= is the run's memory limit (which its cgroup enforces on these pages too), not Docker's
  // 64 MiB, which breaks shared-memory-heavy benchmarks.
  return err_of(::mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        options ? options : "mode=1777"));
}

int create_dev_links(int* failed_index) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kDevLinks)); ++i) {
    if (::symlink(kDevLinks[i].target, kDevLinks[i].path + 1) != 0) {
      *failed_index = i;
      return errno;
    }
  }
  return 0;
}

int mount_tmp(const char* options) noexcept {
  if (int err = ensure_dir("tmp", 01777)) return err;
  return err_of(
      ::mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, options ? options : "mode=1777"));
}

int mount_sys() noexcept {
  if (int err = ensure_dir("sys", 0555)) return err;
  if (::mount("sysfs", "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0)
    return 0;
  // sysfs refuses a mount whose network namespace the caller does not own (e.g. sharing the
  // host's network from a user namespace): leave /sys empty rather than expose the host's.
  return errno == EPERM ? 0 : errno;
}

int mask_paths(int* failed_index) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kMaskedPaths)); ++i) {
    const char* rel = kMaskedPaths[i] + 1;
    int err = err_of(::mount("dev/null", rel, nullptr, MS_BIND, nullptr));
    if (err == ENOTDIR)  // a directory: cover it with an empty read-only tmpfs
      err = err_of(::mount("tmpfs", rel, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           "mode=0555"));
    if (err != 0 && err != ENOENT) {
      *failed_index = i;
      return err;
    }
  }
  return 0;
}

int make_readonly_paths(int* failed_index) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kReadonlyPaths)); ++i) {
    const char* rel = kReadonlyPaths[i] + 1;
    int err = err_of(::mount(rel, rel, nullptr, MS_BIND | MS_REC, nullptr));
    if (err == ENOENT) continue;
    if (err == 0)
      err = err_of(::mount(nullptr, rel, nullptr,
                           MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           nullptr));
    if (err != 0) {
      *failed_index = i;
      return err;
    }
  }
  return 0;
}

namespace {

// The steps of mount_tools, for error messages (failed_step indexes them).
constexpr const char* kToolSteps[] = {
    "/.benchrun-tools (create; a symlink there is refused)",
    "/.benchrun-tools (tmpfs)",
    "/.benchrun-tools/{valgrind,launch,out} (mount points)",
    "/.benchrun-tools/valgrind (bind the host's tool directory read-only)",
    "/.benchrun-tools/launch (bind the launcher read-only)",
    "/.benchrun-tools/out (tmpfs)",
    "/.benchrun-tools (read-only)",
};

// A read-only bind of a host path (absolute: we have not pivoted yet) onto rel. mount_setattr
// sets only these attributes: a remount would also have to repeat the source's atime flags,
// which are locked in a user namespace (EPERM otherwise).
int bind_readonly(const char* host_path, const char* rel) noexcept {
  if (::mount(host_path, rel, nullptr, MS_BIND, nullptr) != 0) return errno;
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  return err_of(
      static_cast<int>(::syscall(SYS_mount_setattr, AT_FDCWD, rel, 0, &attr, sizeof attr)));
}

}  // namespace

int mount_tools(const char* tool_dir, const char* tool_launcher, const char* out_options,
                int* failed_step) noexcept {
  constexpr const char* kRoot = ".benchrun-tools";
  constexpr const char* kTmpfs = "mode=0755,size=64k";
  auto step = [&](int index, int err) {
    if (err != 0) *failed_step = index;
    return err;
  };
  if (int err = step(0, ensure_dir(kRoot, 0755))) return err;
  if (int err = step(1, err_of(::mount("tmpfs", kRoot, "tmpfs", MS_NOSUID | MS_NODEV, kTmpfs))))
    return err;
  int err = err_of(::mkdir(".benchrun-tools/valgrind", 0755));
  if (err == 0) err = err_of(::mkdir(".benchrun-tools/out", 0755));
  if (err == 0) {
    int fd = ::open(".benchrun-tools/launch", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    err = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
  }
  if (step(2, err)) return err;
  if (int e = step(3, bind_readonly(tool_dir, ".benchrun-tools/valgrind"))) return e;
  if (int e = step(4, bind_readonly(tool_launcher, ".benchrun-tools/launch"))) return e;
  if (int e = step(5, err_of(::mount("tmpfs", ".benchrun-tools/out", "tmpfs",
                                     MS_NOSUID | MS_NODEV | MS_NOEXEC, out_options))))
    return e;
  return step(6, err_of(::mount(nullptr, kRoot, nullptr,
                                MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, kTmpfs)));
}

int mount_pid1(const char* host_path) noexcept {
  constexpr const char* kRel = ".benchrun-pid1";
  int fd = ::open(kRel, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0755);
  if (fd < 0) return errno == ELOOP ? EEXIST : errno;
  struct stat st;
  int err = ::fstat(fd, &st) != 0 ? errno : (S_ISREG(st.st_mode) ? 0 : EEXIST);
  ::close(fd);
  if (err != 0) return err;
  return bind_readonly(host_path, kRel);
}

namespace {

// The steps of mount_secrets, for error messages (failed_step indexes them).
constexpr const char* kSecretSteps[] = {
    "/run/secrets (create; a symlink there is refused)",
    "/run/secrets (tmpfs)",
    "/run/secrets/<name> (write a secret file)",
    "/run/secrets (read-only)",
};

int write_all(int fd, const char* data, size_t size) noexcept {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

int mount_secrets(const ChildSecret* secrets, size_t count, const char* options, uid_t uid,
                  gid_t gid, int* failed_step) noexcept {
  constexpr const char* kRoot = "run/secrets";  // relative: before pivot_root, cwd is the root
  auto step = [&](int index, int err) {
    if (err != 0) *failed_step = index;
    return err;
  };
  int err = ensure_dir("run", 0755);
  if (err == 0) err = ensure_dir(kRoot, 0755);
  if (step(0, err)) return err;
  if (int e = step(
          1, err_of(::mount("tmpfs", kRoot, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options))))
    return e;
  int dir = ::open(kRoot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return step(2, errno);
  for (size_t i = 0; i < count; ++i) {
    int fd =
        ::openat(dir, secrets[i].name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    int e = fd < 0 ? errno : write_all(fd, secrets[i].data, secrets[i].size);
    if (e == 0) e = err_of(::fchown(fd, uid, gid));
    if (e == 0) e = err_of(::fchmod(fd, 0400));  // whatever the umask
    if (fd >= 0) ::close(fd);
    if (e != 0) {
      ::close(dir);
      return step(2, e);
    }
  }
  ::close(dir);
  return step(3,
              err_of(::mount(nullptr, kRoot, nullptr,
                             MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, options)));
}

const char* secret_mount_step(int index) noexcept {
  if (index < 0 || static_cast<size_t>(index) >= std::size(kSecretSteps)) return nullptr;
  return kSecretSteps[index];
}

int pivot_to_cwd() noexcept {
  // pivot_root(2), "NOTES": with new_root == put_old == ".", the old root ends up stacked on top of
  // the new one and can be detached in place, without a put_old directory in the image.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return errno;
  if (::umount2(".", MNT_DETACH) != 0) return errno;
  return err_of(::chdir("/"));
}

// chroot is enough here because nothing the workload keeps can walk back out: it ends with no
// capabilities at all (bounding set empty, so no CAP_SYS_CHROOT for the chroot-in-a-subdirectory
// escape and no CAP_SYS_ADMIN to mount), no_new_privs (no setuid or file-capability binary gives
// them back), a seccomp filter denying mount, umount2, pivot_root, unshare, setns,
// open_by_handle_at and the new mount API, no open fd other than its stdio and /dev/null, and a
// procfs of its own pid namespace (no /proc/<init>/root or /proc/<init>/fd magic links to follow).
// The initramfs beneath holds init and kernel modules only.
int move_cwd_to_root() noexcept {
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return errno;
  if (::chroot(".") != 0) return errno;
  return err_of(::chdir("/"));
}

int make_dirs(const char* path) noexcept {
  char buf[PATH_MAX];
  size_t len = std::strlen(path);
  if (len >= sizeof buf) return ENAMETOOLONG;
  std::memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i - 1] == '/') continue;  // "//" or a trailing '/'
    char saved = buf[i];
    buf[i] = '\0';
    if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    buf[i] = saved;
  }
  return 0;
}

const char* dev_node_path(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kDevNodes)) ? kDevNodes[index].path
                                                                      : nullptr;
}
const char* dev_link_path(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kDevLinks)) ? kDevLinks[index].path
                                                                      : nullptr;
}
const char* masked_path(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kMaskedPaths)) ? kMaskedPaths[index]
                                                                         : nullptr;
}
const char* tool_mount_step(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kToolSteps)) ? kToolSteps[index]
                                                                       : nullptr;
}
const char* readonly_path(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kReadonlyPaths)) ? kReadonlyPaths[index]
                                                                           : nullptr;
}

}  // namespace benchrun::sandbox

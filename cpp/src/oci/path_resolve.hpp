// path_resolve.hpp: open paths beneath an image root as a container would see them (private to
// oci/).
//
// Design note. Every lookup the unpacker makes starts at the root fd and treats that directory as
// "/": symlinks are followed, but an absolute target restarts at the root and ".." never climbs
// above it, which is what a process chrooted into the image would see. With openat2(2)
// RESOLVE_IN_ROOT (Linux >= 5.6, include/uapi/linux/openat2.h) the kernel enforces this; when the
// syscall is missing (ENOSYS, or EPERM from an old seccomp profile) an fd-by-fd walk with
// O_NOFOLLOW expands symlinks in userspace with the same rules (the cyphar/filepath-securejoin
// model). Neither ever yields an fd outside the root. Magic links (/proc/self/fd/N) are refused.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::oci {

enum class ResolveMode {
  kAuto,     // openat2 when the kernel has it, else the fd walk (decided on first use)
  kOpenat2,  // openat2 only
  kFdWalk,   // userspace walk only (tests, old kernels)
};

class RootResolver {
 public:
  explicit RootResolver(int rootfd, ResolveMode mode = ResolveMode::kAuto) noexcept
      : rootfd_(rootfd), mode_(mode) {}

  // Opens rel beneath the root with flags (O_CLOEXEC added). rel is a cleaned relative path: no
  // empty, "." or ".." components; "" is the root itself. Symlinks anywhere in rel resolve inside
  // the root; O_NOFOLLOW keeps its usual meaning for the last component. Returns 0 and sets out,
  // or an errno value (ENOENT, ENOTDIR, ELOOP, ...).
  int open(const std::string& rel, int flags, UniqueFd& out);

  int rootfd() const noexcept { return rootfd_; }
  // The mechanism in use; kAuto until the first open() has probed the kernel.
  ResolveMode mode() const noexcept { return mode_; }

 private:
  int open_openat2(const std::string& rel, int flags, UniqueFd& out);
  int open_walk(const std::string& rel, int flags, UniqueFd& out);

  int rootfd_;
  ResolveMode mode_;
};

// Opens the directory rel (cleaned, as above) beneath the root, creating missing components with
// mode 0755 like tar does, and calls on_created(prefix) for each directory it made. Returns an fd
// usable as a dirfd. A component that is a symlink leading nowhere inside the root (dangling, or
// to a non-directory) throws UnsafeLayerError; a regular file in the way throws ImageError. entry
// names the layer entry in messages.
UniqueFd open_or_create_dir(RootResolver& resolver, const std::string& rel, std::string_view entry,
                            const std::function<void(std::string_view)>& on_created);

// A bounded, printable rendering of a hostile archive path for one-line error messages.
std::string printable(std::string_view s);

}  // namespace benchrun::oci

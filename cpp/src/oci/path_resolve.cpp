// path_resolve.cpp: in-root path resolution (openat2 RESOLVE_IN_ROOT, or an O_NOFOLLOW fd walk).
// See path_resolve.hpp for the model; both mechanisms give the same answers for the same tree.
#include "benchrun/common/text.hpp"
#include "oci/path_resolve.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

#include "benchrun/common/error.hpp"

namespace benchrun::oci {

namespace {

constexpr int kMaxSymlinks = 40;  // the kernel's MAXSYMLINKS

// Pushes the components of path onto todo so that the first component ends up on top.
void push_components(std::string_view path, std::vector<std::string>& todo) {
  size_t end = path.size();
  while (end > 0) {
    size_t slash = path.rfind('/', end - 1);
    size_t begin = slash == std::string_view::npos ? 0 : slash + 1;
    if (end > begin) todo.emplace_back(path.substr(begin, end - begin));
    if (slash == std::string_view::npos) break;
    end = slash;
  }
}

int open_errno(int dirfd, const char* name, int flags, UniqueFd& out) {
  int fd = ::openat(dirfd, name, flags | O_CLOEXEC);
  if (fd < 0) return errno;
  out.reset(fd);
  return 0;
}

// A directory we just created: open it and set 0755 exactly (mkdirat's mode is subject to umask).
UniqueFd finish_new_dir(int dirfd, const std::string& name, const std::string& prefix) {
  UniqueFd fd;
  if (int err = open_errno(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW, fd))
    throw_errno(err, "open", printable(prefix));
  if (::fchmod(fd.get(), 0755) != 0) throw_errno("chmod", printable(prefix));
  return fd;
}

// prefix (whose last component is name inside dirfd) does not resolve to a directory: say why.
[[noreturn]] void refuse_parent(int dirfd, const std::string& name, const std::string& prefix,
                                std::string_view entry, int err) {
  std::string head = "layer entry '" + printable(entry) + "': parent '" + printable(prefix) + "' ";
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    throw UnsafeLayerError(head +
                           "is a symlink that does not lead to a directory inside the "
                           "image root");
  if (err == ELOOP) throw ImageError(head + "has too many levels of symbolic links");
  throw ImageError(head + "is not a directory");
}

}  // namespace

std::string printable(std::string_view s) { return benchrun::printable(s, 200); }

int RootResolver::open(const std::string& rel, int flags, UniqueFd& out) {
  if (mode_ == ResolveMode::kFdWalk) return open_walk(rel, flags, out);
  int err = open_openat2(rel, flags, out);
  if (mode_ == ResolveMode::kAuto) {
    // ENOSYS: kernel < 5.6; EPERM: a seccomp profile that predates openat2. Decide once.
    if (err == ENOSYS || err == EPERM) {
      mode_ = ResolveMode::kFdWalk;
      return open_walk(rel, flags, out);
    }
    mode_ = ResolveMode::kOpenat2;
  }
  return err;
}

int RootResolver::open_openat2(const std::string& rel, int flags, UniqueFd& out) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* path = rel.empty() ? "." : rel.c_str();
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, rootfd_, path, &how, sizeof how);
    if (fd >= 0) {
      out.reset(static_cast<int>(fd));
      return 0;
    }
    // EAGAIN: the kernel saw a concurrent rename while resolving ".." and refuses to guess.
    if (errno == EINTR || (errno == EAGAIN && attempt < 64)) continue;
    return errno;
  }
}

int RootResolver::open_walk(const std::string& rel, int flags, UniqueFd& out) {
  const bool nofollow_last = (flags & O_NOFOLLOW) != 0;
  std::vector<std::string> todo;  // components still to resolve; the next one is at the back
  push_components(rel, todo);
  std::vector<UniqueFd> dirs;  // directories entered below the root; empty = at the root
  auto cur = [&] { return dirs.empty() ? rootfd_ : dirs.back().get(); };
  int links = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (name == ".") continue;
    if (name == "..") {  // never above the root, as in a chroot
      if (!dirs.empty()) dirs.pop_back();
      continue;
    }
    const bool last = todo.empty();
    if (last && nofollow_last) return open_errno(cur(), name.c_str(), flags, out);
    UniqueFd node;
    if (int err = open_errno(cur(), name.c_str(), O_PATH | O_NOFOLLOW, node)) return err;
    struct stat st {};
    if (::fstat(node.get(), &st) != 0) return errno;
    if (S_ISLNK(st.st_mode)) {
      if (++links > kMaxSymlinks) return ELOOP;
      char target[PATH_MAX];
      ssize_t n = ::readlinkat(node.get(), "", target, sizeof target);
      if (n < 0) return errno;
      if (n == 0) return ENOENT;
      if (static_cast<size_t>(n) == sizeof target) return ENAMETOOLONG;
      if (target[0] == '/') dirs.clear();  // absolute: restart at the image root
      push_components(std::string_view(target, static_cast<size_t>(n)), todo);
      continue;
    }
    if (last) return open_errno(cur(), name.c_str(), flags | O_NOFOLLOW, out);
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    dirs.push_back(std::move(node));  // an O_PATH fd is a valid dirfd
  }
  // The path ended on a directory reached through "." / ".." / a symlink (or is the root).
  return open_errno(cur(), ".", flags & ~O_NOFOLLOW, out);
}

UniqueFd open_or_create_dir(RootResolver& resolver, const std::string& rel, std::string_view entry,
                            const std::function<void(std::string_view)>& on_created) {
  UniqueFd fd;
  int err = resolver.open(rel, O_PATH | O_DIRECTORY, fd);
  if (err == 0) return fd;
  if (err != ENOENT && err != ENOTDIR && err != ELOOP)
    throw_errno(err, "open parent directory of layer entry", printable(entry));

  // Find the first component that does not resolve; create it and everything below it.
  UniqueFd cur;  // the deepest directory reached so far; empty = the root
  std::string prefix;
  std::string name;
  bool creating = false;
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string::npos) slash = rel.size();
    name.assign(rel, pos, slash - pos);
    prefix.assign(rel, 0, slash);
    pos = slash + 1;
    const int dirfd = cur ? cur.get() : resolver.rootfd();
    UniqueFd next;
    if (!creating) {
      err = resolver.open(prefix, O_PATH | O_DIRECTORY, next);
      if (err == 0) {
        cur = std::move(next);
        continue;
      }
      if (err != ENOENT) refuse_parent(dirfd, name, prefix, entry, err);
      creating = true;
    }
    if (::mkdirat(dirfd, name.c_str(), 0755) != 0) {
      // EEXIST here: the name exists but did not resolve (a dangling symlink).
      if (errno == EEXIST) refuse_parent(dirfd, name, prefix, entry, ENOENT);
      throw_errno("mkdir", printable(prefix));
    }
    cur = finish_new_dir(dirfd, name, prefix);
    on_created(prefix);
  }
  return cur;
}

}  // namespace benchrun::oci

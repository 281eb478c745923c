// process_config.cpp: entrypoint/cmd/env/workdir/user exactly as Docker resolves them.
#include "run/process_config.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <sstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::run {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kMaxPasswdBytes = 4 << 20;

std::string env_key(const std::string& kv) { return kv.substr(0, kv.find('=')); }

std::optional<uint32_t> parse_id(const std::string& s) {
  uint32_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::vector<std::string>> colon_records(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
      size_t c = line.find(':', start);
      fields.push_back(line.substr(start, c == std::string::npos ? std::string::npos : c - start));
      if (c == std::string::npos) break;
      start = c + 1;
    }
    out.push_back(std::move(fields));
  }
  return out;
}

}  // namespace

std::optional<std::string> read_in_root(int rootfd, const std::string& path, size_t max_bytes) {
  struct open_how how {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string rel = path;
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  int fd = static_cast<int>(::syscall(SYS_openat2, rootfd, rel.c_str(), &how, sizeof how));
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw_errno("open in image", path);
  }
  UniqueFd f(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("stat in image", path);
  if (!S_ISREG(st.st_mode))
    throw ConfigError("read '" + path + "' in the image: not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw ConfigError("read '" + path + "' in the image: larger than " + std::to_string(max_bytes) +
                      " bytes");
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::read(fd, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read in image", path);
    if (n == 0) break;
    off += static_cast<size_t>(n);
  }
  out.resize(off);
  return out;
}

std::string checked_image_path(const std::string& path, const std::string& what) {
  if (path.empty() || path.front() != '/')
    throw ConfigError(what + " '" + printable(path) + "': must be an absolute path in the image");
  if (path.find('\0') != std::string::npos || path.size() > 4096)
    throw ConfigError(what + ": invalid path");
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string part =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") {
      if (parts.empty())
        throw ConfigError(what + " '" + printable(path) + "': escapes the image root");
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  if (out.empty()) out = "/";
  if (!parts.empty() && (parts[0] == "proc" || parts[0] == "sys" || parts[0] == "dev"))
    throw ConfigError(what + " '" + printable(path) + "': points into /" + parts[0] +
                      ", which the sandbox does not allow (CVE-2024-21626)");
  return out;
}

std::string resolve_image_dir(int rootfd, const std::string& path, const std::string& what) {
  // Symlinks are followed as a process chrooted into the image would (absolute targets restart at
  // the image root, ".." stops there), component by component with fstatat/readlinkat on the
  // already-resolved prefix, which is made only of real directories. What does not exist yet is
  // kept as written (the sandbox creates it, like Docker's WORKDIR).
  constexpr int kMaxLinks = 40;   // Linux's MAXSYMLINKS
  std::vector<std::string> todo;  // components still to resolve, in reverse order
  auto push_path = [&](const std::string& p) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= p.size()) {
      size_t slash = p.find('/', start);
      std::string part =
          p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (!part.empty() && part != ".") parts.push_back(part);
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    todo.insert(todo.end(), parts.rbegin(), parts.rend());
  };
  push_path(path);
  std::vector<std::string> done;
  int links = 0;
  bool missing = false;
  while (!todo.empty()) {
    std::string part = std::move(todo.back());
    todo.pop_back();
    if (part == "..") {
      // ".." after a missing component (only possible from a symlink's target) would climb back
      // to components that were never resolved: the kernel fails such a path, so do we.
      if (missing)
        throw ConfigError(what + " '" + printable(path) +
                          "': goes through a missing directory and back with '..'");
      if (!done.empty()) done.pop_back();
      continue;
    }
    std::string rel;
    for (const auto& d : done) rel += d + "/";
    rel += part;
    struct stat st {};
    if (missing || ::fstatat(rootfd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (!missing && errno != ENOENT && errno != ENOTDIR) throw_errno("stat in image", "/" + rel);
      missing = true;
      done.push_back(part);
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > kMaxLinks)
        throw ConfigError(what + " '" + printable(path) + "': too many levels of symbolic links");
      std::string target(4096, '\0');
      ssize_t n = ::readlinkat(rootfd, rel.c_str(), target.data(), target.size());
      if (n < 0) throw_errno("readlink in image", "/" + rel);
      target.resize(static_cast<size_t>(n));
      if (!target.empty() && target.front() == '/') done.clear();
      push_path(target);
      continue;
    }
    // A file in the way is left for the workload's setup to report (stage "create workdir"),
    // as before; nothing beyond it is resolved.
    if (!S_ISDIR(st.st_mode)) missing = true;
    done.push_back(part);
  }
  std::string out;
  for (const auto& d : done) out += "/" + d;
  return checked_image_path(out.empty() ? "/" : out,
                            what + " '" + printable(path) + "' resolves to");
}

ProcessConfig resolve_process(const oci::ImageConfig& image, const RunSpec& spec, int rootfd) {
  ProcessConfig p;
  // Docker: --entrypoint replaces Entrypoint and clears Cmd; a command replaces Cmd.
  std::vector<std::string> entrypoint = spec.entrypoint ? *spec.entrypoint : image.entrypoint;
  std::vector<std::string> cmd =
      spec.command ? *spec.command : (spec.entrypoint ? std::vector<std::string>{} : image.cmd);
  p.argv = entrypoint;
  p.argv.insert(p.argv.end(), cmd.begin(), cmd.end());
  if (p.argv.empty() || p.argv[0].empty())
    throw ConfigError("no command to run: the image has no Entrypoint or Cmd (give a command)");

  // Env: the image's, overridden key by key; nothing from the runner's own environment.
  std::vector<std::string> env;
  auto set = [&](const std::string& kv) {
    if (kv.find('=') == std::string::npos || kv.front() == '=')
      throw ConfigError("environment entry '" + printable(kv) + "': expected KEY=VALUE");
    for (auto& e : env)
      if (env_key(e) == env_key(kv)) {
        e = kv;
        return;
      }
    env.push_back(kv);
  };
  for (const auto& kv : image.env) set(kv);
  for (const auto& kv : spec.env) set(kv);

  std::string workdir = spec.workdir ? *spec.workdir : image.working_dir;
  p.cwd = checked_image_path(workdir.empty() ? "/" : workdir, "working directory");
  // Resolved inside the image: a symlinked WorkingDir must not lead the chdir (done in the
  // sandbox after pivot_root, where /proc is mounted) to /proc/self or anywhere else refused above.
  if (rootfd >= 0) p.cwd = resolve_image_dir(rootfd, p.cwd, "working directory");

  // User: name | uid, optionally :group | :gid; names are looked up in the image only.
  std::string user = spec.user ? *spec.user : image.user;
  std::string home = "/";
  if (!user.empty()) {
    std::string u = user.substr(0, user.find(':'));
    std::string g = user.find(':') == std::string::npos ? "" : user.substr(user.find(':') + 1);
    auto passwd = read_in_root(rootfd, "/etc/passwd", kMaxPasswdBytes);
    std::string username;
    bool found = false;
    if (auto id = parse_id(u)) {
      p.uid = *id;
      p.gid = 0;  // Docker: a numeric user without a passwd entry runs with gid 0
    }
    if (passwd) {
      for (const auto& f : colon_records(*passwd)) {
        if (f.size() < 7) continue;
        auto fuid = parse_id(f[2]);
        auto fgid = parse_id(f[3]);
        if (!fuid || !fgid) continue;
        if (f[0] == u || (parse_id(u) && *fuid == *parse_id(u))) {
          p.uid = *fuid;
          p.gid = *fgid;
          username = f[0];
          home = f[5].empty() ? "/" : f[5];
          found = true;
          break;
        }
      }
    }
    if (!found && !parse_id(u))
      throw ConfigError("user '" + printable(u) + "': no such user in the image's /etc/passwd");
    auto group = read_in_root(rootfd, "/etc/group", kMaxPasswdBytes);
    if (!g.empty()) {
      if (auto id = parse_id(g)) {
        p.gid = *id;
      } else {
        bool gfound = false;
        if (group)
          for (const auto& f : colon_records(*group))
            if (f.size() >= 3 && f[0] == g && parse_id(f[2])) {
              p.gid = *parse_id(f[2]);
              gfound = true;
              break;
            }
        if (!gfound)
          throw ConfigError("group '" + printable(g) +
                            "': no such group in the image's /etc/group");
      }
    } else if (group && !username.empty()) {
      // Supplementary groups: every group listing the user as a member.
      for (const auto& f : colon_records(*group)) {
        if (f.size() < 4 || !parse_id(f[2])) continue;
        std::istringstream members(f[3]);
        std::string m;
        while (std::getline(members, m, ','))
          if (m == username && *parse_id(f[2]) != p.gid) p.groups.push_back(*parse_id(f[2]));
      }
    }
  } else if (auto passwd = read_in_root(rootfd, "/etc/passwd", kMaxPasswdBytes)) {
    for (const auto& f : colon_records(*passwd))
      if (f.size() >= 7 && f[2] == "0") {
        home = f[5].empty() ? "/" : f[5];
        break;
      }
  }
  bool has_path = false, has_home = false, has_hostname = false;
  for (const auto& e : env) {
    has_path |= env_key(e) == "PATH";
    has_home |= env_key(e) == "HOME";
    has_hostname |= env_key(e) == "HOSTNAME";
  }
  if (!has_path) env.push_back(std::string("PATH=") + kDefaultPath);
  if (!has_hostname) env.push_back("HOSTNAME=" + spec.hostname);
  if (!has_home) env.push_back("HOME=" + home);
  p.env = std::move(env);
  return p;
}

}  // namespace benchrun::run

// mount.cpp: RAII host mounts and the sweep of leftover ones (see mount.hpp).
#include "benchrun/common/mount.hpp"

#include <sys/mount.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "benchrun/common/error.hpp"

namespace benchrun {

namespace {
// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

Mount Mount::make(const std::string& source, const std::string& target, const std::string& type,
                  unsigned long flags, const std::string& data) {
  if (::mount(source.c_str(), target.c_str(), type.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0)
    throw_errno("mount " + type, target);
  Mount m;
  m.target_ = target;
  return m;
}

Mount& Mount::operator=(Mount&& o) noexcept {
  if (this != &o) {
    detach();
    target_ = std::move(o.target_);
    o.target_.clear();
  }
  return *this;
}

void Mount::detach() noexcept {
  if (target_.empty()) return;
  ::umount2(target_.c_str(), MNT_DETACH);
  target_.clear();
}

std::vector<std::string> mounts_under(const std::string& dir, const std::string& mountinfo) {
  std::vector<std::string> out;
  std::ifstream in(mountinfo);
  std::string line;
  const std::string prefix = dir.back() == '/' ? dir : dir + "/";
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    if (!(f >> id >> parent >> dev >> root >> point)) continue;
    point = unescape(point);
    if (point == dir || point.rfind(prefix, 0) == 0) out.push_back(point);
  }
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

int detach_mounts_under(const std::string& dir) {
  int n = 0;
  for (const auto& p : mounts_under(dir))
    if (::umount2(p.c_str(), MNT_DETACH) == 0) ++n;
  return n;
}

}  // namespace benchrun

// modules.cpp: finit_module(2) over the initramfs's module list.
#include "init/modules.hpp"

#include <fcntl.h>
#include <linux/module.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::guest {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

void load_one(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  // Compressed modules are decompressed by the kernel itself (Linux >= 5.17 with
  // CONFIG_MODULE_DECOMPRESS); uncompressed ones must not carry the flag.
  unsigned flags = 0;
  if (ends_with(path, ".xz") || ends_with(path, ".zst") || ends_with(path, ".gz"))
    flags |= MODULE_INIT_COMPRESSED_FILE;
  if (::syscall(SYS_finit_module, fd.get(), "", flags) != 0 && errno != EEXIST)
    throw_errno("finit_module", path);
}

}  // namespace

void load_modules(const std::string& list_path) {
  if (::access(list_path.c_str(), F_OK) != 0 && errno == ENOENT) return;
  const std::string list = read_file(list_path, 1 << 20);
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find('\n', start);
    if (end == std::string::npos) end = list.size();
    std::string line = list.substr(start, end - start);
    start = end + 1;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    load_one(line.substr(first));
  }
}

}  // namespace benchrun::guest

// modules.cpp: module dependency resolution from modules.dep or, without it, from .modinfo.
//
// modules.dep (depmod(8)) has one line per module: "kernel/a.ko: kernel/b.ko kernel/c.ko", paths
// relative to lib/modules/<release>. Without it we index every *.ko under the directory by module
// name and read "depends=" from each needed module's .modinfo, which is where depmod gets it too
// (modpost writes the names of the modules whose exported symbols a module uses). The result is a
// depth-first post-order walk: every module comes after all of its dependencies.
#include "benchrun/rootfs/modules.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/rootfs/modinfo.hpp"

namespace benchrun::rootfs {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxIndexFile = 64 << 20;    // modules.dep / modules.builtin
constexpr size_t kMaxModuleFile = 256 << 20;  // one .ko

constexpr std::string_view kSuffixes[] = {".ko", ".ko.xz", ".ko.zst", ".ko.gz"};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_module_file(std::string_view path) {
  for (std::string_view suffix : kSuffixes)
    if (ends_with(path, suffix)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = trim(text.substr(start, nl - start));
    if (!line.empty() && line.front() != '#') out.push_back(line);
    start = nl + 1;
  }
  return out;
}

// A module path from modules.dep must stay inside modules_dir: it is read and copied later.
void check_relative(std::string_view rel, const std::string& source) {
  bool bad = rel.empty() || rel.front() == '/' || rel.find('\0') != std::string_view::npos;
  size_t start = 0;
  while (!bad && start <= rel.size()) {
    size_t slash = rel.find('/', start);
    if (slash == std::string_view::npos) slash = rel.size();
    std::string_view part = rel.substr(start, slash - start);
    bad = part.empty() || part == "." || part == "..";
    start = slash + 1;
  }
  if (bad) throw ConfigError("read '" + source + "': unsafe module path '" + printable(rel) + "'");
}

struct ModuleIndex {
  std::map<std::string, std::string> path_by_name;
  // Filled from modules.dep up front; otherwise on demand from .modinfo.
  std::map<std::string, std::vector<std::string>> deps_by_name;
  bool from_dep_file = false;
};

ModuleIndex index_from_dep_file(const fs::path& dep_file) {
  ModuleIndex index;
  index.from_dep_file = true;
  const std::string text = read_file(dep_file, kMaxIndexFile);
  for (std::string_view line : lines(text)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      throw ConfigError("read '" + dep_file.string() + "': line without ':': '" + printable(line) +
                        "'");
    std::string_view path = trim(line.substr(0, colon));
    check_relative(path, dep_file.string());
    std::vector<std::string> deps;
    std::string_view rest = line.substr(colon + 1);
    size_t pos = 0;
    while (pos < rest.size()) {
      size_t start = rest.find_first_not_of(" \t", pos);
      if (start == std::string_view::npos) break;
      size_t end = rest.find_first_of(" \t", start);
      if (end == std::string_view::npos) end = rest.size();
      std::string_view dep = rest.substr(start, end - start);
      check_relative(dep, dep_file.string());
      deps.push_back(module_name(dep));
      pos = end;
    }
    std::string name = module_name(path);
    index.path_by_name.emplace(name, std::string(path));
    index.deps_by_name.emplace(std::move(name), std::move(deps));
  }
  return index;
}

ModuleIndex index_from_tree(const fs::path& dir) {
  ModuleIndex index;
  std::error_code ec;
  // Directory symlinks (Debian's "build" and "source") are not followed.
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) throw SysError(ec.value(), "scan", dir.string());
  for (; it != end; it.increment(ec)) {
    if (ec) throw SysError(ec.value(), "scan", dir.string());
    const std::string file = it->path().filename().string();
    if (!is_module_file(file)) continue;
    const fs::file_type type = it->symlink_status(ec).type();
    if (ec || type != fs::file_type::regular) continue;
    std::string rel = it->path().lexically_relative(dir).string();
    std::string name = module_name(file);
    auto [pos, inserted] = index.path_by_name.emplace(name, rel);
    // Two files with one module name: pick the smaller path, so the walk order does not matter.
    if (!inserted && rel < pos->second) pos->second = rel;
  }
  return index;
}

std::set<std::string> read_builtin(const fs::path& file) {
  std::set<std::string> names;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return names;
  const std::string text = read_file(file, kMaxIndexFile);
  for (std::string_view line : lines(text)) names.insert(module_name(line));
  return names;
}

class Resolver {
 public:
  Resolver(std::string dir, ModuleIndex index, std::set<std::string> builtin)
      : dir_(std::move(dir)), index_(std::move(index)), builtin_(std::move(builtin)) {}

  void visit(const std::string& name, const std::string* needed_by,
             std::vector<std::string>& chain) {
    if (builtin_.count(name) != 0 || done_.count(name) != 0) return;
    for (size_t i = 0; i < chain.size(); ++i) {
      if (chain[i] != name) continue;
      std::string cycle;
      for (size_t j = i; j < chain.size(); ++j) cycle += chain[j] + " -> ";
      throw ConfigError("resolve modules in '" + dir_ + "': dependency cycle " + cycle + name);
    }
    auto found = index_.path_by_name.find(name);
    if (found == index_.path_by_name.end()) {
      std::string who = needed_by ? " (needed by '" + *needed_by + "')" : "";
      throw ConfigError("resolve modules: module '" + printable(name) + "'" + who +
                        " not found in '" + dir_ + "' (no such .ko and not in modules.builtin)");
    }
    const std::string& rel = found->second;
    if (!ends_with(rel, ".ko"))
      throw ConfigError("resolve modules: module '" + name + "' is compressed ('" + dir_ + "/" +
                        rel +
                        "'); only plain .ko files are supported (a kernel built with "
                        "CONFIG_MODULE_COMPRESS_NONE, like Debian 12's)");
    chain.push_back(name);
    for (const std::string& dep : deps_of(name, rel)) visit(dep, &name, chain);
    chain.pop_back();
    done_.insert(name);
    order_.push_back(rel);
  }

  std::vector<std::string> take() { return std::move(order_); }

 private:
  const std::vector<std::string>& deps_of(const std::string& name, const std::string& rel) {
    auto it = index_.deps_by_name.find(name);
    if (it != index_.deps_by_name.end()) return it->second;
    std::vector<std::string> deps;
    if (!index_.from_dep_file) {
      const std::string path = dir_ + "/" + rel;
      const std::string elf = read_file(path, kMaxModuleFile);
      for (const std::string& dep : module_depends(elf, path)) deps.push_back(module_name(dep));
    }
    return index_.deps_by_name.emplace(name, std::move(deps)).first->second;
  }

  std::string dir_;
  ModuleIndex index_;
  std::set<std::string> builtin_;
  std::set<std::string> done_;
  std::vector<std::string> order_;
};

}  // namespace

std::string module_name(std::string_view path_or_name) {
  size_t slash = path_or_name.rfind('/');
  std::string_view base =
      slash == std::string_view::npos ? path_or_name : path_or_name.substr(slash + 1);
  for (std::string_view suffix : kSuffixes) {
    if (ends_with(base, suffix)) {
      base.remove_suffix(suffix.size());
      break;
    }
  }
  std::string name(base);
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

std::vector<std::string> resolve_modules(const std::string& modules_dir,
                                         const std::vector<std::string>& names) {
  if (names.empty()) return {};
  const fs::path dir(modules_dir);
  std::error_code ec;
  if (modules_dir.empty() || !fs::is_directory(dir, ec))
    throw ConfigError("resolve modules: '" + modules_dir + "' is not a directory");
  const fs::path dep_file = dir / "modules.dep";
  ModuleIndex index =
      fs::exists(dep_file, ec) ? index_from_dep_file(dep_file) : index_from_tree(dir);
  Resolver resolver(modules_dir, std::move(index), read_builtin(dir / "modules.builtin"));
  std::vector<std::string> chain;
  for (const std::string& requested : names) {
    if (requested.empty()) throw ConfigError("resolve modules: empty module name");
    resolver.visit(module_name(requested), nullptr, chain);
  }
  return resolver.take();
}

}  // namespace benchrun::rootfs

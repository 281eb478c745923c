// modinfo.cpp: a minimal, bounds-checked ELF64 section-header walk to find a module's .modinfo.
//
// Follows the System V gABI (ELF-64 object file format): the file header gives the section header
// table (e_shoff, e_shentsize, e_shnum) and the index of the section-name string table
// (e_shstrndx); .modinfo is a PROGBITS section of NUL-separated "key=value" strings written by
// modpost. Only ET_REL little-endian files are accepted: that is what a Linux module on x86-64
// (and every other little-endian architecture Debian builds) is. Extended section numbering
// (e_shnum == 0 or e_shstrndx == SHN_XINDEX) never occurs in modules and is refused.
#include "benchrun/rootfs/modinfo.hpp"

#include <cstdint>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::rootfs {

namespace {

constexpr size_t kEhdrSize = 64;
constexpr size_t kShdrSize = 64;
constexpr uint16_t kEtRel = 1;
constexpr uint32_t kShtNobits = 8;
constexpr uint16_t kShnXindex = 0xffff;

class ElfView {
 public:
  ElfView(std::string_view data, std::string_view what) : data_(data), what_(what) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw ConfigError("read module '" + printable(what_) + "': " + why);
  }

  // data[off, off + size), or ConfigError when any of it lies outside the file.
  std::string_view slice(uint64_t off, uint64_t size, const char* which) const {
    if (off > data_.size() || size > data_.size() - off)
      fail(std::string(which) + " at offset " + std::to_string(off) + " size " +
           std::to_string(size) + " lies outside the " + std::to_string(data_.size()) +
           "-byte file");
    return data_.substr(static_cast<size_t>(off), static_cast<size_t>(size));
  }

  static uint64_t le(std::string_view s, size_t off, size_t width) {
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(s[off + i])) << (8 * i);
    return v;
  }

 private:
  std::string_view data_;
  std::string_view what_;
};

struct Section {
  uint32_t name;
  uint32_t type;
  uint64_t offset;
  uint64_t size;
};

}  // namespace

std::vector<std::pair<std::string, std::string>> read_modinfo(std::string_view elf,
                                                              std::string_view what) {
  ElfView view(elf, what);
  std::string_view ehdr = view.slice(0, kEhdrSize, "ELF header");
  if (ehdr.substr(0, 4) != std::string_view("\177ELF", 4)) view.fail("not an ELF file");
  if (ehdr[4] != 2) view.fail("not a 64-bit ELF file");
  if (ehdr[5] != 1) view.fail("not a little-endian ELF file");
  if (ElfView::le(ehdr, 16, 2) != kEtRel) view.fail("not a relocatable object (ET_REL)");
  const uint64_t shoff = ElfView::le(ehdr, 40, 8);
  const uint64_t shentsize = ElfView::le(ehdr, 58, 2);
  const uint64_t shnum = ElfView::le(ehdr, 60, 2);
  const uint64_t shstrndx = ElfView::le(ehdr, 62, 2);
  if (shentsize != kShdrSize)
    view.fail("section header entry size " + std::to_string(shentsize) + " is not 64");
  if (shnum == 0) view.fail("no section headers");
  if (shstrndx == kShnXindex || shstrndx >= shnum)
    view.fail("section name table index " + std::to_string(shstrndx) + " out of range");
  // shnum <= 0xffff, so the product cannot overflow.
  std::string_view table = view.slice(shoff, shnum * kShdrSize, "section header table");

  auto section = [&](uint64_t i) {
    std::string_view h = table.substr(static_cast<size_t>(i * kShdrSize), kShdrSize);
    return Section{static_cast<uint32_t>(ElfView::le(h, 0, 4)),
                   static_cast<uint32_t>(ElfView::le(h, 4, 4)), ElfView::le(h, 24, 8),
                   ElfView::le(h, 32, 8)};
  };
  const Section strtab_hdr = section(shstrndx);
  if (strtab_hdr.type == kShtNobits) view.fail("section name table has no file data");
  std::string_view strtab = view.slice(strtab_hdr.offset, strtab_hdr.size, "section name table");

  std::string_view modinfo;
  bool found = false;
  for (uint64_t i = 0; i < shnum; ++i) {
    const Section s = section(i);
    if (s.name >= strtab.size()) view.fail("section " + std::to_string(i) + " name out of range");
    std::string_view rest = strtab.substr(s.name);
    size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) view.fail("unterminated section name");
    if (rest.substr(0, nul) != ".modinfo") continue;
    if (found) view.fail("more than one .modinfo section");
    if (s.type == kShtNobits) view.fail(".modinfo has no file data");
    modinfo = view.slice(s.offset, s.size, ".modinfo section");
    found = true;
  }
  if (!found) view.fail("no .modinfo section (not a kernel module?)");

  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < modinfo.size()) {
    size_t end = modinfo.find('\0', pos);
    if (end == std::string_view::npos) end = modinfo.size();
    std::string_view entry = modinfo.substr(pos, end - pos);
    pos = end + 1;
    size_t eq = entry.find('=');
    if (entry.empty() || eq == std::string_view::npos) continue;  // alignment padding
    out.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return out;
}

std::vector<std::string> module_depends(std::string_view elf, std::string_view what) {
  std::vector<std::string> deps;
  for (const auto& [key, value] : read_modinfo(elf, what)) {
    if (key != "depends") continue;
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      if (comma == std::string::npos) comma = value.size();
      if (comma > start) deps.push_back(value.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return deps;
}

}  // namespace benchrun::rootfs

// output_file.hpp: a workload's captured output held in an unlinked file of at most `cap` bytes,
// so it never sits in the runner's memory (issue 11, finding 6): only its one copy for the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun {

class OutputFile {
 public:
  // Empty, with no file: size() 0, appends are dropped (and reported as truncated).
  OutputFile() = default;
  // An anonymous file in dir (O_TMPFILE, or created and unlinked at once where the filesystem
  // lacks it): nothing is left behind whatever happens to the runner. SysError if it fails.
  OutputFile(const std::string& dir, uint64_t cap);
  OutputFile(OutputFile&&) noexcept = default;
  OutputFile& operator=(OutputFile&&) noexcept = default;

  // Appends what fits under the cap; returns false when some of data was dropped.
  bool append(const char* data, size_t n);
  bool append(const std::string& data) { return append(data.data(), data.size()); }
  uint64_t size() const noexcept { return size_; }
  uint64_t cap() const noexcept { return cap_; }
  // Copies the size() bytes into dst (e.g. the caller's bytes object, allocated once).
  void read_into(char* dst) const;
  // The bytes as a string: for tests and small outputs (a second copy in memory).
  std::string str() const;

 private:
  UniqueFd fd_;
  uint64_t cap_ = 0, size_ = 0;
};

}  // namespace benchrun

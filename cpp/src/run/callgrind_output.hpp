// callgrind_output.hpp: the few lines benchrun reads of callgrind's output files (format:
// Valgrind's "Callgrind Format Specification", docs/callgrind-format in its manual).
//
// The files are written by the instrumented workload itself (Valgrind runs in its address space),
// so they are hostile input: every line is checked, numbers are bounded, and anything unexpected is
// an InstructionCountError naming the file and the line, never a crash or a silent zero.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace benchrun::run {

// One profile dump ("part"): what triggered it and its totals per event ("Ir", "Dr", "I1mr", ...).
struct CallgrindPart {
  std::string trigger;  // "Program termination", "Client Request: <name>", ...
  std::map<std::string, uint64_t> totals;
};

// Parses one file fed in chunks of any size; a file may hold several parts (--combine-dumps).
// Lines are bounded: only the first kMaxLine bytes of a line are kept (the lines read here are
// short; a long one is a function name or a hostile one, and is not read).
class CallgrindParser {
 public:
  static constexpr size_t kMaxLine = 4096;
  static constexpr size_t kMaxEvents = 32;
  static constexpr size_t kMaxParts = 4096;

  explicit CallgrindParser(std::string name) : name_(std::move(name)) {}
  void feed(std::string_view chunk);
  // The parts, once the whole file was fed. InstructionCountError if it is not a complete
  // callgrind file (no header, a part without events or totals, a malformed number, ...).
  std::vector<CallgrindPart> finish();

 private:
  void line(std::string_view l);
  [[noreturn]] void bad(const std::string& why) const;

  std::string name_;
  std::string buf_;
  bool long_line_ = false;
  uint64_t line_no_ = 0;
  bool header_seen_ = false;
  std::vector<std::string> events_;
  std::vector<CallgrindPart> parts_;
  bool part_has_totals_ = false;
  bool part_open_ = false;
};

// The whole text of one file (tests, fuzzing).
std::vector<CallgrindPart> parse_callgrind(std::string_view text, const std::string& name = "");

}  // namespace benchrun::run

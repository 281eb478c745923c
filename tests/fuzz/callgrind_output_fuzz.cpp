// callgrind_output_fuzz.cpp: libFuzzer target for callgrind output parsing
// (run/callgrind_output.cpp): the files are written by the instrumented workload's process. The
// only acceptable failure is InstructionCountError. Fed in two chunks split at the first byte's
// value, so the line splitter's chunk boundaries are fuzzed too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "run/callgrind_output.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  try {
    benchrun::run::CallgrindParser p("fuzz");
    p.feed(body.substr(0, cut));
    p.feed(body.substr(cut));
    (void)p.finish();
  } catch (const benchrun::InstructionCountError&) {
  }
  return 0;
}

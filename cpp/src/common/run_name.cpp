// run_name.cpp: making and parsing "run-<pid>-<random>" names.
#include "benchrun/common/run_name.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <random>

namespace benchrun {

namespace {
constexpr std::string_view kPrefix = "run-";
}  // namespace

std::string make_run_name() {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
  return std::string(kPrefix) + std::to_string(::getpid()) + "-" + buf;
}

std::optional<pid_t> run_name_pid(std::string_view name) {
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const std::string_view rest = name.substr(kPrefix.size());
  // from_chars takes no '+' or space; a '-' sign gives pid <= 0, refused below.
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  if (ec != std::errc() || end == rest.data() || end == rest.data() + rest.size() || *end != '-')
    return std::nullopt;
  if (pid <= 0) return std::nullopt;
  return pid;
}

bool run_name_is_stale(std::string_view name) {
  const std::optional<pid_t> pid = run_name_pid(name);
  return pid && ::kill(*pid, 0) != 0 && errno == ESRCH;
}

}  // namespace benchrun

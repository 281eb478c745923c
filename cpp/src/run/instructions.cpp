// instructions.cpp: callgrind's command line, its output directory and the metrics read from it.
#include "run/instructions.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <initializer_list>
#include <cstring>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/sandbox/spawn.hpp"
#include "run/callgrind_output.hpp"

namespace benchrun::run {

namespace {

constexpr const char* kTool = "callgrind-amd64-linux";
constexpr size_t kMaxFiles = 16384;  // processes (pids_limit) plus client-request dumps
constexpr size_t kMaxSections = 128;
constexpr uint64_t kMaxStderrScan = uint64_t{16} << 20;

std::string tool_path(const char* sub) { return std::string(sandbox::kToolRoot) + "/" + sub; }

// "callgrind.out.<pid>" or "callgrind.out.<pid>.<dump>": what --callgrind-out-file=...%p writes.
bool output_name(const std::string& n) {
  constexpr std::string_view kPrefix = "callgrind.out.";
  if (n.size() <= kPrefix.size() || n.compare(0, kPrefix.size(), kPrefix) != 0 || n.size() > 64)
    return false;
  int dots = 0;
  char prev = '.';
  for (size_t i = kPrefix.size(); i < n.size(); ++i) {
    char c = n[i];
    if (c == '.') {
      if (prev == '.' || ++dots > 1) return false;
    } else if (c < '0' || c > '9') {
      return false;
    }
    prev = c;
  }
  return prev != '.';
}

// A metric name for a section: lower case, [a-z0-9_.] kept, anything else '_'.
std::string section_metric(const std::string& section) {
  constexpr std::string_view kPrefix = "instructions.";
  if (section.empty() || section.size() > metric::kMaxName - kPrefix.size())
    throw InstructionCountError("callgrind dump name '" + printable(section) + "': must be 1 to " +
                                std::to_string(metric::kMaxName - kPrefix.size()) +
                                " bytes (CALLGRIND_DUMP_STATS_AT names a section's metric)");
  std::string out(kPrefix);
  for (char c : section) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    out += ok ? c : '_';
  }
  return out;
}

// Valgrind's own lines about an instruction it cannot decode ("vex amd64->IR: unhandled
// instruction bytes: 0x62 ..."), from the workload's stderr; empty if there are none.
std::string unsupported_instruction_message(const RunResult& r) {
  if (r.stderr_data.size() == 0 || r.stderr_data.size() > kMaxStderrScan) return "";
  const std::string err = r.stderr_data.str();
  size_t at = err.find("unhandled instruction bytes");
  if (at == std::string::npos) return "";
  size_t begin = err.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  size_t end = err.find('\n', at);
  std::string line = err.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return printable(line);
}

// The last few lines of the workload's stderr (where Valgrind reports), for an error message.
std::string stderr_tail(const RunResult& r) {
  if (r.stderr_data.size() == 0 || r.stderr_data.size() > kMaxStderrScan) return "";
  std::string err = r.stderr_data.str();
  while (!err.empty() && err.back() == '\n') err.pop_back();
  size_t start = err.size();
  for (int lines = 0; lines < 3 && start > 0; ++lines) {
    size_t nl = err.rfind('\n', start - 1);
    start = nl == std::string::npos ? 0 : nl;
  }
  std::string tail = err.substr(start);
  if (tail.size() > 500) tail = tail.substr(tail.size() - 500);
  for (char& c : tail)
    if (c == '\n') c = ' ';
  return printable(tail);
}

std::vector<CallgrindPart> read_output_file(int dirfd, const std::string& name) {
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 && (errno == ELOOP || errno == ENXIO))
    throw InstructionCountError("callgrind output '" + printable(name) +
                                "': not a regular file (planted by the workload?)");
  if (fd < 0) throw_errno("open callgrind output", name);
  UniqueFd f(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("stat callgrind output", name);
  if (!S_ISREG(st.st_mode))
    throw InstructionCountError("callgrind output '" + printable(name) +
                                "': not a regular file (planted by the workload?)");
  // Callgrind creates its file when the process starts and writes it when the process ends: an
  // empty one is a process that never ended normally (SIGKILL, the timeout). None of its parts.
  if (st.st_size == 0) return {};
  CallgrindParser parser(name);
  std::vector<char> buf(64 << 10);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read callgrind output", name);
    if (n == 0) break;
    parser.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  return parser.finish();
}

}  // namespace

void check_valgrind(const HostConfig& host) {
  const std::string tool = host.valgrind_dir + "/" + kTool;
  struct stat st {};
  if (::stat(tool.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw ValgrindNotFound("--instructions: Valgrind's callgrind is not installed on this host ('" +
                           tool + "' is missing; Debian/Ubuntu: apt-get install valgrind)");
  if (host.valgrind_launcher.empty() || ::stat(host.valgrind_launcher.c_str(), &st) != 0 ||
      !S_ISREG(st.st_mode))
    throw ValgrindNotFound("--instructions: benchrun's Valgrind launcher is missing ('" +
                           host.valgrind_launcher +
                           "'; reinstall benchrun, or set BENCHRUN_VGLAUNCH to a "
                           "benchrun-vglaunch binary)");
}

Argv instrumented_argv(const std::string& mode, const Argv& argv) {
  Argv out = {tool_path("launch"),
              "--tool=callgrind",
              "-q",
              "--trace-children=yes",
              "--child-silent-after-fork=yes",
              "--sigill-diagnostics=yes",  // -q silences them; an unsupported ISA needs them
              "--callgrind-out-file=" + tool_path("out") + "/callgrind.out.%p",
              "--dump-instr=no",
              "--compress-strings=no"};
  if (mode == "cache") {
    // A fixed hierarchy, not the host's (Valgrind reads it with cpuid): the estimate must not
    // change with the machine. 32 KiB 8-way L1s and an 8 MiB 16-way LL, 64-byte lines.
    out.insert(out.end(),
               {"--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64"});
  } else if (mode == "sections") {
    out.push_back("--instr-atstart=no");  // only what CALLGRIND_START_INSTRUMENTATION brackets
  }
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::string instruction_output_options(uid_t uid, gid_t gid) {
  return "mode=0700,uid=" + std::to_string(uid) + ",gid=" + std::to_string(gid) +
         ",size=" + std::to_string(kInstructionOutputBytes);
}

void set_instruction_metrics(const std::vector<CallgrindPart>& parts, const std::string& mode,
                             RunResult& r) {
  constexpr const char* kCacheEvents[] = {"Dr",   "Dw",   "I1mr", "D1mr",
                                          "D1mw", "ILmr", "DLmr", "DLmw"};
  std::map<std::string, uint64_t> sum, sections;
  auto add = [](uint64_t& to, uint64_t v) {
    if (to > UINT64_MAX - v) throw InstructionCountError("callgrind counts overflow 64 bits");
    to += v;
  };
  for (const auto& p : parts) {
    auto ir = p.totals.find("Ir");
    if (ir == p.totals.end())
      throw InstructionCountError("callgrind output without the 'Ir' event (not callgrind's?)");
    for (const auto& [event, v] : p.totals) add(sum[event], v);
    constexpr std::string_view kClient = "Client Request: ";
    if (p.trigger.compare(0, kClient.size(), kClient) == 0) {
      std::string name = section_metric(p.trigger.substr(kClient.size()));
      if (!sections.count(name) && sections.size() >= kMaxSections)
        throw InstructionCountError("more than " + std::to_string(kMaxSections) +
                                    " named callgrind dumps (sections)");
      add(sections[name], ir->second);
    }
  }
  r.set_metric("instructions", static_cast<double>(sum["Ir"]), "count");
  for (const auto& [name, v] : sections) r.set_metric(name, static_cast<double>(v), "count");
  if (mode != "cache") return;
  for (const char* e : kCacheEvents)
    if (!parts.empty() && !parts.front().totals.count(e))
      throw InstructionCountError(std::string("callgrind output without the '") + e +
                                  "' event (cache simulation was off?)");
  auto total = [&](std::initializer_list<const char*> events) {
    uint64_t t = 0;
    for (const char* e : events) add(t, sum[e]);
    return t;
  };
  const uint64_t dr = sum["Dr"], dw = sum["Dw"];
  const uint64_t accesses = total({"Ir", "Dr", "Dw"});
  const uint64_t l1_misses = total({"I1mr", "D1mr", "D1mw"});
  const uint64_t ll_misses = total({"ILmr", "DLmr", "DLmw"});
  if (ll_misses > l1_misses || l1_misses > accesses)
    throw InstructionCountError(
        "callgrind cache counts are inconsistent (more misses than "
        "accesses): the output was tampered with");
  r.set_metric("data_reads", static_cast<double>(dr), "count");
  r.set_metric("data_writes", static_cast<double>(dw), "count");
  r.set_metric("i1_misses", static_cast<double>(sum["I1mr"]), "count");
  r.set_metric("d1_misses", static_cast<double>(total({"D1mr", "D1mw"})), "count");
  r.set_metric("ll_misses", static_cast<double>(ll_misses), "count");
  // An estimate, not a measurement (docs/instructions.md): an access served by L1 costs 1 cycle,
  // one served by LL 5 and one served by memory 35 (the weights of iai and CodSpeed).
  const double l1_hits = static_cast<double>(accesses - l1_misses);
  const double ll_hits = static_cast<double>(l1_misses - ll_misses);
  r.set_metric("estimated_cycles", l1_hits + 5 * ll_hits + 35 * static_cast<double>(ll_misses),
               "cycles");
}

void collect_instruction_metrics(int rootfd, const std::string& mode, RunResult& r) {
  if (std::string msg = unsupported_instruction_message(r); !msg.empty())
    throw InstructionCountError(
        "Valgrind cannot run this workload: '" + msg + "' (an instruction Valgrind " +
        "does not implement, e.g. AVX-512: build the workload "
        "for an older target such as x86-64-v3, or run it without --instructions)");
  struct open_how how {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const std::string out = tool_path("out");
  int fd = static_cast<int>(::syscall(SYS_openat2, rootfd, out.c_str() + 1, &how, sizeof how));
  if (fd < 0) throw_errno("open instruction-count output", out);
  UniqueFd dir(fd);
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0) throw_errno("statfs", out);
  if (sfs.f_type != TMPFS_MAGIC)
    throw InstructionCountError("'" + out + "' is not the run's output tmpfs");

  // Names first (a DIR* of a dup: closedir closes only that), then each file through dirfd.
  std::vector<std::string> names;
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) throw_errno("dup", out);
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    throw_errno("opendir", out);
  }
  std::string bad_name;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!output_name(n)) {
      bad_name = n;
      break;
    }
    names.push_back(std::move(n));
    if (names.size() > kMaxFiles) break;
  }
  ::closedir(d);
  if (!bad_name.empty())
    throw InstructionCountError("unexpected file '" + printable(bad_name) + "' in '" + out +
                                "' (only callgrind writes there; the workload planted it?)");
  if (names.size() > kMaxFiles)
    throw InstructionCountError("more than " + std::to_string(kMaxFiles) +
                                " callgrind output files");
  std::sort(names.begin(), names.end());
  std::vector<CallgrindPart> parts;
  size_t unfinished = 0;
  for (const auto& n : names) {
    auto p = read_output_file(fd, n);
    if (p.empty()) ++unfinished;
    parts.insert(parts.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  }
  const bool killed = r.timed_out || r.interrupted || r.oom_killed || r.signal == SIGKILL;
  if (parts.empty()) {
    if (killed) {
      r.notices.push_back(
          "instructions: no count (the workload was killed before Valgrind wrote its output)");
      return;
    }
    std::string tail = stderr_tail(r);
    throw InstructionCountError("Valgrind wrote no output" +
                                (tail.empty() ? std::string() : ": '" + tail + "'") +
                                " (see the run's stderr)");
  }
  set_instruction_metrics(parts, mode, r);
  if (unfinished > 0)
    r.notices.push_back("instructions: " + std::to_string(unfinished) +
                        " process(es) ended without writing a profile (killed, e.g. by the "
                        "timeout or SIGKILL): their instructions are not counted");
}

}  // namespace benchrun::run

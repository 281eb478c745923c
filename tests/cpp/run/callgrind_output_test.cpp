// callgrind_output_test.cpp: the callgrind output parser and the metrics made from it, on real
// callgrind output (as Valgrind 3.19 writes it) and on hostile files: a corpus of broken ones and
// a mutation loop, where the only acceptable failure is InstructionCountError.
#include "run/callgrind_output.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "benchrun/common/error.hpp"
#include "run/instructions.hpp"

namespace benchrun::run {
namespace {

// A client-request dump with cache simulation, cut from a real file (function lines shortened).
const char* kCacheDump = R"(# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 25815
cmd:  ./sec
part: 1


desc: I1 cache: 32768 B, 64 B, 8-way associative
desc: D1 cache: 32768 B, 64 B, 8-way associative
desc: LL cache: 8388608 B, 64 B, 16-way associative
desc: Timerange: Basic block 0 - 111655
desc: Trigger: Client Request: loop_a

positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 0


ob=(1) /attack/sec
fl=(1) ???
fn=(1) loop
0 600008 100000 100002 2 0 1 2 0 1
totals: 642701 107631 102404 389 141 124 389 141 124
)";

const char* kTermination = R"(# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 23992
cmd:  sh -c echo hi
part: 1

desc: Trigger: Program termination

positions: line
events: Ir
summary: 13980452


ob=(6) /usr/bin/dash
fn=(582) 0x00000000000163a0
0 12
summary: 13980452
totals: 13980452
)";

TEST(CallgrindOutput, ReadsTriggerAndTotals) {
  auto parts = parse_callgrind(kTermination, "callgrind.out.23992");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].trigger, "Program termination");
  EXPECT_EQ(parts[0].totals.at("Ir"), 13980452u);

  parts = parse_callgrind(kCacheDump);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].trigger, "Client Request: loop_a");
  EXPECT_EQ(parts[0].totals.at("Dw"), 102404u);
  EXPECT_EQ(parts[0].totals.at("DLmw"), 124u);
}

TEST(CallgrindOutput, ChunkBoundariesDoNotMatter) {
  const std::string text = kCacheDump;
  for (size_t step : {1u, 2u, 7u, 64u}) {
    CallgrindParser p("chunks");
    for (size_t i = 0; i < text.size(); i += step) p.feed(std::string_view(text).substr(i, step));
    auto parts = p.finish();
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].totals.at("Ir"), 642701u) << step;
  }
}

TEST(CallgrindOutput, TrailingZerosMayBeLeftOutAndPartsCombine) {
  // --combine-dumps: parts in one file; "totals: 0" for nine events is how callgrind writes zeros.
  std::string text =
      std::string("# callgrind format\npart: 1\ndesc: Trigger: Client Request: a\n") +
      "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\ntotals: 0\npart: 2\n" +
      "desc: Trigger: Program termination\nevents: Ir\ntotals: 7\n";
  auto parts = parse_callgrind(text);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].totals.at("DLmw"), 0u);
  EXPECT_EQ(parts[1].totals.at("Ir"), 7u);
}

TEST(CallgrindOutput, MetricsSumProcessesAndNameSections) {
  auto parts = parse_callgrind(kTermination);
  auto dump = parse_callgrind(kCacheDump);
  parts.insert(parts.end(), dump.begin(), dump.end());
  RunResult r;
  set_instruction_metrics(parts, "count", r);
  EXPECT_EQ(r.metric("instructions"), 13980452.0 + 642701.0);
  EXPECT_EQ(r.metric("instructions.loop_a"), 642701.0);
  EXPECT_EQ(r.metrics.at("instructions").unit, "count");
  EXPECT_FALSE(r.metrics.count("estimated_cycles"));
}

TEST(CallgrindOutput, CacheMetricsAndEstimatedCycles) {
  auto parts = parse_callgrind(kCacheDump);
  RunResult r;
  set_instruction_metrics(parts, "cache", r);
  EXPECT_EQ(r.metric("i1_misses"), 389.0);
  EXPECT_EQ(r.metric("d1_misses"), 141.0 + 124.0);
  EXPECT_EQ(r.metric("ll_misses"), 389.0 + 141.0 + 124.0);
  EXPECT_EQ(r.metric("data_reads"), 107631.0);
  EXPECT_EQ(r.metric("data_writes"), 102404.0);
  // L1 hits = Ir + Dr + Dw - L1 misses; LL hits = L1 misses - LL misses; RAM = LL misses.
  const double accesses = 642701.0 + 107631 + 102404, l1m = 389 + 141 + 124, llm = l1m;
  EXPECT_EQ(r.metric("estimated_cycles"), (accesses - l1m) + 5 * (l1m - llm) + 35 * llm);
}

TEST(CallgrindOutput, SectionNamesBecomeMetricNames) {
  CallgrindPart p{"Client Request: BM_Sort/1024 x", {{"Ir", 5}}};
  RunResult r;
  set_instruction_metrics({p, p}, "count", r);
  EXPECT_EQ(r.metric("instructions.bm_sort_1024_x"), 10.0);  // repeated dumps add up
  CallgrindPart too_long{"Client Request: " + std::string(80, 'a'), {{"Ir", 1}}};
  EXPECT_THROW(set_instruction_metrics({too_long}, "count", r), InstructionCountError);
}

TEST(CallgrindOutput, TamperedCacheCountsAreRefused) {
  CallgrindPart p{"Program termination",
                  {{"Ir", 10},
                   {"Dr", 0},
                   {"Dw", 0},
                   {"I1mr", 5},
                   {"D1mr", 0},
                   {"D1mw", 0},
                   {"ILmr", 9},
                   {"DLmr", 0},
                   {"DLmw", 0}}};
  RunResult r;
  EXPECT_THROW(set_instruction_metrics({p}, "cache", r), InstructionCountError);
  // Sums that would wrap around 64 bits are refused, not wrapped into plausible numbers.
  const uint64_t big = UINT64_MAX / 2 + 1;
  CallgrindPart huge{"Program termination",
                     {{"Ir", 1},
                      {"Dr", 0},
                      {"Dw", 0},
                      {"I1mr", big},
                      {"D1mr", big},
                      {"D1mw", 1},
                      {"ILmr", 0},
                      {"DLmr", 0},
                      {"DLmw", 0}}};
  EXPECT_THROW(set_instruction_metrics({huge}, "cache", r), InstructionCountError);
  CallgrindPart no_cache{"Program termination", {{"Ir", 10}}};
  EXPECT_THROW(set_instruction_metrics({no_cache}, "cache", r), InstructionCountError);
  CallgrindPart no_ir{"Program termination", {{"Dr", 10}}};
  EXPECT_THROW(set_instruction_metrics({no_ir}, "count", r), InstructionCountError);
}

TEST(CallgrindOutput, HostileCorpusGetsAClearError) {
  const std::string head = "# callgrind format\n";
  const std::vector<std::pair<std::string, std::string>> corpus = {
      {"", "empty file"},
      {"junk\n", "expected '# callgrind format'"},
      {head, "no profile part"},
      {head + "events: Ir\n", "no 'totals:'"},
      {head + "totals: 5\n", "before 'events:'"},
      {head + "events: Ir\ntotals: 5\ntotals: 6\n", "second 'totals:'"},
      {head + "events: Ir\nevents: Ir\ntotals: 1\n", "second 'events:'"},
      {head + "events: Ir Ir\ntotals: 1\n", "listed twice"},
      {head + "events: I-r\ntotals: 1\n", "malformed"},
      {head + "events:\ntotals: 1\n", "names no event"},
      {head + "events: Ir\ntotals: 1 2\n", "2 values for 1 events"},
      {head + "events: Ir\ntotals: -1\n", "not a count"},
      {head + "events: Ir\ntotals: 0x10\n", "not a count"},
      {head + "events: Ir\ntotals: 99999999999999999999999\n", "not a count"},
      {head + "events: Ir\ntotals: 18446744073709551616\n", "not a count"},
      {head + "events: Ir\ntotals: 1\npart: 2\nevents: Ir\n", "no 'totals:'"},
      {head + "part: x\n", "malformed 'part:'"},
      {head + "desc: Trigger: " + std::string(5000, 'x') + "\nevents: Ir\ntotals: 1\n",
       "trigger longer"},
      {head + std::string("events: Ir\ntotals: 1\0\n", 22), "NUL"},
  };
  for (const auto& [text, why] : corpus) {
    try {
      parse_callgrind(text, "callgrind.out.1");
      ADD_FAILURE() << "accepted: " << text.substr(0, 80);
    } catch (const InstructionCountError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("callgrind.out.1"), std::string::npos);
    }
  }
  // A huge line is cut, not buffered: the rest of the file still parses.
  auto parts =
      parse_callgrind(head + "fn=(1) " + std::string(1 << 20, 'f') + "\nevents: Ir\ntotals: 3\n");
  EXPECT_EQ(parts.at(0).totals.at("Ir"), 3u);
}

// Mutations of valid files (bytes flipped, inserted, deleted, lines duplicated, cut anywhere):
// each either parses or throws InstructionCountError.
TEST(CallgrindOutput, MutationsNeverCrash) {
  std::mt19937 rng(1234);
  const std::string seeds[] = {kCacheDump, kTermination};
  const char alphabet[] = "0123456789 :\n\0xIrDwtotalsevnpr-#";
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % 2];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = rng() % s.size();
      switch (rng() % 5) {
        case 0:
          s[at] = alphabet[rng() % (sizeof alphabet - 1)];
          break;
        case 1:
          s.insert(at, 1, alphabet[rng() % (sizeof alphabet - 1)]);
          break;
        case 2:
          s.erase(at, 1 + rng() % 16);
          break;
        case 3:
          s.resize(at);
          break;
        default: {
          size_t nl = s.find('\n', at);
          size_t start = s.rfind('\n', at);
          start = start == std::string::npos ? 0 : start + 1;
          if (nl != std::string::npos) s.insert(start, s.substr(start, nl + 1 - start));
        }
      }
    }
    try {
      auto parts = parse_callgrind(s);
      RunResult r;
      set_instruction_metrics(parts, i % 3 == 0 ? "cache" : "count", r);
    } catch (const InstructionCountError&) {
    }
  }
}

TEST(Instructions, ArgvRunsTheLauncherWithTheWorkloadLast) {
  Argv argv = instrumented_argv("cache", {"sh", "-c", "true"});
  EXPECT_EQ(argv.front(), "/.benchrun-tools/launch");
  EXPECT_EQ(Argv(argv.end() - 3, argv.end()), (Argv{"sh", "-c", "true"}));
  auto has = [&](const std::string& a) {
    return std::find(argv.begin(), argv.end(), a) != argv.end();
  };
  EXPECT_TRUE(has("--trace-children=yes"));
  EXPECT_TRUE(has("--cache-sim=yes"));
  EXPECT_FALSE(has("--instr-atstart=no"));
  argv = instrumented_argv("sections", {"x"});
  EXPECT_NE(std::find(argv.begin(), argv.end(), "--instr-atstart=no"), argv.end());
}

TEST(Instructions, MissingValgrindIsNamed) {
  HostConfig host;
  host.valgrind_dir = "/nonexistent/valgrind";
  host.valgrind_launcher = "/bin/true";
  try {
    check_valgrind(host);
    ADD_FAILURE() << "accepted";
  } catch (const ValgrindNotFound& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install valgrind"), std::string::npos);
  }
}

}  // namespace
}  // namespace benchrun::run

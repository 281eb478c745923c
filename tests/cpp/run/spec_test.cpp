// spec_test.cpp: the run option table, once: for every option its default, a valid value and an
// invalid one (run::validate is the only place the rules live; the Python layers only parse).
#include "benchrun/run/spec.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/run/backend.hpp"

namespace benchrun::run {
namespace {

struct Case {
  const char* option;
  std::function<void(RunSpec&)> valid;    // empty: no valid non-default value to try
  std::function<void(RunSpec&)> invalid;  // empty: every value of the type is valid
  const char* why = "";                   // part of the ConfigError's message
};

const double kNan = std::nan("");
const double kInf = std::numeric_limits<double>::infinity();

std::vector<Case> cases() {
  return {
      {"backend", [](RunSpec& s) { s.backend = "vm"; }, [](RunSpec& s) { s.backend = "docker"; },
       "unknown (choose sandbox, vm, runc, runsc, crun, oci)"},
      {"entrypoint", [](RunSpec& s) { s.entrypoint = Argv{}; },
       [](RunSpec& s) { s.entrypoint = Argv{std::string("a\0b", 3)}; }, "NUL"},
      {"command",
       [](RunSpec& s) {
         s.command = Argv{"sh", "-c", "true"};
       },
       [](RunSpec& s) { s.command = Argv{std::string("\0", 1)}; }, "NUL"},
      {"env",
       [](RunSpec& s) {
         s.env = {"A=1", "B="};
       },
       [](RunSpec& s) { s.env = {"=x"}; }, "K=V"},
      {"workdir", [](RunSpec& s) { s.workdir = "/srv"; }, [](RunSpec& s) { s.workdir = "srv"; },
       "absolute"},
      {"user", [](RunSpec& s) { s.user = "1000:1000"; }, [](RunSpec& s) { s.user = ""; }, "empty"},
      {"memory", [](RunSpec& s) { s.memory = uint64_t{6} << 20; },
       [](RunSpec& s) { s.memory = 512; }, "minimum is 6m"},
      {"pids_limit", [](RunSpec& s) { s.pids_limit = 1; }, [](RunSpec& s) { s.pids_limit = 0; },
       "at least 1"},
      {"disk", [](RunSpec& s) { s.disk = uint64_t{16} << 20; },
       [](RunSpec& s) { s.disk = (uint64_t{16} << 20) - 1; }, "minimum is 16m"},
      {"cpus",
       [](RunSpec& s) {
         s.cpus = {0, 1};
       },
       [](RunSpec& s) {
         s.cpus = {1, 1};
       },
       "twice"},
      {"cpu_count", [](RunSpec& s) { s.cpu_count = 2; },
       [](RunSpec& s) {
         s.cpu_count = 1;
         s.cpus = {0};
       },
       "not both"},
      {"cpu_wait", [](RunSpec& s) { s.cpu_wait = 2.5; }, [](RunSpec& s) { s.cpu_wait = -1; },
       "seconds"},
      {"cpu_quota", [](RunSpec& s) { s.cpu_quota = 0.5; }, [](RunSpec& s) { s.cpu_quota = 0; },
       "positive"},
      {"timeout", [](RunSpec& s) { s.timeout = 0.001; }, [](RunSpec& s) { s.timeout = kNan; },
       "positive"},
      {"outputs",
       [](RunSpec& s) {
         s.outputs = {"/a", "/b"};
       },
       [](RunSpec& s) {
         s.outputs = {"/a", "/a"};
       },
       "twice"},
      {"max_output_bytes", [](RunSpec& s) { s.max_output_bytes = 0; }, {}},
      {"max_file_bytes", [](RunSpec& s) { s.max_file_bytes = 1; }, {}},
      {"max_files", [](RunSpec& s) { s.max_files = 1; },
       [](RunSpec& s) {
         s.max_files = 1;
         s.outputs = {"/a", "/b"};
       },
       "at most max_files"},
      {"nofile", [](RunSpec& s) { s.nofile = 65536; }, [](RunSpec& s) { s.nofile = 3; },
       "at least 16"},
      {"network", [](RunSpec& s) { s.network = true; },
       [](RunSpec& s) {
         s.backend = "vm";
         s.network = true;
       },
       "networking is not supported"},
      {"hostname", [](RunSpec& s) { s.hostname = "h"; },
       [](RunSpec& s) { s.hostname = std::string(65, 'h'); }, "1 to 64 bytes"},
      {"accel",
       [](RunSpec& s) {
         s.backend = "vm";
         s.accel = "tcg";
       },
       [](RunSpec& s) { s.accel = "tcg"; }, "applies to backend 'vm' only"},
      {"kernel",
       [](RunSpec& s) {
         s.backend = "vm";
         s.kernel = "/boot/vmlinuz";
       },
       [](RunSpec& s) { s.kernel = "/boot/vmlinuz"; }, "applies to backend 'vm' only"},
      {"kernel_modules",
       [](RunSpec& s) {
         s.backend = "vm";
         s.kernel_modules = "/lib/modules/6.1.0";
       },
       [](RunSpec& s) { s.kernel_modules = "/lib/modules/6.1.0"; }, "applies to backend 'vm' only"},
      {"vm_memory",
       [](RunSpec& s) {
         s.backend = "vm";
         s.vm_memory = uint64_t{64} << 20;
       },
       [](RunSpec& s) {
         s.backend = "vm";
         s.vm_memory = uint64_t{63} << 20;
       },
       "at least 64m"},
      {"instructions", [](RunSpec& s) { s.instructions = "cache"; },
       [](RunSpec& s) { s.instructions = "cycles"; }, "expected count, cache or sections"},
      {"counters",
       [](RunSpec& s) {
         s.counters = Strings{"default", "instructions:u", "ref-cycles"};
       },
       [](RunSpec& s) { s.counters = Strings{"instructions:x"}; },
       "unknown counter 'instructions:x' (known: task-clock"},
      {"runtime",
       [](RunSpec& s) {
         s.backend = "oci";
         s.runtime = "/usr/bin/youki";
       },
       [](RunSpec& s) { s.runtime = "/usr/bin/youki"; }, "applies to backend 'oci' only"},
      {"runsc_platform",
       [](RunSpec& s) {
         s.backend = "runsc";
         s.runsc_platform = "ptrace";
       },
       [](RunSpec& s) {
         s.backend = "runsc";
         s.runsc_platform = "gpu";
       },
       "choose auto, systrap, ptrace or kvm"},
      {"init", [](RunSpec& s) { s.init = true; }, {}},
      {"stop_timeout", [](RunSpec& s) { s.stop_timeout = 0; },
       [](RunSpec& s) { s.stop_timeout = -1; }, "positive"},
  };
}

// The vm backend refuses instruction counting (docs/instructions.md), by name.
TEST(RunSpec, InstructionsRefusedOnTheVmBackend) {
  RunSpec s;
  s.backend = "vm";
  s.instructions = "count";
  try {
    validate(s);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("vm backend does not count instructions"),
              std::string::npos)
        << e.what();
  }
}

// Secrets (not a table option): names are plain file names, bounded; never the content in errors.
TEST(RunSpec, SecretNamesAndSizes) {
  auto refused = [](std::vector<std::pair<std::string, std::string>> secrets, std::string backend,
                    const std::string& why) {
    RunSpec s;
    s.backend = std::move(backend);
    s.secrets = std::move(secrets);
    try {
      validate(s);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(why), std::string::npos) << what;
      EXPECT_EQ(what.find("VALUE"), std::string::npos) << what;
    }
  };
  RunSpec ok;
  ok.secrets = {{"tok", "VALUE"}, {"a.b-c_D9", ""}};
  EXPECT_NO_THROW(validate(ok));
  for (const char* bad : {"", ".", "..", "a/b", "../x", "a b"})
    refused({{bad, "VALUE"}}, "sandbox", "secrets: name");
  refused({{std::string(kMaxSecretName + 1, 'n'), "VALUE"}}, "sandbox", "secrets: name");
  refused({{"a", "VALUE"}, {"a", "VALUE"}}, "sandbox", "given twice");
  refused({{"a", std::string(kMaxSecretBytes + 1, 'x')}}, "sandbox", "at most");
  std::vector<std::pair<std::string, std::string>> many;
  for (size_t i = 0; i <= kMaxSecrets; ++i) many.emplace_back("n" + std::to_string(i), "VALUE");
  refused(many, "sandbox", "at most 64");
  refused({{"a", "VALUE"}}, "vm", "vm backend does not deliver secrets");
}

TEST(RunSpec, EveryOptionHasACase) {
  std::set<std::string> covered;
  for (const auto& c : cases()) covered.insert(c.option);
  std::set<std::string> declared;
#define BENCHRUN_OPTION_NAME(type, name, init, scope, doc) declared.insert(#name);
  BENCHRUN_RUN_OPTIONS(BENCHRUN_OPTION_NAME)
#undef BENCHRUN_OPTION_NAME
  EXPECT_EQ(covered, declared);
}

TEST(RunSpec, DefaultsAreValid) {
  RunSpec s;
  EXPECT_NO_THROW(validate(s));
  EXPECT_EQ(s.backend, "sandbox");
  EXPECT_EQ(s.timeout, 0.0);
  EXPECT_EQ(s.max_output_bytes, uint64_t{64} << 20);
  EXPECT_EQ(s.hostname, "benchrun");
  EXPECT_EQ(s.accel, "auto");
  EXPECT_FALSE(s.memory);
}

TEST(RunSpec, ValidAndInvalidValuesPerOption) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.option);
    if (c.valid) {
      RunSpec s;
      c.valid(s);
      EXPECT_NO_THROW(validate(s));
    }
    if (c.invalid) {
      RunSpec s;
      c.invalid(s);
      try {
        validate(s);
        ADD_FAILURE() << "accepted";
      } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find(c.why), std::string::npos) << e.what();
      }
    }
  }
}

// "unlimited" is a value of its own for each limit, accepted by every backend's rules; a guest's
// RAM cannot be unlimited.
TEST(RunSpec, UnlimitedIsExplicitAndAccepted) {
  RunSpec s;
  EXPECT_FALSE(s.memory);
  EXPECT_FALSE(s.pids_limit);
  EXPECT_FALSE(s.disk);
  s.memory = kUnlimited;
  s.pids_limit = kUnlimited;
  s.disk = kUnlimited;
  EXPECT_NO_THROW(validate(s));
  s.backend = "vm";
  EXPECT_NO_THROW(validate(s));
  s.vm_memory = kUnlimited;
  EXPECT_THROW(validate(s), ConfigError);
}

TEST(RunSpec, NumbersThatAreNotNumbers) {
  for (double bad : {kNan, kInf, -1.0}) {
    RunSpec s;
    s.timeout = bad;
    EXPECT_THROW(validate(s), ConfigError) << bad;
    s = RunSpec{};
    s.cpu_quota = bad;
    EXPECT_THROW(validate(s), ConfigError) << bad;
  }
}

TEST(RunSpec, TimeoutInMillisecondsNeverRoundsToNone) {
  RunSpec s;
  EXPECT_EQ(timeout_ms(s), 0u);
  s.timeout = 1e-9;
  EXPECT_EQ(timeout_ms(s), 1u);
  s.timeout = 1.5;
  EXPECT_EQ(timeout_ms(s), 1500u);
}

TEST(Backends, RegistryHasEveryBackendAndRefusesOthers) {
  EXPECT_EQ(backend_names(),
            (std::vector<std::string>{"sandbox", "vm", "runc", "runsc", "crun", "oci"}));
  EXPECT_EQ(backend("vm").name(), "vm");
  EXPECT_EQ(backend("runsc").name(), "runsc");
  EXPECT_THROW(backend("firecracker"), ConfigError);
}

}  // namespace
}  // namespace benchrun::run

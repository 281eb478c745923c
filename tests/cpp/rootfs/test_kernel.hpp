// test_kernel.hpp: Debian's cloud kernel, provisioned once per test run into a shared cache dir.
//
// Tests that need a real kernel tree call test_kernel(). The cache is $BENCHRUN_TEST_CACHE or
// /var/tmp/benchrun-test-cache, so only the first run downloads. A provisioning failure fails the
// test (CI reaches Debian's archive); set BENCHRUN_TEST_OFFLINE=1 to skip such tests instead.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

#include "benchrun/common/error.hpp"
#include "benchrun/common/subprocess.hpp"
#include "benchrun/vm/kernel.hpp"

namespace benchrun::testing {

inline std::string test_cache_dir() {
  const char* dir = std::getenv("BENCHRUN_TEST_CACHE");
  return dir && *dir ? dir : "/var/tmp/benchrun-test-cache";
}

// The provisioned kernel, or nullptr with *why set when the test should skip.
inline const vm::Kernel* test_kernel(std::string* why) {
  static std::optional<vm::Kernel> kernel;
  static std::string skip;
  static std::string error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    if (!run_subprocess({"sh", "-c", "command -v apt-get && command -v dpkg-deb"}).ok()) {
      skip = "apt-get/dpkg-deb not installed: not a Debian host";
    } else {
      try {
        kernel = vm::provision_debian_kernel(test_cache_dir());
      } catch (const Error& e) {
        const char* offline = std::getenv("BENCHRUN_TEST_OFFLINE");
        if (!(offline && *offline && std::string(offline) != "0"))
          error = e.what();
        else
          skip = std::string("BENCHRUN_TEST_OFFLINE and provisioning failed: ") + e.what();
      }
    }
  }
  if (!error.empty()) throw std::runtime_error("provision the test kernel: " + error);
  if (kernel) return &*kernel;
  *why = skip;
  return nullptr;
}

}  // namespace benchrun::testing

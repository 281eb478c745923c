// oci_runtime_test.cpp: what benchrun reads from an OCI runtime (version, gVisor's platforms, the
// cgroup layout crun refuses) and the runtime-spec seccomp it writes from the sandbox's rules.
#include "run/oci_runtime.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "benchrun/sandbox/seccomp.hpp"
#include "run/oci_bundle.hpp"

namespace benchrun::run {
namespace {

TEST(OciRuntime, ParsesVersions) {
  EXPECT_EQ(detail::parse_runtime_version("runc", "runc version 1.1.5+ds1\ncommit: x\n"),
            "1.1.5+ds1");
  EXPECT_EQ(detail::parse_runtime_version("runsc", "runsc version 0.0~20221219.0\nspec: 1\n"),
            "0.0~20221219.0");
  EXPECT_EQ(detail::parse_runtime_version("crun", "crun version 1.8.1\ncommit: f8a0\n"), "1.8.1");
  EXPECT_EQ(detail::parse_runtime_version("oci", "no version here\n"), "");
}

TEST(OciRuntime, MinimumVersions) {
  std::string min;
  EXPECT_TRUE(detail::runtime_version_ok("runc", "1.1.5+ds1", &min));
  EXPECT_FALSE(detail::runtime_version_ok("runc", "0.1.1", &min));
  EXPECT_EQ(min, "1.0.0");
  EXPECT_TRUE(detail::runtime_version_ok("crun", "1.8.1", &min));
  EXPECT_FALSE(detail::runtime_version_ok("crun", "0.21", &min));
  EXPECT_TRUE(detail::runtime_version_ok("runsc", "0.0~20221219.0", &min));
  EXPECT_TRUE(detail::runtime_version_ok("runsc", "release-20240101.0", &min));
  EXPECT_FALSE(detail::runtime_version_ok("runsc", "0.0~20200115.0", &min));
  EXPECT_FALSE(detail::runtime_version_ok("runc", "unknown", &min));
}

TEST(OciRuntime, RunscPlatformsFromItsFlags) {
  const std::string old_help =
      "  -panic-log string\n    \tx\n  -platform string\n    \tspecifies which platform to use: "
      "ptrace (default), kvm. (default \"ptrace\")\n  -platform_device_path string\n";
  EXPECT_EQ(detail::runsc_platforms(old_help), (std::vector<std::string>{"ptrace", "kvm"}));
  const std::string new_help =
      "  -platform string\n    \tspecifies which platform to use: systrap (default), ptrace, "
      "kvm.\n  -profile\n";
  EXPECT_EQ(detail::runsc_platforms(new_help),
            (std::vector<std::string>{"systrap", "ptrace", "kvm"}));
  EXPECT_TRUE(detail::runsc_platforms("no such flag").empty());
}

TEST(OciRuntime, NotHybridWithoutCgroupfs) {
  EXPECT_FALSE(detail::cgroup_hybrid("/nonexistent"));
  EXPECT_FALSE(detail::cgroup_hybrid("/tmp"));
}

// Every rule of the sandbox's policy is in the runtime-spec seccomp, with its errno and arguments.
TEST(OciBundle, SeccompIsTheSandboxPolicy) {
  const nlohmann::json sc = oci_seccomp();
  EXPECT_EQ(sc["defaultAction"], "SCMP_ACT_ALLOW");
  std::set<std::string> names;
  size_t rules = 0;
  for (const auto& entry : sc["syscalls"]) {
    EXPECT_EQ(entry["action"], "SCMP_ACT_ERRNO");
    for (const auto& n : entry["names"]) {
      names.insert(n.get<std::string>());
      ++rules;
    }
    if (entry.contains("args")) {
      for (const auto& a : entry["args"]) EXPECT_EQ(a["op"], "SCMP_CMP_MASKED_EQ");
    }
  }
  EXPECT_EQ(rules, sandbox::seccomp_rules().size());
  for (const char* n : sandbox::denied_syscalls()) EXPECT_TRUE(names.count(n)) << n;
}

TEST(OciBundle, ConfigCarriesTheRunsOptions) {
  BundlePlan p;
  p.process.argv = {"/bin/sh", "-c", "true"};
  p.process.env = {"PATH=/bin"};
  p.process.cwd = "/work";
  p.process.uid = 1000;
  p.process.gid = 1000;
  p.rootfs = "/r/rootfs";
  p.tmp_source = "/r/rootfs/tmp";
  p.cgroups_path = "/benchrun/run-1-a/container";
  p.cgroup.cpuset_cpus = "2,3";
  p.cgroup.cpu_quota_us = 150000;
  p.limits.pids.value = 64;
  p.limits.memory.value = 1 << 30;
  p.limits.tmpfs = 1 << 20;
  const nlohmann::json c = make_oci_config(p);
  EXPECT_EQ(c["process"]["args"][2], "true");
  EXPECT_EQ(c["process"]["user"]["uid"], 1000);
  EXPECT_EQ(c["process"]["cwd"], "/work");
  EXPECT_TRUE(c["process"]["noNewPrivileges"].get<bool>());
  EXPECT_TRUE(c["process"]["capabilities"]["bounding"].empty());
  EXPECT_EQ(c["linux"]["cgroupsPath"], "/benchrun/run-1-a/container");
  EXPECT_EQ(c["linux"]["resources"]["pids"]["limit"], 64);
  EXPECT_EQ(c["linux"]["resources"]["cpu"]["cpus"], "2,3");
  EXPECT_EQ(c["linux"]["resources"]["cpu"]["quota"], 150000);
  // The memory limit is the run's cgroup's (the parent), where OOM kills are counted.
  EXPECT_FALSE(c["linux"]["resources"].contains("memory"));
  EXPECT_FALSE(c["linux"]["maskedPaths"].empty());
  bool network = false;
  for (const auto& ns : c["linux"]["namespaces"]) network = network || ns["type"] == "network";
  EXPECT_TRUE(network);
  bool tmp = false;
  for (const auto& m : c["mounts"])
    tmp = tmp || (m["destination"] == "/tmp" && m["source"] == "/r/rootfs/tmp");
  EXPECT_TRUE(tmp);
}

}  // namespace
}  // namespace benchrun::run

// results.hpp: the host's consumer of the guest's result frames, enforcing the run's caps (each
// stream, each file, number of files, bytes in total) whatever the guest sends.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "benchrun/proto/frame.hpp"
#include "benchrun/proto/messages.hpp"
#include "benchrun/vm/launch.hpp"

namespace benchrun::vm {

class ResultCollector {
 public:
  // The streams go to anonymous files in output_dir (the run directory), never into memory.
  ResultCollector(const proto::RunConfig& config, const std::string& output_dir);

  // What the guest may send in total: both streams, every file, and framing slack.
  uint64_t max_total_bytes() const;
  // Consumes one frame; ProtocolError for a frame the guest may not send (or not now).
  void take(const proto::Frame& frame);
  bool done() const { return done_; }
  bool exit() const { return exit_.has_value(); }
  bool error() const { return error_.has_value(); }
  // Moves what was collected into r.
  void finish(LaunchResult& r);

 private:
  void append_stream(OutputFile& to, bool& truncated, const std::string& data);
  const proto::RunConfig& config_;
  std::set<std::string> requested_;
  OutputFile stdout_, stderr_;
  bool stdout_truncated_ = false, stderr_truncated_ = false;
  std::map<std::string, std::string> outputs_, missing_;
  std::map<std::string, uint64_t> sizes_;  // announced size of each file
  std::optional<Metrics> metrics_;
  std::optional<proto::Exit> exit_;
  std::optional<proto::ErrorReport> error_;
  bool done_ = false;
};

// The guest's error as the caller's exception, by the frame's origin: init's own steps fail as the
// VM (VmError), the workload's setup in the sandbox's child fails as the sandbox does
// (SandboxError{stage}, its message as the guest worded it).
[[noreturn]] void throw_guest_error(const proto::ErrorReport& error);

}  // namespace benchrun::vm

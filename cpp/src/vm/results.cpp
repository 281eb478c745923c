// results.cpp: result frames -> LaunchResult. The guest is untrusted: every frame is checked
// against what was asked for (paths, offsets, sizes, order) and anything else is a ProtocolError.
#include "vm/results.hpp"

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::vm {

ResultCollector::ResultCollector(const proto::RunConfig& config, const std::string& output_dir)
    : config_(config),
      requested_(config.outputs.begin(), config.outputs.end()),
      stdout_(output_dir, config.max_output_bytes),
      stderr_(output_dir, config.max_output_bytes) {}

uint64_t ResultCollector::max_total_bytes() const {
  // Streams are capped by the guest too; the host allows them whole plus framing.
  return 2 * (config_.max_output_bytes + (config_.max_output_bytes >> 4)) +
         static_cast<uint64_t>(config_.max_files) * (config_.max_file_bytes + 4096) + (16u << 20);
}

void ResultCollector::append_stream(OutputFile& to, bool& truncated, const std::string& data) {
  if (!to.append(data)) truncated = true;
}

void ResultCollector::take(const proto::Frame& f) {
  using proto::FrameType;
  if (done_) throw ProtocolError("guest sent a frame after end-of-results");
  const bool finished = exit_ || error_;
  auto refuse_after_exit = [&] {
    if (finished)
      throw ProtocolError("guest sent " + proto::frame_type_name(static_cast<uint16_t>(f.type)) +
                          " after the exit status");
  };
  switch (f.type) {
    case FrameType::kStdout:
      refuse_after_exit();
      append_stream(stdout_, stdout_truncated_, f.payload);
      return;
    case FrameType::kStderr:
      refuse_after_exit();
      append_stream(stderr_, stderr_truncated_, f.payload);
      return;
    case FrameType::kFile: {
      refuse_after_exit();
      proto::FileChunk c = proto::decode_file(f);
      if (!requested_.count(c.path))
        throw ProtocolError("guest sent file '" + printable(c.path) + "', which was not requested");
      if (missing_.count(c.path)) throw ProtocolError("guest sent file '" + c.path + "' twice");
      if (c.size > config_.max_file_bytes)
        throw ProtocolError("guest sent file '" + c.path + "' larger than the file limit");
      auto [it, fresh] = outputs_.try_emplace(c.path);
      if (fresh && outputs_.size() > config_.max_files)
        throw ProtocolError("guest sent more files than the limit");
      if (fresh) sizes_[c.path] = c.size;
      if (c.size != sizes_[c.path] || c.offset != it->second.size() ||
          c.offset + c.data.size() > c.size)
        throw ProtocolError("guest sent file '" + c.path + "' out of order");
      it->second += c.data;
      return;
    }
    case FrameType::kFileMissing: {
      refuse_after_exit();
      proto::FileMissing m = proto::decode_file_missing(f);
      if (!requested_.count(m.path))
        throw ProtocolError("guest reported file '" + printable(m.path) +
                            "', which was not requested");
      if (outputs_.count(m.path) || missing_.count(m.path))
        throw ProtocolError("guest reported file '" + m.path + "' twice");
      missing_[m.path] = printable(m.reason.substr(0, 512));
      return;
    }
    case FrameType::kMetrics:
      refuse_after_exit();
      if (metrics_) throw ProtocolError("guest sent two metrics frames");
      metrics_ = proto::decode_metrics(f);
      return;
    case FrameType::kExit:
      refuse_after_exit();
      if (!metrics_) throw ProtocolError("guest sent its exit status before its metrics");
      exit_ = proto::decode_exit(f);
      return;
    case FrameType::kError:
      if (error_) throw ProtocolError("guest sent two errors");
      error_ = proto::decode_error(f);
      return;
    case FrameType::kEnd:
      if (!f.payload.empty()) throw ProtocolError("end-of-results frame with a payload");
      if (!finished) throw ProtocolError("guest ended its results without an exit status");
      done_ = true;
      return;
    default:
      throw ProtocolError("guest sent an unexpected " +
                          proto::frame_type_name(static_cast<uint16_t>(f.type)) + " frame");
  }
}

void ResultCollector::finish(LaunchResult& r) {
  // Files announced with a size but not delivered whole are reported, not passed on truncated.
  for (auto it = outputs_.begin(); it != outputs_.end();) {
    if (it->second.size() != sizes_[it->first]) {
      missing_[it->first] = "incomplete: " + std::to_string(it->second.size()) + " of " +
                            std::to_string(sizes_[it->first]) + " bytes arrived";
      it = outputs_.erase(it);
    } else {
      ++it;
    }
  }
  r.exit = exit_;
  r.error = error_;
  if (metrics_) r.metrics = std::move(*metrics_);
  r.stdout_data = std::move(stdout_);
  r.stderr_data = std::move(stderr_);
  r.stdout_truncated = stdout_truncated_ || (exit_ && exit_->stdout_truncated);
  r.stderr_truncated = stderr_truncated_ || (exit_ && exit_->stderr_truncated);
  r.outputs = std::move(outputs_);
  r.missing_outputs = std::move(missing_);
  for (const auto& path : requested_)
    if (!r.outputs.count(path) && !r.missing_outputs.count(path))
      r.missing_outputs[path] =
          done_ ? "not sent by the guest" : "the run ended before it was collected";
}

void throw_guest_error(const proto::ErrorReport& e) {
  if (e.origin == proto::ErrorOrigin::kWorkload) throw SandboxError(e.message, e.stage);
  throw VmError("vm: guest init failed at '" + e.stage + "': " + e.message);
}

}  // namespace benchrun::vm

// fatal.cpp: reporting a fatal error of init.
#include "init/fatal.hpp"

#include <chrono>
#include <exception>

#include "benchrun/proto/messages.hpp"
#include "init/console.hpp"
#include "init/host_link.hpp"

namespace benchrun::guest {

namespace {
constexpr auto kReportTimeout = std::chrono::seconds(10);
constexpr auto kHangupTimeout = std::chrono::seconds(5);
}  // namespace

void report_fatal(proto::Channel* channel, const InitError& error) noexcept {
  try {
    breadcrumb("error at " + error.stage() + ": " + error.what());
    if (channel == nullptr) return;
    const auto deadline = proto::Channel::Clock::now() + kReportTimeout;
    proto::ErrorReport report;
    report.origin = error.origin();
    report.stage = error.stage();
    report.err = error.err();
    report.message = error.what();
    channel->send(proto::encode_error(report), deadline);
    channel->send(proto::encode_end(), deadline);
    wait_for_hangup(channel->fd(), kHangupTimeout);
  } catch (const std::exception& e) {
    breadcrumb(std::string("could not report the error to the host: ") + e.what());
  } catch (...) {
    breadcrumb("could not report the error to the host");
  }
}

}  // namespace benchrun::guest

// init_error.hpp: a fatal failure of the guest init at a named stage, and the step() wrapper that
// turns any error of a step into one (main reports it as an ErrorReport and powers off).
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "benchrun/common/error.hpp"
#include "benchrun/proto/messages.hpp"
#include "init/console.hpp"

namespace benchrun::guest {

// stage: a short name the host shows ("mount-root", "exec"); err: the errno, 0 if none; origin:
// init's own step, or the workload's setup in the sandbox's child (the host raises VmError for
// the one and SandboxError{stage} for the other).
class InitError : public Error {
 public:
  InitError(std::string stage, int err, const std::string& message,
            proto::ErrorOrigin origin = proto::ErrorOrigin::kInit)
      : Error(message), stage_(std::move(stage)), err_(err), origin_(origin) {}
  const std::string& stage() const noexcept { return stage_; }
  int err() const noexcept { return err_; }
  proto::ErrorOrigin origin() const noexcept { return origin_; }

 private:
  std::string stage_;
  int err_;
  proto::ErrorOrigin origin_;
};

// Runs one step of init: a breadcrumb on the console, then fn(). Whatever it throws becomes an
// InitError of this stage (one that already is one keeps its own, more precise stage).
template <typename F>
decltype(auto) step(const char* stage, F&& fn) {
  breadcrumb(stage);
  try {
    return std::forward<F>(fn)();
  } catch (const InitError&) {
    throw;
  } catch (const SysError& e) {
    throw InitError(stage, e.code(), e.what());
  } catch (const std::exception& e) {
    throw InitError(stage, 0, e.what());
  }
}

}  // namespace benchrun::guest

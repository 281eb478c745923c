// interrupter.hpp: interrupts the calling thread's blocking system calls with a signal, for tests
// of EINTR handling.
//
// Header-only because CMakeLists.txt builds tests/cpp/**/*_test.cpp only. SIGUSR2 gets a handler
// installed without SA_RESTART, so a blocking read, poll or nanosleep in the target thread fails
// with EINTR instead of being restarted by the kernel.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace benchrun::test {

class Interrupter {
 public:
  // Sends SIGUSR2 to the constructing thread after `after`, then calls then() (e.g. to make the
  // interrupted call's data available).
  template <class F>
  Interrupter(std::chrono::milliseconds after, F then) : target_(::pthread_self()) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { signals().fetch_add(1); };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the interrupted call returns EINTR
    ::sigaction(SIGUSR2, &sa, &old_);
    signals().store(0);
    thread_ = std::thread([this, after, then] {
      std::this_thread::sleep_for(after);
      ::pthread_kill(target_, SIGUSR2);
      then();
    });
  }
  explicit Interrupter(std::chrono::milliseconds after) : Interrupter(after, [] {}) {}
  Interrupter(const Interrupter&) = delete;
  Interrupter& operator=(const Interrupter&) = delete;
  ~Interrupter() {
    if (thread_.joinable()) thread_.join();
    ::sigaction(SIGUSR2, &old_, nullptr);
  }
  // Joins the sending thread; returns how many signals the handler saw.
  int delivered() {
    if (thread_.joinable()) thread_.join();
    return signals().load();
  }

 private:
  static std::atomic<int>& signals() {
    static std::atomic<int> n{0};
    return n;
  }
  pthread_t target_;
  struct sigaction old_ {};
  std::thread thread_;
};

}  // namespace benchrun::test

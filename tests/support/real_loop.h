// RealLoop: a scheduler on the real io_uring poller for tests of real/ — the clock, fiber
// stacks, scheduler and ring one resource thread of hastd has.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "real/clock.h"
#include "real/ring.h"

namespace hast::test {

struct RealLoop {
  explicit RealLoop(unsigned ring_entries = 64, real::RingPolling polling = {})
      : ring(scheduler, polling, ring_entries) {}

  real::RealClock clock;
  real::GuardedStacks stacks{256 * 1024};
  fiber::Scheduler scheduler{clock, stacks, nullptr, {}};
  real::Ring ring;

  void spawn(std::string name, std::function<void()> body) {
    REQUIRE(scheduler.spawn(std::move(name), std::move(body)));
  }
  // Runs until every fiber is done (or stop()), then completes what the kernel holds.
  void run() {
    try {
      scheduler.run(ring);
    } catch (...) {
      ring.drain();
      scheduler.shutdown();
      throw;
    }
    ring.drain();
  }
  // Runs `body` in a fiber until every fiber is done.
  void run(std::function<void()> body) {
    spawn("test", std::move(body));
    run();
  }
  Deadline after(Duration timeout) const { return deadline_after(clock, timeout); }
};

}  // namespace hast::test

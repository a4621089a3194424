// Shutdown of fibers that never ran, under both Boost.Context backends: unit_tests builds
// this file with fcontext (the product), fiber_ucontext_tests with BOOST_USE_UCONTEXT (the
// fuzz builds' backend), where destroying a fiber enters it instead of unwinding it.
#include <catch2/catch.hpp>

#include "core/fiber/scheduler.h"
#include "tests/support/test_io.h"

namespace hast::fiber {
namespace {

TEST_CASE("a fiber never resumed does not run its body at shutdown", "[scheduler]") {
  test::ManualClock clock;
  test::HeapStacks stacks;
  bool ran = false;
  bool started = false;
  Scheduler scheduler{clock, stacks, nullptr, SchedulerOptions{}};
  REQUIRE(scheduler.spawn("started", [&] {
    started = true;
    HAST_MAYBE(scheduler.sleep_for(std::chrono::seconds(1)));
  }).has_value());
  scheduler.run_ready();
  REQUIRE(started);
  REQUIRE(scheduler.spawn("never-resumed", [&] { ran = true; }).has_value());
  scheduler.shutdown();
  CHECK_FALSE(ran);
}

}  // namespace
}  // namespace hast::fiber

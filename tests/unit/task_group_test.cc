// TaskGroup: cancel and join an activity's fibers as a whole.
#include <catch2/catch.hpp>

#include "core/fiber/event.h"
#include "core/fiber/task_group.h"
#include "tests/support/test_io.h"

using namespace std::chrono_literals;

TEST_CASE("TaskGroup: cancel fails every member's wait; join waits for all of them",
          "[unit][fiber]") {
  hast::test::ManualClock clock;
  hast::test::HeapStacks stacks;
  hast::fiber::Scheduler scheduler(clock, stacks, nullptr, hast::fiber::SchedulerOptions{});
  hast::test::ClockJumpPoller poller(clock);
  hast::fiber::TaskGroup group(scheduler);
  hast::fiber::Event never(scheduler);
  int cancelled = 0;
  bool joined = false;
  for (int i = 0; i < 3; i++) {
    REQUIRE(group
                .spawn("member",
                       [&] {
                         auto waited = never.wait();
                         if (!waited && waited.error().code() == hast::Errc::cancelled) cancelled++;
                       })
                .has_value());
  }
  REQUIRE(scheduler
              .spawn("owner",
                     [&] {
                       REQUIRE(scheduler.sleep_for(5ms).has_value());
                       CHECK(group.size() == 3);
                       group.cancel();
                       CHECK(!group.spawn("late", [] {}).has_value());
                       REQUIRE(group.join().has_value());
                       joined = true;
                       group.reset();
                       REQUIRE(group.spawn("again", [] {}).has_value());
                       REQUIRE(group.join().has_value());
                     })
              .has_value());
  scheduler.run(poller);
  CHECK(cancelled == 3);
  CHECK(joined);
  CHECK(group.size() == 0);
}

TEST_CASE("TaskGroup: a group unwound before its members is safe", "[unit][fiber]") {
  hast::test::ManualClock clock;
  hast::test::HeapStacks stacks;
  hast::fiber::Scheduler scheduler(clock, stacks, nullptr, hast::fiber::SchedulerOptions{});
  REQUIRE(scheduler
              .spawn("owner",
                     [&] {
                       hast::fiber::TaskGroup group(scheduler);  // lives on the owner's stack
                       for (int i = 0; i < 2; i++) {
                         REQUIRE(group
                                     .spawn("member",
                                            [&] {
                                              hast::ignore_error(scheduler.sleep_for(1h),
                                                                 "unwound at shutdown");
                                            })
                                     .has_value());
                       }
                       hast::ignore_error(scheduler.sleep_for(1h), "unwound at shutdown");
                     })
              .has_value());
  scheduler.run_ready();
  scheduler.shutdown();  // unwinds the owner (and its group) first, then the members
  CHECK(scheduler.fiber_count() == 0);
}

// Scheduler, Event and Channel: ordering, timers, channels, cancellation, exceptions.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <catch2/catch.hpp>

#include "core/fiber/channel.h"
#include "core/fiber/event.h"
#include "core/fiber/scheduler.h"
#include "core/fiber/wait_queue.h"
#include "core/prng.h"
#include "tests/support/property.h"
#include "tests/support/test_io.h"

using namespace std::chrono_literals;
using hast::Errc;
using hast::Instant;
using hast::fiber::Channel;
using hast::fiber::Event;
using hast::fiber::Scheduler;
using hast::fiber::SchedulerOptions;
using hast::fiber::WakeReason;

namespace {

struct Harness {
  hast::test::ManualClock clock;
  hast::test::HeapStacks stacks;
  Scheduler scheduler{clock, stacks, nullptr, SchedulerOptions{}};
  hast::test::ClockJumpPoller poller{clock};

  void spawn(std::string name, std::function<void()> body) {
    REQUIRE(scheduler.spawn(std::move(name), std::move(body)).has_value());
  }
  Instant at(std::chrono::milliseconds ms) const { return Instant{} + ms; }
};

}  // namespace

TEST_CASE("Scheduler: fibers run in spawn order and yield round-robin", "[unit][fiber]") {
  Harness h;
  std::vector<std::string> order;
  for (std::string name : {"a", "b", "c"}) {
    h.spawn(name, [&, name] {
      for (int round = 0; round < 2; round++) {
        order.push_back(name + std::to_string(round));
        h.scheduler.yield();
      }
    });
  }
  h.scheduler.run(h.poller);
  CHECK(order == std::vector<std::string>{"a0", "b0", "c0", "a1", "b1", "c1"});
  CHECK(h.scheduler.fiber_count() == 0);
  CHECK(h.stacks.live() == 0);
}

TEST_CASE("Scheduler: yield_to_others lets the runnable fibers, and those they wake, go first",
          "[unit][fiber]") {
  Harness h;
  std::vector<std::string> order;
  h.spawn("gatherer", [&] {
    order.push_back("gatherer");
    h.scheduler.yield_to_others(4);
    order.push_back("gatherer again");
    // Nothing else runnable: returns without a switch.
    auto switches = h.scheduler.switch_count();
    h.scheduler.yield_to_others(4);
    CHECK(h.scheduler.switch_count() == switches);
    order.push_back("gatherer done");
  });
  h.spawn("a", [&] {
    order.push_back("a");
    h.spawn("a's child", [&] { order.push_back("a's child"); });
  });
  h.spawn("b", [&] { order.push_back("b"); });
  h.scheduler.run_ready();
  CHECK(order == std::vector<std::string>{"gatherer", "a", "b", "a's child", "gatherer again",
                                          "gatherer done"});

  // The bound holds against a fiber that keeps yielding.
  order.clear();
  bool stop = false;
  h.spawn("gatherer", [&] {
    h.scheduler.yield_to_others(2);
    order.push_back("gatherer");
    stop = true;
  });
  h.spawn("spinner", [&] {
    while (!stop) {
      order.push_back("spin");
      h.scheduler.yield();
    }
  });
  h.scheduler.run_ready();
  CHECK(order == std::vector<std::string>{"spin", "spin", "gatherer"});
}

TEST_CASE("Scheduler: timers fire in deadline order at their time", "[unit][fiber]") {
  Harness h;
  std::vector<std::pair<int, Instant>> fired;
  for (int ms : {30, 10, 20, 10}) {
    h.spawn("sleeper", [&, ms] {
      REQUIRE(h.scheduler.sleep_until(h.at(std::chrono::milliseconds(ms))).has_value());
      fired.emplace_back(ms, h.clock.now());
    });
  }
  h.scheduler.run(h.poller);
  REQUIRE(fired.size() == 4);
  for (std::size_t i = 0; i < fired.size(); i++) {
    CHECK(fired[i].second == h.at(std::chrono::milliseconds(fired[i].first)));
    if (i > 0) CHECK(fired[i - 1].first <= fired[i].first);
  }
}

TEST_CASE("Scheduler: a waker used before the wait ends it at once; stale wakers are ignored",
          "[unit][fiber]") {
  Harness h;
  WakeReason first = WakeReason::cancelled;
  WakeReason second = WakeReason::woken;
  h.spawn("waiter", [&] {
    auto waker = h.scheduler.prepare_wait();
    waker.wake();
    first = h.scheduler.wait(std::nullopt);
    auto stale = waker;  // belongs to the finished wait
    h.scheduler.prepare_wait();
    stale.wake();
    second = h.scheduler.wait(h.at(5ms));
  });
  h.scheduler.run(h.poller);
  CHECK(first == WakeReason::woken);
  CHECK(second == WakeReason::timed_out);
  CHECK(h.clock.now() == h.at(5ms));
}

TEST_CASE("Event: set wakes every waiter; a deadline ends a wait", "[unit][fiber]") {
  Harness h;
  Event event(h.scheduler);
  int woken = 0;
  bool timed_out = false;
  for (int i = 0; i < 3; i++) {
    h.spawn("waiter", [&] {
      REQUIRE(event.wait().has_value());
      woken++;
    });
  }
  h.spawn("impatient", [&] {
    auto result = event.wait(h.at(1ms));
    timed_out = !result && result.error().code() == Errc::timed_out;
  });
  h.spawn("setter", [&] {
    REQUIRE(h.scheduler.sleep_for(2ms).has_value());
    CHECK(woken == 0);
    event.set();
  });
  h.scheduler.run(h.poller);
  CHECK(woken == 3);
  CHECK(timed_out);
}

TEST_CASE("Channel: bounded back-pressure keeps order and capacity", "[unit][fiber]") {
  hast::test::property(
      "channel delivers every item in order within capacity",
      [](std::uint8_t capacity_seed, std::uint8_t count_seed, std::uint64_t delay_seed) {
        Harness h;
        std::size_t capacity = 1 + capacity_seed % 8;
        int count = count_seed % 64;
        Channel<int> channel(h.scheduler, capacity);
        std::vector<int> received;
        std::size_t high_water = 0;
        hast::Prng delays(delay_seed);
        h.spawn("producer", [&] {
          for (int i = 0; i < count; i++) {
            RC_ASSERT(channel.push(i).has_value());
            high_water = std::max(high_water, channel.size());
          }
          channel.close();
        });
        h.spawn("consumer", [&] {
          while (true) {
            auto item = channel.pop();
            if (!item) {
              RC_ASSERT(item.error().code() == Errc::disconnected);
              break;
            }
            received.push_back(*item);
            auto pause = std::chrono::microseconds(hast::uniform(delays, 0, 3));
            RC_ASSERT(h.scheduler.sleep_for(pause).has_value());
          }
        });
        h.scheduler.run(h.poller);
        RC_ASSERT(received.size() == static_cast<std::size_t>(count));
        for (int i = 0; i < count; i++)
          RC_ASSERT(received[i] == i);
        RC_ASSERT(high_water <= capacity);
      });
}

TEST_CASE("Channel: push blocks while full and fails once closed", "[unit][fiber]") {
  Harness h;
  Channel<int> channel(h.scheduler, 1);
  bool second_push_done = false;
  hast::Result<void> after_close;
  h.spawn("producer", [&] {
    REQUIRE(channel.push(1).has_value());
    auto timed = channel.push(2, h.at(1ms));
    CHECK(timed.error().code() == Errc::timed_out);
    REQUIRE(channel.push(2).has_value());
    second_push_done = true;
    after_close = channel.push(3);
  });
  h.spawn("consumer", [&] {
    REQUIRE(h.scheduler.sleep_for(5ms).has_value());
    CHECK(!second_push_done);
    CHECK(*channel.pop() == 1);
    REQUIRE(h.scheduler.sleep_for(1ms).has_value());
    channel.close();
    CHECK(*channel.pop() == 2);  // what was queued before close still drains
    CHECK(channel.pop().error().code() == Errc::disconnected);
  });
  h.scheduler.run(h.poller);
  CHECK(second_push_done);
  REQUIRE(!after_close);
  CHECK(after_close.error().code() == Errc::disconnected);
}

TEST_CASE("Scheduler: cancel ends the current and later waits of a fiber", "[unit][fiber]") {
  Harness h;
  hast::fiber::FiberId sleeper = 0;
  Errc first = Errc::io;
  Errc second = Errc::io;
  auto spawned = h.scheduler.spawn("sleeper", [&] {
    first = h.scheduler.sleep_for(1h).error().code();
    second = h.scheduler.sleep_for(1ms).error().code();
  });
  REQUIRE(spawned.has_value());
  sleeper = *spawned;
  h.spawn("canceller", [&] {
    REQUIRE(h.scheduler.sleep_for(1ms).has_value());
    h.scheduler.cancel(sleeper);
  });
  h.scheduler.run(h.poller);
  CHECK(first == Errc::cancelled);
  CHECK(second == Errc::cancelled);
  CHECK(h.clock.now() < h.at(1h));
}

TEST_CASE("Scheduler: shutdown unwinds blocked fibers without suspending again", "[unit][fiber]") {
  Harness h;
  int destructors = 0;
  Errc wait_in_destructor = Errc::io;
  struct Guard {
    std::function<void()> on_exit;
    ~Guard() { on_exit(); }
  };
  Event never(h.scheduler);
  for (int i = 0; i < 3; i++) {
    h.spawn("blocked", [&] {
      Guard guard{[&] {
        destructors++;
        // A destructor that tries to wait must not suspend a dying fiber.
        auto result = never.wait();
        wait_in_destructor = result.error().code();
      }};
      hast::ignore_error(never.wait(), "the wait ends only by unwinding");
      FAIL("a blocked fiber must not return from its wait at shutdown");
    });
  }
  h.scheduler.run_ready();
  CHECK(h.scheduler.fiber_count() == 3);
  h.scheduler.shutdown();
  CHECK(destructors == 3);
  CHECK(wait_in_destructor == Errc::cancelled);
  CHECK(h.scheduler.fiber_count() == 0);
  CHECK(h.stacks.live() == 0);
  auto late = h.scheduler.spawn("late", [] {});
  REQUIRE(!late);
  CHECK(late.error().code() == Errc::cancelled);
}

TEST_CASE("Scheduler: an exception escaping a fiber is reported with the fiber's name",
          "[unit][fiber]") {
  Harness h;
  h.spawn("thrower", [&] {
    h.scheduler.yield();
    throw std::runtime_error("boom");
  });
  try {
    h.scheduler.run(h.poller);
    FAIL("the exception was swallowed");
  } catch (const hast::fiber::FiberFailure& failure) {
    CHECK(failure.fiber_name() == "thrower");
    CHECK(std::string(failure.what()).find("boom") != std::string::npos);
  }
}

TEST_CASE("Scheduler: random ready order is reproducible from the seed", "[unit][fiber]") {
  auto run_order = [](std::uint64_t seed) {
    hast::test::ManualClock clock;
    hast::test::HeapStacks stacks;
    hast::Prng random(seed);
    Scheduler scheduler(clock, stacks, &random, SchedulerOptions{hast::fiber::ReadyOrder::random});
    std::string order;
    for (char name = 'a'; name <= 'h'; name++) {
      REQUIRE(scheduler.spawn("f", [&, name] { order.push_back(name); }).has_value());
    }
    scheduler.run_ready();
    return order;
  };
  CHECK(run_order(1) == run_order(1));
  bool differs = false;
  for (std::uint64_t seed = 1; seed < 20 && !differs; seed++) {
    differs = run_order(seed) != run_order(seed + 1000);
  }
  CHECK(differs);
  CHECK(run_order(7) != std::string("abcdefgh"));
}

TEST_CASE("Scheduler: an ended fiber's captures go when it ends, though its record is reused",
          "[unit][fiber]") {
  Harness h;
  auto token = std::make_shared<int>(7);
  std::weak_ptr<int> watch = token;
  h.spawn("holder", [token = std::move(token)] { CHECK(*token == 7); });
  static_cast<void>(h.scheduler.run_ready());
  // The record (and its map node) is kept for the next fiber; what the body held is not.
  CHECK(watch.expired());
  CHECK(h.scheduler.fiber_count() == 0);
  std::vector<hast::fiber::FiberId> ids;
  for (int i = 0; i < 3; i++) {
    auto id = h.scheduler.spawn("next", [&ids, &h] { ids.push_back(h.scheduler.current()); });
    REQUIRE(id.has_value());
    static_cast<void>(h.scheduler.run_ready());
  }
  // Reused records still get fresh, increasing ids.
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] < ids[1]);
  CHECK(ids[1] < ids[2]);
  CHECK(h.stacks.live() == 0);
}

TEST_CASE("Scheduler: an exit hook that suspends aborts", "[unit][fiber]") {
  // In a child process: the assertion aborts it. Its message goes to /dev/null.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, STDERR_FILENO);
    struct Yielding final : hast::fiber::FiberExitHook {
      explicit Yielding(hast::fiber::Scheduler& s) : scheduler(s) {}
      void fiber_exited(hast::fiber::FiberId) override { scheduler.yield(); }
      hast::fiber::Scheduler& scheduler;
    };
    Harness h;
    HAST_MAYBE(h.scheduler.spawn("hooked", [] {}, std::make_shared<Yielding>(h.scheduler)));
    h.scheduler.run(h.poller);
    std::_Exit(0);  // not reached while the check holds
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT));
}

TEST_CASE("WaitQueue: wake_all wakes the waiters oldest first, whoever left in between",
          "[unit][fiber]") {
  Harness h;
  hast::fiber::WaitQueue queue(h.scheduler);
  std::vector<std::string> order;
  auto waiter = [&](std::string name, hast::Deadline deadline) {
    h.spawn(name, [&, name, deadline] {
      if (queue.wait(deadline) == WakeReason::woken) order.push_back(name);
    });
  };
  waiter("a", h.at(1ms));  // the oldest: leaves by its deadline before the wake
  waiter("b", std::nullopt);
  waiter("c", std::nullopt);
  h.spawn("late", [&] {
    REQUIRE(h.scheduler.sleep_for(2ms).has_value());
    waiter("d", std::nullopt);  // arrives after a left, behind b and c
    h.scheduler.yield();
    CHECK(!queue.empty());
    queue.wake_all();
    CHECK(queue.empty());
  });
  h.scheduler.run(h.poller);
  CHECK(order == std::vector<std::string>{"b", "c", "d"});
}

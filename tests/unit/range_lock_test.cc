// Range locks: mutual exclusion of overlapping ranges, first-come-first-served order,
// deadlines, and disjoint ranges running together.
#include <vector>

#include <catch2/catch.hpp>

#include "core/prng.h"
#include "core/replication/range_lock.h"
#include "tests/support/property.h"
#include "tests/support/test_io.h"

using namespace std::chrono_literals;
using hast::replication::LockKind;
using hast::replication::RangeLocks;

namespace {

struct Harness {
  hast::test::ManualClock clock;
  hast::test::HeapStacks stacks;
  hast::fiber::Scheduler scheduler{clock, stacks, nullptr, hast::fiber::SchedulerOptions{}};
  hast::test::ClockJumpPoller poller{clock};
  RangeLocks locks{scheduler};
};

}  // namespace

TEST_CASE("RangeLocks: overlapping holders never coexist; waiters go in arrival order",
          "[unit][replication]") {
  hast::test::property("random lock traffic keeps exclusion and order", [](std::uint64_t seed) {
    Harness h;
    hast::Prng random(seed);
    struct Held {
      std::uint64_t offset, length;
    };
    std::vector<Held> held;
    std::vector<int> grant_order;
    int fibers = 12;
    for (int i = 0; i < fibers; i++) {
      std::uint64_t offset = hast::uniform(random, 0, 15) * 512;
      std::uint64_t length = hast::uniform(random, 1, 4) * 512;
      auto kind = hast::chance(random, 0.3) ? LockKind::sync : LockKind::regular;
      auto hold = std::chrono::microseconds(hast::uniform(random, 0, 50));
      auto spawned = h.scheduler.spawn("locker", [&, i, offset, length, kind, hold] {
        auto guard = h.locks.lock(kind, offset, length);
        RC_ASSERT(guard.has_value());
        for (const auto& other : held) {
          RC_ASSERT(!(offset < other.offset + other.length && other.offset < offset + length));
        }
        held.push_back({offset, length});
        grant_order.push_back(i);
        RC_ASSERT(h.scheduler.sleep_for(hold).has_value());
        std::erase_if(held,
                      [&](const Held& x) { return x.offset == offset && x.length == length; });
      });
      RC_ASSERT(spawned.has_value());
    }
    h.scheduler.run(h.poller);
    RC_ASSERT(grant_order.size() == static_cast<std::size_t>(fibers));
    RC_ASSERT(h.locks.held_count() == 0u);
    RC_ASSERT(h.locks.waiting_count() == 0u);
  });
}

TEST_CASE("RangeLocks: a sync chunk is not starved by a stream of writes", "[unit][replication]") {
  Harness h;
  std::vector<std::string> order;
  REQUIRE(h.scheduler
              .spawn("w1",
                     [&] {
                       auto g = h.locks.lock(LockKind::regular, 0, 4096);
                       order.push_back("w1");
                       REQUIRE(h.scheduler.sleep_for(10us).has_value());
                     })
              .has_value());
  REQUIRE(h.scheduler
              .spawn("sync",
                     [&] {
                       auto g = h.locks.lock(LockKind::sync, 0, 8192);
                       order.push_back("sync");
                       CHECK(h.locks.is_locked(LockKind::sync, 4096, 512));
                       CHECK(!h.locks.is_locked(LockKind::regular, 4096, 512));
                     })
              .has_value());
  REQUIRE(h.scheduler
              .spawn("w2",
                     [&] {
                       auto g = h.locks.lock(LockKind::regular, 4096, 512);
                       order.push_back("w2");
                     })
              .has_value());
  REQUIRE(h.scheduler
              .spawn("disjoint",
                     [&] {
                       auto g = h.locks.lock(LockKind::regular, 1 << 20, 512);
                       order.push_back("disjoint");
                     })
              .has_value());
  h.scheduler.run(h.poller);
  CHECK(order == std::vector<std::string>{"w1", "disjoint", "sync", "w2"});
}

TEST_CASE("RangeLocks: a deadline gives up without holding anything", "[unit][replication]") {
  Harness h;
  hast::Result<void> outcome;
  REQUIRE(h.scheduler
              .spawn("holder",
                     [&] {
                       auto g = h.locks.lock(LockKind::regular, 0, 512);
                       REQUIRE(h.scheduler.sleep_for(1s).has_value());
                     })
              .has_value());
  REQUIRE(h.scheduler
              .spawn("impatient",
                     [&] {
                       auto g = h.locks.lock(LockKind::sync, 0, 512, h.clock.now() + 1ms);
                       if (!g) outcome = hast::fail(g.error());
                       CHECK(h.locks.waiting_count() == 0u);
                     })
              .has_value());
  h.scheduler.run(h.poller);
  REQUIRE(!outcome);
  CHECK(outcome.error().code() == hast::Errc::timed_out);
}

TEST_CASE("RangeLocks: reservations fix the order before anyone waits", "[unit][replication]") {
  Harness h;
  auto first = h.locks.reserve(LockKind::regular, 0, 4096);
  auto barrier = h.locks.reserve(LockKind::regular, 0, 1 << 20);  // a FLUSH-like barrier
  auto second = h.locks.reserve(LockKind::regular, 512, 512);
  auto abandoned = h.locks.reserve(LockKind::regular, 1 << 21, 512);
  h.locks.cancel_reservation(abandoned);
  std::vector<std::string> order;
  auto acquire = [&](std::uint64_t reservation, std::string name) {
    return [&, reservation, name] {
      auto guard = h.locks.acquire(reservation);
      REQUIRE(guard.has_value());
      order.push_back(name);
      REQUIRE(h.scheduler.sleep_for(10us).has_value());
    };
  };
  // Spawned in reverse: the reservations, not the spawn order, decide.
  REQUIRE(h.scheduler.spawn("second", acquire(second, "second")).has_value());
  REQUIRE(h.scheduler.spawn("barrier", acquire(barrier, "barrier")).has_value());
  REQUIRE(h.scheduler.spawn("first", acquire(first, "first")).has_value());
  h.scheduler.run(h.poller);
  CHECK(order == std::vector<std::string>{"first", "barrier", "second"});
}

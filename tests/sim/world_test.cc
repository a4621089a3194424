// World and SimNode: virtual time, event order, node timers, kill, pause, failures.
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/fiber/event.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::NodeIo;
using hast::sim::SimNode;
using hast::sim::SimNodeOptions;
using hast::sim::World;

namespace {

SimNode& add_node(World& world, std::string name, std::string host) {
  hast::sim::SimDiskOptions disk_options;
  disk_options.size_bytes = 1 << 20;
  auto& disk = world.add_disk(name + "-disk", disk_options);
  auto& node = world.add_node(SimNodeOptions{.name = std::move(name), .hosts = {std::move(host)}});
  node.attach_disk(disk);
  return node;
}

// The order in which same-time events run, for one seed.
std::string tie_order(std::uint64_t seed) {
  World world(seed);
  std::string order;
  for (char name = 'a'; name <= 'h'; name++) {
    world.at(Instant{} + 1ms, "tie", [&order, name] { order.push_back(name); });
  }
  while (world.step()) {
  }
  return order;
}

}  // namespace

TEST_CASE("World: events run in time order; ties in an order drawn from the seed", "[sim]") {
  World world(1);
  std::vector<int> order;
  world.at(Instant{} + 30ms, "c", [&] { order.push_back(30); });
  world.at(Instant{} + 10ms, "a", [&] { order.push_back(10); });
  auto cancelled = world.at(Instant{} + 15ms, "x", [&] { order.push_back(15); });
  world.at(Instant{} + 20ms, "b", [&] {
    order.push_back(20);
    world.after(5ms, "d", [&] { order.push_back(25); });
  });
  world.cancel(cancelled);
  while (world.step()) {
  }
  CHECK(order == std::vector<int>{10, 20, 25, 30});
  CHECK(world.now() == Instant{} + 30ms);

  CHECK(tie_order(5) == tie_order(5));
  bool differs = false;
  for (std::uint64_t seed = 1; seed < 10 && !differs; seed++) {
    differs = tie_order(seed) != tie_order(seed + 100);
  }
  CHECK(differs);
}

TEST_CASE("World: many events keep (time, tie, id) order through cancels and reuse", "[sim]") {
  // The queue is a heap over recycled slots: check it against a sorted reference with
  // many equal times, cancels of queued events and events scheduled from actions.
  World world(11);
  std::vector<std::pair<Instant, int>> ran;
  std::vector<hast::sim::EventId> ids;
  for (int i = 0; i < 200; i++) {
    Instant when = Instant{} + std::chrono::milliseconds(i % 7);
    ids.push_back(world.at(when, "e", [&ran, &world, i] {
      ran.emplace_back(world.now(), i);
      if (i % 10 == 0)
        world.after(3ms, "late", [&ran, &world, i] { ran.emplace_back(world.now(), 1000 + i); });
    }));
  }
  for (int i = 0; i < 200; i += 3)
    world.cancel(ids[static_cast<std::size_t>(i)]);
  world.cancel(ids[3]);  // twice: ignored
  CHECK(world.pending_events() == 200 - 67);
  while (world.step()) {
  }
  CHECK(world.pending_events() == 0);
  std::size_t expected = 200 - 67;
  for (int i = 0; i < 200; i += 10)
    if (i % 3 != 0) expected++;
  REQUIRE(ran.size() == expected);
  for (std::size_t k = 1; k < ran.size(); k++)
    CHECK(ran[k - 1].first <= ran[k].first);
  for (const auto& [when, i] : ran)
    CHECK((i >= 1000 || i % 3 != 0));
}

TEST_CASE("EventAction: small callables in place, large ones on the heap, each destroyed once",
          "[sim]") {
  auto token = std::make_shared<int>(0);
  {
    hast::sim::EventAction small([token] { (*token)++; });
    std::array<std::uint64_t, 32> big_payload{};
    hast::sim::EventAction big(
        [token, big_payload] { *token += 10 + static_cast<int>(big_payload[0]); });
    CHECK(token.use_count() == 3);
    hast::sim::EventAction moved(std::move(small));
    CHECK(!small);
    moved();
    hast::sim::EventAction other;
    other = std::move(big);
    CHECK(!big);
    other();
    CHECK(*token == 11);
    CHECK(token.use_count() == 3);
    other = std::move(moved);  // destroys the large callable, takes the small one
    CHECK(token.use_count() == 2);
    other();
    CHECK(*token == 12);
    std::function<void()> function = [token] { (*token)++; };
    hast::sim::EventAction wrapped(function);
    wrapped();
    CHECK(*token == 13);
  }
  CHECK(token.use_count() == 1);
}

TEST_CASE("World: a node's sleeps follow virtual time and its clock offset", "[sim]") {
  World world(2);
  SimNode& node = add_node(world, "n", "10.0.0.1");
  std::vector<Instant> woke;
  node.set_program([&](NodeIo& io) {
    for (int i = 0; i < 3; i++) {
      REQUIRE(io.scheduler.sleep_for(100ms).has_value());
      woke.push_back(io.clock.now());
    }
  });
  node.start();
  world.run_for(1s);
  REQUIRE(woke.size() == 3);
  CHECK(woke[0] == Instant{} + 100ms);
  CHECK(woke[2] == Instant{} + 300ms);
  CHECK(world.now() == Instant{} + 1s);

  World skewed(2);
  SimNode& late =
      skewed.add_node(SimNodeOptions{.name = "late", .hosts = {"10.0.0.9"}, .clock_offset = 5s});
  late.attach_disk(skewed.add_disk("d", hast::sim::SimDiskOptions{.size_bytes = 1 << 20}));
  Instant local{};
  late.set_program([&](NodeIo& io) {
    REQUIRE(io.scheduler.sleep_for(100ms).has_value());
    local = io.clock.now();
  });
  late.start();
  skewed.run_for(1s);
  CHECK(local == Instant{} + 5s + 100ms);
}

TEST_CASE("SimNode: kill unwinds the fibers and drops their pending events", "[sim]") {
  World world(3);
  SimNode& node = add_node(world, "n", "10.0.0.1");
  int unwound = 0;
  int woke_after_kill = 0;
  struct Guard {
    int& count;
    ~Guard() { count++; }
  };
  node.set_program([&](NodeIo& io) {
    for (int i = 0; i < 4; i++) {
      REQUIRE(io.scheduler
                  .spawn("sleeper",
                         [&] {
                           Guard guard{unwound};
                           if (io.scheduler.sleep_for(10s)) woke_after_kill++;
                         })
                  .has_value());
    }
    Guard guard{unwound};
    hast::ignore_error(io.scheduler.sleep_for(1h), "unwound by the kill");
  });
  node.start();
  world.run_for(1s);
  CHECK(node.scheduler().fiber_count() == 5);
  auto before = node.incarnation();
  node.kill();
  CHECK(!node.running());
  CHECK(unwound == 5);
  world.run_for(20s);
  CHECK(woke_after_kill == 0);

  node.set_program([&](NodeIo& io) { REQUIRE(io.scheduler.sleep_for(1s).has_value()); });
  node.start();
  CHECK(node.incarnation() > before);
  world.run_for(2s);
  CHECK(node.scheduler().fiber_count() == 0);
}

TEST_CASE("SimNode: a paused node runs nothing until the pause ends", "[sim]") {
  World world(4);
  SimNode& node = add_node(world, "n", "10.0.0.1");
  std::vector<Instant> ticks;
  node.set_program([&](NodeIo& io) {
    while (io.scheduler.sleep_for(100ms))
      ticks.push_back(io.clock.now());
  });
  node.start();
  world.at(Instant{} + 250ms, "pause", [&] { node.pause(1s); });
  world.run_for(2s);
  // Ticks at 100 and 200 ms; the 300 ms timer fires only when the pause ends at 1.25 s.
  REQUIRE(ticks.size() >= 4);
  CHECK(ticks[0] == Instant{} + 100ms);
  CHECK(ticks[1] == Instant{} + 200ms);
  CHECK(ticks[2] == Instant{} + 1250ms);
  CHECK(ticks[3] == Instant{} + 1350ms);
}

TEST_CASE("World: an exception escaping a node's fiber fails the run loudly", "[sim]") {
  World world(5);
  SimNode& node = add_node(world, "n", "10.0.0.1");
  node.set_program([&](NodeIo& io) {
    REQUIRE(io.scheduler.sleep_for(5ms).has_value());
    throw std::runtime_error("protocol bug");
  });
  node.start();
  CHECK_THROWS_WITH(world.run_for(1s), Catch::Contains("protocol bug"));
  CHECK(world.describe().find("seed=5") != std::string::npos);
}

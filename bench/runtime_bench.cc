// runtime_bench: how fast the runtime itself is. Not a test: it prints figures, each next
// to a baseline measured in the same run, so a ratio can be read on a noisy machine.
//
//   build/bench/runtime_bench
//
// Figures: fiber switches per second (two fibers yielding to each other) against plain
// function calls through std::function; simulated events per second for bare world
// events and for the two-node demo (with simulated seconds per wall second).
#include <chrono>
#include <cstdio>
#include <functional>

#include "core/fiber/scheduler.h"
#include "core/prng.h"
#include "sim/demo.h"
#include "sim/sim_io.h"
#include "sim/world.h"

namespace {

using WallClock = std::chrono::steady_clock;

double seconds_since(WallClock::time_point start) {
  return std::chrono::duration<double>(WallClock::now() - start).count();
}

class FrozenClock final : public hast::Clock {
 public:
  hast::Instant now() const override { return hast::Instant{}; }
  hast::WallTime wall() const override { return hast::WallTime{}; }
};

void bench_switches() {
  constexpr int kRounds = 2'000'000;
  FrozenClock clock;
  hast::sim::PoolStackAllocator stacks(64 * 1024);
  hast::fiber::Scheduler scheduler(clock, stacks, nullptr, hast::fiber::SchedulerOptions{});
  for (int f = 0; f < 2; f++) {
    auto spawned = scheduler.spawn("yielder", [&] {
      for (int i = 0; i < kRounds; i++) scheduler.yield();
    });
    if (!spawned) return;
  }
  auto start = WallClock::now();
  scheduler.run_ready();
  double elapsed = seconds_since(start);
  double switches = static_cast<double>(scheduler.switch_count());

  volatile std::uint64_t sink = 0;
  std::function<void(int)> call = [&sink](int i) { sink = sink + static_cast<unsigned>(i); };
  auto base_start = WallClock::now();
  for (int i = 0; i < 2 * kRounds; i++) call(i);
  double base_elapsed = seconds_since(base_start);
  std::printf("fiber switches:          %12.0f /s  (%.1f ns each)\n", switches / elapsed,
              elapsed / switches * 1e9);
  std::printf("  baseline std::function: %12.0f /s  (ratio %.2f)\n",
              2.0 * kRounds / base_elapsed, (switches / elapsed) / (2.0 * kRounds / base_elapsed));
}

void bench_world_events() {
  constexpr int kEvents = 1'000'000;
  hast::sim::World world(1);
  int remaining = kEvents;
  std::function<void()> tick = [&] {
    if (--remaining > 0) world.after(std::chrono::microseconds(1), "tick", tick);
  };
  world.after(std::chrono::microseconds(1), "tick", tick);
  auto start = WallClock::now();
  while (world.step()) {
  }
  double elapsed = seconds_since(start);
  std::printf("bare world events:       %12.0f /s\n", world.event_count() / elapsed);
}

void bench_demo() {
  auto start = WallClock::now();
  int runs = 0;
  double simulated = 0;
  std::uint64_t events = 0;
  while (seconds_since(start) < 2.0) {
    auto result = hast::sim::run_demo(hast::sim::DemoOptions{.seed = 1000u + runs, .print = false});
    runs++;
    simulated += result.simulated_seconds;
    events += result.events;
  }
  double elapsed = seconds_since(start);
  std::printf("demo world events:       %12.0f /s  (%d runs)\n", events / elapsed, runs);
  std::printf("  simulated seconds per wall second: %.0f\n", simulated / elapsed);
}

}  // namespace

int main() {
  bench_switches();
  bench_world_events();
  bench_demo();
  return 0;
}

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
#include "sim/cluster.h"
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
      for (int i = 0; i < kRounds; i++)
        scheduler.yield();
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
  for (int i = 0; i < 2 * kRounds; i++)
    call(i);
  double base_elapsed = seconds_since(base_start);
  std::printf("fiber switches:          %12.0f /s  (%.1f ns each)\n", switches / elapsed,
              elapsed / switches * 1e9);
  std::printf("  baseline std::function: %12.0f /s  (ratio %.2f)\n", 2.0 * kRounds / base_elapsed,
              (switches / elapsed) / (2.0 * kRounds / base_elapsed));
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

// The replication core under a fixed two-node workload (memsync, no faults): how much
// simulated time and how many client operations the simulator gets through per second.
void bench_replication(std::chrono::microseconds mean_interval) {
  hast::sim::ClusterOptions options;
  options.seed = 1;
  options.workload.mean_interval = mean_interval;
  options.workload.in_flight_max = 32;
  hast::sim::SimCluster cluster(options);
  auto& world = cluster.world();
  cluster.start_pair(0, 1, std::chrono::milliseconds(50));
  auto start = WallClock::now();
  world.run_for(std::chrono::seconds(20));
  double elapsed = seconds_since(start);
  auto ops = cluster.workload().counters().completed_ok;
  std::printf(
      "replication (memsync, 2 nodes, a request every %lld us): %.1f simulated s "
      "per wall s, %.0f client ops per wall s (%llu ops in %.2f s)\n",
      static_cast<long long>(mean_interval.count()), 20.0 / elapsed, ops / elapsed,
      static_cast<unsigned long long>(ops), elapsed);
}

}  // namespace

int main() {
  bench_switches();
  bench_world_events();
  bench_demo();
  bench_replication(std::chrono::microseconds(100));
  bench_replication(std::chrono::microseconds(5000));
  return 0;
}

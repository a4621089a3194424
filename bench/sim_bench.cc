// sim_bench: how fast the simulator runs the replication core. Not a test: it prints
// figures; scripts/bench puts them in its table next to the aim of issue 3 (1,000
// simulated seconds per wall second).
//
//   build/bench/sim_bench [--quick] [--machine] [--seconds N]
//
// The fixed workload: two nodes (the cluster's defaults: 16 MiB disks, 256 KiB extents,
// keepdirty 8, simulated network and disks), memsync, created and paired as in the
// walk-through, then the client workload with its default mix (reads and writes 40 each,
// flushes 8, discards and write-zeroes 4 each, FUA 10 %, requests of up to 128 KiB, a
// request every 500 us on average, at most 32 in flight) for N simulated seconds (20;
// 5 with --quick), no faults, seed 1. The run is repeated (seeds 1, 2, ...) until two
// wall seconds have passed (one with --quick) and the totals are divided.
//
// Figures: simulated seconds per wall second, client operations completed per wall
// second, world events per wall second, the first two per CPU second of this process
// too (on a shared machine the wall figures depend on the neighbours), and the trace
// hash of the first run (the same build must print the same hash: a speed-up that
// changes it changed behaviour).
// --machine prints `key value` lines for scripts/bench instead of sentences.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "sim/cluster.h"
#include "sim/world.h"

namespace {

using WallClock = std::chrono::steady_clock;

struct Options {
  bool quick = false;
  bool machine = false;
  int seconds = 20;
};

struct Totals {
  double simulated = 0;
  double wall = 0;
  double cpu = 0;  // this process's CPU seconds: what the figure is on an idle machine
  std::uint64_t ops = 0;
  std::uint64_t events = 0;
  int runs = 0;
  std::string first_hash;
};

int usage() {
  std::fprintf(stderr, "usage: sim_bench [--quick] [--machine] [--seconds N]\n");
  return 2;
}

// One run of the fixed workload; adds its figures to `totals`.
void run_once(const Options& options, std::uint64_t seed, Totals& totals) {
  hast::sim::ClusterOptions cluster_options;
  cluster_options.seed = seed;
  cluster_options.mode = hast::config::ReplicationMode::memsync;
  hast::sim::SimCluster cluster(cluster_options);
  auto& world = cluster.world();
  auto start = WallClock::now();
  std::clock_t cpu_start = std::clock();
  cluster.start_pair(0, 1, std::chrono::milliseconds(50));
  world.run_for(std::chrono::seconds(options.seconds));
  totals.wall += std::chrono::duration<double>(WallClock::now() - start).count();
  totals.cpu += static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  totals.simulated += options.seconds;
  totals.ops += cluster.workload().counters().completed_ok;
  totals.events += world.event_count();
  if (totals.runs++ == 0) totals.first_hash = world.hash().hex();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--quick") {
      options.quick = true;
      options.seconds = 5;
    } else if (arg == "--machine") {
      options.machine = true;
    } else if (arg == "--seconds" && i + 1 < argc) {
      options.seconds = std::atoi(argv[++i]);
      if (options.seconds <= 0) return usage();
    } else {
      return usage();
    }
  }
  double budget = options.quick ? 1.0 : 2.0;
  Totals totals;
  while (totals.runs == 0 || totals.wall < budget)
    run_once(options, 1 + static_cast<std::uint64_t>(totals.runs), totals);
  double sim_rate = totals.simulated / totals.wall;
  double ops_rate = static_cast<double>(totals.ops) / totals.wall;
  double event_rate = static_cast<double>(totals.events) / totals.wall;
  if (options.machine) {
    std::printf("workload memsync,2-nodes,default-mix,500us-mean,32-in-flight,%ds-x%d\n",
                options.seconds, totals.runs);
    std::printf("sim_s_per_wall_s %.1f\nops_per_wall_s %.0f\nevents_per_wall_s %.0f\n",
                sim_rate, ops_rate, event_rate);
    std::printf("sim_s_per_cpu_s %.1f\nops_per_cpu_s %.0f\n", totals.simulated / totals.cpu,
                static_cast<double>(totals.ops) / totals.cpu);
    std::printf("ops %llu\nwall_s %.3f\nhash %s\n",
                static_cast<unsigned long long>(totals.ops), totals.wall,
                totals.first_hash.c_str());
    return 0;
  }
  std::printf("fixed workload (memsync, 2 nodes, default mix, a request every 500 us, "
              "%d simulated s per run, %d runs)\n",
              options.seconds, totals.runs);
  std::printf("  simulated seconds per wall second: %10.1f  (aim 1000)\n", sim_rate);
  std::printf("  client operations per wall second: %10.0f  (%llu ops in %.2f s)\n", ops_rate,
              static_cast<unsigned long long>(totals.ops), totals.wall);
  std::printf("  world events per wall second:      %10.0f\n", event_rate);
  std::printf("  per CPU second (this process):     %10.1f simulated s, %.0f ops\n",
              totals.simulated / totals.cpu, static_cast<double>(totals.ops) / totals.cpu);
  std::printf("  trace hash of seed 1:              %s\n", totals.first_hash.c_str());
  return 0;
}

// sim_bench: how fast the simulator runs the replication core. Not a test: it prints
// figures; scripts/bench puts them in its report next to the aim of issue 3 (1,000
// simulated seconds per wall second).
//
//   build/bench/sim_bench [--quick] [--machine] [--seconds N] [--runs N]
//                         [--only busy|light|idle]
//
// Three fixed workloads on the same two-node pair (the cluster's defaults: 16 MiB disks,
// 256 KiB extents, keepdirty 8, simulated network and disks, keepalives and timeouts as in
// hastd), memsync, created and paired as in the walk-through, no faults:
// - busy: the client workload's default mix (reads and writes 40 each, flushes 8, discards
//   and write-zeroes 4 each, FUA 10 %, requests of up to 128 KiB, a request every 500 us
//   on average, so about 2,000 a simulated second, at most 32 in flight) for N simulated
//   seconds a run (20; 5 with --quick);
// - light: the same mix, a request every 20 ms on average (about 50 a simulated second:
//   a replicated pair that is mostly idle), 300 simulated seconds a run (60 with --quick);
// - idle: no client at all, only the pair's keepalives and timers, 3,600 simulated
//   seconds a run (600 with --quick).
// Each is repeated (seeds 1, 2, ...) until its wall budget has passed (2, 2 and 1 s; half
// with --quick) and the totals are divided. --runs N runs each exactly N times instead: a
// fixed amount of work, to compare two builds by CPU time on a busy machine.
//
// Figures per workload: simulated seconds per wall second, client operations completed
// per wall second, world events per wall second, the first two per CPU second of this
// process too (on a shared machine the wall figures depend on the neighbours), wall
// microseconds per client operation, and the trace hash of the first run (the same build
// must print the same hash: a speed-up that changes it changed behaviour). Baseline, in
// the same run: bare world events per wall second (a chain of empty events, no nodes), the
// ceiling of any workload's event rate. Whether the 1,000x aim is met is printed per
// workload; where it is not, the client operations it would take per wall second say why
// (a workload of R operations per simulated second needs 1,000 R per wall second).
// --machine prints `key value` lines for scripts/bench instead of sentences: the busy
// workload's keys unprefixed (as before), the others prefixed `light_` and `idle_`.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "sim/cluster.h"
#include "sim/world.h"

namespace {

using WallClock = std::chrono::steady_clock;

constexpr double aim_sim_s_per_wall_s = 1000;

struct Options {
  bool quick = false;
  bool machine = false;
  int seconds = 20;  // simulated seconds of one busy run
  int runs = 0;      // runs per workload; 0: as many as the wall budget allows
  std::string_view only;  // one workload (profiling), else all
};

struct Workload {
  std::string_view name;         // key prefix and label
  std::string_view description;  // one line, for both outputs
  int seconds = 0;               // simulated seconds per run
  std::optional<std::chrono::microseconds> mean_interval;  // none: no client
  double budget_s = 0;           // wall seconds of runs
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
  std::fprintf(stderr,
               "usage: sim_bench [--quick] [--machine] [--seconds N] [--runs N] "
               "[--only busy|light|idle]\n");
  return 2;
}

// One run of `workload`; adds its figures to `totals`.
void run_once(const Workload& workload, std::uint64_t seed, Totals& totals) {
  hast::sim::ClusterOptions cluster_options;
  cluster_options.seed = seed;
  cluster_options.mode = hast::config::ReplicationMode::memsync;
  if (workload.mean_interval) cluster_options.workload.mean_interval = *workload.mean_interval;
  hast::sim::SimCluster cluster(cluster_options);
  auto& world = cluster.world();
  auto start = WallClock::now();
  std::clock_t cpu_start = std::clock();
  std::optional<hast::Duration> client_at;
  if (workload.mean_interval) client_at = std::chrono::milliseconds(50);
  cluster.start_pair(0, 1, client_at);
  world.run_for(std::chrono::seconds(workload.seconds));
  totals.wall += std::chrono::duration<double>(WallClock::now() - start).count();
  totals.cpu += static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  totals.simulated += workload.seconds;
  totals.ops += cluster.workload().counters().completed_ok;
  totals.events += world.event_count();
  if (totals.runs++ == 0) totals.first_hash = world.hash().hex();
}

Totals measure(const Workload& workload, int runs) {
  Totals totals;
  while (totals.runs == 0 || (runs > 0 ? totals.runs < runs : totals.wall < workload.budget_s))
    run_once(workload, 1 + static_cast<std::uint64_t>(totals.runs), totals);
  return totals;
}

// Bare world events per wall second: a chain of empty events, each scheduling the next.
double baseline_events_per_wall_s(bool quick) {
  hast::sim::World world(1);
  int remaining = quick ? 500'000 : 2'000'000;
  std::function<void()> tick = [&] {
    if (--remaining > 0) world.after(std::chrono::microseconds(1), "tick", tick);
  };
  world.after(std::chrono::microseconds(1), "tick", tick);
  auto start = WallClock::now();
  while (world.step()) {
  }
  double wall = std::chrono::duration<double>(WallClock::now() - start).count();
  return static_cast<double>(world.event_count()) / wall;
}

void print_machine(const Workload& workload, const Totals& t, const std::string& prefix) {
  const double sim_rate = t.simulated / t.wall;
  const double ops_per_sim_s = static_cast<double>(t.ops) / t.simulated;
  std::printf("%sworkload %.*s,%ds-x%d\n", prefix.c_str(),
              static_cast<int>(workload.description.size()), workload.description.data(),
              workload.seconds, t.runs);
  std::printf("%ssim_s_per_wall_s %.1f\n%sops_per_wall_s %.0f\n%sevents_per_wall_s %.0f\n",
              prefix.c_str(), sim_rate, prefix.c_str(), static_cast<double>(t.ops) / t.wall,
              prefix.c_str(), static_cast<double>(t.events) / t.wall);
  std::printf("%ssim_s_per_cpu_s %.1f\n%sops_per_cpu_s %.0f\n", prefix.c_str(),
              t.simulated / t.cpu, prefix.c_str(), static_cast<double>(t.ops) / t.cpu);
  std::printf("%sops_per_sim_s %.1f\n%sops_needed_per_wall_s %.0f\n", prefix.c_str(),
              ops_per_sim_s, prefix.c_str(), ops_per_sim_s * aim_sim_s_per_wall_s);
  std::printf("%saim_met %s\n", prefix.c_str(), sim_rate >= aim_sim_s_per_wall_s ? "yes" : "no");
  std::printf("%sops %llu\n%swall_s %.3f\n%shash %s\n", prefix.c_str(),
              static_cast<unsigned long long>(t.ops), prefix.c_str(), t.wall, prefix.c_str(),
              t.first_hash.c_str());
}

void print_human(const Workload& workload, const Totals& t) {
  const double sim_rate = t.simulated / t.wall;
  const double ops_per_sim_s = static_cast<double>(t.ops) / t.simulated;
  std::printf("%.*s workload (memsync, 2 nodes, %.*s; %d simulated s per run, %d runs)\n",
              static_cast<int>(workload.name.size()), workload.name.data(),
              static_cast<int>(workload.description.size()), workload.description.data(),
              workload.seconds, t.runs);
  std::printf("  simulated seconds per wall second: %10.1f  (aim %.0f: %s)\n", sim_rate,
              aim_sim_s_per_wall_s, sim_rate >= aim_sim_s_per_wall_s ? "met" : "missed");
  std::printf("  client operations per wall second: %10.0f  (%llu ops in %.2f s",
              static_cast<double>(t.ops) / t.wall, static_cast<unsigned long long>(t.ops),
              t.wall);
  if (t.ops > 0) std::printf(", %.1f wall us per op", t.wall * 1e6 / static_cast<double>(t.ops));
  std::printf(")\n");
  std::printf("  world events per wall second:      %10.0f\n",
              static_cast<double>(t.events) / t.wall);
  std::printf("  per CPU second (this process):     %10.1f simulated s, %.0f ops\n",
              t.simulated / t.cpu, static_cast<double>(t.ops) / t.cpu);
  if (sim_rate < aim_sim_s_per_wall_s && t.ops > 0) {
    std::printf("  ops-bound: %.0f client ops per simulated s; the aim needs %.0f per wall s, "
                "%.1fx the rate measured\n",
                ops_per_sim_s, ops_per_sim_s * aim_sim_s_per_wall_s,
                ops_per_sim_s * aim_sim_s_per_wall_s * t.wall / static_cast<double>(t.ops));
  }
  std::printf("  trace hash of seed 1:              %s\n", t.first_hash.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--quick") {
      options.quick = true;
      options.seconds = 5;
    } else if (arg == "--only" && i + 1 < argc) {
      options.only = argv[++i];
    } else if (arg == "--runs" && i + 1 < argc) {
      options.runs = std::atoi(argv[++i]);
      if (options.runs <= 0) return usage();
    } else if (arg == "--machine") {
      options.machine = true;
    } else if (arg == "--seconds" && i + 1 < argc) {
      options.seconds = std::atoi(argv[++i]);
      if (options.seconds <= 0) return usage();
    } else {
      return usage();
    }
  }
  const double scale = options.quick ? 0.5 : 1.0;
  const Workload workloads[] = {
      {"busy", "default-mix,500us-mean,32-in-flight", options.seconds,
       std::chrono::microseconds(500), 2.0 * scale},
      {"light", "default-mix,20ms-mean,32-in-flight", options.quick ? 60 : 300,
       std::chrono::microseconds(20'000), 2.0 * scale},
      {"idle", "no-client,keepalives-only", options.quick ? 600 : 3600, std::nullopt,
       1.0 * scale},
  };
  const double baseline = baseline_events_per_wall_s(options.quick);
  for (const Workload& workload : workloads) {
    if (!options.only.empty() && workload.name != options.only) continue;
    const Totals totals = measure(workload, options.runs);
    if (options.machine) {
      print_machine(workload, totals,
                    workload.name == "busy" ? "" : std::string(workload.name) + "_");
    } else {
      print_human(workload, totals);
    }
  }
  if (options.machine) {
    std::printf("baseline_events_per_wall_s %.0f\n", baseline);
  } else {
    std::printf("baseline: bare world events per wall second (empty events, no nodes): %.0f\n",
                baseline);
  }
  return 0;
}

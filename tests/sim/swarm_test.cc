// The swarm: many seeds per mode with zero violations of every oracle (O1, O3, O4, O6, O7,
// O10; O11 below) and a minimum of faults actually exercised (a clean swarm must not be a
// swarm without faults); each mutation caught by the oracle it names; a seed's trace hash
// reproduced.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/swarm.h"

using hast::config::ReplicationMode;
using hast::replication::Mutation;

namespace {

struct Totals {
  std::uint64_t runs = 0;
  std::uint64_t violations = 0;
  std::map<std::string, std::uint64_t> coverage;
  std::string first_failure;
};

// Runs seeds first..last of `mode`, adding to `totals`.
void sweep(ReplicationMode mode, std::uint64_t first, std::uint64_t last, Totals& totals) {
  for (std::uint64_t seed = first; seed <= last; seed++) {
    hast::sim::RunOptions options;
    options.seed = seed;
    options.mode = mode;
    auto report = hast::sim::run_seed(options);
    totals.runs++;
    for (const auto& [name, value] : report.coverage)
      totals.coverage[name] += value;
    if (report.ok()) continue;
    totals.violations++;
    if (totals.first_failure.empty()) {
      totals.first_failure = report.violations.front().oracle + ": " +
                             report.violations.front().detail +
                             "\nreplay: " + report.replay_command(Mutation::none);
    }
  }
}

// Row 12: power losses cut multi-sector writes in flight and tear some. Tears are rare:
// across seeds 1..300 of each mode, 13, 13 and 13 in fullsync, memsync and async, but
// 4, 1 and 6 of them in seeds 1..100 when this was set. So the sweep goes on past seed
// 100, one seed at a time and with every oracle checked, until kTearsMin tears were seen
// or seed kTearSeedsLast was run: a robust minimum rather than the luck of 100 seeds.
constexpr std::uint64_t kTearsMin = 3;
constexpr std::uint64_t kTearSeedsLast = 300;
constexpr const char* kTorn = "in-flight writes torn by power loss";

void check_sweep(ReplicationMode mode) {
  Totals totals;
  sweep(mode, 1, 100, totals);
  std::uint64_t last = 100;
  while (totals.coverage[kTorn] < kTearsMin && last < kTearSeedsLast) {
    last++;
    sweep(mode, last, last, totals);
  }
  INFO("seeds 1.." << last);
  INFO(totals.first_failure);
  CHECK(totals.violations == 0);
  auto& c = totals.coverage;
  CHECK(c["secondary kills"] >= 20);
  CHECK(c["secondary power losses"] >= 20);
  CHECK(c["primary restarts"] >= 20);
  // 15, not 20: half the power losses wait for a write in flight, and one whose pair
  // changed meanwhile is called off (18, 19 and 20 in the three modes when this was set).
  CHECK(c["primary power losses"] >= 15);
  CHECK(c["partitions"] >= 20);
  CHECK(c["split-brains detected"] >= 5);
  CHECK(c["syncs completed"] >= 100);
  CHECK(c["reads checked"] >= 10000);
  CHECK(c["disk read errors"] >= 100);
  CHECK(c["disk write errors"] >= 100);
  if (mode != ReplicationMode::async) CHECK(c["failovers"] >= 10);
  // The online oracles looked (a clean sweep must not be a sweep they skipped).
  CHECK(c["O3 checkpoints applied"] >= 3000);
  CHECK(c["O7 sessions accepted"] >= 150);
  CHECK(c["O7 dual-primary writes"] >= 1000);
  CHECK(c["O10 writes judged"] >= 100000);
  CHECK(c["O2 sweeps"] >= 100);
  CHECK(c["O5 syncs checked"] >= 100);
  CHECK(c["O8 acks checked"] >= 100000);
  CHECK(c["foreign disks refused"] >= 5);  // row 17: another resource's disk swapped in
  // Row 12 (see kTearsMin): 10, 10 and 11 aimed power losses in seeds 1..100.
  CHECK(c["power losses aimed at a write in flight"] >= 5);
  CHECK(c[kTorn] >= kTearsMin);
}

}  // namespace

TEST_CASE("Swarm: 100 seeds of fullsync hold every oracle", "[sim][swarm]") {
  check_sweep(ReplicationMode::fullsync);
}

TEST_CASE("Swarm: 100 seeds of memsync hold every oracle", "[sim][swarm]") {
  check_sweep(ReplicationMode::memsync);
}

TEST_CASE("Swarm: 100 seeds of async hold every oracle", "[sim][swarm]") {
  check_sweep(ReplicationMode::async);
}

// Seeds that once failed, kept as regressions beyond the 100-seed sweeps.
TEST_CASE("Swarm: past failures stay fixed", "[sim][swarm]") {
  struct Past {
    std::uint64_t seed;
    ReplicationMode mode;
    const char* what;
  };
  const Past past[] = {
      // A second foreign disk swapped in while the first was still in place (the harness
      // reused the first one's resuid and tripped its own assertion).
      {298, ReplicationMode::async, "two foreign disks in a row"},
  };
  for (const Past& run : past) {
    INFO(run.what << ": seed " << run.seed);
    hast::sim::RunOptions options;
    options.seed = run.seed;
    options.mode = run.mode;
    auto report = hast::sim::run_seed(options);
    CHECK(report.ok());
  }
}

// The case of seed 298 on a schedule, so that it does not depend on what the seed draws
// (changes in the core move the faults of a drawn run): another resource's disk swapped
// in for the secondary, and a second one while the first is still in place (the first is
// taken out 0.3 to 2 s after it went in, which went in 0.1 to 1.5 s after the fault).
TEST_CASE("Swarm: a second foreign disk while the first is in place", "[sim][swarm]") {
  using namespace std::chrono_literals;
  using hast::sim::PlannedFault;
  using hast::sim::SwarmFault;
  // In seeds 5 to 10 the second disk went in while the first was in place (their
  // timelines when this was written: the harness then needs yet another resuid); in 1 and 2
  // after the first was taken out; in 3 and 4 the first's removal came before the second
  // swap. A harness assertion would end the test.
  for (std::uint64_t seed = 1; seed <= 10; seed++) {
    hast::sim::RunOptions options;
    options.seed = seed;
    options.mode = ReplicationMode::async;
    options.disk_faults = false;  // no stale extent turns the swap into a kill
    options.schedule = std::vector<PlannedFault>{{1000ms, SwarmFault::foreign_disk},
                                                 {2700ms, SwarmFault::foreign_disk}};
    auto report = hast::sim::run_seed(options);
    INFO(report.replay_command(Mutation::none) << " (with the schedule)");
    CHECK(report.ok());
    CHECK(report.coverage["foreign disks"] == 2);  // both faults struck as planned
  }
}

TEST_CASE("Swarm: each mutation is caught by the oracle it names", "[sim][swarm]") {
  // Two need faults the swarm rarely lines up, and targeted tests in replication_test.cc
  // catch them: read_fallback_when_stale (a local read error on an extent that is dirty
  // while the link is up) and skip_metadata_flush (a power loss right after a metadata
  // write, before anything flushes the disk). Two more have their own tests, which keep
  // this sweep short: wait_forever_for_remote (latency_oracle_test.cc; the sweep finds it
  // at seed 3) and skip_generation_raise (session_oracle_test.cc, seed 7).
  for (const auto& info : hast::replication::mutations()) {
    if (info.mutation == Mutation::read_fallback_when_stale ||
        info.mutation == Mutation::skip_metadata_flush ||
        info.mutation == Mutation::wait_forever_for_remote ||
        info.mutation == Mutation::skip_generation_raise) {
      continue;
    }
    INFO(std::string(info.name));
    bool caught = false;
    std::string other;
    // Stops at the first seed that catches it (most do within the first ten); the bound
    // is wide because timing changes in the core move which seeds line the faults up.
    for (std::uint64_t seed = 1; seed <= 150 && !caught; seed++) {
      for (auto mode :
           {ReplicationMode::fullsync, ReplicationMode::memsync, ReplicationMode::async}) {
        hast::sim::RunOptions options;
        options.seed = seed;
        options.mode = mode;
        options.mutation = info.mutation;
        auto report = hast::sim::run_seed(options);
        for (const auto& violation : report.violations) {
          if (violation.oracle == info.oracle) caught = true;
          if (violation.oracle != info.oracle) other = violation.oracle;
        }
        if (caught) break;
      }
    }
    INFO("other oracles seen: " << other);
    CHECK(caught);
  }
}

TEST_CASE("Swarm: a seed replays with the same trace hash", "[sim][swarm]") {
  for (std::uint64_t seed : {3, 17, 42}) {
    hast::sim::RunOptions options;
    options.seed = seed;
    options.check_determinism = true;
    auto report = hast::sim::run_seed(options);
    INFO("seed " << seed);
    for (const auto& violation : report.violations)
      CHECK(violation.oracle != "O11");
    hast::sim::RunOptions other = options;
    other.seed = seed + 1;
    CHECK(hast::sim::run_seed(other).hash != report.hash);
  }
}

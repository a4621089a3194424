// The Judge's own oracles (sim/judge.h): quiet on a healthy pair, and each one loud on the
// mistake it exists for — O2 on an acknowledged write lost behind the nodes' backs, O8 on
// fullsync answering before the secondary's disk held the write (mutation
// fullsync_ack_before_remote), O5 on a synchronisation in the wrong direction (mutation
// sync_wrong_direction: on the primary, and on the sync target by itself), O6 on a foreign
// disk whose bytes changed.
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "sim/judge.h"
#include "sim/swarm.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::config::ReplicationMode;
using hast::replication::Mutation;
using hast::sim::ClusterOptions;
using hast::sim::Judge;
using hast::sim::JudgeOptions;
using hast::sim::SimCluster;
using hast::sim::Violation;

namespace {

constexpr hast::sim::NodeId kA = 0;
constexpr hast::sim::NodeId kB = 1;

ClusterOptions options_for(ReplicationMode mode, Mutation mutation) {
  ClusterOptions options = hast::test::pair_options(11, mode, hast::test::kBusyPace);
  options.mutation = mutation;
  return options;
}

std::vector<Violation> named(const std::vector<Violation>& all, std::string_view oracle) {
  std::vector<Violation> found;
  for (const Violation& violation : all) {
    if (violation.oracle == oracle) found.push_back(violation);
  }
  return found;
}

std::string describe(const std::vector<Violation>& all) {
  std::string text;
  for (const Violation& violation : all) text += violation.oracle + ": " + violation.detail + "\n";
  return text;
}

// A pair under load for two seconds, then the workload stops.
void run_load(SimCluster& cluster) {
  cluster.start_pair(kA, kB, 50ms);
  cluster.world().at(Instant{} + 2s, "stop", [&] { cluster.workload().stop(); });
  cluster.world().run_for(2500ms);
}

// Writes `bytes` at `offset` of `id`'s device directly (no node involved).
void rogue_write(SimCluster& cluster, hast::sim::NodeId id, std::uint64_t offset,
                 std::span<const std::byte> bytes) {
  hast::sim::SimDisk& disk = cluster.disk(id);
  auto op = disk.begin_write(disk.register_owner(), offset, bytes, hast::Fua::yes);
  REQUIRE(disk.complete_write(op).has_value());
}

}  // namespace

TEST_CASE("Judge: a healthy pair holds O2, O5 and O8", "[sim][oracle]") {
  for (auto mode : {ReplicationMode::fullsync, ReplicationMode::memsync, ReplicationMode::async}) {
    INFO(std::string(hast::config::replication_name(mode)));
    ClusterOptions options = options_for(mode, Mutation::none);
    SimCluster cluster(options);
    Judge judge(cluster, JudgeOptions::for_cluster(options));
    run_load(cluster);
    auto violations = judge.finish(kA, kB);
    INFO(describe(violations));
    CHECK(violations.empty());
    auto coverage = judge.coverage();
    CHECK(coverage["O8 acks checked"] > 1000);
    CHECK(coverage["O2 sweeps"] == 1);
    CHECK(coverage["O2 sectors checked"] == cluster.data_size() / hast::sim::sector_bytes);
  }
}

TEST_CASE("Judge: O2 finds an acknowledged write lost on both disks", "[sim][oracle]") {
  ClusterOptions options = options_for(ReplicationMode::memsync, Mutation::none);
  SimCluster cluster(options);
  Judge judge(cluster, JudgeOptions::for_cluster(options));
  run_load(cluster);
  // Both copies of a sector that holds an acknowledged write are zeroed behind the nodes'
  // backs: the pair still converges (identical bytes, O4 holds) but the write is gone.
  std::uint64_t sector = 0;
  while (cluster.peek_sector(kA, sector * hast::sim::sector_bytes).kind !=
         hast::sim::SectorValue::Kind::stamped) {
    sector++;
    REQUIRE(sector * hast::sim::sector_bytes < cluster.data_size());
  }
  std::vector<std::byte> zero(hast::sim::sector_bytes);
  for (auto id : {kA, kB}) {
    rogue_write(cluster, id, cluster.local_offset() + sector * hast::sim::sector_bytes, zero);
  }
  auto violations = judge.finish(kA, kB);
  INFO(describe(violations));
  CHECK(named(violations, "O4").empty());
  auto o2 = named(violations, "O2");
  REQUIRE(o2.size() == 1);
  CHECK(o2[0].detail.find(fmt::format("sector {} holds zero", sector)) != std::string::npos);
}

TEST_CASE("Judge: O8 catches fullsync_ack_before_remote", "[sim][oracle]") {
  ClusterOptions options =
      options_for(ReplicationMode::fullsync, Mutation::fullsync_ack_before_remote);
  SimCluster cluster(options);
  Judge judge(cluster, JudgeOptions::for_cluster(options));
  run_load(cluster);
  auto violations = judge.finish(kA, kB);
  auto o8 = named(violations, "O8");
  REQUIRE_FALSE(o8.empty());
  INFO(o8[0].detail);
  CHECK(o8[0].detail.find("hastb's disk did not hold it") != std::string::npos);
}

TEST_CASE("Judge: O6 finds a foreign disk that was written", "[sim][oracle]") {
  ClusterOptions options = options_for(ReplicationMode::memsync, Mutation::none);
  SimCluster cluster(options);
  Judge judge(cluster, JudgeOptions::for_cluster(options));
  run_load(cluster);
  cluster.node(kB).kill();  // the swap happens while the node is down
  judge.disk_replaced(kB, hast::sim::DiskReplacement::foreign);
  std::vector<std::byte> bytes(hast::sim::sector_bytes, std::byte{0x5a});
  SECTION("untouched: quiet") {
    judge.disk_restored(kB);
    CHECK(named(judge.finish(kA, kB), "O6").empty());
  }
  SECTION("data written: O6") {
    rogue_write(cluster, kB, cluster.local_offset() + 8192, bytes);
    judge.disk_restored(kB);
    auto o6 = named(judge.finish(kA, kB), "O6");
    REQUIRE(o6.size() == 1);
    CHECK(o6[0].detail.find("data area modified, when it was taken out") != std::string::npos);
  }
  SECTION("metadata written: O6") {
    rogue_write(cluster, kB, 512, bytes);
    judge.disk_restored(kB);
    auto o6 = named(judge.finish(kA, kB), "O6");
    REQUIRE(o6.size() == 1);
    CHECK(o6[0].detail.find("the resuid mismatch was not refused") != std::string::npos);
  }
}

TEST_CASE("Judge: the swarm reports sync_wrong_direction as O5", "[sim][oracle]") {
  // The wrong direction copies the secondary's older data over the primary's: O1 may see
  // it on a later read, O5 sees it at the syncdone.
  bool caught = false;
  for (std::uint64_t seed = 1; seed <= 10 && !caught; seed++) {
    hast::sim::RunOptions options;
    options.seed = seed;
    options.mode = ReplicationMode::memsync;
    options.mutation = Mutation::sync_wrong_direction;
    caught = !named(hast::sim::run_seed(options).violations, "O5").empty();
  }
  CHECK(caught);
}

TEST_CASE("Judge: O5's sweep of the sync target alone catches sync_wrong_direction",
          "[sim][oracle]") {
  // The secondary is down from 1 s to 1.2 s while the primary writes; the sync after it
  // comes back must copy those writes onto it. Only the target sweep judges (O2, O8 and
  // the primary's own O5 sweep are off): quiet on the healthy pair, loud on the mutation,
  // which copies the secondary's older data onto the primary and leaves it as it was.
  for (Mutation mutation : {Mutation::none, Mutation::sync_wrong_direction}) {
    INFO(std::string(hast::replication::mutation_name(mutation)));
    ClusterOptions options = options_for(ReplicationMode::memsync, mutation);
    SimCluster cluster(options);
    JudgeOptions judge_options = JudgeOptions::for_cluster(options);
    judge_options.check_o2 = false;
    judge_options.check_o5 = false;
    judge_options.check_o8 = false;
    Judge judge(cluster, judge_options);
    auto& world = cluster.world();
    cluster.start_pair(kA, kB, 50ms);
    world.at(Instant{} + 1s, "kill", [&] { cluster.node(kB).kill(); });
    world.at(Instant{} + 1200ms, "restart", [&] { cluster.start(kB); });
    world.at(Instant{} + 1210ms, "role",
             [&] { cluster.set_role(kB, hast::meta::Role::secondary); });
    world.at(Instant{} + 2500ms, "stop", [&] { cluster.workload().stop(); });
    world.run_for(3s);
    auto violations = judge.finish(kA, kB);
    std::vector<Violation> target;
    for (const Violation& violation : named(violations, "O5")) {
      if (violation.detail.find("hastb's data area right after hasta's sync pass") !=
          std::string::npos) {
        target.push_back(violation);
      }
    }
    INFO(describe(violations));
    CHECK(judge.coverage().at("O5 target sweeps") >= 1);
    CHECK(target.empty() == (mutation == Mutation::none));
  }
}

namespace {

// The pair under load; at 1 s the secondary is stopped and its disk swapped for another
// resource's (`foreign`), or left as it is while the judge is told it was swapped (a
// deliberate mistake: the pair then reconnects, which O6 must report); at 2.5 s the disk
// is taken out, an empty one created, and the pair must converge.
std::vector<Violation> run_disk_swap(bool foreign, std::map<std::string, std::uint64_t>* coverage,
                                     std::uint64_t* connects_while_swapped) {
  ClusterOptions options = options_for(ReplicationMode::fullsync, Mutation::none);
  SimCluster cluster(options);
  Judge judge(cluster, JudgeOptions::for_cluster(options));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  std::size_t events_at_swap = 0;
  world.at(Instant{} + 1s, "kill", [&] { cluster.node(kB).kill(); });
  world.at(Instant{} + 1100ms, "swap", [&] {
    if (foreign) cluster.swap_in_foreign_disk(kB, 0x1234);
    judge.disk_replaced(kB, hast::sim::DiskReplacement::foreign);
    events_at_swap = cluster.events().size();
    cluster.start(kB);
  });
  world.at(Instant{} + 1110ms, "role", [&] { cluster.set_role(kB, hast::meta::Role::secondary); });
  world.at(Instant{} + 2500ms, "take out", [&] {
    *connects_while_swapped = 0;
    for (std::size_t i = events_at_swap; i < cluster.events().size(); i++) {
      if (cluster.events()[i].record.event == hast::replication::HookEvent::connect) {
        ++*connects_while_swapped;
      }
    }
    cluster.node(kB).kill();
  });
  world.at(Instant{} + 2600ms, "empty disk", [&] {
    judge.disk_restored(kB);
    cluster.disk(kB).replace_with_empty();
    cluster.start(kB, /*create=*/true);
  });
  world.at(Instant{} + 2610ms, "role", [&] { cluster.set_role(kB, hast::meta::Role::secondary); });
  world.at(Instant{} + 3s, "stop", [&] { cluster.workload().stop(); });
  world.run_for(3500ms);
  auto violations = judge.finish(kA, kB);
  *coverage = judge.coverage();
  return violations;
}

}  // namespace

TEST_CASE("Judge: a foreign disk is refused, never written, and replaced", "[sim][oracle]") {
  std::map<std::string, std::uint64_t> coverage;
  std::uint64_t connects = 99;
  auto violations = run_disk_swap(/*foreign=*/true, &coverage, &connects);
  INFO(describe(violations));
  CHECK(violations.empty());
  CHECK(connects == 0);
  CHECK(coverage["foreign disks refused"] == 1);
  CHECK(coverage["O8 acks checked"] > 1000);  // the primary served on, degraded
}

TEST_CASE("Judge: O6 reports a pair that connects while a foreign disk is in place",
          "[sim][oracle]") {
  // The disk is not actually swapped: the handshake succeeds, as it would if the resuid
  // check were missing.
  std::map<std::string, std::uint64_t> coverage;
  std::uint64_t connects = 0;
  auto o6 = named(run_disk_swap(/*foreign=*/false, &coverage, &connects), "O6");
  CHECK(connects > 0);
  REQUIRE(o6.size() == 1);
  CHECK(o6[0].detail.find("while hastb held another resource's disk") != std::string::npos);
  CHECK(coverage["foreign disks refused"] == 0);
}

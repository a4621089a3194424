// `hastctl create` in the simulated cluster meets the disk faults the simulation injects
// (the swarm arms them a few milliseconds into the run, and a disk replaced mid-run has
// them armed): a failed create is run again, as an operator would, never an abort of the
// harness. Before, SimCluster asserted that create succeeded.
#include <catch2/catch.hpp>

#include "sim/cluster.h"
#include "tests/support/sim_fixtures.h"

namespace {

using namespace std::chrono_literals;
using hast::Instant;
using hast::config::ReplicationMode;
using hast::meta::Role;

// Every write of `id`'s disk fails until `until`, then faults go off.
void fail_writes_until(hast::sim::SimCluster& cluster, hast::sim::NodeId id, hast::Instant until) {
  hast::sim::SimDiskFaults faults;
  faults.write_error_probability = 1;
  cluster.disk(id).set_faults(faults);
  cluster.world().at(until, "faults off", [&cluster, id] { cluster.disk(id).faults_off(); });
}

}  // namespace

TEST_CASE("Cluster: a create hit by a disk fault at set-up is run again", "[sim]") {
  auto options = hast::test::pair_options(7, ReplicationMode::memsync, hast::test::kBusyPace);
  hast::sim::SimCluster cluster(options);
  // Both nodes' creates fail for 25 ms: past the 10 ms the roles are set at.
  fail_writes_until(cluster, 0, Instant{} + 25ms);
  fail_writes_until(cluster, 1, Instant{} + 25ms);
  cluster.start_pair(0, 1, 100ms);
  cluster.world().run_for(300ms);
  CHECK(cluster.create_failures() >= 4);
  auto primary = cluster.status(0);
  auto secondary = cluster.status(1);
  REQUIRE(primary);
  REQUIRE(secondary);
  CHECK(primary->role == Role::primary);
  CHECK(secondary->role == Role::secondary);
  CHECK(cluster.data_size() > 0);
  cluster.workload().stop();
  CHECK(hast::test::converge(cluster, Instant{} + 5s));
  CHECK(cluster.data_identical());
}

TEST_CASE("Cluster: a create on a replaced disk hit by a disk fault is run again", "[sim]") {
  auto options = hast::test::pair_options(8, ReplicationMode::fullsync, hast::test::kBusyPace);
  hast::sim::SimCluster cluster(options);
  cluster.start_pair(0, 1, 50ms);
  cluster.world().run_for(500ms);
  cluster.node(1).kill();
  cluster.world().run_until([&] { return cluster.disk(1).in_flight_count() == 0; },
                            cluster.world().now() + 1s);
  cluster.disk(1).replace_with_empty();
  Instant now = cluster.world().now();
  fail_writes_until(cluster, 1, now + 40ms);
  cluster.start(1, /*create=*/true);
  // The operator's `role secondary` comes while create is still being run again: it is
  // kept for hastd.
  cluster.world().at(now + 20ms, "role", [&] { CHECK(cluster.set_role(1, Role::secondary)); });
  cluster.world().run_for(1s);
  CHECK(cluster.create_failures() >= 3);
  auto secondary = cluster.status(1);
  REQUIRE(secondary);
  CHECK(secondary->role == Role::secondary);
  cluster.workload().stop();
  CHECK(hast::test::converge(cluster, cluster.world().now() + 10s));
  CHECK(cluster.data_identical());
}

// Regression tests for what the online oracles found in core, each reproducing the
// scenario an oracle flagged.
#include <string>

#include <catch2/catch.hpp>

#include "core/meta/metadata.h"
#include "sim/activemap_oracle.h"
#include "sim/sim_network.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::meta::Role;
using hast::sim::ActivemapOracle;
using hast::sim::SimCluster;

namespace {

constexpr hast::sim::NodeId kA = 0;
constexpr hast::sim::NodeId kB = 1;

// The resuid in the stable view of `id`'s metadata block (0 when it does not decode).
std::uint64_t stable_resuid(SimCluster& cluster, hast::sim::NodeId id) {
  std::vector<std::byte> block(hast::meta::metadata_size);
  cluster.disk(id).pristine().stable().read(0, block);
  auto area = hast::meta::decode_area(block);
  return area ? area->metadata.resuid : 0;
}

}  // namespace

TEST_CASE("O3 finding: a primary crash while a re-created node adopts the resuid loses no sync",
          "[finding][sim]") {
  // Split-brain recovery re-creates the losing node (resuid 0, blank map, old data). At
  // its first handshake it adopts the pair's resuid, durably, and answers with an
  // all-ones map; only then does the primary merge it and make its map durable. A primary
  // power loss in between leaves both persisted maps blank while the data areas differ
  // (O3), and the next handshake sees paired counters: when they read "secondary out of
  // date" it runs a regular sync of the (blank) maps, not a full one.
  // Few writes (one per 50 ms): most extents stay unmarked.
  SimCluster cluster(hast::test::pair_options(3, hast::config::ReplicationMode::memsync,
                                              {.mean_interval = 50ms,
                                               .request_bytes_max = 4096,
                                               .reconnect = 100ms,
                                               .keepalive = 200ms}));
  ActivemapOracle oracle(cluster);
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  world.at(Instant{} + 1s, "partition", [&] { world.network().partition_both(kA, kB); });
  world.at(Instant{} + 1100ms, "promote", [&] { cluster.set_role(kB, Role::primary); });
  world.at(Instant{} + 2500ms, "stop", [&] { cluster.workload().stop(); });
  world.at(Instant{} + 2600ms, "heal", [&] { world.network().heal_all(); });
  world.at(Instant{} + 2700ms, "demote", [&] { cluster.set_role(kA, Role::secondary); });
  world.run_for(3500ms);
  REQUIRE(cluster.count_events(kA, hast::replication::HookEvent::split_brain) > 0);
  oracle.set_suspended(true);
  REQUIRE(cluster.recreate(kA, Role::secondary));
  std::uint64_t pair = stable_resuid(cluster, kB);
  REQUIRE(pair != 0);
  REQUIRE(world.run_until([&] { return stable_resuid(cluster, kA) == 0; }, world.now() + 5s));
  REQUIRE(world.run_until([&] { return stable_resuid(cluster, kA) == pair; }, world.now() + 5s));
  oracle.set_suspended(false);
  oracle.checkpoint("the re-created node adopted the resuid");
  cluster.node(kB).power_loss();
  world.after(100ms, "restart", [&] { cluster.start(kB); });
  world.after(110ms, "role", [&] { cluster.set_role(kB, Role::primary); });
  world.run_for(10s);
  INFO((oracle.violations().empty() ? "" : oracle.violations().front().detail));
  CHECK(oracle.violations().empty());
  auto status = cluster.status(kB);
  REQUIRE(status);
  INFO("status " << status->status << ", extents to sync " << status->sync_extents);
  CHECK(cluster.data_identical());
}

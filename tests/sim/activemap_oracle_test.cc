// O3, activemap coverage (sim/activemap_oracle.h): quiet on a healthy pair through kills
// and power losses, and loud when an extent outside both persisted maps differs — whether
// the difference comes from the code (mutation skip_activemap_flush) or from bytes put on
// a disk behind the nodes' backs (stable, cached or in flight).
#include <string>

#include <catch2/catch.hpp>

#include "sim/activemap_oracle.h"
#include "sim/swarm.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::config::ReplicationMode;
using hast::meta::Role;
using hast::replication::Mutation;
using hast::sim::ActivemapOracle;
using hast::sim::ClusterOptions;
using hast::sim::SimCluster;

namespace {

constexpr hast::sim::NodeId kA = 0;
constexpr hast::sim::NodeId kB = 1;

ClusterOptions options_for(std::uint64_t seed, Mutation mutation) {
  ClusterOptions options =
      hast::test::pair_options(seed, ReplicationMode::memsync, hast::test::kBusyPace);
  options.mutation = mutation;
  return options;
}

// A pair under load through a secondary power loss and a primary kill (each restarted),
// with the oracle watching; the workload stops at 4 s.
void run_faults(SimCluster& cluster) {
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  world.at(Instant{} + 1s, "power loss", [&] { cluster.node(kB).power_loss(); });
  world.at(Instant{} + 1500ms, "restart", [&] { cluster.start(kB); });
  world.at(Instant{} + 1510ms, "role", [&] { cluster.set_role(kB, Role::secondary); });
  world.at(Instant{} + 2500ms, "kill", [&] { cluster.node(kA).kill(); });
  world.at(Instant{} + 2600ms, "restart", [&] { cluster.start(kA); });
  world.at(Instant{} + 2610ms, "role", [&] { cluster.set_role(kA, Role::primary); });
  world.at(Instant{} + 4s, "stop", [&] { cluster.workload().stop(); });
  world.run_for(6s);
}

std::string first_detail(const ActivemapOracle& oracle) {
  return oracle.violations().empty() ? "" : oracle.violations().front().detail;
}

// Writes `bytes` at `offset` of `id`'s device directly (no node involved): a rogue writer.
void rogue_write(SimCluster& cluster, hast::sim::NodeId id, std::uint64_t offset,
                 std::span<const std::byte> bytes, hast::Fua fua) {
  hast::sim::SimDisk& disk = cluster.disk(id);
  auto op = disk.begin_write(disk.register_owner(), offset, bytes, fua);
  REQUIRE(disk.complete_write(op).has_value());
}

}  // namespace

TEST_CASE("O3: a healthy pair keeps every differing extent marked through crashes",
          "[sim][oracle]") {
  SimCluster cluster(options_for(21, Mutation::none));
  ActivemapOracle oracle(cluster);
  run_faults(cluster);
  INFO(first_detail(oracle));
  CHECK(oracle.violations().empty());
  CHECK(oracle.applied() >= 50);  // periodic and around each death
  CHECK(cluster.workload().counters().completed_ok > 1000);
}

TEST_CASE("O3: skip_activemap_flush is caught", "[sim][oracle]") {
  SimCluster cluster(options_for(21, Mutation::skip_activemap_flush));
  ActivemapOracle oracle(cluster);
  run_faults(cluster);
  REQUIRE_FALSE(oracle.violations().empty());
  const auto& violation = oracle.violations().front();
  INFO(violation.detail);
  CHECK(violation.oracle == "O3");
  CHECK(violation.detail.find("marked in neither persisted activemap") != std::string::npos);
}

TEST_CASE("O3: the swarm reports skip_activemap_flush as O3 and default seeds report none",
          "[sim][oracle]") {
  for (auto mode : {ReplicationMode::fullsync, ReplicationMode::memsync, ReplicationMode::async}) {
    INFO(std::string(hast::config::replication_name(mode)));
    hast::sim::RunOptions options;
    options.seed = 4;
    options.mode = mode;
    auto clean = hast::sim::run_seed(options);
    for (const auto& violation : clean.violations)
      CHECK(violation.oracle != "O3");
    CHECK(clean.coverage["O3 checkpoints applied"] > 0);
    options.mutation = Mutation::skip_activemap_flush;
    auto mutated = hast::sim::run_seed(options);
    bool caught = false;
    for (const auto& violation : mutated.violations)
      caught = caught || violation.oracle == "O3";
    CHECK(caught);
  }
}

TEST_CASE("O3: bytes that differ outside both maps are found in every view", "[sim][oracle]") {
  // The pair idles after its first handshake (no workload): nothing is marked and both
  // data areas are blank. Then bytes appear on one disk only, as a rogue writer would put
  // them: in flight, in the device cache, or straight in the stable image.
  ClusterOptions options = options_for(5, Mutation::none);
  SimCluster cluster(options);
  ActivemapOracle oracle(cluster);
  cluster.start_pair(kA, kB, std::nullopt);
  cluster.world().run_for(500ms);
  REQUIRE(oracle.violations().empty());
  REQUIRE(oracle.applied() > 0);
  std::vector<std::byte> bytes(512, std::byte{0x5a});
  std::uint64_t data_start = cluster.disk(kA).size() - cluster.data_size();

  SECTION("in flight") {
    hast::sim::SimDisk& disk = cluster.disk(kB);
    disk.begin_write(disk.register_owner(), data_start + 4096, bytes, hast::Fua::no);
    oracle.checkpoint("test");
    REQUIRE(oracle.violations().size() == 1);
    CHECK(oracle.violations()[0].detail.find("hastb has in flight a write") != std::string::npos);
  }
  SECTION("in the device cache") {
    rogue_write(cluster, kB, data_start + 4096, bytes, hast::Fua::no);
    oracle.checkpoint("test");
    REQUIRE(oracle.violations().size() == 1);
    CHECK(oracle.violations()[0].detail.find("hastb has in its device cache") != std::string::npos);
  }
  SECTION("stable") {
    rogue_write(cluster, kA, data_start + 300 * 1024, bytes, hast::Fua::yes);
    oracle.checkpoint("test");
    REQUIRE(oracle.violations().size() == 1);
    const std::string& detail = oracle.violations()[0].detail;
    INFO(detail);
    CHECK(detail.find("extent 1 ") != std::string::npos);
    CHECK(detail.find("the stable copies differ: hasta holds garbage, hastb holds zero") !=
          std::string::npos);
  }
  SECTION("the same durable bytes on both disks are no difference") {
    rogue_write(cluster, kA, data_start + 4096, bytes, hast::Fua::yes);
    rogue_write(cluster, kB, data_start + 4096, bytes, hast::Fua::yes);
    oracle.checkpoint("test");
    CHECK(oracle.violations().empty());
  }
  SECTION("the same bytes, durable on one disk only, differ after a power loss") {
    rogue_write(cluster, kA, data_start + 4096, bytes, hast::Fua::yes);
    rogue_write(cluster, kB, data_start + 4096, bytes, hast::Fua::no);
    oracle.checkpoint("test");
    REQUIRE(oracle.violations().size() == 1);
    CHECK(oracle.violations()[0].detail.find("the stable copies differ") != std::string::npos);
  }
}

// Replication end to end in the simulator: two HastNodes, the workload on the primary, the
// register oracle on every read, and convergence (identical data areas) after the
// secondary is killed and comes back.
#include <catch2/catch.hpp>

#include "core/meta/metadata.h"
#include "sim/cluster.h"
#include "sim/sim_network.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::meta::Role;
using hast::replication::HookEvent;
using hast::sim::ClusterOptions;
using hast::sim::SimCluster;

using hast::test::converge;

namespace {

constexpr hast::sim::NodeId kA = 0;
constexpr hast::sim::NodeId kB = 1;

ClusterOptions options_for(std::uint64_t seed, hast::config::ReplicationMode mode) {
  return hast::test::pair_options(seed, mode,
                                  {.mean_interval = 200us,
                                   .request_bytes_max = 64 * 1024,
                                   .reconnect = 1s,
                                   .keepalive = 500ms});
}

}  // namespace

TEST_CASE("Replication: a pair replicates, survives a secondary crash and converges",
          "[sim][replication]") {
  for (auto mode : {hast::config::ReplicationMode::fullsync, hast::config::ReplicationMode::memsync,
                    hast::config::ReplicationMode::async}) {
    INFO(std::string(hast::config::replication_name(mode)));
    SimCluster cluster(options_for(7, mode));
    auto& world = cluster.world();
    cluster.start_pair(kA, kB, 100ms);
    world.at(Instant{} + 1500ms, "kill", [&] { cluster.node(kB).kill(); });
    world.at(Instant{} + 2500ms, "restart", [&] { cluster.start(kB); });
    world.at(Instant{} + 2600ms, "role", [&] { cluster.set_role(kB, Role::secondary); });
    world.at(Instant{} + 4s, "stop", [&] { cluster.workload().stop(); });
    world.run_for(4s);
    REQUIRE(converge(cluster, world.now() + 60s));
    CHECK(cluster.truth().violations().empty());
    for (const auto& violation : cluster.truth().violations())
      INFO(violation.detail);
    CHECK(cluster.data_identical());
    CHECK(cluster.workload().counters().completed_ok > 1000);
    CHECK(cluster.count_events(kA, HookEvent::connect) >= 2);
    CHECK(cluster.count_events(kA, HookEvent::disconnect) >= 1);
    CHECK(cluster.count_events(kA, HookEvent::syncdone) >= 1);
  }
}

TEST_CASE("Replication: failover after the primary dies keeps every acknowledged write",
          "[sim][replication]") {
  // fullsync and memsync acknowledge only what the secondary holds (or holds in memory and
  // will write while alive), so promoting it after the primary's death loses nothing.
  for (auto mode :
       {hast::config::ReplicationMode::fullsync, hast::config::ReplicationMode::memsync}) {
    INFO(std::string(hast::config::replication_name(mode)));
    SimCluster cluster(options_for(11, mode));
    auto& world = cluster.world();
    cluster.start_pair(kA, kB, 100ms);
    world.at(Instant{} + 1200ms, "kill primary", [&] { cluster.node(kA).kill(); });
    world.at(Instant{} + 1300ms, "promote", [&] { REQUIRE(cluster.set_role(kB, Role::primary)); });
    world.at(Instant{} + 2500ms, "restart", [&] { cluster.start(kA); });
    world.at(Instant{} + 2600ms, "demote", [&] { cluster.set_role(kA, Role::secondary); });
    world.at(Instant{} + 4s, "stop", [&] { cluster.workload().stop(); });
    world.run_for(4s);
    REQUIRE(converge(cluster, world.now() + 60s));
    for (const auto& violation : cluster.truth().violations())
      INFO(violation.detail);
    CHECK(cluster.truth().violations().empty());
    CHECK(cluster.data_identical());
    CHECK(cluster.count_events(kB, HookEvent::syncdone) >= 1);
    CHECK(cluster.count_events(kA, HookEvent::split_brain) == 0);
  }
}

TEST_CASE("Replication: a split-brain is detected and never merged", "[sim][replication]") {
  SimCluster cluster(options_for(13, hast::config::ReplicationMode::memsync));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 100ms);
  world.at(Instant{} + 1000ms, "partition", [&] { world.network().partition_both(kA, kB); });
  // The operator promotes B while A, cut off, still serves: both take writes.
  world.at(Instant{} + 1200ms, "promote", [&] { REQUIRE(cluster.set_role(kB, Role::primary)); });
  // (A's requests stall for the 1 s timeout, then it runs degraded.)
  world.at(Instant{} + 3000ms, "stop", [&] { cluster.workload().stop(); });
  world.at(Instant{} + 3100ms, "heal", [&] { world.network().heal_all(); });
  world.at(Instant{} + 3200ms, "demote", [&] { REQUIRE(cluster.set_role(kA, Role::secondary)); });
  world.run_for(10s);
  CHECK(cluster.workload().counters().completed_ok > 100);
  // Detected at every reconnection, reported once per episode on each node (defect 11).
  CHECK(cluster.count_events(kA, HookEvent::split_brain) == 1);
  CHECK(cluster.count_events(kB, HookEvent::split_brain) == 1);
  auto a = cluster.status(kA);
  auto b = cluster.status(kB);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->status == "-");  // never paired again
  CHECK(b->status == "degraded");
  CHECK(!cluster.data_identical());  // nothing was synced over either side
  std::uint64_t syncs_after_heal = 0;
  for (const auto& event : cluster.events()) {
    if (event.when > Instant{} + 3100ms && event.record.event == HookEvent::syncstart) {
      syncs_after_heal++;
    }
  }
  CHECK(syncs_after_heal == 0);
}

namespace {

// The secondary's disk fails every write for a while (so extents the primary writes stay
// dirty while the link is up), and meanwhile the primary's disk fails every read.
struct FallbackResult {
  std::size_t violations = 0;
  std::uint64_t remote_reads = 0;
};

FallbackResult run_read_fallback(hast::replication::Mutation mutation, bool secondary_fails) {
  auto options = options_for(17, hast::config::ReplicationMode::fullsync);
  options.mutation = mutation;
  options.workload.read_weight = 50;
  SimCluster cluster(options);
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  hast::sim::SimDiskFaults failing;
  failing.write_error_probability = 1;
  if (secondary_fails) {
    world.at(Instant{} + 500ms, "secondary writes fail",
             [&] { cluster.disk(kB).set_faults(failing); });
  }
  hast::sim::SimDiskFaults unreadable;
  unreadable.read_error_probability = 1;
  world.at(Instant{} + 1000ms, "primary reads fail",
           [&] { cluster.disk(kA).set_faults(unreadable); });
  world.at(Instant{} + 1500ms, "heal", [&] {
    cluster.disk(kA).faults_off();
    cluster.disk(kB).faults_off();
    cluster.workload().stop();
  });
  world.run_for(1500ms);
  FallbackResult result{cluster.truth().violations().size(),
                        cluster.status(kA)->primary.remote_reads};
  REQUIRE(converge(cluster, world.now() + 60s));
  CHECK(cluster.data_identical());
  return result;
}

}  // namespace

TEST_CASE("Replication: a failed local read goes to the secondary only when it is current",
          "[sim][replication]") {
  // A current secondary serves the reads the primary's disk fails.
  auto clean = run_read_fallback(hast::replication::Mutation::none, false);
  CHECK(clean.violations == 0);
  CHECK(clean.remote_reads > 100);
  // O9: a dirty extent's copy on the secondary is stale; serving it would be a lie.
  auto dirty = run_read_fallback(hast::replication::Mutation::none, true);
  CHECK(dirty.violations == 0);
  auto mutated = run_read_fallback(hast::replication::Mutation::read_fallback_when_stale, true);
  CHECK(mutated.violations > 0);
}

namespace {

// The primary loses power a moment after its first handshake wrote the pair's resuid,
// before anything else would have flushed its disk; it returns as primary and must pair
// with the same secondary again.
bool pairs_after_early_power_loss(hast::replication::Mutation mutation, std::uint64_t seed) {
  auto options = options_for(seed, hast::config::ReplicationMode::memsync);
  options.mutation = mutation;
  SimCluster cluster(options);
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, std::nullopt);
  REQUIRE(world.run_until([&] { return cluster.count_events(kA, HookEvent::connect) > 0; },
                          Instant{} + 5s));
  world.after(100us, "power loss", [&] { cluster.node(kA).power_loss(); });
  world.after(200ms, "restart", [&] { cluster.start(kA); });
  world.after(300ms, "role", [&] { cluster.set_role(kA, Role::primary); });
  world.run_for(400ms);
  return world.run_until([&] { return cluster.count_events(kA, HookEvent::connect) > 1; },
                         world.now() + 10s);
}

}  // namespace

TEST_CASE("Replication: metadata survives a power loss right after it is written",
          "[sim][replication]") {
  // Defect 5: the resuid is durable before the handshake goes on; without that
  // (skip_metadata_flush) the restarted primary invents a new one and is refused for good.
  // A power loss keeps a random part of the volatile cache, so the mutation shows on some
  // seeds only; the real code pairs on every one.
  int lost_pairing = 0;
  for (std::uint64_t seed = 19; seed < 31; seed++) {
    CHECK(pairs_after_early_power_loss(hast::replication::Mutation::none, seed));
    auto mutated = hast::replication::Mutation::skip_metadata_flush;
    lost_pairing += pairs_after_early_power_loss(mutated, seed) ? 0 : 1;
  }
  CHECK(lost_pairing > 0);
}

namespace {

hast::meta::Metadata metadata_of(SimCluster& cluster, hast::sim::NodeId id) {
  std::vector<std::byte> block(hast::meta::metadata_size);
  cluster.disk(id).peek_current(0, block);
  auto area = hast::meta::decode_area(block, "test");
  REQUIRE(area);
  return area->metadata;
}

}  // namespace

// Row 17: extents stale on the primary (a local write failed, the good copy went to the
// secondary) when the secondary's disk is swapped for an empty one. The empty disk is
// never a sync source: the primary keeps its own copies of those extents (and logs the
// loss) instead of reading or syncing them from the new disk.
TEST_CASE("Replication: a new empty secondary disk is never the source of stale extents",
          "[sim][replication]") {
  SimCluster cluster(options_for(11, hast::config::ReplicationMode::fullsync));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 100ms);
  world.at(Instant{} + 500ms, "local write errors", [&] {
    hast::sim::SimDiskFaults faults;
    faults.write_error_probability = 0.3;
    cluster.disk(kA).set_faults(faults);
  });
  // B goes before a sync can repair A's stale extents from it.
  world.at(Instant{} + 650ms, "kill B", [&] { cluster.node(kB).kill(); });
  world.at(Instant{} + 700ms, "faults off", [&] { cluster.disk(kA).faults_off(); });
  world.at(Instant{} + 1s, "stop", [&] { cluster.workload().stop(); });
  world.run_for(1500ms);
  auto before = metadata_of(cluster, kA);
  REQUIRE(!before.stale_extents.empty());
  // A's own bytes of its stale extents, which it must keep (the last extent is short).
  auto extent_bytes = [&](hast::meta::ExtentIndex extent) {
    std::uint64_t start = extent.value * before.extent_size_bytes;
    std::vector<std::byte> bytes(
        std::min<std::uint64_t>(before.extent_size_bytes, before.data_size_bytes - start));
    cluster.disk(kA).peek_current(before.local_offset_bytes + start, bytes);
    return bytes;
  };
  std::vector<std::vector<std::byte>> kept;
  for (auto extent : before.stale_extents)
    kept.push_back(extent_bytes(extent));
  cluster.disk(kB).replace_with_empty();
  cluster.start(kB, /*create=*/true);
  world.at(world.now() + 10ms, "role", [&] { cluster.set_role(kB, Role::secondary); });
  REQUIRE(converge(cluster, world.now() + 60s));
  CHECK(metadata_of(cluster, kA).stale_extents.empty());
  CHECK(cluster.data_identical());
  for (std::size_t i = 0; i < kept.size(); i++) {
    CHECK(extent_bytes(before.stale_extents[i]) == kept[i]);
  }
}

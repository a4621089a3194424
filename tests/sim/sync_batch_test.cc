// The synchronisation finishes copied extents in batches (core/replication/primary_sync.cc):
// one local flush, one remote FLUSH and one map write serve every extent copied while the
// previous batch was being finished. These tests hold the properties the batching must
// keep: far fewer flushes than extents; nothing cleaned unless both flushes succeeded
// (either node's failing flush keeps every extent marked); and progress kept per extent
// across an interruption (what a batch cleaned before the cut is not copied again).
#include <catch2/catch.hpp>

#include "sim/cluster.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::meta::Role;
using hast::sim::ClusterOptions;
using hast::sim::NodeId;
using hast::sim::SimCluster;

namespace {

constexpr NodeId kA = 0;
constexpr NodeId kB = 1;

ClusterOptions batch_options(std::uint64_t seed, std::uint64_t disk_bytes) {
  ClusterOptions options;
  options.seed = seed;
  options.mode = hast::config::ReplicationMode::fullsync;
  options.disk_bytes = disk_bytes;
  options.extent_size = 1 << 20;
  options.workload.mean_interval = 50us;
  options.workload.request_bytes_max = 256 * 1024;
  options.timing.reconnect = 200ms;
  options.timing.keepalive = 500ms;
  return options;
}

// Pairs the nodes, lets the secondary miss 1.5 s of writes (about every extent dirty) and
// brings it back with no writes running: at return the primary is about to sync, or syncing.
void dirty_then_return(SimCluster& cluster) {
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 100ms);
  world.at(Instant{} + 200ms, "kill", [&cluster] { cluster.node(kB).kill(); });
  world.at(Instant{} + 1700ms, "stop", [&cluster] { cluster.workload().stop(); });
  world.at(Instant{} + 2s, "restart", [&cluster] { cluster.start(kB); });
  world.at(Instant{} + 2100ms, "role", [&cluster] { cluster.set_role(kB, Role::secondary); });
  world.run_for(2100ms);
}

bool sync_done(SimCluster& cluster) {
  auto a = cluster.status(kA);
  return a && a->status == "complete" && a->sync_extents == 0 && !a->sync.running &&
         a->sync.synced_bytes > 0;
}

}  // namespace

TEST_CASE("Sync batches: one flush on each node serves many extents", "[sim][sync]") {
  for (std::uint64_t seed = 1; seed <= 3; seed++) {
    INFO("seed " << seed);
    SimCluster cluster(batch_options(seed, 64 << 20));
    dirty_then_return(cluster);
    const std::uint64_t a_flushes = cluster.disk(kA).stats().flushes;
    const std::uint64_t b_flushes = cluster.disk(kB).stats().flushes;
    REQUIRE(
        cluster.world().run_until([&] { return sync_done(cluster); }, cluster.world().now() + 60s));
    auto status = cluster.status(kA);
    REQUIRE(status);
    const std::uint64_t extents = status->sync.total_bytes / status->extent_size;
    const std::uint64_t a_used = cluster.disk(kA).stats().flushes - a_flushes;
    const std::uint64_t b_used = cluster.disk(kB).stats().flushes - b_flushes;
    INFO(extents << " extents synced with " << a_used << " flushes on the primary, " << b_used
                 << " on the secondary");
    REQUIRE(extents >= 32);
    // Finishing extent by extent would take one flush per extent on each node.
    CHECK(a_used >= 1);
    CHECK(b_used >= 1);
    CHECK(4 * a_used <= extents);
    CHECK(4 * b_used <= extents);
    CHECK(cluster.data_identical());
  }
}

// A flush that fails on either node leaves the whole batch marked: the pass ends
// interrupted with every extent still to sync, and once the disk heals the sync completes.
TEST_CASE("Sync batches: nothing is cleaned while a node's flushes fail", "[sim][sync]") {
  for (NodeId failing : {kA, kB}) {
    INFO("flushes fail on node " << failing);
    SimCluster cluster(batch_options(7, 32 << 20));
    auto& world = cluster.world();
    hast::sim::SimDiskFaults healthy = cluster.disk(failing).faults();
    hast::sim::SimDiskFaults broken = healthy;
    broken.flush_error_probability = 1;
    world.at(Instant{} + 1900ms, "break flushes",
             [&cluster, failing, broken] { cluster.disk(failing).set_faults(broken); });
    dirty_then_return(cluster);
    REQUIRE(world.run_until([&] { return cluster.status(kA)->sync.running; }, world.now() + 5s));
    const std::uint64_t marked = cluster.status(kA)->sync_extents;
    const std::uint64_t syncs_before = cluster.status(kA)->primary.syncs_completed;
    REQUIRE(marked >= 16);
    std::uint64_t interrupted = cluster.count_events(kA, hast::replication::HookEvent::syncintr);
    // Several passes copy everything and fail to finish it.
    REQUIRE(world.run_until(
        [&] {
          return cluster.count_events(kA, hast::replication::HookEvent::syncintr) >=
                 interrupted + 3;
        },
        world.now() + 20s));
    auto status = cluster.status(kA);
    REQUIRE(status);
    CHECK(status->sync_extents == marked);
    CHECK(status->primary.syncs_completed == syncs_before);
    cluster.disk(failing).set_faults(healthy);
    REQUIRE(world.run_until([&] { return sync_done(cluster); }, world.now() + 60s));
    CHECK(cluster.data_identical());
  }
}

// The target dies three quarters into the sync: extents cleaned before are not copied
// again, so the next pass has at most what was still marked at the cut.
TEST_CASE("Sync batches: progress is kept per extent across an interruption", "[sim][sync]") {
  for (std::uint64_t seed = 1; seed <= 3; seed++) {
    INFO("seed " << seed);
    SimCluster cluster(batch_options(seed, 128 << 20));
    auto& world = cluster.world();
    dirty_then_return(cluster);
    REQUIRE(world.run_until([&] { return cluster.status(kA)->sync.running; }, world.now() + 5s));
    const std::uint64_t marked = cluster.status(kA)->sync_extents;
    const std::uint64_t total = cluster.status(kA)->sync.total_bytes;
    REQUIRE(marked >= 64);
    REQUIRE(world.run_until([&] { return 4 * cluster.status(kA)->sync.synced_bytes >= 3 * total; },
                            world.now() + 30s));
    const std::uint64_t extent_size = cluster.status(kA)->extent_size;
    std::uint64_t left_at_cut = 0;
    world.at(world.now(), "cut", [&] {
      left_at_cut = cluster.status(kA)->sync_extents;
      cluster.node(kB).kill();
    });
    world.at(world.now() + 300ms, "restart", [&cluster] { cluster.start(kB); });
    world.at(world.now() + 310ms, "role", [&cluster] { cluster.set_role(kB, Role::secondary); });
    std::uint64_t started = cluster.count_events(kA, hast::replication::HookEvent::syncstart);
    world.run_for(1ms);
    INFO(marked << " extents marked at the start, " << left_at_cut << " at the cut");
    CHECK(left_at_cut < marked);
    CHECK(left_at_cut > 0);
    REQUIRE(world.run_until(
        [&] { return cluster.count_events(kA, hast::replication::HookEvent::syncstart) > started; },
        world.now() + 10s));
    auto resumed = cluster.status(kA);
    REQUIRE(resumed);
    CHECK(resumed->sync.total_bytes <= left_at_cut * extent_size);
    REQUIRE(world.run_until([&] { return sync_done(cluster); }, world.now() + 60s));
    CHECK(cluster.data_identical());
  }
}

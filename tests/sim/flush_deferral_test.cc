// Remote FLUSH batching (core/replication/primary.cc, remote_flusher_loop): a FLUSH lets
// acknowledged writes' extents become clean (defect 9), so one is sent only when it could
// clean something. Writes whose extents all stay in the keep-dirty set wait (bounded: one
// second); a write to an extent that left the set makes the batch due at once. Checks:
// a hot set sends next to no FLUSHes, a cold one many; the wait is bounded (the primary's
// dirty count falls to zero within about a second of the last write).
#include <catch2/catch.hpp>

#include "sim/cluster.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::sim::ClusterOptions;
using hast::sim::NodeId;
using hast::sim::SimCluster;

namespace {

constexpr NodeId kA = 0;
constexpr NodeId kB = 1;

// Writes only, no client FLUSH or FUA: every remote FLUSH is the flusher's.
ClusterOptions write_options(std::uint64_t seed, std::uint64_t disk_bytes, std::uint32_t extent,
                             std::uint32_t keep_dirty) {
  ClusterOptions options;
  options.seed = seed;
  options.mode = hast::config::ReplicationMode::fullsync;
  options.disk_bytes = disk_bytes;
  options.extent_size = extent;
  options.keep_dirty = keep_dirty;
  options.workload.read_weight = 10;
  options.workload.flush_weight = 0;
  options.workload.fua_probability = 0;
  options.workload.mean_interval = 500us;
  return options;
}

// Secondary disk flushes during 900 ms of writes, after the pair has settled in.
std::uint64_t flushes_while_writing(SimCluster& cluster) {
  cluster.start_pair(kA, kB, 100ms);
  cluster.world().run_for(600ms);
  std::uint64_t before = cluster.disk(kB).stats().flushes;
  cluster.world().run_for(900ms);
  return cluster.disk(kB).stats().flushes - before;
}

}  // namespace

TEST_CASE("Flush deferral: writes within the keep-dirty set wait, others do not",
          "[sim][flush]") {
  for (std::uint64_t seed = 1; seed <= 3; seed++) {
    INFO("seed " << seed);
    // 16 extents, all kept dirty: nothing a FLUSH could clean.
    SimCluster hot(write_options(seed, 16 << 20, 1 << 20, 16));
    std::uint64_t hot_flushes = flushes_while_writing(hot);
    // 256 extents, 4 kept: written extents leave the set within a few writes.
    SimCluster cold(write_options(seed, 64 << 20, 256 << 10, 4));
    std::uint64_t cold_flushes = flushes_while_writing(cold);
    INFO(hot_flushes << " remote FLUSHes for the hot set, " << cold_flushes << " for the cold");
    CHECK(hot_flushes <= 2);  // the one-second bound, at most once or twice
    CHECK(cold_flushes >= 50);
    hot.workload().stop();
    hot.world().run_for(200ms);
    CHECK(hot.data_identical());
  }
}

TEST_CASE("Flush deferral: waiting writes are settled within about a second", "[sim][flush]") {
  SimCluster cluster(write_options(5, 16 << 20, 1 << 20, 16));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 100ms);
  world.run_for(800ms);
  cluster.workload().stop();
  world.run_for(50ms);  // the last writes complete
  REQUIRE(cluster.status(kA)->dirty_bytes > 0);  // acknowledged, waiting for a FLUSH
  Instant stopped = world.now();
  REQUIRE(world.run_until([&] { return cluster.status(kA)->dirty_bytes == 0; },
                          stopped + 3s));
  CHECK(world.now() - stopped <= 1100ms);
}

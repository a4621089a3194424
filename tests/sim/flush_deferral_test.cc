// Remote FLUSH batching (core/replication/primary.cc, remote_flusher_loop): a FLUSH lets
// acknowledged writes' extents become clean (defect 9), so one is sent only when it could
// clean something. Writes whose extents all stay in the keep-dirty set wait (bounded: one
// second); a write to an extent that left the set makes the batch due at once. Checks:
// a hot set sends next to no FLUSHes, a cold one many; the wait is bounded (the primary's
// dirty count falls to zero within about a second of the last write); a write that was
// kept at one check makes the batch due once its extent has left the set.
#include <algorithm>
#include <memory>

#include <catch2/catch.hpp>

#include "core/io/byte_buffer.h"
#include "sim/cluster.h"
#include "tests/support/node_pair.h"
#include "tests/support/queued_frontend.h"

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

TEST_CASE("Flush deferral: a write kept at one check is due once its extent leaves the set",
          "[sim][flush]") {
  // The pair's resource: 256 KiB extents, 8 kept dirty (tests/support/node_pair.h). Lone
  // writes to extents 0..7 all stay kept: no FLUSH. A write to extent 8 pushes extent 0
  // out of the set, so the first write's extent can become clean: a FLUSH goes at once,
  // though that write was found kept at every earlier check (the flusher remembers
  // which writes it found kept until the set loses an extent).
  constexpr std::uint64_t kExtent = 256 * 1024;
  constexpr std::uint64_t kKept = 8;
  std::uint64_t answered = 0;
  hast::test::QueuedFrontend* frontend = nullptr;
  hast::test::NodePair pair(
      41,
      {.replay_command = "flush_deferral_test",
       .config = hast::test::pair_config("fullsync"),
       .timing = {.timeout = 2s, .keepalive = 5s, .reconnect = 200ms}},
      [&](NodeId, hast::NodeIo& io, hast::meta::Metadata*) {
        return std::make_unique<hast::test::QueuedFrontendParts>(
            io, 4,
            [&answered](const hast::BlockRequest&, const hast::Result<void>& result) {
              HAST_ASSERT(result.has_value());
              answered++;
            },
            frontend);
      });
  auto& world = pair.world();
  pair.start_secondary_then_primary();
  REQUIRE(pair.run_until(
      [&] {
        auto a = pair.node(kA)->status("shared");
        return frontend != nullptr && a && a->status == "complete" && !a->sync.running &&
               a->dirty_bytes == 0;
      },
      30s));
  auto write = [&](std::uint64_t extent) {
    std::uint64_t before = answered;
    hast::ByteBuffer buffer(4096, std::byte{0x5a});
    hast::BlockRequest request{extent + 1, hast::BlockOp::write, extent * kExtent, 4096,
                               hast::Fua::no, buffer.span()};
    REQUIRE(frontend->offer(request));
    REQUIRE(world.run_until([&] { return answered > before; }, world.now() + 2s));
    world.run_for(5ms);  // the flusher has looked at the waiting writes
  };
  auto flushes = [&] { return world.node(kB).disk().stats().flushes; };
  world.run_for(1100ms);  // any FLUSH of the set-up is done
  std::uint64_t at_start = flushes();
  Instant started = world.now();
  for (std::uint64_t extent = 0; extent < kKept; extent++) write(extent);
  REQUIRE(world.now() - started < 500ms);  // well within the one-second bound
  CHECK(flushes() == at_start);
  write(kKept);
  CHECK(flushes() > at_start);
}

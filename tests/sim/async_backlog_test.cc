// DESIGN.md §1.2 defect 10 and fault-model.md §6.6 rows 7 and 14 in async: the primary never
// waits for a slow peer, even before the timeout. A write's client-visible life ends with
// its local leg; its remote leg goes to a bounded replication backlog and gives back the
// client's request slot and its range lock (write_ack.h, range_lock.h); when the backlog is
// full the send is dropped, the extent stays dirty and the resync, while still connected,
// sends it. Judged by O10's strict reading (sim/latency_oracle.h) and by the latencies in
// the ground truth: each test issues far more than request_count_max writes within one
// timeout, so a primary that kept the request slots (or the range locks) until the remote
// legs ended would make its clients wait for the peer.
#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include "core/replication/primary.h"
#include "sim/cluster.h"
#include "sim/latency_oracle.h"
#include "sim/sim_network.h"
#include "tests/support/sim_fixtures.h"

using namespace std::chrono_literals;
using hast::Duration;
using hast::Instant;
using hast::config::ReplicationMode;
using hast::replication::HookEvent;
using hast::replication::Mutation;
using hast::replication::request_count_max;
using hast::sim::ClusterOptions;
using hast::sim::LatencyOracle;
using hast::sim::LatencyOracleOptions;
using hast::sim::Outcome;
using hast::sim::SimCluster;

using hast::test::converge;

namespace {

constexpr hast::sim::NodeId kA = 0;
constexpr hast::sim::NodeId kB = 1;

// Plain async writes (no FUA, no discards or write-zeroes: those wait for both legs in
// every mode) about every millisecond: thousands within one timeout.
ClusterOptions busy_async(std::uint64_t seed, int timeout_seconds) {
  constexpr hast::test::PairPace pace{
      .mean_interval = 1ms, .request_bytes_max = 4096, .reconnect = 200ms, .keepalive = 200ms};
  ClusterOptions options = hast::test::pair_options(seed, ReplicationMode::async, pace);
  options.workload.read_weight = 0;
  options.workload.flush_weight = 0;
  options.workload.discard_weight = 0;
  options.workload.write_zeroes_weight = 0;
  options.workload.fua_probability = 0;
  options.timeout_seconds = timeout_seconds;
  return options;
}

// O10 with no exception for async writes (not even the documented ones: no sync runs and
// no disk fails while these tests judge).
LatencyOracleOptions strict_latency(const ClusterOptions& cluster) {
  LatencyOracleOptions options;
  options.mode = cluster.mode;
  options.timeout = std::chrono::seconds(cluster.timeout_seconds);
  options.keepalive = cluster.timing.keepalive;
  options.strict_async = true;
  return options;
}

std::string first_detail(const LatencyOracle& oracle) {
  return oracle.violations().empty() ? "" : oracle.violations().front().detail;
}

struct Latencies {
  std::uint64_t completed = 0;  // writes issued in the window and completed
  Duration worst{0};
};

// The writes of node `node` issued in [from, until) that completed.
Latencies latencies(SimCluster& cluster, Instant from, Instant until) {
  Latencies result;
  const auto& truth = cluster.truth();
  for (hast::sim::WriteId id = 1; id <= truth.write_count(); id++) {
    const auto& write = truth.write(id);
    if (write.node != kA || write.issue < from || write.issue >= until) continue;
    if (write.outcome != Outcome::ok && write.outcome != Outcome::failed) continue;
    result.completed++;
    result.worst = std::max(result.worst, write.end - write.issue);
  }
  return result;
}

}  // namespace

TEST_CASE("Async: a silent secondary never holds a write, however many are in flight",
          "[sim][async]") {
  // The secondary loses power at 1 s (its connections half-open: no reset comes) and stays
  // off; the link drops at about 1 s + timeout. Writes issued meanwhile, thousands of them,
  // must each take about as long as the disk.
  ClusterOptions options = busy_async(41, 3);
  SimCluster cluster(options);
  LatencyOracle strict(cluster, strict_latency(options));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  world.at(Instant{} + 1s, "power loss", [&] { cluster.node(kB).power_loss(); });
  world.at(Instant{} + 6s, "stop", [&] { cluster.workload().stop(); });
  world.run_for(7s);
  strict.finish();
  INFO(first_detail(strict));
  CHECK(strict.violations().empty());
  Latencies silent = latencies(cluster, Instant{} + 1s, Instant{} + 4s);
  CHECK(silent.completed > 4 * request_count_max);
  CHECK(silent.worst < 50ms);
  CHECK(cluster.truth().violations().empty());
}

TEST_CASE("Async: a clogged link drops sends past the backlog and resyncs them while connected",
          "[sim][async]") {
  // The link to the secondary is clogged for 2 s, less than the timeout: the primary stays
  // connected. The writes of those 2 s overflow the replication backlog; the sends it drops
  // leave their extents dirty, and the resync copies them once the clog ends, with no
  // disconnect. Then both disks hold the same bytes.
  ClusterOptions options = busy_async(43, 5);
  options.timing.keepalive = 2s;  // the secondary drops a primary silent for 2 × keepalive
  SimCluster cluster(options);
  LatencyOracle strict(cluster, strict_latency(options));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  REQUIRE(world.run_until(
      [&] { return cluster.status(kA) && cluster.status(kA)->status == "complete"; },
      Instant{} + 1s));
  world.at(Instant{} + 1s, "clog", [&] { world.network().clog(kA, kB, 2s); });
  std::uint64_t backlog_seen = 0;  // status shows the backlog (hastctl list: send queue)
  world.at(Instant{} + 2s, "status", [&] { backlog_seen = cluster.status(kA)->async_backlog; });
  world.at(Instant{} + 4s, "stop", [&] { cluster.workload().stop(); });
  world.run_for(4s - (world.now() - Instant{}));
  REQUIRE(converge(cluster, world.now() + 30s));
  strict.finish();
  INFO(first_detail(strict));
  CHECK(strict.violations().empty());
  Latencies clogged = latencies(cluster, Instant{} + 1s, Instant{} + 3s);
  CHECK(clogged.completed > 4 * request_count_max);
  CHECK(clogged.worst < 50ms);
  auto status = cluster.status(kA);
  REQUIRE(status.has_value());
  CHECK(status->primary.async_dropped > 0);
  CHECK(backlog_seen > 0);
  CHECK(status->async_backlog == 0);
  CHECK(status->primary.syncs_completed >= 1);
  CHECK(cluster.count_events(kA, HookEvent::disconnect) == 0);
  CHECK(cluster.data_identical());
  CHECK(cluster.truth().violations().empty());
}

TEST_CASE("Async: a write over a range whose earlier write's remote leg is pending does not wait",
          "[sim][async]") {
  // A small device and large writes: most writes overlap one issued shortly before, whose
  // remote leg waits for the silent secondary. The later write is serialised behind the
  // earlier one's local leg only (defect 7: its remote send queues behind the earlier one's
  // on the one ordered connection, and the secondary applies them in arrival order).
  ClusterOptions options = busy_async(47, 3);
  options.disk_bytes = 1 << 20;
  options.workload.request_bytes_max = 64 * 1024;
  SimCluster cluster(options);
  LatencyOracle strict(cluster, strict_latency(options));
  auto& world = cluster.world();
  cluster.start_pair(kA, kB, 50ms);
  world.at(Instant{} + 1s, "power loss", [&] { cluster.node(kB).power_loss(); });
  world.at(Instant{} + 3500ms, "stop", [&] { cluster.workload().stop(); });
  world.run_for(4s);
  strict.finish();
  INFO(first_detail(strict));
  CHECK(strict.violations().empty());
  // Overlaps are the rule here: count writes issued while an overlapping one was pending
  // remotely (issued less than a timeout before, while the secondary was silent).
  const auto& truth = cluster.truth();
  std::uint64_t overlapping = 0;
  for (hast::sim::WriteId id = 2; id <= truth.write_count(); id++) {
    const auto& write = truth.write(id);
    if (write.issue < Instant{} + 1100ms || write.node != kA) continue;
    const auto& earlier = truth.write(id - 1);
    overlapping += earlier.offset < write.offset + write.length &&
                   write.offset < earlier.offset + earlier.length;
  }
  CHECK(overlapping > 50);
  Latencies silent = latencies(cluster, Instant{} + 1s, Instant{} + 3500ms);
  CHECK(silent.worst < 50ms);
}

TEST_CASE("Async: O10 catches a primary that keeps the slot and lock until the remote leg ended",
          "[sim][async][oracle]") {
  // Mutation async_holds_slot_and_lock undoes the fix: with a silent secondary, writes wait
  // for a request slot (many small writes) or behind an overlapping write's remote leg (a
  // small device, large writes). O10 as the swarm runs it (not strict) reports both.
  for (bool overlapping : {false, true}) {
    INFO((overlapping ? "overlapping writes" : "many small writes"));
    ClusterOptions options = busy_async(overlapping ? 47 : 41, 3);
    if (overlapping) {
      options.disk_bytes = 1 << 20;
      options.workload.request_bytes_max = 64 * 1024;
    }
    options.mutation = Mutation::async_holds_slot_and_lock;
    SimCluster cluster(options);
    LatencyOracleOptions latency = strict_latency(options);
    latency.strict_async = false;
    LatencyOracle oracle(cluster, latency);
    auto& world = cluster.world();
    cluster.start_pair(kA, kB, 50ms);
    world.at(Instant{} + 1s, "power loss", [&] { cluster.node(kB).power_loss(); });
    world.at(Instant{} + 3500ms, "stop", [&] { cluster.workload().stop(); });
    world.run_for(4s);
    oracle.finish();
    REQUIRE_FALSE(oracle.violations().empty());
    INFO(first_detail(oracle));
    CHECK(oracle.violations().front().oracle == "O10");
    CHECK(oracle.violations().front().detail.find("async") != std::string::npos);
  }
}

// Set-up shared by the simulator tests (tests/sim/): the options of a two-node SimCluster
// under load, a hastd-like pair of nodes (hasta on 10.0.0.1, hastb on 10.0.0.2) with the
// same small hast.conf, the do-nothing frontends and event sink such programs pass to a
// HastNode, and a bench of one node on one SimDisk that runs a program per phase.
//
// Only set-up lives here: what a test checks stays in the test. Everything is inline (the
// sim tests are one executable; nothing here needs a .cc of its own).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "core/replication/events.h"
#include "core/replication/node.h"
#include "sim/cluster.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/world.h"

namespace hast::test {

// ---- A SimCluster pair under load ----

// Runs `cluster` until both nodes report `complete` with nothing dirty or syncing and the
// workload idle, or until `limit`; true when they did.
inline bool converge(sim::SimCluster& cluster, Instant limit) {
  return cluster.world().run_until(
      [&] {
        auto a = cluster.status(0);
        auto b = cluster.status(1);
        return a && b && a->status == "complete" && b->status == "complete" &&
               a->dirty_bytes == 0 && b->dirty_bytes == 0 && !a->sync.running &&
               !b->sync.running && cluster.workload().idle();
      },
      limit);
}

// How a test pair is driven: the workload's pace and how soon a lost link is noticed.
struct PairPace {
  Duration mean_interval;           // between two workload requests, on average
  std::uint64_t request_bytes_max;  // the largest workload request
  Duration reconnect;
  Duration keepalive;
};

// A busy pair that notices a lost link within a fraction of a second.
inline constexpr PairPace kBusyPace{.mean_interval = std::chrono::microseconds(500),
                                    .request_bytes_max = 32 * 1024,
                                    .reconnect = std::chrono::milliseconds(200),
                                    .keepalive = std::chrono::milliseconds(200)};

// A two-node cluster's options: `seed`, `mode` and `pace`, hast.conf `timeout 1`, and the
// nodes' logs echoed to stderr when HAST_ECHO is set. Everything else is ClusterOptions'
// default; the caller sets the rest (a mutation, a disk) on the result.
inline sim::ClusterOptions pair_options(std::uint64_t seed, config::ReplicationMode mode,
                                        const PairPace& pace) {
  sim::ClusterOptions options;
  options.seed = seed;
  options.mode = mode;
  options.workload.mean_interval = pace.mean_interval;
  options.workload.request_bytes_max = pace.request_bytes_max;
  options.timing.reconnect = pace.reconnect;
  options.timing.keepalive = pace.keepalive;
  options.timeout_seconds = 1;
  options.echo_logs = std::getenv("HAST_ECHO") != nullptr;
  return options;
}

// ---- A pair of hastd-like node programs on a World ----

inline constexpr std::string_view kPairNames[] = {"hasta", "hastb"};
inline constexpr std::string_view kPairHosts[] = {"10.0.0.1", "10.0.0.2"};

// The pair's hast.conf: one resource `shared` on /dev/sim, `timeout 2`, each node the
// other's remote.
inline constexpr std::string_view kPairConfig =
    "listen tcp://0.0.0.0\n"
    "timeout 2\n"
    "resource shared {\n"
    "  local /dev/sim\n"
    "  on hasta {\n    remote tcp://10.0.0.2\n  }\n"
    "  on hastb {\n    remote tcp://10.0.0.1\n  }\n"
    "}\n";

// Adds hasta (node 0) and hastb (node 1) to `world`, each on its own 16 MiB disk with
// 1 MiB fiber stacks, running `program(id, io)` when started.
inline void add_pair_nodes(sim::World& world,
                           const std::function<void(sim::NodeId, NodeIo&)>& program) {
  for (sim::NodeId id = 0; id < 2; id++) {
    auto& disk = world.add_disk(std::string(kPairNames[id]) + "-disk",
                                sim::SimDiskOptions{.size_bytes = 16 << 20});
    auto& node = world.add_node(sim::SimNodeOptions{.name = std::string(kPairNames[id]),
                                                    .hosts = {std::string(kPairHosts[id])},
                                                    .stack_size = 1 << 20});
    node.attach_disk(disk);
    node.set_program([program, id](NodeIo& io) { program(id, io); });
  }
}

// Kills the pair's nodes that still run. A fixture whose programs refer to its members
// calls it in its destructor, before those members go.
inline void kill_pair_nodes(sim::World& world) {
  for (sim::NodeId id = 0; id < 2; id++) {
    if (world.node(id).running()) world.node(id).kill();
  }
}

// A FrontendFactory that serves no clients (the test drives the node itself).
class NoFrontends final : public replication::FrontendFactory {
 public:
  Result<std::unique_ptr<BlockFrontend>> open(const config::ResourceConfig&,
                                              std::uint64_t) override {
    return std::unique_ptr<BlockFrontend>();
  }
  void close(BlockFrontend&) override {}
};

// An EventSink that drops every event (no hooks).
class NoEvents final : public replication::EventSink {
 public:
  void on_event(const replication::EventRecord&) override {}
};

// ---- One node on one disk ----

// One node on one SimDisk; each phase runs a program to its end, power_loss() cuts the
// node's power between phases (the disk's volatile cache is lost).
struct NodeBench {
  NodeBench(std::uint64_t seed, const sim::SimDiskOptions& disk_options) : world(seed) {
    disk = &world.add_disk("d", disk_options);
    node = &world.add_node(sim::SimNodeOptions{.name = "n", .hosts = {"10.0.0.1"}});
    node->attach_disk(*disk);
  }

  void phase(const std::function<void(NodeIo&)>& body) {
    bool done = false;
    node->set_program([&](NodeIo& io) {
      body(io);
      done = true;
    });
    if (!node->running()) node->start();
    REQUIRE(world.run_until([&] { return done; }, world.now() + std::chrono::seconds(60)));
    node->kill();
  }

  void power_loss() {
    node->set_program([](NodeIo&) {});
    node->start();
    node->power_loss();
  }

  sim::World world;
  sim::SimDisk* disk = nullptr;
  sim::SimNode* node = nullptr;
};

}  // namespace hast::test

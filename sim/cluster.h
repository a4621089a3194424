// SimCluster: two simulated hastd nodes running the real core (HastNode) on SimDisks over
// SimNetwork, a client workload on whichever node is primary, an operator, and the ground
// truth. The building block of replication tests, scenarios and hast-sim.
//
// Model: both nodes run the same hast.conf (the walk-through's shape: one resource
// `shared`, `on hasta { remote tcp://10.0.0.2 }`, `on hastb { remote tcp://10.0.0.1 }`).
// A node's program creates the resource's metadata when asked (`hastctl create`), starts
// a HastNode and then executes the operator's commands from an inbox; a restarted node
// comes back in role init, as hastd does, until the operator sets its role again. Hook
// events are recorded with their time and node.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/fiber/channel.h"
#include "core/replication/node.h"
#include "sim/ground_truth.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/workload.h"
#include "sim/world.h"

namespace hast::sim {

struct ClusterOptions {
  std::uint64_t seed = 1;
  config::ReplicationMode mode = config::ReplicationMode::memsync;
  std::uint64_t disk_bytes = 16 << 20;
  std::uint32_t extent_size = 256 * 1024;
  std::uint32_t keep_dirty = 8;
  // hast.conf `timeout` (seconds): how long a silent peer stalls I/O before the link drops.
  int timeout_seconds = 20;
  replication::Timing timing;  // keepalive and reconnect (timeout comes from the config)
  WorkloadOptions workload;
  SimDiskOptions disk;  // size_bytes is set from disk_bytes
  bool echo_logs = false;
  replication::Mutation mutation = replication::Mutation::none;
  // The hast.conf both nodes run. Empty: the built-in one above (one resource `shared`,
  // `replication` = mode, `timeout` = timeout_seconds); given (scenarios), it must have
  // one resource named `resource_name` with an `on` section per node name, and `mode` and
  // `timeout_seconds` must repeat what it says (the oracles read them).
  std::string config_text;
  std::array<std::string, 2> node_names{"hasta", "hastb"};
  std::array<std::string, 2> node_hosts{"10.0.0.1", "10.0.0.2"};  // what the peer dials
  std::string resource_name = "shared";
  std::array<Duration, 2> clock_offsets{};  // each node's clock ahead of world time
  bool keep_trace = false;     // World keeps a readable line per event
  std::string replay_command;  // shown on a failed assertion; empty: "hast-sim run --seed N"
};

struct RecordedEvent {
  Instant when;
  NodeId node;
  replication::EventRecord record;
};

class SimCluster {
 public:
  // The resource name of the built-in configuration (ClusterOptions::resource_name).
  static constexpr std::string_view resource = "shared";

  explicit SimCluster(const ClusterOptions& options);
  ~SimCluster();
  SimCluster(const SimCluster&) = delete;
  SimCluster& operator=(const SimCluster&) = delete;

  World& world() { return world_; }
  GroundTruth& truth() { return truth_; }
  Workload& workload() { return *workload_; }
  SimNode& node(NodeId id) { return world_.node(id); }
  SimDisk& disk(NodeId id) { return *disks_[id]; }
  const ClusterOptions& options() const { return options_; }
  const std::vector<RecordedEvent>& events() const { return events_; }

  // ---- Operator (world context: callable from world events) ----
  // Starts a node; with `create`, it first runs `hastctl create` on its disk.
  // A `hastctl create` that fails (an injected disk fault) is logged and run again every
  // create_retry_pause until it succeeds, as an operator would; hastd starts after it, and
  // a role set meanwhile (set_role) is applied then.
  void start(NodeId id, bool create = false);
  static constexpr Duration create_retry_pause = std::chrono::milliseconds(10);
  // The walk-through's start: both nodes created and started, `secondary` made secondary
  // and `primary` primary at 10 ms, the workload started at `workload_at` (if given).
  void start_pair(NodeId primary, NodeId secondary, std::optional<Duration> workload_at);
  // Queues a role change on a running node; false when the node is down. While the node's
  // `hastctl create` is still being run again, the last role set is kept for its hastd.
  bool set_role(NodeId id, meta::Role role);
  // `hastctl role init; hastctl create; hastctl role <role>` on a running node: its data
  // is discarded and the next handshake makes it a sync target (split-brain recovery).
  bool recreate(NodeId id, meta::Role role);
  // The node's resource status, or nullopt when the node is down.
  std::optional<replication::ResourceStatus> status(NodeId id);

  // ---- Checks ----
  // The data areas of both disks hold the same bytes (pristine view, cache included).
  bool data_identical();
  // Data-area offset of the first byte that differs between the two disks' current
  // contents, or nullopt when they are identical.
  std::optional<std::uint64_t> first_difference();
  std::uint64_t data_size() const { return data_size_; }
  // Where the data area starts on each disk (both nodes share one layout).
  std::uint64_t local_offset() const { return local_offset_; }
  // What one sector of a node's data area holds now (the pristine view, cache included).
  SectorValue peek_sector(NodeId id, std::uint64_t data_offset);
  std::uint64_t count_events(NodeId id, replication::HookEvent event) const;
  // When `id` last reported `event`, or nullopt when it never did.
  std::optional<Instant> last_event(NodeId id, replication::HookEvent event) const;
  // When `id` was last started (its present incarnation's start), or nullopt.
  std::optional<Instant> started_at(NodeId id) const { return started_at_[id]; }
  // How many `hastctl create` runs failed and were run again (both nodes).
  std::uint64_t create_failures() const { return create_failures_; }

  // ---- Disk swaps (row 17) ----
  // `id`'s disk is swapped for another resource's disk: the same layout and resource
  // name, a valid metadata block with resuid `resuid` (non-zero, not the pair's), counters
  // (5, 3), previous role secondary, a clean map, and its own data (sectors of 0xf0 bytes
  // every 64 KiB: garbage to the ground truth). The node must be down with nothing in
  // flight, and its disk must hold valid metadata. On start it keeps that disk.
  void swap_in_foreign_disk(NodeId id, std::uint64_t resuid);

 private:
  struct Command {
    meta::Role role;
    bool create = false;  // `hastctl create` first (the node must be in role init)
  };
  class Frontends;
  class Recorder;
  void program(NodeId id, NodeIo& io);
  bool create_resource(NodeId id, NodeIo& io);

  ClusterOptions options_;
  World world_;
  GroundTruth truth_;
  std::unique_ptr<Workload> workload_;
  config::Config config_;
  std::vector<SimDisk*> disks_;
  std::vector<bool> create_pending_;
  std::vector<fiber::Channel<Command>*> inboxes_;
  std::vector<replication::HastNode*> running_;
  std::vector<RecordedEvent> events_;
  std::array<std::optional<Instant>, 2> started_at_{};
  std::array<std::optional<meta::Role>, 2> pending_role_{};  // set while create retries
  std::uint64_t create_failures_ = 0;
  std::uint64_t data_size_ = 0;
  std::uint64_t local_offset_ = 0;
};

}  // namespace hast::sim

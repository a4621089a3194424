// SimNode: one simulated machine with its hastd-like program.
//
// Model: a node has a name, host addresses on the simulated network and a disk device
// (owned by the world; it survives the node). start() begins an *incarnation*: a fresh
// scheduler, clock view, random stream, log, disk handle and network endpoint, and a main
// fiber running the node's program. What ends an incarnation:
// - kill(): the process dies. Its I/O handles are marked dead first (pending completions
//   are dropped, the peers' connections reset), then its fibers are unwound; the disk
//   keeps everything it acknowledged, volatile cache included (the OS survives).
// - power_loss(): kill() plus the device's volatile cache is lost (applied in part, torn
//   or dropped); connections go half-open (no reset reaches the peers).
// pause(d) freezes the node for `d` (a zombie): no fiber runs and its events wait, while
// the network keeps buffering bytes to it; then it carries on as if nothing happened.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/fiber/scheduler.h"
#include "core/io/node_io.h"
#include "sim/world.h"

namespace hast::sim {

class SimDisk;
class SimDiskHandle;
class SimEndpoint;
class SimLog;
class SimClock;
class PoolStackAllocator;
class SimRandom;
class SchedulerTrace;

// How an incarnation ended; passed to the resources it owned.
enum class DeathKind : std::uint8_t { kill, power_loss };

// Something an incarnation owns that must stop completing work when the node dies
// (disk handles, network endpoints). Called before the node's fibers are unwound.
class NodeResource {
 public:
  virtual ~NodeResource() = default;
  virtual void mark_dead(DeathKind kind) = 0;
};

struct SimNodeOptions {
  std::string name;
  // Host names or IP literals this node answers to on the simulated network.
  std::vector<std::string> hosts;
  // Offset of this node's monotonic clock from world time.
  Duration clock_offset{0};
  // Stack size of every fiber on this node.
  std::size_t stack_size = 256 * 1024;
  // Run runnable fibers in a seeded random order instead of FIFO.
  bool random_ready_order = true;
};

class SimNode {
 public:
  using Program = std::function<void(NodeIo& io)>;

  SimNode(World& world, NodeId id, SimNodeOptions options);
  ~SimNode();
  SimNode(const SimNode&) = delete;
  SimNode& operator=(const SimNode&) = delete;

  NodeId id() const { return id_; }
  const std::string& name() const { return options_.name; }
  const std::vector<std::string>& hosts() const { return options_.hosts; }
  World& world() const { return world_; }

  // The disk device this node uses from its next start on (swapping disks between
  // incarnations models a replaced or emptied disk).
  void attach_disk(SimDisk& disk);
  SimDisk& disk() const;

  // The program the main fiber runs at every start.
  void set_program(Program program);

  void start();
  void kill();
  void power_loss();
  void pause(Duration duration);
  void restart();

  bool running() const { return incarnation_ != nullptr; }
  bool paused() const;
  Instant paused_until() const { return paused_until_; }
  // Counts starts; events bound to an older incarnation are dropped.
  std::uint64_t incarnation() const { return incarnation_count_; }

  // Valid while running.
  NodeIo& io();
  fiber::Scheduler& scheduler();
  Clock& clock();

  // The world runs this after every event: runnable fibers, then re-arm the timer.
  void run_ready();

  // Converts between this node's clock and world time.
  Instant to_world(Instant local) const { return local - options_.clock_offset; }
  Instant to_local(Instant world_time) const { return world_time + options_.clock_offset; }

  // Registered by the incarnation's resources; told first when the node dies.
  void add_resource(NodeResource& resource);

 private:
  struct Incarnation;
  void end_incarnation(DeathKind kind);

  World& world_;
  NodeId id_;
  SimNodeOptions options_;
  SimDisk* disk_ = nullptr;
  Program program_;
  std::unique_ptr<Incarnation> incarnation_;
  std::uint64_t incarnation_count_ = 0;
  Instant paused_until_{};
  std::optional<Instant> armed_timer_;
};

}  // namespace hast::sim

// SimNode: incarnations, death and pauses.
#include "sim/node.h"

#include <utility>

#include <fmt/format.h>

#include "sim/sim_disk.h"
#include "sim/sim_io.h"
#include "sim/sim_network.h"

namespace hast::sim {

// Everything one start of the node owns. Destroyed in reverse order of declaration,
// after the scheduler has unwound every fiber.
struct SimNode::Incarnation {
  Incarnation(World& world, SimNode& node, SimDisk& disk, std::uint64_t number)
      : clock(world, node.options_.clock_offset),
        random(world, derive_seed(world.seed(), fmt::format("node/{}/{}", node.name(), number)),
               node.id()),
        log(world, node.name()),
        stacks(node.options_.stack_size),
        scheduler_random(
            derive_seed(world.seed(), fmt::format("sched/{}/{}", node.name(), number))),
        scheduler(
            clock, stacks, &scheduler_random,
            fiber::SchedulerOptions{node.options_.random_ready_order ? fiber::ReadyOrder::random
                                                                     : fiber::ReadyOrder::fifo}),
        trace(world, node.id()),
        disk_handle(world, node, disk),
        endpoint(world.network(), node),
        io{disk_handle, endpoint, clock, random, log, stacks, scheduler} {
    scheduler.set_observer(&trace);
  }

  SimClock clock;
  SimRandom random;
  SimLog log;
  PoolStackAllocator stacks;
  Prng scheduler_random;
  fiber::Scheduler scheduler;
  SchedulerTrace trace;
  SimDiskHandle disk_handle;
  SimEndpoint endpoint;
  NodeIo io;
  std::vector<NodeResource*> resources;
};

SimNode::SimNode(World& world, NodeId id, SimNodeOptions options)
    : world_(world), id_(id), options_(std::move(options)) {
  HAST_ASSERT(!options_.name.empty());
  HAST_ASSERT(options_.stack_size >= 64 * 1024);
}

SimNode::~SimNode() {
  HAST_ASSERT_MSG(!running(), "node {} destroyed while running", name());
}

void SimNode::attach_disk(SimDisk& disk) {
  disk_ = &disk;
}

SimDisk& SimNode::disk() const {
  HAST_ASSERT_MSG(disk_ != nullptr, "node {} has no disk", name());
  return *disk_;
}

void SimNode::set_program(Program program) {
  program_ = std::move(program);
}

void SimNode::start() {
  HAST_ASSERT_MSG(!running(), "node {} already running", name());
  HAST_ASSERT_MSG(program_ != nullptr, "node {} has no program", name());
  incarnation_count_++;
  world_.trace("node.start", id_, incarnation_count_);
  incarnation_ = std::make_unique<Incarnation>(world_, *this, disk(), incarnation_count_);
  add_resource(incarnation_->disk_handle);
  add_resource(incarnation_->endpoint);
  armed_timer_.reset();
  paused_until_ = Instant{};
  NodeIo& node_io = incarnation_->io;
  auto spawned = incarnation_->scheduler.spawn("main", [this, &node_io] { program_(node_io); });
  HAST_ASSERT(spawned.has_value());
}

void SimNode::kill() {
  end_incarnation(DeathKind::kill);
}

void SimNode::power_loss() {
  end_incarnation(DeathKind::power_loss);
}

void SimNode::restart() {
  if (running()) kill();
  start();
}

void SimNode::end_incarnation(DeathKind kind) {
  HAST_ASSERT_MSG(running(), "node {} is not running", name());
  world_.trace("node.death", id_, static_cast<std::uint64_t>(kind), incarnation_count_);
  world_.notify_death(id_, kind, true);
  // Order matters: handles first, so that nothing the unwinding fibers touch can
  // complete on the dead node's behalf; then the fibers; then the objects.
  for (NodeResource* resource : incarnation_->resources)
    resource->mark_dead(kind);
  incarnation_->scheduler.shutdown();
  incarnation_.reset();
  armed_timer_.reset();
  // Bump the count so events bound to the dead incarnation are recognised as stale even
  // if the node restarts at the same instant.
  incarnation_count_++;
  world_.notify_death(id_, kind, false);
}

void SimNode::pause(Duration duration) {
  HAST_ASSERT(running());
  HAST_ASSERT(duration.count() > 0);
  paused_until_ = std::max(paused_until_, world_.now() + duration);
  world_.trace("node.pause", id_, static_cast<std::uint64_t>(duration.count()));
  // An event at the end of the pause makes the world run the node's fibers again.
  world_.at_node(id_, paused_until_, "node.resume", [] {});
  world_.notify_pause(id_, paused_until_);
}

bool SimNode::paused() const {
  return running() && world_.now() < paused_until_;
}

NodeIo& SimNode::io() {
  HAST_ASSERT_MSG(running(), "node {} is not running", name());
  return incarnation_->io;
}

fiber::Scheduler& SimNode::scheduler() {
  HAST_ASSERT_MSG(running(), "node {} is not running", name());
  return incarnation_->scheduler;
}

Clock& SimNode::clock() {
  HAST_ASSERT_MSG(running(), "node {} is not running", name());
  return incarnation_->clock;
}

void SimNode::run_ready() {
  HAST_ASSERT(running());
  HAST_ASSERT(!paused());
  Deadline next = incarnation_->scheduler.run_ready();
  if (!next) return;
  Instant world_when = to_world(*next);
  bool stale = !armed_timer_ || *armed_timer_ <= world_.now();
  if (stale || world_when < *armed_timer_) {
    armed_timer_ = world_when;
    world_.arm_node_timer(id_, world_when);
  }
}

void SimNode::add_resource(NodeResource& resource) {
  HAST_ASSERT(running());
  incarnation_->resources.push_back(&resource);
}

}  // namespace hast::sim

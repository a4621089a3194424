// World: event queue, virtual time, node driving and the trace hash.
#include "sim/world.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <mutex>

#include <fmt/format.h>

#include "core/fiber/scheduler.h"
#include "sim/node.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"

namespace hast::sim {
namespace {

// A simulation allocates and frees request-sized buffers (up to 1 MiB) at a high rate.
// glibc's defaults serve those from mmap or give the heap top back to the kernel after
// each burst, so every buffer costs page faults and zeroing (a fifth of a run's time
// under bench/sim_bench). Keep them on the heap instead. Process-wide and harmless to
// the real daemon, which never constructs a World; no effect on what a run does.
void tune_allocator_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  });
}

}  // namespace

void TraceHash::mix_bytes(std::string_view bytes) {
  mix(fnv1a(bytes));
}

std::string TraceHash::hex() const {
  return fmt::format("{:016x}{:016x}", high_, low_);
}

std::string format_instant(Instant when) {
  auto ns = when.time_since_epoch().count();
  return fmt::format("{}.{:06}s", ns / 1'000'000'000, (ns % 1'000'000'000) / 1000);
}

World::World(std::uint64_t seed, WorldOptions options)
    : seed_(seed), options_(std::move(options)), tie_breaks_(derive_seed(seed, "tie-break")) {
  tune_allocator_once();
  network_ = std::make_unique<SimNetwork>(*this);
  previous_context_ = set_assert_context(this);
  hash_.mix(seed);
}

World::~World() {
  // Kill every node first: their fibers hold references into disks and the network.
  for (auto& node : nodes_) {
    if (node->running()) node->kill();
  }
  nodes_.clear();
  network_.reset();
  disks_.clear();
  set_assert_context(previous_context_);
}

Prng& World::stream(std::string_view name) {
  auto found = streams_.find(name);
  if (found != streams_.end()) return *found->second;
  auto inserted =
      streams_.emplace(std::string(name), std::make_unique<Prng>(derive_seed(seed_, name)));
  return *inserted.first->second;
}

SimDisk& World::add_disk(std::string name, const SimDiskOptions& options) {
  disks_.push_back(std::make_unique<SimDisk>(*this, std::move(name), options));
  return *disks_.back();
}

SimNode& World::add_node(const SimNodeOptions& options) {
  HAST_ASSERT_MSG(find_node(options.name) == nullptr, "node {} exists", options.name);
  HAST_ASSERT(!options.name.empty());
  auto id = static_cast<NodeId>(nodes_.size());
  nodes_.push_back(std::make_unique<SimNode>(*this, id, options));
  return *nodes_.back();
}

SimNode& World::node(NodeId id) {
  HAST_ASSERT(id < nodes_.size());
  return *nodes_[id];
}

SimNode* World::find_node(std::string_view name) {
  for (auto& node : nodes_) {
    if (node->name() == name) return node.get();
  }
  return nullptr;
}

EventId World::at(Instant when, std::string_view kind, std::function<void()> action) {
  return push(when, std::nullopt, kind, std::move(action));
}

EventId World::after(Duration delay, std::string_view kind, std::function<void()> action) {
  HAST_ASSERT(delay.count() >= 0);
  return push(now_ + delay, std::nullopt, kind, std::move(action));
}

EventId World::at_node(NodeId node, Instant when, std::string_view kind,
                       std::function<void()> action) {
  HAST_ASSERT(node < nodes_.size());
  return push(when, node, kind, std::move(action));
}

EventId World::push(Instant when, std::optional<NodeId> node, std::string_view kind,
                    std::function<void()> action) {
  HAST_ASSERT_MSG(when >= now_, "event {} scheduled in the past", kind);
  HAST_ASSERT(action != nullptr);
  EventId id = next_event_id_++;
  Key key{when, tie_breaks_.next_u64(), id};
  Event event{when, std::get<1>(key), id, node, 0, std::string(kind), std::move(action)};
  if (node) event.incarnation = nodes_[*node]->incarnation();
  queue_.emplace(key, std::move(event));
  keys_.emplace(id, key);
  return id;
}

void World::cancel(EventId id) {
  auto found = keys_.find(id);
  if (found == keys_.end()) return;
  queue_.erase(found->second);
  keys_.erase(found);
}

void World::arm_node_timer(NodeId node, Instant world_when) {
  // The timer event itself does nothing: after every event the world runs each node's
  // runnable fibers, and run_ready() fires the timers that are due.
  at_node(node, std::max(world_when, now_), "timer", [] {});
}

void World::run_nodes() {
  // Loop until no node has a runnable fiber: a fiber of one node may wake a fiber of a
  // node that already had its turn in this pass.
  bool again = true;
  while (again) {
    again = false;
    for (auto& node : nodes_) {
      if (node->running() && !node->paused()) node->run_ready();
    }
    for (auto& node : nodes_) {
      bool runnable = node->running() && !node->paused() && node->scheduler().runnable_count() > 0;
      again = again || runnable;
    }
  }
}

bool World::step() {
  try {
    run_nodes();
  } catch (const fiber::FiberFailure& failure) {
    std::fprintf(stderr, "fiber failure: %s\n  %s\n", failure.what(), describe().c_str());
    throw;
  }
  if (queue_.empty()) return false;
  auto first = queue_.begin();
  Event event = std::move(first->second);
  keys_.erase(event.id);
  queue_.erase(first);
  HAST_ASSERT(event.when >= now_);
  now_ = event.when;
  event_count_++;
  if (deliver(event)) event.action();
  for (WorldObserver* observer : observers_)
    observer->after_step();
  return true;
}

void World::add_observer(WorldObserver& observer) {
  HAST_ASSERT(std::find(observers_.begin(), observers_.end(), &observer) == observers_.end());
  observers_.push_back(&observer);
}

void World::remove_observer(WorldObserver& observer) {
  std::erase(observers_, &observer);
}

void World::notify_death(NodeId node, DeathKind kind, bool before) {
  HAST_ASSERT(node < nodes_.size());
  for (WorldObserver* observer : observers_) {
    before ? observer->before_death(node, kind) : observer->after_death(node, kind);
  }
}

void World::notify_pause(NodeId node, Instant until) {
  HAST_ASSERT(node < nodes_.size());
  HAST_ASSERT(until >= now_);
  for (WorldObserver* observer : observers_)
    observer->on_pause(node, until);
}

// Decides whether a node-bound event still applies: dropped for a dead incarnation,
// deferred while the node is paused.
bool World::deliver(Event& event) {
  trace(event.kind, event.node.value_or(UINT32_MAX), event.id);
  if (!event.node) return true;
  SimNode& target = *nodes_[*event.node];
  if (!target.running() || target.incarnation() != event.incarnation) return false;
  if (target.paused()) {
    Key key{target.paused_until(), tie_breaks_.next_u64(), event.id};
    event.when = target.paused_until();
    keys_.emplace(event.id, key);
    queue_.emplace(key, std::move(event));
    return false;
  }
  return true;
}

bool World::run_until(const std::function<bool()>& done, Instant limit) {
  while (!done()) {
    run_nodes();
    if (done()) return true;
    if (queue_.empty() || queue_.begin()->second.when > limit) {
      if (limit > now_) now_ = limit;
      return false;
    }
    step();
  }
  return true;
}

void World::run_for(Duration duration) {
  Instant limit = now_ + duration;
  bool reached = run_until([] { return false; }, limit);
  HAST_ASSERT(!reached);
}

void World::trace(std::string_view kind, std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  hash_.mix(static_cast<std::uint64_t>(now_.time_since_epoch().count()));
  hash_.mix_bytes(kind);
  hash_.mix(a);
  hash_.mix(b);
  hash_.mix(c);
  if (options_.keep_trace) {
    trace_lines_.push_back(fmt::format("{} {} {} {} {}", format_instant(now_), kind, a, b, c));
  }
}

void World::trace_text(std::string_view kind, std::string_view text) {
  hash_.mix_bytes(kind);
  hash_.mix_bytes(text);
  if (options_.keep_trace) trace_lines_.push_back(std::string(text));
}

std::string World::summary() const {
  return fmt::format("seed={} events={} time={} hash={}", seed_, event_count_, format_instant(now_),
                     hash_.hex());
}

std::string World::describe() const {
  std::string text =
      fmt::format("simulation seed={} event={} time={}", seed_, event_count_, format_instant(now_));
  if (!options_.replay_command.empty())
    text += fmt::format("\n  replay: {}", options_.replay_command);
  return text;
}

}  // namespace hast::sim

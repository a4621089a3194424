// World: event queue, virtual time, node driving and the trace hash.
#include "sim/world.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
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

std::uint64_t TraceHash::hash_bytes(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL ^ bytes.size();
  std::size_t at = 0;
  for (; at + 8 <= bytes.size(); at += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes.data() + at, 8);
    hash = fold(hash ^ word, 0x100000001b3ULL * 0x9e3779b97f4a7c15ULL, 29);
  }
  if (at < bytes.size()) {
    std::uint64_t word = 0;  // the last 1..7 bytes, little-endian
    for (std::size_t i = at; i < bytes.size(); i++)
      word |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * (i - at));
    hash = fold(hash ^ word, 0x100000001b3ULL * 0x9e3779b97f4a7c15ULL, 29);
  }
  return mix64(hash);
}

std::string TraceHash::hex() const {
  return fmt::format("{:016x}{:016x}", mix64(high_ ^ low_), mix64(low_));
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

EventId World::at(Instant when, std::string_view kind, EventAction action) {
  return push(when, std::nullopt, kind, std::move(action));
}

EventId World::after(Duration delay, std::string_view kind, EventAction action) {
  HAST_ASSERT(delay.count() >= 0);
  return push(now_ + delay, std::nullopt, kind, std::move(action));
}

EventId World::at_node(NodeId node, Instant when, std::string_view kind, EventAction action) {
  HAST_ASSERT(node < nodes_.size());
  return push(when, node, kind, std::move(action));
}

EventId World::push(Instant when, std::optional<NodeId> node, std::string_view kind,
                    EventAction&& action) {
  HAST_ASSERT_MSG(when >= now_, "event {} scheduled in the past", kind);
  HAST_ASSERT(action);
  EventId id = next_event_id_++;
  std::uint32_t slot = 0;
  if (free_events_.empty()) {
    slot = static_cast<std::uint32_t>(events_.size());
    events_.emplace_back();
  } else {
    slot = free_events_.back();
    free_events_.pop_back();
  }
  Event& event = events_[slot];
  event.node = node;
  event.incarnation = node ? nodes_[*node]->incarnation() : 0;
  event.kind_hash = TraceHash::hash_bytes(kind);
  if (options_.keep_trace) event.kind.assign(kind);
  event.action = std::move(action);
  queue_push(QueueEntry{when, tie_breaks_.next_u64(), id, slot});
  return id;
}

void World::release(std::uint32_t slot) {
  HAST_ASSERT(slot < events_.size());
  events_[slot].action.reset();
  free_events_.push_back(slot);
}

void World::queue_push(const QueueEntry& entry) {
  queue_.push_back(entry);
  sift_up(queue_.size() - 1);
}

World::QueueEntry World::queue_pop() {
  HAST_ASSERT(!queue_.empty());
  QueueEntry first = queue_.front();
  queue_.front() = queue_.back();
  queue_.pop_back();
  if (!queue_.empty()) sift_down(0);
  return first;
}

void World::queue_remove(std::size_t index) {
  HAST_ASSERT(index < queue_.size());
  queue_[index] = queue_.back();
  queue_.pop_back();
  if (index == queue_.size()) return;
  sift_up(index);
  sift_down(index);
}

void World::sift_up(std::size_t index) {
  QueueEntry moving = queue_[index];
  while (index > 0) {
    std::size_t parent = (index - 1) / 2;
    if (!before(moving, queue_[parent])) break;
    queue_[index] = queue_[parent];
    index = parent;
  }
  queue_[index] = moving;
}

void World::sift_down(std::size_t index) {
  const std::size_t size = queue_.size();
  QueueEntry moving = queue_[index];
  while (true) {
    std::size_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && before(queue_[child + 1], queue_[child])) child++;
    if (!before(queue_[child], moving)) break;
    queue_[index] = queue_[child];
    index = child;
  }
  queue_[index] = moving;
}

void World::cancel(EventId id) {
  // Rare (a stopped workload, a reset connection): a scan of the pending events.
  for (std::size_t i = 0; i < queue_.size(); i++) {
    if (queue_[i].id != id) continue;
    release(queue_[i].slot);
    queue_remove(i);
    return;
  }
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
  const QueueEntry entry = queue_pop();
  HAST_ASSERT(entry.when >= now_);
  now_ = entry.when;
  event_count_++;
  if (deliver(entry, events_[entry.slot])) {
    // The action runs in its slot (slots do not move, and this one is reused only after
    // its release), so scheduling events from it is fine.
    current_event_ = entry.id;
    events_[entry.slot].action();
    current_event_ = 0;
    release(entry.slot);
  }
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

// Decides whether a node-bound event still applies: dropped for a dead incarnation (its
// slot released), deferred while the node is paused (queued again, same slot).
bool World::deliver(const QueueEntry& entry, Event& event) {
  trace_hashed(event.kind_hash, event.kind, event.node.value_or(UINT32_MAX), entry.id, 0);
  if (!event.node) return true;
  SimNode& target = *nodes_[*event.node];
  if (!target.running() || target.incarnation() != event.incarnation) {
    release(entry.slot);
    return false;
  }
  if (target.paused()) {
    queue_push(QueueEntry{target.paused_until(), tie_breaks_.next_u64(), entry.id, entry.slot});
    return false;
  }
  return true;
}

bool World::run_until(const std::function<bool()>& done, Instant limit) {
  while (!done()) {
    run_nodes();
    if (done()) return true;
    if (queue_.empty() || queue_.front().when > limit) {
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
  trace_hashed(TraceHash::hash_bytes(kind), kind, a, b, c);
}

// trace() with TraceHash::hash_bytes(kind) computed by the caller; `kind` is only read for the
// readable trace (WorldOptions::keep_trace).
void World::trace_hashed(std::uint64_t kind_hash, std::string_view kind, std::uint64_t a,
                         std::uint64_t b, std::uint64_t c) {
  hash_.mix(static_cast<std::uint64_t>(now_.time_since_epoch().count()));
  hash_.mix(kind_hash);
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

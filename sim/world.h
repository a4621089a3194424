// World: the deterministic simulated universe the core runs in.
//
// Model (DESIGN.md §6, reference/fault-model.md §3.1): one seed controls everything.
// Virtual time advances only by jumping to the next event of one queue ordered by
// (time, tie-break, sequence), where the tie-break is drawn from the seed, so events at the
// same instant run in a seeded order. Every node has its own fiber scheduler; after each
// event the world runs every runnable fiber of every live, unpaused node before taking
// the next event (this loop is the simulated poller). Nothing reads the host's clock.
//
// Every scheduling decision, event, I/O and random draw is mixed into a trace hash; two
// runs of one seed must give the same hash (oracle O11), and every run prints its seed
// and hash. A failure (assertion, escaped exception) prints the seed, the event number
// and the replay command.
//
// Ownership: the world owns its disks (devices outlive node incarnations), its network
// fabric and its nodes. Destroying the world kills every node first.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/assert.h"
#include "core/io/clock.h"
#include "core/prng.h"
#include "sim/event_action.h"

namespace hast::sim {

class SimDisk;
struct SimDiskOptions;
class SimNetwork;
struct SimNetworkOptions;
class SimNode;
struct SimNodeOptions;

using NodeId = std::uint32_t;
using EventId = std::uint64_t;
enum class DeathKind : std::uint8_t;  // sim/node.h

// Something that watches a run without taking part in it: the online oracles. Its calls
// come from the world, outside every fiber. An observer must not schedule events, draw
// randomness, trace, or change what it looks at, so a run behaves (and hashes) the same
// with or without observers.
class WorldObserver {
 public:
  virtual ~WorldObserver() = default;
  // After every step: the fibers that were runnable, then one event, ran.
  virtual void after_step() {}
  // A node's incarnation is about to end: its disk is as the crash finds it.
  virtual void before_death(NodeId, DeathKind) {}
  // The incarnation ended: writes in flight settled, the cache lost on a power loss.
  virtual void after_death(NodeId, DeathKind) {}
  // A node froze from now until `until` (a pause; a zombie when longer than a timeout).
  virtual void on_pause(NodeId, Instant /*until*/) {}
};

// A rolling 128-bit hash over the run (oracle O11): two lanes, each folding in one 64-bit
// word per step with a multiply and a shift. Each step is a bijection of the lane for a
// fixed word and an injection of the word for a fixed lane, so two runs whose traces
// differ in one word always hash differently; the printed value is the lanes finalised.
// A run mixes about fifty words per client operation: the step is kept short on purpose.
class TraceHash {
 public:
  void mix(std::uint64_t value) {
    low_ = fold(low_ ^ value, 0x9e3779b97f4a7c15ULL, 29);
    high_ = fold(high_ + value, 0xff51afd7ed558ccdULL, 31);
  }
  void mix_bytes(std::string_view bytes) { mix(hash_bytes(bytes)); }
  // A 64-bit hash of a string, eight bytes a step (trace kinds, log lines, names).
  static std::uint64_t hash_bytes(std::string_view bytes);
  std::string hex() const;
  friend bool operator==(const TraceHash&, const TraceHash&) = default;

 private:
  static std::uint64_t fold(std::uint64_t x, std::uint64_t factor, int shift) {
    x *= factor;
    return x ^ (x >> shift);
  }
  // The finaliser of SplitMix64/Murmur3, for printing.
  static std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::uint64_t low_ = 0x6a09e667f3bcc908ULL;
  std::uint64_t high_ = 0xbb67ae8584caa73bULL;
};

struct WorldOptions {
  // Shown on failure: the command that replays this run ("hast-sim --seed 7", ...).
  std::string replay_command;
  // Keep a readable line per event (for --trace and for debugging a failing seed).
  bool keep_trace = false;
  // Print node log lines to stdout as they happen.
  bool echo_logs = false;
};

class World final : public AssertContext {
 public:
  explicit World(std::uint64_t seed, WorldOptions options = {});
  ~World() override;
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  std::uint64_t seed() const { return seed_; }
  Instant now() const { return now_; }
  std::uint64_t event_count() const { return event_count_; }

  // A random stream of this run, independent of every other stream ("net", "disk/a").
  Prng& stream(std::string_view name);

  // ---- Building the world ----
  SimDisk& add_disk(std::string name, const SimDiskOptions& options);
  SimNode& add_node(const SimNodeOptions& options);
  SimNetwork& network() { return *network_; }
  SimNode& node(NodeId id);
  SimNode* find_node(std::string_view name);
  std::size_t node_count() const { return nodes_.size(); }

  // ---- Events ----
  // Runs `action` at world time `when` (not before now). `kind` names it in the trace.
  EventId at(Instant when, std::string_view kind, EventAction action);
  EventId after(Duration delay, std::string_view kind, EventAction action);
  // Like at(), but bound to the node's current incarnation: dropped if the node dies
  // first, and deferred to the end of a pause while the node is paused.
  EventId at_node(NodeId node, Instant when, std::string_view kind, EventAction action);
  // Removes a pending event; unknown or past ids are ignored.
  void cancel(EventId id);
  std::size_t pending_events() const { return queue_.size(); }
  // The id of the event whose action is running, 0 outside every action.
  EventId current_event() const { return current_event_; }

  // ---- Running ----
  // Runs runnable fibers of every node, then one event. False when nothing is left.
  bool step();
  // Steps until `done()` holds (checked before every step), returning true, or until
  // the next event lies beyond `limit` or none is left, returning false (time is then
  // advanced to `limit` when an event was beyond it).
  bool run_until(const std::function<bool()>& done, Instant limit);
  void run_for(Duration duration);

  // ---- Trace ----
  // Mixes an observation into the trace hash (and the readable trace when kept).
  void trace(std::string_view kind, std::uint64_t a = 0, std::uint64_t b = 0, std::uint64_t c = 0);
  void trace_text(std::string_view kind, std::string_view text);
  const TraceHash& hash() const { return hash_; }
  const std::vector<std::string>& trace_lines() const { return trace_lines_; }
  const WorldOptions& options() const { return options_; }

  // "seed=… events=… hash=…", printed at the end of every run.
  std::string summary() const;
  std::string describe() const override;

  // Called by nodes when their scheduler's earliest timer changes.
  void arm_node_timer(NodeId node, Instant world_when);

  // ---- Observers (online oracles) ----
  // `observer` must stay alive until removed; removing an unknown one is a no-op.
  void add_observer(WorldObserver& observer);
  void remove_observer(WorldObserver& observer);
  // Called by nodes: a death begins (`before`) or ended, a pause began.
  void notify_death(NodeId node, DeathKind kind, bool before);
  void notify_pause(NodeId node, Instant until);

 private:
  // A pending event's payload, in a slot of `events_` (recycled through `free_events_`).
  struct Event {
    std::optional<NodeId> node;
    std::uint64_t incarnation = 0;
    std::uint64_t kind_hash = 0;  // TraceHash::hash_bytes(kind): what the trace mixes
    std::string kind;             // kept only with WorldOptions::keep_trace
    EventAction action;
  };
  // The queue orders events by (when, tie, id): a binary min-heap of these (ids are
  // unique, so the order is total and the same as any other structure's).
  struct QueueEntry {
    Instant when;
    std::uint64_t tie;
    EventId id;
    std::uint32_t slot;
  };
  static bool before(const QueueEntry& a, const QueueEntry& b) {
    if (a.when != b.when) return a.when < b.when;
    if (a.tie != b.tie) return a.tie < b.tie;
    return a.id < b.id;
  }

  EventId push(Instant when, std::optional<NodeId> node, std::string_view kind,
               EventAction&& action);
  void queue_push(const QueueEntry& entry);
  QueueEntry queue_pop();
  void queue_remove(std::size_t index);
  void sift_up(std::size_t index);
  void sift_down(std::size_t index);
  void release(std::uint32_t slot);
  void run_nodes();
  bool deliver(const QueueEntry& entry, Event& event);
  void trace_hashed(std::uint64_t kind_hash, std::string_view kind, std::uint64_t a,
                    std::uint64_t b, std::uint64_t c);

  std::uint64_t seed_;
  WorldOptions options_;
  Instant now_{};
  std::uint64_t event_count_ = 0;
  EventId next_event_id_ = 1;
  Prng tie_breaks_;
  std::map<std::string, std::unique_ptr<Prng>, std::less<>> streams_;
  std::vector<QueueEntry> queue_;  // a binary heap by before()
  std::deque<Event> events_;       // a deque: an action runs in its slot while others are added
  std::vector<std::uint32_t> free_events_;
  EventId current_event_ = 0;
  std::vector<std::unique_ptr<SimDisk>> disks_;
  std::unique_ptr<SimNetwork> network_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  TraceHash hash_;
  std::vector<std::string> trace_lines_;
  std::vector<WorldObserver*> observers_;
  AssertContext* previous_context_ = nullptr;
};

std::string format_instant(Instant when);

}  // namespace hast::sim

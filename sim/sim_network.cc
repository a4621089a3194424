// SimNetwork, fabric half: knobs, latency, segments and their delivery, paths (partition,
// clog, heal), resets, half-open sides, waiting and retirement. The socket half (listen,
// accept, connect, send, recv, node death) is sim_network_socket.cc. Model and invariants:
// sim/sim_network.h; records: sim/sim_network_state.h.
#include "sim/sim_network.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "sim/byte_pool.h"
#include "sim/sim_network_state.h"

namespace hast::sim {
namespace {

Duration scaled(Duration base, double factor) {
  HAST_ASSERT(factor >= 0.0);
  HAST_ASSERT(base.count() >= 0);
  return Duration(static_cast<Duration::rep>(static_cast<double>(base.count()) * factor));
}

// Picks one of `choices` uniformly.
template <typename T, std::size_t N>
T pick(Random& random, const T (&choices)[N]) {
  static_assert(N > 0);
  return choices[uniform(random, 0, N - 1)];
}

bool side_selected(Side side, int index) {
  HAST_ASSERT(index == kClient || index == kServer);
  if (side == Side::both) return true;
  return (side == Side::client) == (index == kClient);
}

}  // namespace

SimNetworkOptions SimNetworkOptions::swarm(Random& random) {
  using std::chrono::microseconds;
  using std::chrono::milliseconds;
  SimNetworkOptions options;
  options.latency_min = microseconds(uniform(random, 0, 2000));
  options.latency_mean = options.latency_min + microseconds(uniform(random, 1, 20000));
  options.slow_probability = pick(random, {0.0, 0.001, 0.01, 0.05});
  options.slow_multiplier = static_cast<double>(uniform(random, 5, 50));
  options.bandwidth_bytes_per_second =
      pick(random, {std::uint64_t{0}, std::uint64_t{10} << 20, std::uint64_t{100} << 20,
                    std::uint64_t{1} << 30});
  options.send_buffer_bytes = pick(random, {std::size_t{16} << 10, std::size_t{64} << 10,
                                            std::size_t{256} << 10, std::size_t{1} << 20});
  options.segment_bytes = pick(
      random, {std::size_t{1460}, std::size_t{9000}, std::size_t{16} << 10, std::size_t{64} << 10});
  options.connect_delay_max = milliseconds(pick(random, {0, 10, 100, 1000}));
  options.reset_probability = pick(random, {0.0, 0.0, 1e-4, 1e-3});
  options.connect_refused_probability = pick(random, {0.0, 0.0, 0.01, 0.05});
  options.connect_timeout_probability = pick(random, {0.0, 0.0, 0.01, 0.05});
  HAST_ASSERT(options.latency_mean > options.latency_min);
  HAST_ASSERT(options.send_buffer_bytes > 0);
  return options;
}

SimNetwork::SimNetwork(World& world) : world_(world) {}

SimNetwork::~SimNetwork() = default;

void SimNetwork::configure(const SimNetworkOptions& options) {
  HAST_ASSERT(options.latency_min.count() >= 0);
  HAST_ASSERT(options.latency_mean >= options.latency_min);
  HAST_ASSERT(options.slow_probability >= 0.0 && options.slow_probability <= 1.0);
  HAST_ASSERT(options.slow_multiplier >= 1.0);
  HAST_ASSERT(options.send_buffer_bytes > 0);
  HAST_ASSERT(options.segment_bytes > 0);
  HAST_ASSERT(options.connect_delay_max.count() >= 0);
  HAST_ASSERT(options.syn_retry.count() > 0);
  HAST_ASSERT(options.syn_timeout.count() > 0);
  options_ = options;
  world_.trace("net.configure", static_cast<std::uint64_t>(options.latency_min.count()),
               static_cast<std::uint64_t>(options.latency_mean.count()), options.send_buffer_bytes);
}

Prng& SimNetwork::rng() {
  if (random_ == nullptr) random_ = &world_.stream("net");
  HAST_ASSERT(random_ != nullptr);
  return *random_;
}

Duration SimNetwork::sample_latency() {
  Duration spread = options_.latency_mean - options_.latency_min;
  HAST_ASSERT(spread.count() >= 0);
  Duration latency = options_.latency_min;
  if (spread.count() > 0) {
    double draw = -std::log(1.0 - unit_interval(rng()));
    latency += scaled(spread, draw);
  }
  if (options_.slow_probability > 0.0 && chance(rng(), options_.slow_probability)) {
    latency = scaled(latency, options_.slow_multiplier);
  }
  HAST_ASSERT(latency >= options_.latency_min);
  return latency;
}

SimNetwork::Conn* SimNetwork::find_conn(ConnectionId id) const {
  auto found = conns_.find(id);
  return found == conns_.end() ? nullptr : found->second.get();
}

SimNetwork::Conn& SimNetwork::must_find_conn(ConnectionId id) const {
  Conn* conn = find_conn(id);
  HAST_ASSERT_MSG(conn != nullptr, "connection {} used after retirement", id);
  HAST_ASSERT(conn->id == id);
  return *conn;
}

// ---- Segments ----

void SimNetwork::transmit(Conn& conn, int from, std::span<const std::byte> data) {
  HAST_ASSERT(!data.empty());
  HAST_ASSERT(conn.sides[from].state == SideState::open);
  Direction& direction = conn.directions[from];
  std::size_t offset = 0;
  while (offset < data.size()) {
    std::size_t size = std::min(options_.segment_bytes, data.size() - offset);
    Instant now = world_.now();
    Duration wire{0};
    if (options_.bandwidth_bytes_per_second > 0) {
      wire = Duration(
          static_cast<Duration::rep>((static_cast<unsigned __int128>(size) * 1'000'000'000U) /
                                     options_.bandwidth_bytes_per_second));
    }
    direction.wire_free = std::max(direction.wire_free, now) + wire;
    Instant due = std::max(direction.wire_free + sample_latency(), direction.last_due);
    direction.last_due = due;
    direction.queue.push_back(
        Segment{Segment::Kind::data, BytePool::copy_of(data.subspan(offset, size)), due});
    direction.outstanding += size;
    counters_.bytes_sent += size;
    world_.trace("net.send", conn.id, static_cast<std::uint64_t>(from), size);
    offset += size;
  }
  if (!direction.event && !direction.held) {
    schedule_pump(conn, from, direction.queue.front().due);
  }
}

// Queues a FIN or a reset behind whatever the direction already carries.
void SimNetwork::push_control(Conn& conn, int from, bool reset_segment) {
  Direction& direction = conn.directions[from];
  HAST_ASSERT(from == kClient || from == kServer);
  Instant due =
      std::max(std::max(direction.wire_free, world_.now()) + sample_latency(), direction.last_due);
  direction.last_due = due;
  direction.queue.push_back(
      Segment{reset_segment ? Segment::Kind::reset : Segment::Kind::fin, {}, due});
  world_.trace(reset_segment ? "net.send_reset" : "net.send_fin", conn.id,
               static_cast<std::uint64_t>(from));
  if (!direction.event && !direction.held) schedule_pump(conn, from, direction.queue.front().due);
  HAST_ASSERT(!direction.queue.empty());
}

void SimNetwork::schedule_pump(Conn& conn, int direction_index, Instant when) {
  Direction& direction = conn.directions[direction_index];
  HAST_ASSERT(!direction.event.has_value());
  HAST_ASSERT(!direction.queue.empty());
  when = std::max(when, world_.now());
  ConnectionId id = conn.id;
  // The event recognises itself by its id (a purge may have superseded it).
  direction.event = world_.at(when, "net.pump", [this, id, direction_index] {
    pump(id, direction_index, world_.current_event());
  });
}

// Delivers every due segment of one direction, in order, unless its path is blocked.
void SimNetwork::pump(ConnectionId id, int direction_index, EventId event) {
  HAST_ASSERT(direction_index == kClient || direction_index == kServer);
  Conn* conn = find_conn(id);
  if (conn == nullptr) return;  // retired meanwhile
  Direction& direction = conn->directions[direction_index];
  if (direction.event != event) return;  // superseded by a purge
  direction.event.reset();
  HAST_ASSERT(!direction.held);
  NodeId source = conn->sides[direction_index].node;
  NodeId target = conn->sides[1 - direction_index].node;
  Instant now = world_.now();
  while (!direction.queue.empty() && direction.queue.front().due <= now) {
    if (!path_open(source, target)) {
      direction.held = true;
      counters_.segments_held++;
      world_.trace("net.held", id, static_cast<std::uint64_t>(direction_index));
      return;
    }
    Segment segment = std::move(direction.queue.front());
    direction.queue.pop_front();
    deliver(*conn, direction_index, segment);
  }
  if (!direction.queue.empty() && !direction.event) {
    schedule_pump(*conn, direction_index, direction.queue.front().due);
  }
  invariants(*conn);
}

void SimNetwork::deliver(Conn& conn, int direction_index, Segment& segment) {
  ConnSide& receiver = conn.sides[1 - direction_index];
  HAST_ASSERT(segment.due <= world_.now());
  HAST_ASSERT(path_open(conn.sides[direction_index].node, receiver.node));
  switch (segment.kind) {
    case Segment::Kind::data:
      deliver_data(conn, direction_index, segment);
      return;
    case Segment::Kind::fin:
      world_.trace("net.fin", conn.id, static_cast<std::uint64_t>(direction_index));
      if (receiver.state != SideState::open) return;
      receiver.fin_received = true;
      wake_all(receiver.waiters);
      return;
    case Segment::Kind::reset:
      world_.trace("net.reset_in", conn.id, static_cast<std::uint64_t>(direction_index));
      if (receiver.state != SideState::open && receiver.state != SideState::closed) return;
      counters_.resets_delivered++;
      become_reset(conn, 1 - direction_index);
      return;
  }
  HAST_UNREACHABLE();
}

void SimNetwork::deliver_data(Conn& conn, int direction_index, Segment& segment) {
  ConnSide& receiver = conn.sides[1 - direction_index];
  std::size_t size = segment.bytes.size();
  HAST_ASSERT(size > 0);
  if (receiver.state != SideState::open) {
    // Never acknowledged: the bytes stay counted against the sender's buffer.
    counters_.bytes_dropped += size;
    world_.trace("net.drop", conn.id, static_cast<std::uint64_t>(direction_index), size);
    answer_stray(conn, 1 - direction_index);
    return;
  }
  HAST_ASSERT(!receiver.fin_received);
  receiver.received.push(std::move(segment.bytes));
  counters_.bytes_delivered += size;
  world_.trace("net.deliver", conn.id, static_cast<std::uint64_t>(direction_index), size);
  wake_all(receiver.waiters);
}

// Side `side` received bytes it cannot take. A closed socket, or an OS that no longer
// knows the connection (a killed process, a rebooted machine), answers with one reset; a
// powered-off machine, a half-open or an already reset side answers nothing.
void SimNetwork::answer_stray(Conn& conn, int side) {
  ConnSide& stray = conn.sides[side];
  HAST_ASSERT(side == kClient || side == kServer);
  HAST_ASSERT(stray.state != SideState::open);
  if (stray.reset_answered) return;
  bool answers =
      stray.state == SideState::closed || (stray.state == SideState::dead && os_up(stray.node));
  if (!answers) return;
  ConnSide& other = conn.sides[1 - side];
  if (other.state != SideState::open && other.state != SideState::closed) return;
  send_reset(conn, side, Purge::keep_queue);
}

void SimNetwork::purge(Conn& conn, int direction_index) {
  Direction& direction = conn.directions[direction_index];
  if (direction.event) world_.cancel(*direction.event);
  direction.event.reset();
  direction.held = false;
  direction.queue.clear();
  HAST_ASSERT(direction.queue.empty());
  HAST_ASSERT(!direction.event.has_value());
}

// The side's socket is gone: unread bytes are discarded and nothing in flight in either
// direction will be delivered (the "never after a reset" guarantee).
void SimNetwork::become_reset(Conn& conn, int side) {
  ConnSide& target = conn.sides[side];
  HAST_ASSERT(target.state == SideState::open || target.state == SideState::closed);
  target.state = SideState::reset;
  target.received.clear();
  // Nothing is queued any more; what stays counted is what the receivers have not read.
  for (int direction_index : {kClient, kServer}) {
    purge(conn, direction_index);
    conn.directions[direction_index].outstanding = conn.sides[1 - direction_index].unread();
  }
  world_.trace("net.reset_side", conn.id, static_cast<std::uint64_t>(side));
  wake_later(conn.id, side);
  wake_later(conn.id, 1 - side);
  HAST_ASSERT(conn.sides[side].unread() == 0);
}

void SimNetwork::send_reset(Conn& conn, int from, Purge purge_first) {
  HAST_ASSERT(!conn.sides[from].reset_answered);
  if (purge_first == Purge::drop_queue) purge(conn, from);
  conn.sides[from].reset_answered = true;
  push_control(conn, from, /*reset_segment=*/true);
  HAST_ASSERT(conn.sides[from].reset_answered);
}

// ---- Paths ----

bool SimNetwork::path_open(NodeId from, NodeId to) const {
  if (from == to) return true;
  auto found = paths_.find({from, to});
  if (found == paths_.end()) return true;
  return !found->second.cut && found->second.clogged_until <= world_.now();
}

void SimNetwork::partition(NodeId from, NodeId to) {
  HAST_ASSERT(from != to);
  HAST_ASSERT(from < world_.node_count() && to < world_.node_count());
  paths_[{from, to}].cut = true;
  counters_.partitions++;
  world_.trace("net.partition", from, to);
}

void SimNetwork::partition_both(NodeId a, NodeId b) {
  partition(a, b);
  partition(b, a);
}

void SimNetwork::heal(NodeId a, NodeId b) {
  HAST_ASSERT(a != b);
  world_.trace("net.heal", a, b);
  for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    auto found = paths_.find({from, to});
    if (found == paths_.end()) continue;
    paths_.erase(found);
    release_held(from, to);
  }
  HAST_ASSERT(path_open(a, b) && path_open(b, a));
}

void SimNetwork::heal_all() {
  world_.trace("net.heal_all");
  std::vector<std::pair<NodeId, NodeId>> healed;
  for (const auto& [path, state] : paths_)
    healed.push_back(path);
  paths_.clear();
  for (auto [from, to] : healed) {
    HAST_ASSERT(path_open(from, to));
    release_held(from, to);
  }
  HAST_ASSERT(paths_.empty());
}

void SimNetwork::clog(NodeId from, NodeId to, Duration duration) {
  HAST_ASSERT(from != to);
  HAST_ASSERT(duration.count() > 0);
  PathState& path = paths_[{from, to}];
  path.clogged_until = std::max(path.clogged_until, world_.now() + duration);
  counters_.clogs++;
  world_.trace("net.clog", from, to, static_cast<std::uint64_t>(duration.count()));
  world_.at(world_.now() + duration, "net.unclog", [this, from, to] {
    if (path_open(from, to)) release_held(from, to);
  });
}

// Restarts the held directions of a path that just opened, after a retransmission delay.
void SimNetwork::release_held(NodeId from, NodeId to) {
  HAST_ASSERT(from != to);
  if (!path_open(from, to)) return;
  for (auto& [id, conn] : conns_) {
    for (int direction_index : {kClient, kServer}) {
      Direction& direction = conn->directions[direction_index];
      if (!direction.held) continue;
      if (conn->sides[direction_index].node != from) continue;
      if (conn->sides[1 - direction_index].node != to) continue;
      direction.held = false;
      HAST_ASSERT(!direction.queue.empty());
      if (!direction.event) schedule_pump(*conn, direction_index, world_.now() + sample_latency());
    }
  }
}

// ---- Connection faults ----

void SimNetwork::reset(ConnectionId id, Side side) {
  Conn* conn = find_conn(id);
  world_.trace("net.reset", id, static_cast<std::uint64_t>(side));
  if (conn == nullptr) return;
  HAST_ASSERT(conn->id == id);
  counters_.resets++;
  std::array<bool, 2> chosen{};
  for (int index : {kClient, kServer}) {
    SideState state = conn->sides[index].state;
    chosen[index] =
        side_selected(side, index) && (state == SideState::open || state == SideState::closed);
  }
  for (int index : {kClient, kServer}) {
    if (!chosen[index]) continue;
    become_reset(*conn, index);
    // The other side learns by a reset segment, unless it is reset here too or gone.
    SideState other = conn->sides[1 - index].state;
    bool tell = !chosen[1 - index] && (other == SideState::open || other == SideState::closed);
    if (tell && !conn->sides[index].reset_answered) send_reset(*conn, index, Purge::drop_queue);
    HAST_ASSERT(conn->sides[index].state == SideState::reset);
  }
  invariants(*conn);
}

void SimNetwork::half_open(ConnectionId id, Side side) {
  Conn* conn = find_conn(id);
  world_.trace("net.half_open", id, static_cast<std::uint64_t>(side));
  if (conn == nullptr) return;
  for (int index : {kClient, kServer}) {
    ConnSide& target = conn->sides[index];
    if (!side_selected(side, index)) continue;
    if (target.state != SideState::open && target.state != SideState::closed) continue;
    counters_.half_opens++;
    target.state = SideState::silent;
    target.received.clear();
    // Its own bytes die with it; bytes towards it are dropped on arrival, unacknowledged.
    purge(*conn, index);
    wake_later(id, index);
    HAST_ASSERT(target.unread() == 0);
    HAST_ASSERT(conn->directions[index].queue.empty());
  }
  invariants(*conn);
}

std::vector<ConnectionId> SimNetwork::live_connections() const {
  std::vector<ConnectionId> live;
  for (const auto& [id, conn] : conns_) {
    if (conn->sides[kClient].state == SideState::open ||
        conn->sides[kServer].state == SideState::open) {
      live.push_back(id);
    }
  }
  return live;
}

std::optional<ConnectionInfo> SimNetwork::connection_info(ConnectionId id) const {
  Conn* conn = find_conn(id);
  if (conn == nullptr) return std::nullopt;
  HAST_ASSERT(conn->id == id);
  ConnectionInfo info;
  info.client_node = conn->sides[kClient].node;
  info.server_node = conn->sides[kServer].node;
  info.client_address = conn->sides[kClient].local;
  info.server_address = conn->sides[kServer].local;
  info.client_open = conn->sides[kClient].state == SideState::open;
  info.server_open = conn->sides[kServer].state == SideState::open;
  return info;
}

std::optional<ConnectionId> SimNetwork::connection_id(const Connection& connection) {
  const auto* sim = dynamic_cast<const SimConnection*>(&connection);
  if (sim == nullptr) return std::nullopt;
  return sim->id();
}

// ---- Waiting ----

void SimNetwork::wake_all(std::vector<Waiter>& waiters) {
  std::vector<Waiter> woken;
  woken.swap(waiters);
  for (const Waiter& waiter : woken)
    waiter.waker.wake();
  HAST_ASSERT(waiters.empty());
  woken.clear();
  waiters.swap(woken);  // keeps the list's memory for the next waits
}

// Wakes a side's waiters from a world event at the current instant. Used where the caller
// may be a fiber of another node: a wake-up then always rides on an event, so the world
// runs the woken node before it looks at its queue again.
void SimNetwork::wake_later(ConnectionId id, int side) {
  HAST_ASSERT(side == kClient || side == kServer);
  HAST_ASSERT(find_conn(id) != nullptr);
  world_.at(world_.now(), "net.wake", [this, id, side] {
    Conn* conn = find_conn(id);
    if (conn != nullptr) wake_all(conn->sides[side].waiters);
  });
}

// Parks the calling fiber of `node` on the list `waiters()` returns. The list is looked up
// again after the wait because its record may be gone by then.
fiber::WakeReason SimNetwork::suspend(NodeId node, Deadline deadline,
                                      const WaitersLookup& waiters) {
  fiber::Scheduler& scheduler = world_.node(node).scheduler();
  HAST_ASSERT_MSG(scheduler.in_fiber(), "network call outside a fiber of node {}", node);
  std::vector<Waiter>* list = waiters();
  HAST_ASSERT(list != nullptr);
  std::uint64_t ticket = next_ticket_++;
  list->push_back(Waiter{ticket, scheduler.prepare_wait()});
  fiber::WakeReason reason = scheduler.wait(deadline);
  if (std::vector<Waiter>* after = waiters()) {
    std::erase_if(*after, [ticket](const Waiter& waiter) { return waiter.ticket == ticket; });
  }
  return reason;
}

// ---- Lifetime ----

void SimNetwork::maybe_retire(ConnectionId id) {
  Conn* conn = find_conn(id);
  if (conn == nullptr) return;
  if (!conn->sides[kClient].released || !conn->sides[kServer].released) return;
  HAST_ASSERT(conn->sides[kClient].waiters.empty() && conn->sides[kServer].waiters.empty());
  HAST_ASSERT(!conn->sides[kClient].handle && !conn->sides[kServer].handle);
  for (int direction_index : {kClient, kServer})
    purge(*conn, direction_index);
  world_.trace("net.retire", id);
  conns_.erase(id);
}

// Whether the node's operating system answers packets: true unless its last death was a
// power loss and it has not started again.
bool SimNetwork::os_up(NodeId node) const {
  if (live_endpoints_.contains(node)) return true;
  auto found = last_death_.find(node);
  return found == last_death_.end() || found->second != DeathKind::power_loss;
}

void SimNetwork::invariants(const Conn& conn) const {
  for (int index : {kClient, kServer}) {
    const ConnSide& side = conn.sides[index];
    const Direction& in = conn.directions[1 - index];
    HAST_ASSERT(side.received.consistent());
    HAST_ASSERT(side.state == SideState::open || side.unread() == 0);
    std::size_t queued = 0;
    for (const Segment& segment : in.queue)
      queued += segment.bytes.size();
    HAST_ASSERT_MSG(in.outstanding >= queued + side.unread() || side.state != SideState::open,
                    "connection {}: outstanding {} < queued {} + unread {}", conn.id,
                    in.outstanding, queued, side.unread());
    HAST_ASSERT(!(in.held && in.event.has_value()));
  }
}

}  // namespace hast::sim

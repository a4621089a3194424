// SimNetwork, socket half: endpoints and node death, listeners and accept, the connect
// handshake, and the stream calls (send, recv_exact, close) behind the handles. The
// fabric half (segments, paths, resets) is sim_network.cc; the model is in
// sim/sim_network.h.
//
// Handshake: connect() queues an attempt and a SYN event after the connect delay plus one
// latency. When the SYN arrives, a path blocked either way, an unknown or powered-off host
// or a black-holed attempt loses it, and it is retried every syn_retry until the caller's
// deadline (or syn_timeout). Otherwise the target answers after one latency: a refusal
// when nothing listens, or an established connection whose server side is already in the
// listener's backlog (it may be accepted and written to before the client hears back). If
// the connector has given up by then, its OS resets the new connection.
#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "sim/sim_network.h"
#include "sim/sim_network_state.h"

namespace hast::sim {
namespace {

constexpr std::uint16_t kEphemeralFirst = 49152;

bool is_wildcard(std::string_view host) {
  return host.empty() || host == "*" || host == "0.0.0.0" || host == "::";
}

bool is_loopback(std::string_view host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost";
}

bool is_v6(std::string_view host) {
  return host.find(':') != std::string_view::npos;
}

// Whether a listener bound to `bound` takes connections addressed to `host`.
bool covers(std::string_view bound, std::string_view host) {
  if (bound == host) return true;
  if (bound.empty() || bound == "*") return true;
  if (bound == "0.0.0.0") return !is_v6(host);
  if (bound == "::") return is_v6(host);
  return false;
}

bool has_host(const SimNode& node, std::string_view host) {
  const auto& hosts = node.hosts();
  return std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

Result<void> state_result(SideState state, ConnectionId id, std::string_view what) {
  switch (state) {
    case SideState::open:
      return ok();
    case SideState::closed:
      return fail(Errc::disconnected, fmt::format("{} on connection {}: closed", what, id));
    case SideState::reset:
      return fail(Errc::disconnected, fmt::format("{} on connection {}: reset", what, id));
    case SideState::silent:
      return fail(Errc::disconnected, fmt::format("{} on connection {}: gone", what, id));
    case SideState::dead:
      return fail(Errc::cancelled, fmt::format("{} on connection {}: node died", what, id));
  }
  HAST_UNREACHABLE();
}

}  // namespace

// ---- Endpoints ----

SimEndpoint::SimEndpoint(SimNetwork& network, SimNode& node)
    : network_(network), node_(node), serial_(network.attach_endpoint(node.id())) {}

SimEndpoint::~SimEndpoint() {
  if (!dead_) mark_dead(DeathKind::kill);
}

Result<std::unique_ptr<Listener>> SimEndpoint::listen(const Address& address) {
  if (dead_) return fail(Errc::cancelled, "listen: node died");
  return network_.listen(node_.id(), serial_, address);
}

Result<std::unique_ptr<Connection>> SimEndpoint::connect(const Address& remote,
                                                         const std::optional<Address>& source,
                                                         Deadline deadline) {
  if (dead_) return fail(Errc::cancelled, "connect: node died");
  return network_.connect(node_.id(), serial_, remote, source, deadline);
}

void SimEndpoint::mark_dead(DeathKind kind) {
  if (dead_) return;
  dead_ = true;
  network_.endpoint_died(node_.id(), serial_, kind);
}

std::uint64_t SimNetwork::attach_endpoint(NodeId node) {
  HAST_ASSERT_MSG(!live_endpoints_.contains(node), "node {} has two live endpoints", node);
  HAST_ASSERT(node < world_.node_count());
  std::uint64_t serial = next_endpoint_++;
  live_endpoints_[node] = serial;
  world_.trace("net.endpoint", node, serial);
  return serial;
}

// Everything the endpoint owned stops: listeners go (their backlog sides die with the
// node below), connect attempts end, every local side becomes dead. Waiter lists of the
// node are dropped unwoken: its fibers are about to be unwound, and its scheduler with
// them, so no Waker to it may survive.
void SimNetwork::endpoint_died(NodeId node, std::uint64_t endpoint, DeathKind kind) {
  auto live = live_endpoints_.find(node);
  HAST_ASSERT(live != live_endpoints_.end());
  HAST_ASSERT(live->second == endpoint);
  live_endpoints_.erase(live);
  last_death_[node] = kind;
  world_.trace("net.endpoint_died", node, endpoint, static_cast<std::uint64_t>(kind));
  std::erase_if(listeners_,
                [endpoint](const auto& entry) { return entry.second->endpoint == endpoint; });
  std::erase_if(attempts_,
                [endpoint](const auto& entry) { return entry.second->endpoint == endpoint; });
  std::vector<ConnectionId> touched;
  for (auto& [id, conn] : conns_) {
    for (int index : {kClient, kServer}) {
      ConnSide& side = conn->sides[index];
      if (side.endpoint != endpoint || side.state == SideState::dead) continue;
      side_died(*conn, index, kind);
      touched.push_back(id);
    }
  }
  for (ConnectionId id : touched)
    maybe_retire(id);
}

void SimNetwork::side_died(Conn& conn, int index, DeathKind kind) {
  ConnSide& side = conn.sides[index];
  SideState previous = side.state;
  side.state = SideState::dead;
  side.death = kind;
  side.received.clear();
  side.waiters.clear();
  if (!side.handle) side.released = true;
  SideState other = conn.sides[1 - index].state;
  bool peer_listens = other == SideState::open || other == SideState::closed;
  bool was_live = previous == SideState::open || previous == SideState::closed;
  if (kind == DeathKind::kill && was_live && peer_listens && !side.reset_answered) {
    // The OS closes the dead process's sockets: the peer gets a reset after latency.
    send_reset(conn, index, Purge::drop_queue);
  } else {
    // A machine without power sends nothing more, and nothing it had queued.
    purge(conn, index);
  }
  HAST_ASSERT(conn.sides[index].state == SideState::dead);
  HAST_ASSERT(conn.sides[index].waiters.empty());
}

// ---- Listeners ----

Result<std::unique_ptr<Listener>> SimNetwork::listen(NodeId node, std::uint64_t endpoint,
                                                     const Address& address) {
  HAST_ASSERT(live_endpoints_.contains(node));
  HAST_ASSERT(live_endpoints_.at(node) == endpoint);
  Address bound = address;
  if (bound.is_tcp()) {
    if (!is_wildcard(bound.host) && !is_loopback(bound.host) &&
        !has_host(world_.node(node), bound.host)) {
      return fail(Errc::invalid_argument,
                  fmt::format("listen on {}: not an address of this node", bound.to_string()));
    }
    if (bound.port == 0) bound.port = ephemeral_port(bound.host);
  }
  for (const auto& [id, other] : listeners_) {
    if (other->node != node || other->address.is_tcp() != bound.is_tcp()) continue;
    bool clash = bound.is_tcp() ? other->address.port == bound.port &&
                                      (covers(other->address.host, bound.host) ||
                                       covers(bound.host, other->address.host))
                                : other->address.path == bound.path;
    if (clash) {
      return fail(Errc::busy, fmt::format("listen on {}: address in use", bound.to_string()));
    }
  }
  auto record = std::make_unique<ListenerRec>();
  record->id = next_listener_id_++;
  record->node = node;
  record->endpoint = endpoint;
  record->address = bound;
  ListenerId id = record->id;
  listeners_.emplace(id, std::move(record));
  world_.trace("net.listen", node, id, bound.port);
  std::unique_ptr<Listener> handle = std::make_unique<SimListener>(*this, id, bound);
  return Result<std::unique_ptr<Listener>>(std::move(handle));
}

Result<std::unique_ptr<Connection>> SimNetwork::accept(ListenerId id, Deadline deadline) {
  while (true) {
    auto found = listeners_.find(id);
    if (found == listeners_.end()) return fail(Errc::cancelled, "accept: listener closed");
    ListenerRec& listener = *found->second;
    if (!listener.backlog.empty()) {
      ConnectionId conn_id = listener.backlog.front();
      listener.backlog.pop_front();
      ConnSide& server = must_find_conn(conn_id).sides[kServer];
      HAST_ASSERT(!server.handle);
      HAST_ASSERT(!server.released);
      server.handle = true;
      counters_.accepts++;
      world_.trace("net.accept", listener.node, conn_id);
      std::unique_ptr<Connection> handle =
          std::make_unique<SimConnection>(*this, conn_id, kServer, server.local, server.peer);
      return Result<std::unique_ptr<Connection>>(std::move(handle));
    }
    fiber::WakeReason reason = suspend(listener.node, deadline, [this, id] {
      auto again = listeners_.find(id);
      return again == listeners_.end() ? nullptr : &again->second->waiters;
    });
    if (reason != fiber::WakeReason::woken) {
      return fail(fiber::wake_result(reason, "accept").error());
    }
  }
}

// Stops listening: connections not yet accepted are reset towards their clients.
void SimNetwork::close_listener(ListenerId id) {
  auto found = listeners_.find(id);
  if (found == listeners_.end()) return;
  std::unique_ptr<ListenerRec> listener = std::move(found->second);
  listeners_.erase(found);
  HAST_ASSERT(listener != nullptr);
  HAST_ASSERT(listener->id == id);
  world_.trace("net.listen_close", listener->node, id);
  for (ConnectionId conn_id : listener->backlog) {
    Conn& conn = must_find_conn(conn_id);
    ConnSide& server = conn.sides[kServer];
    HAST_ASSERT(!server.handle);
    server.released = true;
    if (server.state != SideState::open) continue;
    become_reset(conn, kServer);
    SideState client = conn.sides[kClient].state;
    if (client == SideState::open || client == SideState::closed) {
      send_reset(conn, kServer, Purge::drop_queue);
    }
  }
  wake_all(listener->waiters);
  for (ConnectionId conn_id : listener->backlog)
    maybe_retire(conn_id);
}

// ---- Connect ----

Result<std::unique_ptr<Connection>> SimNetwork::connect(NodeId node, std::uint64_t endpoint,
                                                        const Address& remote,
                                                        const std::optional<Address>& source,
                                                        Deadline deadline) {
  HAST_ASSERT(live_endpoints_.contains(node));
  HAST_ASSERT(live_endpoints_.at(node) == endpoint);
  counters_.connects++;
  SimNode& self = world_.node(node);
  Address local;
  if (remote.is_tcp()) {
    if (remote.port == 0) return fail(Errc::invalid_argument, "connect: no port");
    if (source && (!source->is_tcp() || !has_host(self, source->host))) {
      return fail(Errc::invalid_argument,
                  fmt::format("connect from {}: not an address of this node", source->to_string()));
    }
    local.kind = remote.kind;
    local.host = source ? source->host : self.hosts().empty() ? "127.0.0.1" : self.hosts()[0];
    local.port = source && source->port != 0 ? source->port : ephemeral_port(local.host);
  } else {
    local.kind = Address::Kind::unix_socket;
  }
  auto attempt = std::make_unique<Attempt>();
  attempt->id = next_attempt_id_++;
  attempt->node = node;
  attempt->endpoint = endpoint;
  attempt->remote = remote;
  attempt->local = local;
  attempt->black_holed = chance(rng(), options_.connect_timeout_probability);
  attempt->refused = chance(rng(), options_.connect_refused_probability);
  AttemptId id = attempt->id;
  attempts_.emplace(id, std::move(attempt));
  world_.trace("net.connect", node, id, remote.port);
  Duration delay{0};
  if (options_.connect_delay_max.count() > 0) {
    delay = Duration(static_cast<Duration::rep>(
        uniform(rng(), 0, static_cast<std::uint64_t>(options_.connect_delay_max.count()))));
  }
  world_.at(world_.now() + delay + sample_latency(), "net.syn", [this, id] { handshake(id); });
  // The OS gives up on its own after syn_timeout, deadline or not.
  Instant give_up = self.clock().now() + options_.syn_timeout;
  return await_connect(id, node, deadline ? std::min(*deadline, give_up) : give_up);
}

Result<std::unique_ptr<Connection>> SimNetwork::await_connect(AttemptId id, NodeId node,
                                                              Deadline deadline) {
  HAST_ASSERT(deadline.has_value());
  while (true) {
    auto found = attempts_.find(id);
    if (found == attempts_.end()) return fail(Errc::cancelled, "connect: node died");
    Attempt& attempt = *found->second;
    std::string target = attempt.remote.to_string();
    if (attempt.outcome == Attempt::Outcome::connected) {
      Conn& conn = must_find_conn(attempt.conn);
      ConnSide& client = conn.sides[kClient];
      HAST_ASSERT(!client.handle);
      client.handle = true;
      counters_.connects_established++;
      world_.trace("net.connected", node, id, conn.id);
      attempts_.erase(found);
      std::unique_ptr<Connection> handle =
          std::make_unique<SimConnection>(*this, conn.id, kClient, client.local, client.peer);
      return Result<std::unique_ptr<Connection>>(std::move(handle));
    }
    if (attempt.outcome == Attempt::Outcome::refused) {
      counters_.connects_refused++;
      attempts_.erase(found);
      return fail(Errc::refused, fmt::format("connect to {}", target));
    }
    fiber::WakeReason reason = suspend(node, deadline, [this, id] {
      auto again = attempts_.find(id);
      return again == attempts_.end() ? nullptr : &again->second->waiters;
    });
    if (reason == fiber::WakeReason::woken) continue;
    // An answer that arrived together with the deadline wins over it.
    auto again = attempts_.find(id);
    if (again != attempts_.end() && again->second->outcome != Attempt::Outcome::pending) continue;
    if (again != attempts_.end()) attempts_.erase(again);
    if (reason == fiber::WakeReason::cancelled) return fail(Errc::cancelled, "connect");
    counters_.connects_timed_out++;
    world_.trace("net.connect_timeout", node, id);
    return fail(Errc::timed_out, fmt::format("connect to {}", target));
  }
}

// The SYN reaches (or fails to reach) the target. See the file comment.
void SimNetwork::handshake(AttemptId id) {
  auto found = attempts_.find(id);
  if (found == attempts_.end()) return;  // the connector gave up or died
  Attempt& attempt = *found->second;
  HAST_ASSERT(attempt.outcome == Attempt::Outcome::pending);
  HAST_ASSERT(live_endpoints_.contains(attempt.node));  // a dead endpoint drops its attempts
  std::optional<NodeId> target = resolve(attempt.remote, attempt.node);
  bool lost = !target || attempt.black_holed || !os_up(*target) ||
              !path_open(attempt.node, *target) || !path_open(*target, attempt.node);
  if (lost) {
    counters_.handshakes_lost++;
    world_.trace("net.syn_lost", attempt.node, id);
    world_.at(world_.now() + options_.syn_retry, "net.syn", [this, id] { handshake(id); });
    return;
  }
  ListenerRec* listener = nullptr;
  if (!attempt.refused && live_endpoints_.contains(*target)) {
    listener = find_listener(*target, attempt.remote);
  }
  Instant answer = world_.now() + sample_latency();
  if (listener == nullptr) {
    world_.trace("net.syn_refused", attempt.node, id, *target);
    world_.at(answer, "net.refused", [this, id] { refuse(id); });
    return;
  }
  Conn& conn = create_conn(attempt, *listener);
  world_.trace("net.syn_accepted", attempt.node, id, conn.id);
  world_.at(answer, "net.established", [this, id, conn_id = conn.id] { establish(id, conn_id); });
}

void SimNetwork::refuse(AttemptId id) {
  auto found = attempts_.find(id);
  if (found == attempts_.end()) return;
  HAST_ASSERT(found->second->id == id);
  HAST_ASSERT(found->second->outcome == Attempt::Outcome::pending);
  found->second->outcome = Attempt::Outcome::refused;
  wake_all(found->second->waiters);
}

void SimNetwork::establish(AttemptId id, ConnectionId conn_id) {
  Conn* conn = find_conn(conn_id);
  auto found = attempts_.find(id);
  if (found != attempts_.end()) {
    HAST_ASSERT(conn != nullptr);
    HAST_ASSERT(found->second->outcome == Attempt::Outcome::pending);
    found->second->outcome = Attempt::Outcome::connected;
    found->second->conn = conn_id;
    wake_all(found->second->waiters);
    return;
  }
  if (conn == nullptr) return;
  // The connector gave up before the answer came: its OS resets the connection.
  ConnSide& client = conn->sides[kClient];
  HAST_ASSERT(!client.handle);
  client.released = true;
  if (client.state == SideState::open) {
    become_reset(*conn, kClient);
    SideState server = conn->sides[kServer].state;
    if (server == SideState::open || server == SideState::closed) {
      send_reset(*conn, kClient, Purge::drop_queue);
    }
  }
  maybe_retire(conn_id);
}

SimNetwork::Conn& SimNetwork::create_conn(const Attempt& attempt, ListenerRec& listener) {
  auto owned = std::make_unique<Conn>();
  Conn& conn = *owned;
  conn.id = next_conn_id_++;
  ConnSide& client = conn.sides[kClient];
  client.node = attempt.node;
  client.endpoint = attempt.endpoint;
  client.local = attempt.local;
  client.peer = attempt.remote;
  ConnSide& server = conn.sides[kServer];
  server.node = listener.node;
  server.endpoint = listener.endpoint;
  server.local = listener.address;
  if (attempt.remote.is_tcp()) server.local.host = attempt.remote.host;
  server.peer = attempt.local;
  conns_.emplace(conn.id, std::move(owned));
  listener.backlog.push_back(conn.id);
  wake_all(listener.waiters);
  HAST_ASSERT(find_conn(conn.id) == &conn);
  HAST_ASSERT(!listener.backlog.empty());
  return conn;
}

std::optional<NodeId> SimNetwork::resolve(const Address& remote, NodeId from) const {
  HAST_ASSERT(from < world_.node_count());
  HAST_ASSERT(remote.is_tcp() || !remote.path.empty());
  if (!remote.is_tcp() || is_loopback(remote.host)) return from;
  for (NodeId id = 0; id < world_.node_count(); ++id) {
    if (has_host(world_.node(id), remote.host)) return id;
  }
  return std::nullopt;
}

SimNetwork::ListenerRec* SimNetwork::find_listener(NodeId node, const Address& remote) const {
  HAST_ASSERT(node < world_.node_count());
  HAST_ASSERT(live_endpoints_.contains(node));
  for (const auto& [id, listener] : listeners_) {
    if (listener->node != node) continue;
    if (listener->address.is_tcp() != remote.is_tcp()) continue;
    bool match = remote.is_tcp() ? listener->address.port == remote.port &&
                                       covers(listener->address.host, remote.host)
                                 : listener->address.path == remote.path;
    if (match) return listener.get();
  }
  return nullptr;
}

std::uint16_t SimNetwork::ephemeral_port(const std::string& host) {
  std::uint16_t& next = next_port_.try_emplace(host, kEphemeralFirst).first->second;
  HAST_ASSERT(next >= kEphemeralFirst);
  std::uint16_t port = next;
  next = next == 65535 ? kEphemeralFirst : static_cast<std::uint16_t>(next + 1);
  HAST_ASSERT(port >= kEphemeralFirst);
  return port;
}

// ---- Streams ----

Result<void> SimNetwork::conn_send(ConnectionId id, int side, std::span<const std::byte> head,
                                   std::span<const std::byte> body, Deadline deadline) {
  HAST_ASSERT(side == kClient || side == kServer);
  if (options_.reset_probability > 0.0 && chance(rng(), options_.reset_probability)) {
    counters_.random_resets++;
    reset(id, static_cast<Side>(uniform(rng(), 0, 2)));
  }
  // `head` goes first, then `body`: each is transmitted as send() would transmit it alone.
  std::span<const std::byte> data = head.empty() ? body : head;
  bool on_body = head.empty();
  std::size_t sent = 0;
  while (true) {
    Conn& conn = must_find_conn(id);
    ConnSide& self = conn.sides[side];
    HAST_ASSERT(self.handle);
    HAST_TRY(state_result(self.state, id, "send"));
    if (sent == data.size() && !on_body && !body.empty()) {
      data = body;
      on_body = true;
      sent = 0;
    }
    if (sent == data.size()) return ok();
    Direction& out = conn.directions[side];
    std::size_t room = out.outstanding < options_.send_buffer_bytes
                           ? options_.send_buffer_bytes - out.outstanding
                           : 0;
    if (room > 0) {
      std::size_t take = std::min(room, data.size() - sent);
      if (tap_ != nullptr) {
        tap_->on_sent(id, self.node, static_cast<Side>(side), data.subspan(sent, take));
      }
      transmit(conn, side, data.subspan(sent, take));
      sent += take;
      continue;
    }
    // The buffer is full: wait for the peer to read (or for the connection to end).
    fiber::WakeReason reason = suspend(self.node, deadline, [this, id, side] {
      Conn* again = find_conn(id);
      return again == nullptr ? nullptr : &again->sides[side].waiters;
    });
    invariants(must_find_conn(id));  // fibers break run-to-completion: re-check
    if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "send");
  }
}

Result<void> SimNetwork::conn_recv(ConnectionId id, int side, std::span<std::byte> buffer,
                                   Deadline deadline) {
  HAST_ASSERT(side == kClient || side == kServer);
  std::size_t filled = 0;
  while (true) {
    Conn& conn = must_find_conn(id);
    ConnSide& self = conn.sides[side];
    HAST_ASSERT(self.handle);
    HAST_TRY(state_result(self.state, id, "recv"));
    // Take what is there at once, so a reader of a message larger than the send buffer
    // frees room for the rest of it.
    std::size_t take = self.received.take(buffer.subspan(filled));
    if (take > 0) {
      if (tap_ != nullptr) {
        tap_->on_consumed(id, self.node, static_cast<Side>(side), buffer.subspan(filled, take));
      }
      filled += take;
      Direction& in = conn.directions[1 - side];
      HAST_ASSERT(in.outstanding >= take);
      in.outstanding -= take;
      world_.trace("net.read", id, static_cast<std::uint64_t>(side), take);
      if (!conn.sides[1 - side].waiters.empty()) wake_later(id, 1 - side);
    }
    if (filled == buffer.size()) return ok();
    if (self.fin_received) {
      return fail(Errc::disconnected, fmt::format("recv on connection {}: peer closed", id));
    }
    fiber::WakeReason reason = suspend(self.node, deadline, [this, id, side] {
      Conn* again = find_conn(id);
      return again == nullptr ? nullptr : &again->sides[side].waiters;
    });
    invariants(must_find_conn(id));
    if (reason != fiber::WakeReason::woken) return fiber::wake_result(reason, "recv");
  }
}

// Closes one side: a FIN follows the bytes already sent; the side's own blocked calls
// fail with disconnected.
void SimNetwork::conn_close(ConnectionId id, int side) {
  HAST_ASSERT(side == kClient || side == kServer);
  Conn& conn = must_find_conn(id);
  ConnSide& self = conn.sides[side];
  if (self.state != SideState::open) return;
  self.state = SideState::closed;
  self.received.clear();
  world_.trace("net.close", id, static_cast<std::uint64_t>(side));
  push_control(conn, side, /*reset_segment=*/false);
  wake_all(self.waiters);
  HAST_ASSERT(self.state == SideState::closed);
}

void SimNetwork::handle_gone(ConnectionId id, int side) {
  HAST_ASSERT(side == kClient || side == kServer);
  conn_close(id, side);
  ConnSide& self = must_find_conn(id).sides[side];
  HAST_ASSERT(self.handle);
  self.handle = false;
  self.released = true;
  maybe_retire(id);
}

}  // namespace hast::sim

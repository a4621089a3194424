// SimNetwork: the simulated TCP fabric between nodes, and SimEndpoint, one node
// incarnation's Network (core/io/network.h) on it.
//
// Model (DESIGN.md §6, reference/fault-model.md §1b and §6.3). A connection has two sides
// (client = the connector, server = the acceptor) and two directions. send() cuts its bytes
// into segments; each segment gets a delivery time = max(wire free + latency, delivery time
// of the previous segment in that direction), where "wire free" accounts for the bandwidth
// cap, so a direction stays FIFO. One world event per direction delivers every due segment
// into the receiver's kernel buffer (even while the receiving node is paused: its kernel
// still buffers). Latency = min + Exp(mean - min), multiplied on a slow tail. A sender
// suspends while send_buffer_bytes are in flight or unread in its direction (back-pressure);
// acknowledgements are not segments: a read frees the sender's room at once, whatever the
// state of the reverse path. close() queues a FIN behind the bytes already sent: the peer's
// recv fails with Errc::disconnected once it has read them; bytes that later reach the
// closed side are answered by one reset. A wake-up that a fiber of one node causes on
// another node rides on a world event at the same instant.
//
// Faults, all entered into the trace hash:
// - partition (one direction or both) and clog (one direction, temporary): deliveries on a
//   blocked path are held and flow again after heal (like TCP retransmission) if the
//   connection still lives; handshakes on a blocked path are lost and retried;
// - reset of one side or both: the reset side fails with Errc::disconnected at once; the
//   other side learns by a reset segment after latency (held while the path is cut);
// - half-open: one side dies silently; its peer hears nothing, its sends vanish (and stop
//   being acknowledged, so back-pressure eventually blocks it), its recv waits for its
//   own deadline;
// - node death (SimEndpoint::mark_dead): local calls fail with Errc::cancelled without
//   suspending; on a kill the OS resets the peers, on a power loss they are left
//   half-open until a rebooted OS answers their next bytes with a reset;
// - connect: refused when the host is up but nothing listens (or the process is down),
//   timed out when the host is unknown, powered off or the path is blocked; random
//   refusals, black-holed handshakes and random resets per send by probability.
//
// Invariants: bytes arrive in order and at most once; nothing is delivered on a connection
// after a reset of either of its sides; every waiting fiber is woken only through a live
// scheduler (the waiter lists of a dead endpoint are cleared before its scheduler goes).
// Randomness comes only from the world stream "net"; every container is ordered.
// Handles (Connection, Listener) must not outlive the World.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/fiber/scheduler.h"
#include "core/io/network.h"
#include "core/io/random.h"
#include "sim/node.h"
#include "sim/world.h"

namespace hast::sim {

using ConnectionId = std::uint64_t;

// One side of a connection, or both.
enum class Side : std::uint8_t { client, server, both };

struct SimNetworkOptions {
  // One-way latency of a segment: latency_min + Exp(latency_mean - latency_min).
  Duration latency_min = std::chrono::microseconds(50);
  Duration latency_mean = std::chrono::microseconds(200);
  // With this probability a segment's latency is multiplied by slow_multiplier.
  double slow_probability = 0.0;
  double slow_multiplier = 10.0;
  // Serialisation rate of each direction; 0 = unlimited.
  std::uint64_t bandwidth_bytes_per_second = 0;
  // Bytes a direction may hold in flight plus unread before send() suspends (> 0).
  std::size_t send_buffer_bytes = 256 * 1024;
  // Largest segment a send() is cut into (> 0).
  std::size_t segment_bytes = 16 * 1024;
  // Extra delay before a connect's first handshake, uniform in [0, connect_delay_max].
  Duration connect_delay_max{0};
  // A lost handshake is retried after syn_retry; a connect without a deadline gives up
  // after syn_timeout (the OS's own connect timeout).
  Duration syn_retry = std::chrono::seconds(1);
  Duration syn_timeout = std::chrono::seconds(75);
  // Per send() call: probability that the connection is reset (client, server or both).
  double reset_probability = 0.0;
  // Per connect() call: probability of a refusal, and of a black-holed handshake (the
  // connect then times out).
  double connect_refused_probability = 0.0;
  double connect_timeout_probability = 0.0;

  // Knobs drawn for one swarm run: latencies, tail, bandwidth, buffers and fault rates.
  static SimNetworkOptions swarm(Random& random);
};

// What the fabric did, for coverage reports and for tests that a fault happened.
struct SimNetworkCounters {
  std::uint64_t connects = 0;  // connect() calls
  std::uint64_t connects_established = 0;
  std::uint64_t connects_refused = 0;
  std::uint64_t connects_timed_out = 0;
  std::uint64_t handshakes_lost = 0;
  std::uint64_t accepts = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_delivered = 0;
  std::uint64_t bytes_dropped = 0;  // reached a side that could not take them
  std::uint64_t segments_held = 0;  // found their path blocked when due
  std::uint64_t resets = 0;         // reset() faults, random ones included
  std::uint64_t random_resets = 0;
  std::uint64_t resets_delivered = 0;  // reset segments that ended a live side
  std::uint64_t half_opens = 0;
  std::uint64_t partitions = 0;
  std::uint64_t clogs = 0;
};

// A snapshot of one connection, for fault injectors and tests.
struct ConnectionInfo {
  NodeId client_node = 0;
  NodeId server_node = 0;
  Address client_address;
  Address server_address;
  bool client_open = false;  // the side can still send and receive
  bool server_open = false;
};

class SimEndpoint;
class SimConnection;
class SimListener;

// An observer of the byte streams (the O7 oracle): what a side of a connection handed to
// send() and what a side's reader consumed, in stream order. Called from inside send and
// recv; a tap must not touch the network, the world or any fiber.
class WireTap {
 public:
  virtual ~WireTap() = default;
  virtual void on_sent(ConnectionId id, NodeId node, Side side,
                       std::span<const std::byte> bytes) = 0;
  virtual void on_consumed(ConnectionId id, NodeId node, Side side,
                           std::span<const std::byte> bytes) = 0;
};

class SimNetwork {
 public:
  // Created by the World; nodes are found through it by host name.
  explicit SimNetwork(World& world);
  ~SimNetwork();
  SimNetwork(const SimNetwork&) = delete;
  SimNetwork& operator=(const SimNetwork&) = delete;

  // Replaces the knobs; applies to segments and connects from now on.
  void configure(const SimNetworkOptions& options);
  const SimNetworkOptions& options() const { return options_; }
  const SimNetworkCounters& counters() const { return counters_; }

  // ---- Faults. Callable from world events, tests or fibers; never suspend. ----

  // Cuts the direction from → to until healed. Bytes on it are held, not lost.
  void partition(NodeId from, NodeId to);
  void partition_both(NodeId a, NodeId b);
  // Heals both directions between a and b (clogs included); held bytes flow again.
  void heal(NodeId a, NodeId b);
  void heal_all();
  // Blocks the direction from → to for `duration` (extends a running clog).
  void clog(NodeId from, NodeId to, Duration duration);
  // True when segments from → to are delivered now (always for from == to).
  bool path_open(NodeId from, NodeId to) const;

  // Resets one side or both of a connection. Unknown ids and dead sides are ignored.
  void reset(ConnectionId id, Side side);
  // The chosen side's endpoint dies silently: its own calls fail with
  // Errc::disconnected, the other side is told nothing.
  void half_open(ConnectionId id, Side side);

  // Connections with at least one side still open, in id order.
  std::vector<ConnectionId> live_connections() const;
  std::optional<ConnectionInfo> connection_info(ConnectionId id) const;
  // The id behind a Connection made by a SimEndpoint; nullopt for any other kind.
  static std::optional<ConnectionId> connection_id(const Connection& connection);

  // Installs the one wire tap (nullptr removes it). The tap must outlive its installation.
  void set_tap(WireTap* tap) { tap_ = tap; }

 private:
  friend class SimEndpoint;
  friend class SimConnection;
  friend class SimListener;

  using ListenerId = std::uint64_t;
  using AttemptId = std::uint64_t;
  struct Waiter;
  struct Segment;
  struct ConnSide;
  struct Direction;
  struct Conn;
  struct ListenerRec;
  struct Attempt;
  struct PathState {
    bool cut = false;
    Instant clogged_until{};
  };
  enum class Purge : std::uint8_t { keep_queue, drop_queue };

  // ---- Fabric (sim_network.cc) ----
  Prng& rng();
  Duration sample_latency();
  Conn* find_conn(ConnectionId id) const;
  Conn& must_find_conn(ConnectionId id) const;
  void transmit(Conn& conn, int from, std::span<const std::byte> data);
  void push_control(Conn& conn, int from, bool reset_segment);
  void schedule_pump(Conn& conn, int direction, Instant when);
  void pump(ConnectionId id, int direction, EventId event);
  void deliver(Conn& conn, int direction, Segment& segment);
  void deliver_data(Conn& conn, int direction, Segment& segment);
  void answer_stray(Conn& conn, int side);
  void purge(Conn& conn, int direction);
  void become_reset(Conn& conn, int side);
  void send_reset(Conn& conn, int from, Purge purge_first);
  void release_held(NodeId from, NodeId to);
  void wake_all(std::vector<Waiter>& waiters);
  void wake_later(ConnectionId id, int side);
  // A call's way to find its waiters list again: a non-owning reference to a callable
  // (a lambda of a few ids would not fit std::function's inline storage).
  class WaitersLookup {
   public:
    template <typename F,
              typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, WaitersLookup>>>
    WaitersLookup(F&& lookup)  // NOLINT(google-explicit-constructor): lambdas convert
        : object_(static_cast<const void*>(&lookup)), call_([](const void* object) {
            return (*static_cast<const std::decay_t<F>*>(object))();
          }) {}
    std::vector<Waiter>* operator()() const { return call_(object_); }

   private:
    const void* object_;
    std::vector<Waiter>* (*call_)(const void*);
  };
  // `waiters` must outlive the call (a lambda written in the call does).
  fiber::WakeReason suspend(NodeId node, Deadline deadline, const WaitersLookup& waiters);
  void maybe_retire(ConnectionId id);
  bool os_up(NodeId node) const;
  void invariants(const Conn& conn) const;

  // ---- Sockets (sim_network_socket.cc) ----
  std::uint64_t attach_endpoint(NodeId node);
  void endpoint_died(NodeId node, std::uint64_t endpoint, DeathKind kind);
  void side_died(Conn& conn, int side, DeathKind kind);
  Result<std::unique_ptr<Listener>> listen(NodeId node, std::uint64_t endpoint,
                                           const Address& address);
  Result<std::unique_ptr<Connection>> accept(ListenerId id, Deadline deadline);
  void close_listener(ListenerId id);
  Result<std::unique_ptr<Connection>> connect(NodeId node, std::uint64_t endpoint,
                                              const Address& remote,
                                              const std::optional<Address>& source,
                                              Deadline deadline);
  Result<std::unique_ptr<Connection>> await_connect(AttemptId id, NodeId node, Deadline deadline);
  void handshake(AttemptId id);
  void refuse(AttemptId id);
  void establish(AttemptId id, ConnectionId conn);
  Conn& create_conn(const Attempt& attempt, ListenerRec& listener);
  std::optional<NodeId> resolve(const Address& remote, NodeId from) const;
  ListenerRec* find_listener(NodeId node, const Address& remote) const;
  std::uint16_t ephemeral_port(const std::string& host);
  // Sends `head` then `body` as one send() call (one reset draw); either may be empty.
  Result<void> conn_send(ConnectionId id, int side, std::span<const std::byte> head,
                         std::span<const std::byte> body, Deadline deadline);
  Result<void> conn_recv(ConnectionId id, int side, std::span<std::byte> buffer, Deadline deadline);
  void conn_close(ConnectionId id, int side);
  void handle_gone(ConnectionId id, int side);

  World& world_;
  SimNetworkOptions options_;
  SimNetworkCounters counters_;
  Prng* random_ = nullptr;  // world stream "net", fetched on first use
  WireTap* tap_ = nullptr;
  std::map<ConnectionId, std::unique_ptr<Conn>> conns_;
  std::map<ListenerId, std::unique_ptr<ListenerRec>> listeners_;
  std::map<AttemptId, std::unique_ptr<Attempt>> attempts_;
  std::map<std::pair<NodeId, NodeId>, PathState> paths_;
  std::map<NodeId, std::uint64_t> live_endpoints_;  // node → its live endpoint's serial
  std::map<NodeId, DeathKind> last_death_;
  std::map<std::string, std::uint16_t> next_port_;  // host → next ephemeral port
  ConnectionId next_conn_id_ = 1;
  ListenerId next_listener_id_ = 1;
  AttemptId next_attempt_id_ = 1;
  std::uint64_t next_endpoint_ = 1;
  std::uint64_t next_ticket_ = 1;
};

// One node incarnation's Network. node.cc creates one per start and registers it as a
// NodeResource; the connections and listeners it creates belong to it.
class SimEndpoint final : public Network, public NodeResource {
 public:
  SimEndpoint(SimNetwork& network, SimNode& node);
  ~SimEndpoint() override;
  SimEndpoint(const SimEndpoint&) = delete;
  SimEndpoint& operator=(const SimEndpoint&) = delete;

  // Network (core/io/network.h). Called from a fiber of this node. After mark_dead()
  // both fail with Errc::cancelled.
  // listen: the host must be one of the node's hosts, a wildcard (0.0.0.0, ::, *) or a
  // loopback name, else Errc::invalid_argument; port 0 picks an ephemeral port.
  Result<std::unique_ptr<Listener>> listen(const Address& address) override;
  // connect: `source`, when given, must name one of this node's hosts, else
  // Errc::invalid_argument. Suspends until established, refused or timed out.
  Result<std::unique_ptr<Connection>> connect(const Address& remote,
                                              const std::optional<Address>& source,
                                              Deadline deadline) override;

  // NodeResource: closes every listener, kills every local side (see the file comment
  // for what the peers learn). Idempotent; never suspends.
  void mark_dead(DeathKind kind) override;
  bool dead() const { return dead_; }

 private:
  SimNetwork& network_;
  SimNode& node_;
  std::uint64_t serial_;
  bool dead_ = false;
};

}  // namespace hast::sim

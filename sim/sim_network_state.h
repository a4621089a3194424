// Internal records of SimNetwork (sim/sim_network.h), shared by sim_network.cc (the
// fabric: segments, delivery, faults) and sim_network_socket.cc (listeners, handshakes,
// handles). Nothing outside those two files includes this header.
//
// Indexing: a connection's sides are numbered 0 (client) and 1 (server); direction d
// carries the bytes sent by side d to side 1 - d.
//
// Back-pressure accounting: Direction::outstanding counts the data bytes queued in the
// direction, plus the bytes delivered but not yet read, plus bytes dropped at a side that
// could not take them (never acknowledged). send() waits while it reaches
// send_buffer_bytes; recv releases what it reads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "core/assert.h"
#include "sim/byte_pool.h"
#include "sim/sim_network.h"

namespace hast::sim {

inline constexpr int kClient = 0;
inline constexpr int kServer = 1;

// A fiber parked on a wait list. The ticket lets the fiber remove exactly its own entry
// after the wait, whatever ended it.
struct SimNetwork::Waiter {
  std::uint64_t ticket = 0;
  fiber::Waker waker;
};

struct SimNetwork::Segment {
  enum class Kind : std::uint8_t { data, fin, reset };
  Kind kind = Kind::data;
  PoolBytes bytes;
  Instant due{};
};

// What a side can still do.
enum class SideState : std::uint8_t {
  open,    // sends and receives
  closed,  // closed locally: calls fail with disconnected; stray data is answered by reset
  reset,   // reset locally or by the peer: calls fail with disconnected
  silent,  // half-open fault: calls fail with disconnected; the peer is never told
  dead,    // its endpoint died: calls fail with cancelled
};

// Bytes delivered to a side and not read yet: the delivered segments' buffers, moved in
// whole (no copy on delivery), read from the front.
class ReceiveQueue {
 public:
  // Appends a delivered segment (not empty).
  void push(PoolBytes&& bytes) {
    HAST_ASSERT(!bytes.empty());
    unread_ += bytes.size();
    segments_.push_back(std::move(bytes));
  }
  // Moves min(unread(), out.size()) bytes into `out`; returns how many.
  std::size_t take(std::span<std::byte> out) {
    std::size_t filled = 0;
    while (filled < out.size() && !segments_.empty()) {
      const PoolBytes& front = segments_.front();
      const std::size_t count = std::min(front.size() - front_offset_, out.size() - filled);
      std::memcpy(out.data() + filled, front.data() + front_offset_, count);
      filled += count;
      front_offset_ += count;
      if (front_offset_ == front.size()) {
        BytePool::give(std::move(segments_.front()));
        segments_.pop_front();
        front_offset_ = 0;
      }
    }
    HAST_ASSERT(filled <= unread_);
    unread_ -= filled;
    return filled;
  }
  void clear() {
    segments_.clear();
    front_offset_ = 0;
    unread_ = 0;
  }
  std::size_t unread() const { return unread_; }
  // The count matches the segments (checked by SimNetwork::invariants).
  bool consistent() const {
    std::size_t total = 0;
    for (const PoolBytes& segment : segments_)
      total += segment.size();
    return front_offset_ <= total && unread_ == total - front_offset_ &&
           (segments_.empty() || front_offset_ < segments_.front().size());
  }

 private:
  std::deque<PoolBytes> segments_;
  std::size_t front_offset_ = 0;  // bytes of the front segment already read
  std::size_t unread_ = 0;
};

struct SimNetwork::ConnSide {
  NodeId node = 0;
  std::uint64_t endpoint = 0;  // serial of the owning SimEndpoint
  Address local;
  Address peer;
  SideState state = SideState::open;
  DeathKind death = DeathKind::kill;  // meaningful when state == dead
  ReceiveQueue received;              // delivered bytes not read yet
  bool fin_received = false;          // the peer's FIN came after every byte it sent
  bool reset_answered = false;        // this side already sent its one reset
  bool handle = false;                // a SimConnection exists for this side
  bool released = false;              // no handle now and none will come
  std::vector<Waiter> waiters;        // fibers of `node` in send or recv on this side

  std::size_t unread() const { return received.unread(); }
};

struct SimNetwork::Direction {
  std::deque<Segment> queue;  // sent, not yet delivered; due times never decrease
  Instant wire_free{};        // when the sender's link finishes serialising
  Instant last_due{};         // due time of the last segment queued
  std::size_t outstanding = 0;
  bool held = false;  // the head found the path blocked; heal or unclog restarts it
  std::optional<EventId> event;
};

struct SimNetwork::Conn {
  ConnectionId id = 0;
  std::array<ConnSide, 2> sides;
  std::array<Direction, 2> directions;
};

struct SimNetwork::ListenerRec {
  ListenerId id = 0;
  NodeId node = 0;
  std::uint64_t endpoint = 0;
  Address address;
  std::deque<ConnectionId> backlog;  // server sides waiting for accept()
  std::vector<Waiter> waiters;
};

struct SimNetwork::Attempt {
  enum class Outcome : std::uint8_t { pending, connected, refused };
  AttemptId id = 0;
  NodeId node = 0;
  std::uint64_t endpoint = 0;
  Address remote;
  Address local;
  bool black_holed = false;  // random fault: every handshake is lost
  bool refused = false;      // random fault: the target answers with a reset
  Outcome outcome = Outcome::pending;
  ConnectionId conn = 0;
  std::vector<Waiter> waiters;
};

// The handle user code holds for one side of a connection.
class SimConnection final : public Connection {
 public:
  SimConnection(SimNetwork& network, ConnectionId id, int side, Address local, Address peer)
      : network_(network), id_(id), side_(side), local_(std::move(local)), peer_(std::move(peer)) {}
  ~SimConnection() override { network_.handle_gone(id_, side_); }
  SimConnection(const SimConnection&) = delete;
  SimConnection& operator=(const SimConnection&) = delete;

  Result<void> send(std::span<const std::byte> data, Deadline deadline) override {
    return network_.conn_send(id_, side_, data, {}, deadline);
  }
  Result<void> send_gather(std::span<const std::byte> head, std::span<const std::byte> body,
                           Deadline deadline) override {
    return network_.conn_send(id_, side_, head, body, deadline);
  }
  Result<void> recv_exact(std::span<std::byte> buffer, Deadline deadline) override {
    return network_.conn_recv(id_, side_, buffer, deadline);
  }
  void close() override { network_.conn_close(id_, side_); }
  Address peer_address() const override { return peer_; }
  Address local_address() const override { return local_; }
  ConnectionId id() const { return id_; }

 private:
  SimNetwork& network_;
  ConnectionId id_;
  int side_;
  Address local_;
  Address peer_;
};

// The handle user code holds for a listener.
class SimListener final : public Listener {
 public:
  SimListener(SimNetwork& network, SimNetwork::ListenerId id, Address address)
      : network_(network), id_(id), address_(std::move(address)) {}
  ~SimListener() override { network_.close_listener(id_); }
  SimListener(const SimListener&) = delete;
  SimListener& operator=(const SimListener&) = delete;

  Result<std::unique_ptr<Connection>> accept(Deadline deadline) override {
    return network_.accept(id_, deadline);
  }
  void close() override { network_.close_listener(id_); }
  Address address() const override { return address_; }

 private:
  SimNetwork& network_;
  SimNetwork::ListenerId id_;
  Address address_;
};

}  // namespace hast::sim

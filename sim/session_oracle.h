// SessionOracle: the "one primary connection" half of O7 (reference/fault-model.md §6.5):
// a secondary never holds two primary sessions of one resource at once. Observed on the
// simulated wire (a WireTap), never reported by the code under test.
//
// Model. HAST's primary opens a connection pair per session (§6.3): on the first (A) it
// sends HelloRequest {resource} and the secondary answers HelloReply {token} (or refuses);
// on the second (B) it sends IdentityRequest {token, counters}; the secondary answers on A
// with AcceptReply (or a refusal), then requests flow on A and replies on B. The oracle
// reassembles the first messages of each accepted (server-side) connection with
// core/proto's frame and nv codecs: the first message consumed tells A (no token) from B
// (a token), the secondary's HelloReply on A gives A's token, which pairs B with A, and a
// second message on A that is not a refusal means the secondary accepted the session.
//
// Statement. When a node accepts a session of resource R, every session of R it accepted
// before is over on its side: both of that session's connections are closed, reset or
// dead at the secondary's end (SimNetwork's side state, not the code's view). A session
// the secondary still holds open while it accepts another could go on applying requests
// (a zombie primary's, or an old incarnation's bytes still in flight) next to the new
// session's synchronisation.
//
// The other half of O7, that writes a primary acknowledged while the other node also
// served as primary are never merged silently, is judged at the end of a swarm run from
// the ground truth (GroundTruth::mark_dual_primary, swarm.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/proto/messages.h"
#include "sim/cluster.h"
#include "sim/sim_network.h"

namespace hast::sim {

class SessionOracle final : public WireTap {
 public:
  // Taps `cluster`'s network from now on (the network has one tap: this one).
  explicit SessionOracle(SimCluster& cluster);
  ~SessionOracle() override;
  SessionOracle(const SessionOracle&) = delete;
  SessionOracle& operator=(const SessionOracle&) = delete;

  const std::vector<Violation>& violations() const { return violations_; }
  std::uint64_t sessions_accepted() const { return accepted_; }

  // WireTap: only server sides (the accepting node) matter.
  void on_sent(ConnectionId id, NodeId node, Side side, std::span<const std::byte> bytes) override;
  void on_consumed(ConnectionId id, NodeId node, Side side,
                   std::span<const std::byte> bytes) override;

 private:
  // Reassembles whole messages of one direction; keeps only what is not parsed yet.
  struct FrameStream {
    std::vector<std::byte> buffer;
    int messages = 0;
    bool broken = false;  // not HAST framing: stop looking
    std::optional<proto::Nv> next();
  };
  enum class Kind : std::uint8_t { unknown, first, second, other };
  // One connection as its accepting node sees it.
  struct Accepted {
    NodeId node = 0;
    Kind kind = Kind::unknown;
    std::string resource;
    std::optional<proto::Token> token;  // A: sent in HelloReply; B: received in identity
    ConnectionId partner = 0;           // the other connection of the pair, once paired
    bool accepted = false;              // A: the secondary sent its AcceptReply
    Instant accepted_at{};
    FrameStream consumed;
    FrameStream sent;
  };

  void classify(ConnectionId id, Accepted& connection, const proto::Nv& first);
  void on_reply(ConnectionId id, Accepted& connection, const proto::Nv& reply);
  void check_accept(ConnectionId id, const Accepted& connection);
  bool open_here(ConnectionId id) const;

  SimCluster& cluster_;
  std::map<ConnectionId, Accepted> connections_;
  std::vector<Violation> violations_;
  std::uint64_t accepted_ = 0;
};

}  // namespace hast::sim

// SecondarySession: the secondary's half of one connection pair (reference/hast-spec.md
// §6.3 steps 5–6, §6.4, §8.2), from the primary's second handshake message until the
// connection fails or the session is cancelled.
//
// Handshake: decide_sync over both nodes' counters (adopting the primary's resuid on first
// contact), then either a refusal ("Split-brain condition!", "Resource unique ID mismatch
// …") or the accept reply with this node's activemap (on-disk, all ones or none).
//
// Serving: the receiver takes requests from connection A in order; each is validated
// (an invalid one — including an oversized WRITE, whose payload the framing layer already
// read and dropped — is answered EINVAL and the stream goes on); a memsync WRITE gets its
// early `received` reply before its disk write is queued; every operation reserves its
// range in arrival order (FLUSH reserves the whole device: a barrier), so overlapping
// operations reach the disk in the order the primary sent them (defect 7). Writes are
// made durable before their final reply unless the primary announced batch flushes
// (defect 9). The on-disk activemap is cleared once, when the first request arrives (the
// primary has merged it by then). Replies go out on connection B in completion order.
// Any receive or send failure, or a silent primary for 2 × keepalive, ends the session
// (event `disconnect`).
#pragma once

#include <cstdint>

#include "core/io/network.h"
#include "core/proto/messages.h"
#include "core/replication/context.h"
#include "core/replication/decision.h"
#include "core/replication/local_component.h"

namespace hast::replication {

struct SecondaryStats {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t deletes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t errors = 0;  // requests answered with an error
};

class SecondarySession {
 public:
  // `split_brain_reported` outlives sessions: the split-brain event fires once per episode
  // (defect 11), until a handshake succeeds again.
  SecondarySession(ResourceContext& context, LocalComponent& local, Connection& in, Connection& out,
                   std::uint8_t version, bool& split_brain_reported);

  // Runs the rest of the handshake for `identity`, then serves until the session ends.
  // Returns the reason it ended: Errc::split_brain or Errc::refused for a refused
  // handshake, Errc::cancelled when cancelled, the connection's error otherwise.
  Result<void> run(const proto::IdentityRequest& identity);

  const SecondaryStats& stats() const { return stats_; }

 private:
  struct Pending;
  Result<void> handshake(const proto::IdentityRequest& identity);
  Result<void> serve();
  void sender_loop();
  Result<void> receive_one();
  void execute(Pending& pending);
  Result<std::vector<std::byte>> map_for(MapToSend choice);

  ResourceContext& context_;
  LocalComponent& local_;
  Connection& in_;   // A: requests from the primary
  Connection& out_;  // B: replies to the primary
  std::uint8_t version_;
  bool& split_brain_reported_;
  proto::Extensions peer_extensions_;
  bool map_cleared_ = false;
  SecondaryStats stats_;
  struct State;
  State* state_ = nullptr;  // valid while serve() runs
};

}  // namespace hast::replication

// BlockRequest::owned (core/io/frontend.h): a frontend may hand a WRITE's buffer over to
// the core, which then keeps it for an async remote leg sent after the client's answer,
// instead of copying it; a frontend that does not offer it gets the copy.
//
// Method: a pair in async, the primary's frontend written here. Every write has its own
// ByteBuffer; complete() "reuses" whatever the buffer still holds by overwriting it (what a
// frontend that recycles its buffers may do once a request is answered). The link to the
// secondary is clogged while the writes go out, so most remote legs are sent after their
// client was answered (the sender blocks once the network holds send_buffer_bytes). When
// the pair is complete again, the secondary must hold what the clients wrote, whether the
// buffers were handed over or copied; with the offer, every buffer must have been taken.
// A core that sent from the client's buffer without keeping it sends the overwritten
// bytes; one that ignored the offer leaves the buffers with the frontend.
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/assert.h"
#include "core/io/byte_buffer.h"
#include "core/io/frontend.h"
#include "core/replication/node.h"
#include "sim/sim_network.h"
#include "sim/world.h"
#include "tests/support/node_pair.h"
#include "tests/support/queued_frontend.h"

using namespace std::chrono_literals;
using hast::BlockOp;
using hast::BlockRequest;
using hast::ByteBuffer;
using hast::NodeIo;
using hast::sim::NodeId;

namespace {

constexpr NodeId kA = hast::test::kPairA;  // primary
constexpr NodeId kB = hast::test::kPairB;  // secondary
constexpr std::uint64_t kWriteBytes = 16 * 1024;
constexpr std::uint64_t kWriteCount = 64;  // 1 MiB: four times the network's send buffer
constexpr std::uint64_t kStride = 64 * 1024;
constexpr std::byte kReused{0xee};  // what complete() writes over a buffer it still holds

std::byte pattern_byte(std::uint64_t id, std::uint64_t at) {
  return static_cast<std::byte>((id * 131 + at * 7 + at / 251) & 0xff);
}

// The clients' side: the primary's block device. Requests come from the test's queue.
struct Clients {
  explicit Clients(bool offer_value) : offer(offer_value) {}

  bool offer;                                                   // set BlockRequest::owned
  std::map<std::uint64_t, std::unique_ptr<ByteBuffer>> buffers;  // by request id
  std::uint64_t answered = 0;
  std::uint64_t failed = 0;
  std::uint64_t taken = 0;  // buffers the core had taken by their complete()
};

// What the clients see of an answer: a buffer the core did not take is written over at
// once (the next request's bytes).
void on_answer(Clients& clients, const BlockRequest& request, const hast::Result<void>& result) {
  clients.answered++;
  if (!result) clients.failed++;
  ByteBuffer& buffer = *clients.buffers.at(request.id);
  if (buffer.empty()) {
    clients.taken++;
    return;
  }
  std::fill(buffer.begin(), buffer.end(), kReused);
}

// hasta primary, hastb secondary in async; the test writes through hasta's frontend.
class Pair {
 public:
  Pair(std::uint64_t seed, bool offer)
      : clients_(offer),
        pair_(seed,
              {.replay_command = "owned_buffer_test",
               .config = hast::test::pair_config("async"),
               .timing = {.timeout = 2s, .keepalive = 500ms, .reconnect = 200ms}},
              [this](NodeId, NodeIo& io, hast::meta::Metadata* created) {
                HAST_ASSERT(created != nullptr);
                local_offset_ = created->local_offset_bytes;
                // The test's queue; answers go to the clients.
                return std::make_unique<hast::test::QueuedFrontendParts>(
                    io, 2 * kWriteCount,
                    [this](const BlockRequest& request, hast::Result<void> result) {
                      on_answer(clients_, request, result);
                    },
                    frontend_);
              }) {}

  hast::sim::World& world() { return pair_.world(); }
  const Clients& clients() const { return clients_; }

  // Both nodes up, roles set, the pair complete.
  void start() {
    pair_.start_secondary_then_primary();
    REQUIRE(pair_.run_until([&] { return settled() && frontend_ != nullptr; }, 30s));
  }

  // Queues write `id` (kWriteBytes of its pattern at id * kStride) now.
  void write(std::uint64_t id) {
    auto& buffer = clients_.buffers[id];
    buffer = std::make_unique<ByteBuffer>(kWriteBytes);
    for (std::uint64_t at = 0; at < kWriteBytes; at++)
      (*buffer)[at] = pattern_byte(id, at);
    BlockRequest request{id, BlockOp::write, id * kStride, kWriteBytes, hast::Fua::no,
                         buffer->span()};
    if (clients_.offer) request.owned = buffer.get();
    HAST_ASSERT(frontend_ != nullptr && frontend_->offer(request));
  }

  // Both nodes complete, nothing dirty, no sync running.
  bool settled() {
    auto a = pair_.node(kA)->status("shared");
    auto b = pair_.node(kB)->status("shared");
    return a && b && a->status == "complete" && b->status == "complete" && !a->sync.running &&
           a->dirty_bytes == 0 && a->async_backlog == 0;
  }

  // Remote legs the primary dropped (a full backlog): the resync sent those instead.
  std::uint64_t dropped() { return pair_.node(kA)->status("shared")->primary.async_dropped; }

  // The first write whose bytes on `node`'s disk are not its pattern; 0 when none.
  std::uint64_t first_wrong(NodeId node) {
    std::vector<std::byte> bytes(kWriteBytes);
    for (std::uint64_t id = 1; id <= kWriteCount; id++) {
      world().node(node).disk().peek_current(local_offset_ + id * kStride, bytes);
      for (std::uint64_t at = 0; at < kWriteBytes; at++) {
        if (bytes[at] != pattern_byte(id, at)) return id;
      }
    }
    return 0;
  }

 private:
  // Before pair_: the node programs refer to these until pair_ has killed them.
  Clients clients_;
  hast::test::QueuedFrontend* frontend_ = nullptr;
  std::uint64_t local_offset_ = 0;
  hast::test::NodePair pair_;
};

// Writes kWriteCount buffers at once while the link to the secondary is clogged, then
// waits until the pair is settled again.
void run_clogged_writes(Pair& pair) {
  pair.start();
  hast::sim::World& world = pair.world();
  world.network().clog(kA, kB, 300ms);
  for (std::uint64_t id = 1; id <= kWriteCount; id++)
    pair.write(id);
  HAST_ASSERT(world.run_until([&] { return pair.clients().answered == kWriteCount; },
                              world.now() + 1s));
  REQUIRE(world.run_until([&] { return pair.settled(); }, world.now() + 10s));
}

}  // namespace

TEST_CASE("Owned buffer: async keeps a handed-over WRITE buffer for its remote leg",
          "[sim][async][owned_buffer]") {
  Pair pair(71, /*offer=*/true);
  run_clogged_writes(pair);
  CHECK(pair.clients().failed == 0);
  CHECK(pair.clients().taken == kWriteCount);  // no copy: every buffer went to the core
  CHECK(pair.dropped() == 0);
  CHECK(pair.first_wrong(kA) == 0);
  CHECK(pair.first_wrong(kB) == 0);  // sent from the kept buffers, after the answers
}

TEST_CASE("Owned buffer: without the offer, async copies what its remote leg sends",
          "[sim][async][owned_buffer]") {
  Pair pair(72, /*offer=*/false);
  run_clogged_writes(pair);
  CHECK(pair.clients().failed == 0);
  CHECK(pair.clients().taken == 0);
  CHECK(pair.dropped() == 0);
  CHECK(pair.first_wrong(kA) == 0);
  CHECK(pair.first_wrong(kB) == 0);  // the frontend overwrote its buffers after each answer
}

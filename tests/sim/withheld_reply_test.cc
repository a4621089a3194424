// The primary's reply timeout (reference/hast-spec.md §6.6, fault-model.md §6.5 O10) when
// the secondary answers every request but one: its disk never completes one write (a stuck
// I/O, a gray failure of one request) while the writes around it keep arriving and being
// answered. hast.conf `timeout` bounds how long the primary waits for the secondary: after
// it the primary gives the peer up (disconnects, marks the extents dirty) and the clients
// that were waiting for the peer are answered.
//
// memsync: the stuck write W's client is answered at the early `received` reply, but W keeps
// its range lock until the secondary's final reply, so a client write W2 over the same
// sectors waits for it. Other clients' memsync writes elsewhere keep the link busy: each
// gets its `received` reply at once (the secondary sends it on arrival, before ordering the
// write behind W and behind the FLUSH barrier queued after W).
//
// The first test is the control: with nothing else in flight, W's final reply is timed out
// and W2 answered within the timeout. The second keeps other writes flowing: the primary's
// deadline runs from the send of the oldest request still awaiting its final reply
// (Primary::receiver_loop, AwaitedReplies), so replies to the others do not extend it. A
// primary that re-armed one deadline at every reply (as FreeBSD's hastd does) left W2
// waiting as long as the others flowed, about 20 s, bounded only by the 256-request pools.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "core/assert.h"
#include "core/io/frontend.h"
#include "core/replication/node.h"
#include "sim/world.h"
#include "tests/support/holding_disk.h"
#include "tests/support/node_pair.h"
#include "tests/support/queued_frontend.h"

using namespace std::chrono_literals;
using hast::BlockOp;
using hast::BlockRequest;
using hast::Duration;
using hast::Instant;
using hast::NodeIo;
using hast::replication::Mutation;
using hast::sim::NodeId;
using hast::test::HoldingDisk;
using hast::test::HoldParts;

namespace {

constexpr NodeId kA = hast::test::kPairA;  // primary
constexpr NodeId kB = hast::test::kPairB;  // secondary, whose disk withholds one write
constexpr Duration kTimeout = 2s;
constexpr std::uint64_t kTrapOffset = 1 << 20;  // data-area offset of the withheld write
constexpr std::uint64_t kWriteBytes = 4096;

using Answers = std::map<std::uint64_t, Instant>;  // by request id, when answered

// hasta primary, hastb secondary in memsync; the test writes through hasta's frontend.
// Set-up steps fail with REQUIRE (NodePair).
class Pair {
 public:
  Pair(std::uint64_t seed, Mutation mutation)
      : pair_(seed,
              {.replay_command = "withheld_reply_test",
               .config = hast::test::pair_config("memsync"),
               .timing = {.timeout = kTimeout, .keepalive = 500ms, .reconnect = 200ms},
               .mutation = mutation},
              [this](NodeId id, NodeIo& io, hast::meta::Metadata* created) {
                HAST_ASSERT(created != nullptr);
                // The secondary's trapped write is never released: it hangs until the node
                // dies.
                auto parts = std::make_unique<HoldParts>(
                    io, created->local_offset_bytes + kTrapOffset, kWriteBytes, 64,
                    [this](const BlockRequest& request, hast::Result<void>) {
                      answered_[request.id] = world().now();
                    },
                    frontend_);
                if (id == kB) trap_ = &parts->disk();
                return parts;
              }) {}

  hast::sim::World& world() { return pair_.world(); }
  HoldingDisk& trap() { return *trap_; }

  // Both nodes up, roles set, the pair complete.
  void start() {
    pair_.start_secondary_then_primary();
    REQUIRE(pair_.run_until([&] { return complete() && frontend_ != nullptr; }, 30s));
  }

  // Queues a client write of kWriteBytes at `offset` now; returns its id.
  std::uint64_t write(std::uint64_t offset) {
    std::uint64_t id = next_id_++;
    buffers_[id].assign(kWriteBytes, std::byte{static_cast<unsigned char>(id)});
    BlockRequest request{id, BlockOp::write, offset, kWriteBytes, hast::Fua::no, buffers_[id]};
    HAST_ASSERT(frontend_ != nullptr && frontend_->offer(request));
    issued_[id] = world().now();
    return id;
  }
  // How long write `id`'s client waited; nullopt while it waits.
  std::optional<Duration> latency(std::uint64_t id) const {
    auto found = answered_.find(id);
    if (found == answered_.end()) return std::nullopt;
    return found->second - issued_.at(id);
  }

 private:
  bool complete() {
    auto a = pair_.node(kA)->status("shared");
    auto b = pair_.node(kB)->status("shared");
    return a && b && a->status == "complete" && b->status == "complete" && !a->sync.running;
  }

  // Before pair_: the node programs refer to these until pair_ has killed them.
  HoldingDisk* trap_ = nullptr;
  hast::test::QueuedFrontend* frontend_ = nullptr;
  Answers answered_;
  Answers issued_;
  std::map<std::uint64_t, std::vector<std::byte>> buffers_;
  std::uint64_t next_id_ = 1;
  hast::test::NodePair pair_;
};

// Arms the trap, writes W over it and, 100 ms later, W2 over the same sectors; with
// `others`, a write elsewhere (each to its own sectors) every 100 ms for about ten
// timeouts. Returns how long W2's client waited (nullopt when it was not answered within
// fifteen timeouts) and what happened.
struct Outcome {
  std::optional<Duration> waited;  // W2's client; nullopt: not answered
  std::string what;
};
Outcome overlapping_write_latency(std::uint64_t seed, bool others,
                                  Mutation mutation = Mutation::none) {
  Pair pair(seed, mutation);
  pair.start();
  pair.trap().armed = true;
  hast::sim::World& world = pair.world();
  Instant start = world.now();
  std::uint64_t stuck = pair.write(kTrapOffset);
  std::optional<std::uint64_t> overlapping;
  world.after(100ms, "overlapping-write", [&] { overlapping = pair.write(kTrapOffset); });
  std::vector<std::uint64_t> other_ids;
  if (others) {
    for (int i = 2; i < 190; i++) {
      world.after(i * 100ms, "other-write", [&pair, &other_ids, i] {
        other_ids.push_back(pair.write(4 * kTrapOffset + i * kWriteBytes));  // disjoint
      });
    }
  }
  Instant limit = start + 15 * kTimeout;
  world.run_until([&] { return world.now() >= limit; }, limit);
  // The secondary got W and holds it; W's client had its answer at `received`.
  HAST_ASSERT(pair.trap().held && pair.latency(stuck).has_value() && overlapping);
  // The others flowed: each answered at once (at its `received`), the link alive.
  Duration others_max{};
  for (std::uint64_t id : other_ids) {
    auto waited = pair.latency(id);
    HAST_ASSERT(waited.has_value());
    others_max = std::max(others_max, *waited);
  }
  HAST_ASSERT(others_max < 100ms);
  auto waited = pair.latency(*overlapping);
  std::string what = fmt::format(
      "W2 waited {:.3f} s (-1: not answered); {} other writes answered, the slowest after {:.6f} s",
      waited ? std::chrono::duration<double>(*waited).count() : -1.0, other_ids.size(),
      std::chrono::duration<double>(others_max).count());
  return Outcome{waited, what};
}

}  // namespace

TEST_CASE("Withheld reply: alone, it is timed out and the waiting client answered",
          "[sim][withheld_reply]") {
  Outcome outcome = overlapping_write_latency(61, /*others=*/false);
  INFO(outcome.what);
  REQUIRE(outcome.waited.has_value());
  CHECK(*outcome.waited <= kTimeout + 1s);
}

// The control's check is live: a primary that never times the secondary out (the mutation)
// leaves W2 waiting.
TEST_CASE("Withheld reply: the control catches wait_forever_for_remote",
          "[sim][withheld_reply]") {
  Outcome outcome = overlapping_write_latency(61, /*others=*/false,
                                              Mutation::wait_forever_for_remote);
  INFO(outcome.what);
  CHECK_FALSE(outcome.waited.has_value());
}

// The deadline is W's own: `timeout` after W was sent, W2 was issued 100 ms later, so W2 is
// answered within the timeout of its own issue. A deadline taken from anything sent after
// W (the first other write at 200 ms, the remote FLUSH that follows it; e.g. a memsync
// `received` reply wrongly taken as W's final one) answers W2 after kTimeout + 100 ms.
TEST_CASE("Withheld reply: while other replies flow, it is still timed out",
          "[sim][withheld_reply]") {
  Outcome outcome = overlapping_write_latency(62, /*others=*/true);
  INFO(outcome.what);
  REQUIRE(outcome.waited.has_value());
  CHECK(*outcome.waited <= kTimeout);
}

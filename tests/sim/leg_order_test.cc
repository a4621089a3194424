// Which leg of a lone write starts first (Primary::let_remote_leg_lead): in fullsync the
// answer waits for the secondary's final reply, the longer leg, so with the sender idle the
// request goes on the wire before the local write is submitted; async and memsync, answered
// on the local leg (memsync: and the early reply), submit the local write first.
//
// Method: a pair, the primary's frontend written here, one write at a time on an idle pair
// (each answered and its remote FLUSH gone before the next). In the World's readable trace,
// between the offer and the answer: the first `net.send` from the connecting side (the
// primary's: it dials both connections, and only requests travel from it) against the
// primary disk's `disk.submit.write` of the write's range. A primary that submitted the
// local write first in fullsync, or sent first in async, fails here.
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/assert.h"
#include "core/io/byte_buffer.h"
#include "core/io/frontend.h"
#include "core/prng.h"
#include "core/replication/node.h"
#include "sim/sim_disk.h"
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
constexpr std::uint64_t kWriteBytes = 8 * 1024;
constexpr std::uint64_t kStride = 64 * 1024;
constexpr int kWrites = 8;

// One trace line: "<instant> <kind> <a> <b> <c>".
struct Line {
  std::string kind;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::uint64_t c = 0;
};

Line parse(const std::string& text) {
  std::istringstream in(text);
  std::string instant;
  Line line;
  in >> instant >> line.kind >> line.a >> line.b >> line.c;
  return line;
}

// Where the local write and the request's send came, as indices of trace lines.
struct Order {
  std::optional<std::size_t> send;
  std::optional<std::size_t> local;
};

class Pair {
 public:
  explicit Pair(std::string_view mode)
      : pair_(31,
              {.replay_command = "leg_order_test",
               .config = hast::test::pair_config(mode),
               .timing = {.timeout = 2s, .keepalive = 5s, .reconnect = 200ms},
               .keep_trace = true},
              [this](NodeId, NodeIo& io, hast::meta::Metadata* created) {
                if (created != nullptr) local_offset_ = created->local_offset_bytes;
                return std::make_unique<hast::test::QueuedFrontendParts>(
                    io, 4,
                    [this](const BlockRequest&, const hast::Result<void>& result) {
                      HAST_ASSERT(result.has_value());
                      answered_++;
                    },
                    frontend_);
              }) {}

  void start() {
    pair_.start_secondary_then_primary();
    REQUIRE(pair_.run_until([&] { return settled() && frontend_ != nullptr; }, 30s));
  }

  // Writes `id` alone, waits for its answer and for the pair to be idle again; returns the
  // order its legs started in.
  Order write(std::uint64_t id) {
    hast::sim::World& world = pair_.world();
    std::size_t from = world.trace_lines().size();
    std::uint64_t before = answered_;
    ByteBuffer buffer(kWriteBytes);
    std::fill(buffer.begin(), buffer.end(), std::byte{0x5a});
    BlockRequest request{id, BlockOp::write, id * kStride, kWriteBytes, hast::Fua::no,
                         buffer.span()};
    HAST_ASSERT(frontend_ != nullptr && frontend_->offer(request));
    REQUIRE(world.run_until([&] { return answered_ > before; }, world.now() + 2s));
    std::size_t to = world.trace_lines().size();
    world.run_for(50ms);  // the remote FLUSH and every reply: nothing of this write is left
    std::uint64_t disk = hast::fnv1a(world.node(kA).disk().name());
    Order order;
    for (std::size_t i = from; i < to; i++) {
      Line line = parse(world.trace_lines()[i]);
      if (!order.send && line.kind == "net.send" && line.b == 0) order.send = i;
      if (!order.local && line.kind == "disk.submit.write" && line.a == disk &&
          line.b == local_offset_ + id * kStride && line.c == kWriteBytes) {
        order.local = i;
      }
    }
    return order;
  }

 private:
  bool settled() {
    auto a = pair_.node(kA)->status("shared");
    auto b = pair_.node(kB)->status("shared");
    return a && b && a->status == "complete" && b->status == "complete" && !a->sync.running &&
           a->dirty_bytes == 0;
  }

  std::uint64_t answered_ = 0;
  hast::test::QueuedFrontend* frontend_ = nullptr;
  std::uint64_t local_offset_ = 0;
  hast::test::NodePair pair_;
};

// For each of kWrites lone writes: whether the request was sent before the local write.
std::vector<bool> sent_first(std::string_view mode) {
  Pair pair(mode);
  pair.start();
  std::vector<bool> result;
  for (int id = 1; id <= kWrites; id++) {
    Order order = pair.write(static_cast<std::uint64_t>(id));
    REQUIRE(order.send.has_value());
    REQUIRE(order.local.has_value());
    result.push_back(*order.send < *order.local);
  }
  return result;
}

}  // namespace

TEST_CASE("Leg order: a lone fullsync write is sent before its local write starts",
          "[sim][replication][leg_order]") {
  CHECK(sent_first("fullsync") == std::vector<bool>(kWrites, true));
}

TEST_CASE("Leg order: async and memsync start a lone write's local leg first",
          "[sim][replication][leg_order]") {
  CHECK(sent_first("async") == std::vector<bool>(kWrites, false));
  CHECK(sent_first("memsync") == std::vector<bool>(kWrites, false));
}

// A primary that restarts while the secondary's previous session waits for a stuck disk
// write (reference/hast-spec.md §6.3 step 5: a new first connection replaces the old
// session). The old session cannot end before the write it accepted returns
// (SecondarySession::serve lets accepted operations reach the disk), so the secondary
// waits for it only up to half the timeout, then refuses the new connection with
// errmsg_session_busy (node.h). The primary logs the refusal and tries again after its
// reconnect pause; once the write returns, the old session ends and the next attempt
// connects.
//
// A secondary that waited for the old session without bound (HAST's parent waits for its
// old worker) left the primary's handshake to time out at every attempt, its log saying
// only that, for as long as the write was stuck: the first check below fails then.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

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
using hast::sim::NodeId;
using hast::test::HoldingDisk;
using hast::test::HoldParts;

namespace {

constexpr NodeId kA = hast::test::kPairA;  // primary, restarted
constexpr NodeId kB = hast::test::kPairB;  // secondary, whose disk holds one write
constexpr Duration kTimeout = 2s;
constexpr Duration kReconnect = 200ms;
constexpr std::uint64_t kTrapOffset = 1 << 20;  // data-area offset of the held write
constexpr std::uint64_t kWriteBytes = 4096;

// hasta primary, hastb secondary in fullsync, the World keeping its log lines. Set-up
// steps fail with REQUIRE (NodePair).
class Pair {
 public:
  explicit Pair(std::uint64_t seed)
      : pair_(seed,
              {.replay_command = "hello_busy_test",
               .config = hast::test::pair_config("fullsync"),
               .timing = {.timeout = kTimeout, .keepalive = 500ms, .reconnect = kReconnect},
               .keep_trace = true},
              [this](NodeId id, NodeIo& io, hast::meta::Metadata* created) {
                // Created at each node's first start; both share one layout.
                if (created != nullptr) local_offset_ = created->local_offset_bytes;
                HAST_ASSERT(local_offset_ != 0);
                auto parts = std::make_unique<HoldParts>(
                    io, local_offset_ + kTrapOffset, kWriteBytes, 16,
                    [](const BlockRequest&, hast::Result<void>) {}, frontend_);
                if (id == kB) trap_ = &parts->disk();
                return parts;
              }) {}

  hast::test::NodePair& nodes() { return pair_; }
  hast::sim::World& world() { return pair_.world(); }
  HoldingDisk& trap() { return *trap_; }

  // Queues a client write of kWriteBytes at `offset` on the primary.
  void write(std::uint64_t offset) {
    buffers_.emplace_back(kWriteBytes, std::byte{0x5a});
    BlockRequest request{next_id_++, BlockOp::write, offset, kWriteBytes, hast::Fua::no,
                         buffers_.back()};
    HAST_ASSERT(frontend_ != nullptr && frontend_->offer(request));
  }

  // Both nodes report "complete" (the secondary: a session is up).
  bool complete() {
    auto* a = pair_.node(kA);
    auto* b = pair_.node(kB);
    if (a == nullptr || b == nullptr) return false;
    auto primary = a->status("shared");
    auto secondary = b->status("shared");
    return primary && secondary && primary->status == "complete" &&
           secondary->status == "complete";
  }

  // The first log line from `node` at or after trace line `from` that contains `text`;
  // nullopt when there is none yet.
  std::optional<std::size_t> find_log(std::string_view node, std::string_view text,
                                      std::size_t from = 0) {
    const std::vector<std::string>& lines = world().trace_lines();
    for (std::size_t i = from; i < lines.size(); i++) {
      if (lines[i].find(node) != std::string::npos && lines[i].find(text) != std::string::npos) {
        return i;
      }
    }
    return std::nullopt;
  }
  std::size_t log_end() { return world().trace_lines().size(); }

 private:
  // Before pair_: the node programs refer to these until pair_ has killed them.
  HoldingDisk* trap_ = nullptr;
  hast::test::QueuedFrontend* frontend_ = nullptr;
  std::uint64_t local_offset_ = 0;
  std::vector<std::vector<std::byte>> buffers_;
  std::uint64_t next_id_ = 1;
  hast::test::NodePair pair_;
};

// The pair complete, then a client write the secondary's disk holds.
void pair_with_held_write(Pair& pair) {
  hast::test::NodePair& nodes = pair.nodes();
  nodes.start_secondary_then_primary();
  REQUIRE(nodes.run_until([&] { return pair.complete(); }, 30s));
  pair.trap().armed = true;
  pair.write(kTrapOffset);
  REQUIRE(nodes.run_until([&] { return pair.trap().held; }, 1s));
}

// hastd restarts on the primary (killed, started, made primary again): it sends a HELLO.
void restart_primary(Pair& pair) {
  hast::test::NodePair& nodes = pair.nodes();
  nodes.stop(kA);
  pair.world().node(kA).kill();
  nodes.start(kA);
  REQUIRE(nodes.set_role(kA, hast::meta::Role::primary));
}

void release_held_write(Pair& pair) {
  pair.nodes().on(kB, [&](hast::replication::HastNode&) { pair.trap().release(); });
}

// One run of the first test case below.
void restart_while_held(std::uint64_t seed) {
  Pair pair(seed);
  hast::test::NodePair& nodes = pair.nodes();
  pair_with_held_write(pair);

  // hastd restarts on the primary; the old session on the secondary lost its connections
  // and waits for the held write.
  std::size_t restart_log = pair.log_end();
  Instant restarted = pair.world().now();
  restart_primary(pair);

  // Refused, not timed out: the primary logs the secondary's errmsg within one handshake.
  const std::string busy(hast::replication::errmsg_session_busy);
  std::optional<std::size_t> refused;
  REQUIRE(nodes.run_until(
      [&] { return (refused = pair.find_log("hasta", busy, restart_log)).has_value(); },
      kTimeout));
  INFO(pair.world().trace_lines()[*refused]);
  CHECK(pair.find_log("hasta", "Unable to connect", restart_log) == refused);
  CHECK(pair.find_log("hastb", "Refusing a new connection from the primary", restart_log));
  CHECK(pair.world().now() - restarted < kTimeout);
  // It keeps trying, and is refused again while the write is held; nothing is paired.
  std::size_t after_first = *refused + 1;
  REQUIRE(nodes.run_until([&] { return pair.find_log("hasta", busy, after_first).has_value(); },
                          kTimeout + kReconnect));
  CHECK_FALSE(pair.complete());
  CHECK_FALSE(pair.trap().landed);
  CHECK(nodes.node(kA)->status("shared")->status == "degraded");
  CHECK(nodes.node(kB)->status("shared")->status != "complete");  // its session is ending

  // The write returns: the old session ends, and the next attempt connects.
  std::size_t release_log = pair.log_end();
  Instant released = pair.world().now();
  release_held_write(pair);
  REQUIRE(nodes.run_until([&] { return pair.complete(); }, kTimeout + kReconnect + 1s));
  CHECK(pair.trap().landed);
  CHECK(pair.world().now() - released <= kTimeout / 2 + kReconnect + 100ms);
  auto ended = pair.find_log("hastb", "Disconnected from the primary", restart_log);
  auto connected = pair.find_log("hasta", "Connected to", release_log);
  REQUIRE(ended.has_value());
  REQUIRE(connected.has_value());
  CHECK(*ended < *connected);
}

// The primary restarts twice while the write is held: two HELLOs wait for the old session
// at once, the first from a primary that is gone. When the write returns both go on; only
// the newest may answer and keep its connection and token. A stale one that set the token
// last made the live primary's second connection fail the token check, which the primary
// only learns from its timeout (2 s).
void two_waiting_hellos(std::uint64_t seed) {
  Pair pair(seed);
  hast::test::NodePair& nodes = pair.nodes();
  pair_with_held_write(pair);
  restart_primary(pair);
  nodes.run_until([] { return false; }, 300ms);  // its HELLO waits for the old session
  restart_primary(pair);
  nodes.run_until([] { return false; }, 100ms);  // this one too, the first still waiting
  Instant released = pair.world().now();
  release_held_write(pair);
  REQUIRE(nodes.run_until([&] { return pair.complete(); }, kTimeout + kReconnect + 1s));
  CHECK(pair.world().now() - released < 500ms);
  CHECK_FALSE(pair.find_log("", hast::proto::errmsg_token_mismatch));
}

// A role change on the secondary begins while a HELLO waits for the old session (both wait
// for the held write). Once it returns, the HELLO must see the role change and refuse with
// the role the node is going to (init), not answer as a secondary being torn down.
void role_change_while_hello_waits(std::uint64_t seed) {
  Pair pair(seed);
  hast::test::NodePair& nodes = pair.nodes();
  pair_with_held_write(pair);
  restart_primary(pair);
  const std::string busy(hast::replication::errmsg_session_busy);
  REQUIRE(nodes.run_until([&] { return pair.find_log("hasta", busy).has_value(); }, kTimeout));
  nodes.run_until([] { return false; }, 400ms);  // refused once; the next HELLO waits now
  bool role_done = false;
  bool role_changed = false;
  hast::replication::HastNode* b = nodes.node(kB);
  REQUIRE(pair.world().node(kB).scheduler().spawn("role", [&] {
    role_changed = b->set_role("shared", hast::meta::Role::init).has_value();
    role_done = true;
  }));
  nodes.run_until([] { return false; }, 10ms);
  std::size_t release_log = pair.log_end();
  release_held_write(pair);
  REQUIRE(nodes.run_until([&] { return role_done; }, 2s));
  CHECK(role_changed);
  auto as_init = [&] {
    return pair.find_log("hasta", "Remote node acts as init", release_log).has_value();
  };
  REQUIRE(nodes.run_until(as_init, kTimeout));
  auto first_error = pair.find_log("hasta", "Unable to", release_log);
  REQUIRE(first_error.has_value());
  INFO(pair.world().trace_lines()[*first_error]);
  CHECK(pair.find_log("hasta", "Remote node acts as init", release_log) == first_error);
  REQUIRE(nodes.set_role(kB, hast::meta::Role::secondary));
  REQUIRE(nodes.run_until([&] { return pair.complete(); }, 5s));
}

}  // namespace

TEST_CASE("A restarted primary is refused while the old session waits for a stuck write",
          "[sim][hello_busy]") {
  for (std::uint64_t seed : {71, 72, 73}) {
    CAPTURE(seed);
    restart_while_held(seed);
  }
}

TEST_CASE("Two HELLOs waiting for the old session: the newest pairs at once",
          "[sim][hello_busy]") {
  for (std::uint64_t seed : {71, 72, 73, 74}) {
    CAPTURE(seed);
    two_waiting_hellos(seed);
  }
}

TEST_CASE("A HELLO waiting for the old session sees a role change that began meanwhile",
          "[sim][hello_busy]") {
  for (std::uint64_t seed : {71, 72, 73}) {
    CAPTURE(seed);
    role_change_while_hello_waits(seed);
  }
}

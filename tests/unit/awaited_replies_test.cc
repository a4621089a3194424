// AwaitedReplies (core/replication/primary_internal.h): which request sent to the secondary
// sets the primary's reply deadline.
#include <chrono>

#include <catch2/catch.hpp>

#include "core/replication/primary_internal.h"

using namespace std::chrono_literals;
using hast::Instant;
using hast::proto::RequestCommand;
using hast::replication::AwaitedReplies;

namespace {

Instant at(std::chrono::milliseconds ms) {
  return Instant{} + ms;
}

}  // namespace

TEST_CASE("Awaited replies: the oldest send stays the deadline while later ones are answered",
          "[unit][awaited_replies]") {
  AwaitedReplies awaited;
  CHECK_FALSE(awaited.oldest().has_value());
  for (std::uint64_t seq = 1; seq <= 3; seq++) {
    awaited.sending(seq, RequestCommand::write);
    awaited.sent(seq, at(seq * 10ms));
  }
  awaited.replied(2);
  awaited.replied(3);
  awaited.sending(4, RequestCommand::flush);
  awaited.sent(4, at(40ms));
  awaited.replied(4);
  REQUIRE(awaited.oldest().has_value());
  CHECK(awaited.oldest()->first == at(10ms));
  CHECK(awaited.oldest()->second == 1);
  CHECK(awaited.command(1) == RequestCommand::write);
  CHECK(awaited.size() == 1);
  awaited.replied(1);
  CHECK_FALSE(awaited.oldest().has_value());
  CHECK(awaited.size() == 0);
}

// The oldest by send, not by seq: the sender may send a higher seq first (the queue takes
// pieces of concurrent requests in the order they found room).
TEST_CASE("Awaited replies: ordered by when the send returned, not by seq",
          "[unit][awaited_replies]") {
  AwaitedReplies awaited;
  awaited.sending(7, RequestCommand::write);
  awaited.sent(7, at(1ms));
  awaited.sending(5, RequestCommand::read);
  awaited.sent(5, at(2ms));
  REQUIRE(awaited.oldest().has_value());
  CHECK(awaited.oldest()->second == 7);
  awaited.replied(7);
  CHECK(awaited.oldest()->second == 5);
  CHECK(awaited.command(5) == RequestCommand::read);
}

// A final reply that comes while the sender is still in its send is not lost: the piece is
// not awaited afterwards, so it cannot time the link out later.
TEST_CASE("Awaited replies: a reply during the send ends the wait", "[unit][awaited_replies]") {
  AwaitedReplies awaited;
  awaited.sending(1, RequestCommand::write);
  CHECK(awaited.size() == 1);
  CHECK_FALSE(awaited.oldest().has_value());  // not timed before its send returned
  awaited.replied(1);
  awaited.sent(1, at(5ms));
  CHECK_FALSE(awaited.oldest().has_value());
  CHECK(awaited.size() == 0);
  awaited.replied(99);  // unknown seqs are ignored
  awaited.sending(2, RequestCommand::write);
  awaited.sent(2, at(6ms));
  awaited.clear();
  CHECK(awaited.size() == 0);
  CHECK_FALSE(awaited.oldest().has_value());
}

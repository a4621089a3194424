// The acknowledgement table of a replicated WRITE, per mode, over every order of events.
#include <algorithm>
#include <array>
#include <string>

#include <catch2/catch.hpp>

#include "core/replication/write_ack.h"

using hast::config::ReplicationMode;
using hast::replication::ExtentFate;
using hast::replication::LegState;
using hast::replication::WriteAck;

namespace {

enum class Step { local_ok, local_fail, received, remote_ok, remote_fail, remote_unavailable };

struct Trace {
  int ack_after = -1;  // index of the step after which the ack was taken
  bool ack_success = false;
  hast::replication::WriteVerdict verdict;
};

Trace play(ReplicationMode mode, bool stale_room, const std::vector<Step>& steps) {
  WriteAck ack(mode, stale_room);
  Trace trace;
  for (std::size_t i = 0; i < steps.size(); i++) {
    switch (steps[i]) {
      case Step::local_ok:
        ack.local_done(true);
        break;
      case Step::local_fail:
        ack.local_done(false);
        break;
      case Step::received:
        ack.remote_received();
        break;
      case Step::remote_ok:
        ack.remote_done(LegState::ok);
        break;
      case Step::remote_fail:
        ack.remote_done(LegState::failed);
        break;
      case Step::remote_unavailable:
        ack.remote_done(LegState::unavailable);
        break;
    }
    if (auto result = ack.take_ack()) {
      REQUIRE(trace.ack_after == -1);
      trace.ack_after = static_cast<int>(i);
      trace.ack_success = *result;
    }
  }
  REQUIRE(ack.finished());
  REQUIRE(ack.acked());  // every write is answered once both legs ended
  trace.verdict = ack.verdict();
  return trace;
}

}  // namespace

TEST_CASE("WriteAck: when each mode acknowledges", "[unit][replication]") {
  using S = Step;
  // fullsync waits for the remote's final reply.
  CHECK(play(ReplicationMode::fullsync, true, {S::local_ok, S::remote_ok}).ack_after == 1);
  CHECK(play(ReplicationMode::fullsync, true, {S::remote_ok, S::local_ok}).ack_after == 1);
  // memsync answers on `received` once the local write is done, before the final reply.
  auto memsync = play(ReplicationMode::memsync, true, {S::local_ok, S::received, S::remote_ok});
  CHECK(memsync.ack_after == 1);
  CHECK(memsync.ack_success);
  CHECK(memsync.verdict.fate == ExtentFate::clean);
  CHECK(play(ReplicationMode::memsync, true, {S::received, S::local_ok, S::remote_ok}).ack_after ==
        1);
  // async answers as soon as the local write is done.
  CHECK(play(ReplicationMode::async, true, {S::local_ok, S::remote_ok}).ack_after == 0);
}

TEST_CASE("WriteAck: a failed local write is decided by the secondary's final reply only",
          "[unit][replication]") {
  using S = Step;
  for (auto mode : {ReplicationMode::fullsync, ReplicationMode::memsync, ReplicationMode::async}) {
    INFO(std::string(hast::config::replication_name(mode)));
    std::vector<Step> early = {S::local_fail};
    if (mode == ReplicationMode::memsync) early.push_back(S::received);
    auto saved = early;
    saved.push_back(S::remote_ok);
    auto trace = play(mode, true, saved);
    CHECK(trace.ack_after == static_cast<int>(saved.size()) - 1);  // not on `received`
    CHECK(trace.ack_success);
    CHECK(trace.verdict.fate == ExtentFate::stale_on_primary);

    auto full_list = play(mode, false, saved);
    CHECK(!full_list.ack_success);  // the stale list is full: EIO
    CHECK(full_list.verdict.fate == ExtentFate::dirty);

    auto lost = early;
    lost.push_back(S::remote_fail);
    CHECK(!play(mode, true, lost).ack_success);
    auto down = std::vector<Step>{S::local_fail, S::remote_unavailable};
    CHECK(!play(mode, true, down).ack_success);
  }
}

TEST_CASE("WriteAck: a write the secondary did not acknowledge leaves its extent dirty",
          "[unit][replication]") {
  using S = Step;
  for (auto mode : {ReplicationMode::fullsync, ReplicationMode::memsync, ReplicationMode::async}) {
    for (auto remote : {S::remote_fail, S::remote_unavailable}) {
      std::vector<Step> steps = {S::local_ok};
      if (mode == ReplicationMode::memsync && remote == S::remote_fail) {
        steps.push_back(S::received);  // received, then the disk write failed
      }
      steps.push_back(remote);
      auto trace = play(mode, true, steps);
      CHECK(trace.ack_success);
      CHECK(trace.verdict.fate == ExtentFate::dirty);
      WriteAck ack(mode, true);
      ack.local_done(true);
      ack.remote_done(remote == S::remote_fail ? LegState::failed : LegState::unavailable);
      CHECK(ack.acknowledges_unreplicated());
    }
  }
  WriteAck replicated(ReplicationMode::fullsync, true);
  replicated.local_done(true);
  replicated.remote_done(LegState::ok);
  CHECK(!replicated.acknowledges_unreplicated());
}

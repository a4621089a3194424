// The acknowledgement rules of a replicated WRITE (see the tables in write_ack.h).
#include "core/replication/write_ack.h"

#include "core/assert.h"

namespace hast::replication {

void WriteAck::local_done(bool ok) {
  HAST_ASSERT_MSG(local_ == LegState::pending, "local leg ended twice");
  local_ = ok ? LegState::ok : LegState::failed;
}

void WriteAck::remote_received() {
  HAST_ASSERT(mode_ == config::ReplicationMode::memsync);
  // A `received` after the final reply cannot happen on one ordered connection.
  HAST_ASSERT(remote_ == LegState::pending);
  received_ = true;
}

void WriteAck::remote_done(LegState final_state) {
  HAST_ASSERT_MSG(remote_ == LegState::pending, "remote leg ended twice");
  HAST_ASSERT(final_state != LegState::pending);
  remote_ = final_state;
}

bool WriteAck::ready_to_ack() const {
  if (acked_ || local_ == LegState::pending) return false;
  bool remote_ended = remote_ != LegState::pending;
  if (local_ == LegState::failed) return remote_ended;  // only the final reply decides
  switch (mode_) {
    case config::ReplicationMode::fullsync:
      return remote_ended;
    case config::ReplicationMode::memsync:
      return remote_ended || received_;
    case config::ReplicationMode::async:
      return true;
  }
  HAST_UNREACHABLE();
}

std::optional<bool> WriteAck::take_ack() {
  if (!ready_to_ack()) return std::nullopt;
  acked_ = true;
  if (local_ == LegState::ok) return true;
  HAST_ASSERT(remote_ != LegState::pending);
  return remote_ == LegState::ok && stale_room_;
}

WriteVerdict WriteAck::verdict() const {
  HAST_ASSERT(finished());
  HAST_ASSERT(local_ != LegState::unavailable);
  if (local_ == LegState::ok) {
    return WriteVerdict{true, remote_ == LegState::ok ? ExtentFate::clean : ExtentFate::dirty};
  }
  if (remote_ == LegState::ok && stale_room_) {
    return WriteVerdict{true, ExtentFate::stale_on_primary};
  }
  return WriteVerdict{false, ExtentFate::dirty};
}

bool WriteAck::acknowledges_unreplicated() const {
  bool success = local_ == LegState::ok || (remote_ == LegState::ok && stale_room_);
  return success && (remote_ == LegState::failed || remote_ == LegState::unavailable);
}

}  // namespace hast::replication

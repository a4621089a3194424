// WriteAck: when a replicated WRITE is acknowledged to the client and with what result,
// per replication mode (reference/hast-spec.md §7, DESIGN.md §1.2 items 2, 3 and 10). Pure:
// the primary's write path feeds it the events of the two legs and asks it what to do.
//
// Events: the local leg ends (ok or failed); the remote leg reports the secondary's early
// `received` (memsync only), its final reply (ok or failed), or that it never reached the
// secondary (link down, backlog full in async, disconnect while in flight) = unavailable.
//
// When the client is answered (the first moment the row's condition holds):
//
//   mode      ack as soon as                              result
//   fullsync  both legs have ended                        see the result table
//   memsync   local ended ok and (received or remote      success
//             ended); if local failed: when remote ends   see the result table
//   async     local ended ok; if local failed: when       success / result table
//             the remote ends
//
// async never waits for the peer (defect 10), before the timeout as after it. What is left
// of a write once its client was answered, its remote leg, lives in the replication backlog
// (Primary::queue_remote_leg, at most async_backlog_max legs): it gives back the client's
// request slot and, with the local leg done, its range lock (range_lock.h). The extent was
// marked dirty, durably, before the write, and stays dirty until the leg's final ok and a
// remote FLUSH (defect 9):
//
//   async remote leg        what happens                       extent
//   backlog and link queue  queued; the answer does not wait   clean after final ok + FLUSH
//     have room
//   backlog or link queue   dropped at once = unavailable      dirty: the resync sends it
//     full (slow peer)      (stats async_dropped)              while still connected, once
//                                                              the backlog drained
//   link down               unavailable                        dirty: resync after reconnect
//
// The legs of FUA writes, DELETEs and write-zeroes of an async resource (answered like
// fullsync, §7.3: their clients wait, so they keep their request slots and need no backlog
// entry) never wait for room in the link's queue either: a full queue drops them the same
// way, and the client is answered after the local leg (acknowledges_unreplicated).
// A dropped leg never lets an older leg's success clean the extent: the drop moves it to
// sync, and only the sync walk clears that (activemap.h). Two async waits remain on purpose:
// a write whose local leg failed waits for the remote's final reply (the table below), and
// a write over a range a sync chunk holds waits for that chunk (§8.3).
//
// Result once both legs have ended (defect 3: HAST reports success when *any* leg
// succeeded, so a failed local write was acknowledged while the local disk kept stale
// data; memsync could even acknowledge a failed local write before knowing anything):
//
//   local   remote final   result   extent afterwards
//   ok      ok             success  clean (once the secondary made it durable)
//   ok      failed/unavail success  dirty on the primary: resync to the secondary
//   failed  ok             success  stale on the primary (reads go to the secondary,
//                                   resync repairs the primary) if the stale list has
//                                   room and the record is durable before the ack (the
//                                   primary writes it); otherwise EIO
//   failed  failed/unavail EIO      dirty (the data may be on either disk, in part)
//
// The early memsync `received` never decides a failed local write: only the secondary's
// final reply does. Whatever the mode, an extent whose write the secondary did not
// acknowledge stays dirty (defect 2), and an acknowledgement without the secondary's final
// ok raises the generation counter first (GenerationTracker, defect 1).
#pragma once

#include <cstdint>
#include <optional>

#include "core/config/config.h"
#include "core/result.h"

namespace hast::replication {

enum class LegState : std::uint8_t { pending, ok, failed, unavailable };

// What the extent needs once every leg has ended.
enum class ExtentFate : std::uint8_t {
  clean,             // both copies hold the write: the map bit may clear
  dirty,             // the secondary lacks it: resync primary → secondary
  stale_on_primary,  // the primary's disk lacks it: reads from the secondary, resync back
};

struct WriteVerdict {
  bool success = false;
  ExtentFate fate = ExtentFate::dirty;
};

class WriteAck {
 public:
  // `stale_room`: whether the stale-on-primary list can take this write's extents.
  WriteAck(config::ReplicationMode mode, bool stale_room) : mode_(mode), stale_room_(stale_room) {}

  void local_done(bool ok);
  void remote_received();
  void remote_done(LegState final_state);  // ok, failed or unavailable

  // The acknowledgement to send now, once: nullopt while it is not yet time (or after
  // it was taken). true = success, false = EIO.
  std::optional<bool> take_ack();

  bool finished() const { return local_ != LegState::pending && remote_ != LegState::pending; }
  // Valid once finished().
  WriteVerdict verdict() const;
  // True when the client was (or will be) told success although the secondary's final ok
  // is missing: the generation counter must rise before the acknowledgement.
  bool acknowledges_unreplicated() const;

  LegState local() const { return local_; }
  LegState remote() const { return remote_; }
  bool acked() const { return acked_; }

 private:
  bool ready_to_ack() const;

  config::ReplicationMode mode_;
  bool stale_room_;
  LegState local_ = LegState::pending;
  LegState remote_ = LegState::pending;
  bool received_ = false;
  bool acked_ = false;
};

}  // namespace hast::replication

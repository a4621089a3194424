// The generation counters and the secondary's handshake decision (reference/hast-spec.md
// §8.1–§8.2), as pure functions.
//
// Model: every node stores (local, remote) = "generation of my own modifications as a
// primary" and "what I last knew of the peer's". Two nodes are in sync when they mirror
// each other: P.local == S.remote and P.remote == S.local. A primary that writes without the
// secondary raises its local counter; after a completed sync it mirrors the secondary's
// stored pair again. The secondary never changes its own counters (it only adopts the
// pair's resource id). At the second handshake message the secondary compares its pair
// with the primary's (S = secondary's, P = primary's):
//
//   SECONDARY            PRIMARY              decision
//   resuid 0             virgin               adopt resuid; nothing to sync
//   resuid 0             not virgin           adopt resuid; full sync from primary
//   resuid 0, local > 0  virgin, local 0      adopt resuid; full sync from secondary (ours)
//   resuid 0, local > 0  wrote too            split-brain (ours: both hold unpaired data)
//   resuid ≠ P's         -                    refuse: "Resource unique ID mismatch …"
//   local=3 remote=3     local=3 remote=2     primary out of date: regular sync from secondary
//   local=3 remote=3     local=3 remote=3     in sync: regular sync from primary (just in case)
//   local=3 remote=3     local=4 remote=3     secondary out of date: regular sync from primary
//   local=3 remote=3     local=4 remote=2     split-brain: refuse "Split-brain condition!"
//   local=3 remote=3     local=2 remote=2     "should never happen": full sync from secondary
//   local=3 remote=3     local=2 remote=3/4   "should never happen": full sync from primary
//   local=3 remote=3     local=3/4 remote=4   "should never happen": full sync from primary
//
// "Regular" sync copies the dirty extents (the primary's map merged with the one the
// secondary sends, its on-disk map); "full" sends an all-ones map.
//
// HAST defect 1 (DESIGN.md §1.2), fixed here: HAST raises the primary's local counter on a
// disconnected write only while `local == secondary.remote as of the last handshake`, which
// is 0 in a freshly started worker, so a primary restarted while its peer was away never
// raises it and a later failover silently overwrites its writes. GenerationTracker raises
// it once on the first write after every start, disconnect or completed sync that the
// secondary did not acknowledge, whatever was seen before.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/proto/messages.h"

namespace hast::replication {

struct Counters {
  std::uint64_t local = 0;
  std::uint64_t remote = 0;
  friend bool operator==(const Counters&, const Counters&) = default;
};

// Which node a synchronisation copies from: the wire's `syncsrc` (§6.3).
using SyncSource = proto::SyncSource;

std::string_view sync_source_name(SyncSource source);

enum class HandshakeCase : std::uint8_t {
  first_contact_virgin,   // secondary freshly created, primary never wrote
  first_contact_full,     // secondary freshly created, primary has data
  resuid_mismatch,        // another pair's disk: refuse
  primary_out_of_date,    // S.local > P.remote, S.remote == P.local
  in_sync,                // mirrors
  secondary_out_of_date,  // S.local == P.remote, S.remote < P.local
  split_brain,            // both wrote as primary since their last common state
  inconsistent_counters,  // "should never happen": full sync
};

std::string_view handshake_case_name(HandshakeCase kind);

// Which activemap the secondary sends with its reply.
enum class MapToSend : std::uint8_t { none, on_disk, all_ones };

struct SecondaryView {
  std::uint64_t resuid = 0;
  Counters counters;
};

struct PrimaryView {
  std::uint64_t resuid = 0;
  Counters counters;
  bool virgin = false;  // the primary generated its resuid just now
};

struct SyncDecision {
  HandshakeCase kind;
  SyncSource source = SyncSource::undef;  // undefined when refused
  MapToSend map = MapToSend::none;
  bool adopt_resuid = false;  // the secondary takes the primary's resuid and persists it
  bool reply_virgin = false;  // the reply carries `virgin`
  // Non-empty when the handshake is refused: the exact errmsg to send (FreeBSD matches
  // "Split-brain condition!" literally).
  std::string refusal{};
  // Non-empty when the secondary should log a warning (the "never happen" case).
  std::string warning{};

  bool refused() const { return !refusal.empty(); }
};

inline constexpr std::string_view split_brain_errmsg = "Split-brain condition!";

// The secondary's decision (§8.2), the same on every node: a pure function of both views.
SyncDecision decide_sync(const SecondaryView& secondary, const PrimaryView& primary);

// The primary's counter rules (§8.1 with defect 1 fixed). No I/O: each method says whether
// the counters changed, and the caller persists the metadata (durably, DESIGN.md §1.2
// item 5) before acknowledging anything that depends on the change.
class GenerationTracker {
 public:
  explicit GenerationTracker(Counters stored) : counters_(stored) {}

  const Counters& counters() const { return counters_; }

  // A write is about to be acknowledged without the secondary's acknowledgement (the
  // link is down, or the remote leg failed). True when `local` was raised: persist first.
  bool on_unreplicated_write();

  // The link went down (or the process started): the next unreplicated write raises the
  // counter again.
  void on_disconnect() { raised_since_reset_ = false; }

  // The handshake reply said the secondary is virgin: only this node has data.
  bool on_virgin_secondary();

  // A sync completed while connected: mirror the secondary's stored pair. True when the
  // counters changed.
  bool on_sync_complete(const Counters& secondary);

 private:
  Counters counters_;
  bool raised_since_reset_ = false;
};

}  // namespace hast::replication

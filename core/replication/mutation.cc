// The table of mutations and the oracle each must trip.
#include "core/replication/mutation.h"

#include <array>

namespace hast::replication {
namespace {

constexpr std::array kMutations = {
    // O8: answered before the secondary's disk held it while the pair was connected.
    MutationInfo{Mutation::fullsync_ack_before_remote, "fullsync_ack_before_remote", "O8"},
    // O2: a write the secondary never received is missing after an in-sync failover.
    MutationInfo{Mutation::memsync_ack_before_received, "memsync_ack_before_received", "O2"},
    // The data write runs ahead of its mark: the persisted maps miss what differs.
    MutationInfo{Mutation::skip_activemap_flush, "skip_activemap_flush", "O3"},
    // A lost resuid or counter: the pair never pairs again (no convergence).
    MutationInfo{Mutation::skip_metadata_flush, "skip_metadata_flush", "O4"},
    // O3: the extent the secondary lacks is cleaned on disk (the hidden component failure
    // O8 requires to stay dirty).
    MutationInfo{Mutation::no_dirty_on_remote_failure, "no_dirty_on_remote_failure", "O3"},
    MutationInfo{Mutation::ignore_split_brain, "ignore_split_brain", "O6"},
    // O5: the primary's data area lacks a surviving write right after the sync.
    MutationInfo{Mutation::sync_wrong_direction, "sync_wrong_direction", "O5"},
    // O9 (read fallback safety) is checked as O1 on the reads the secondary served.
    MutationInfo{Mutation::read_fallback_when_stale, "read_fallback_when_stale", "O1"},
    // O3: extents are cleaned on disk while the secondary's copy is still volatile.
    MutationInfo{Mutation::drop_remote_flush, "drop_remote_flush", "O3"},
    // A silent or stalled secondary holds the primary's acknowledgements past the timeout.
    MutationInfo{Mutation::wait_forever_for_remote, "wait_forever_for_remote", "O10"},
    // A zombie primary's writes leave no trace in the counters: the reconnect sees no
    // split-brain and a sync from the other node silently overwrites them.
    MutationInfo{Mutation::skip_generation_raise, "skip_generation_raise", "O7"},
    // A slow or silent secondary makes async clients wait: for a request slot once
    // request_count_max remote legs are pending, or behind an overlapping write's remote leg.
    MutationInfo{Mutation::async_holds_slot_and_lock, "async_holds_slot_and_lock", "O10"},
};

}  // namespace

std::span<const MutationInfo> mutations() {
  return kMutations;
}

std::string_view mutation_name(Mutation mutation) {
  for (const MutationInfo& info : kMutations) {
    if (info.mutation == mutation) return info.name;
  }
  return "none";
}

std::optional<Mutation> parse_mutation(std::string_view name) {
  if (name == "none") return Mutation::none;
  for (const MutationInfo& info : kMutations) {
    if (info.name == name) return info.mutation;
  }
  return std::nullopt;
}

}  // namespace hast::replication

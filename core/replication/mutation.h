// Mutations: named, deliberately wrong behaviours of the replication code, switched on only
// by the simulator (a field of the node's construction no hast.conf can reach), to prove
// that each oracle catches the bug it exists for (DESIGN.md §6). Each names the oracle
// expected to catch it; tests run a swarm with each and require that oracle to fire.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace hast::replication {

enum class Mutation : std::uint8_t {
  none,
  fullsync_ack_before_remote,   // fullsync answers at local completion
  memsync_ack_before_received,  // memsync answers at local completion
  skip_activemap_flush,         // activemap images are never written
  skip_metadata_flush,          // metadata writes are not made durable
  no_dirty_on_remote_failure,   // a write the secondary did not take is marked clean
  ignore_split_brain,           // split-brain counters sync from the primary instead
  sync_wrong_direction,         // synchronisation copies from the sync target
  read_fallback_when_stale,     // a failed local read is retried remotely even when dirty
  drop_remote_flush,            // batch FLUSHes are never sent, writes marked clean
  wait_forever_for_remote,      // the primary waits for the secondary's replies, no timeout
  skip_generation_raise,        // a write acknowledged without the secondary keeps localcnt
  async_holds_slot_and_lock,    // async keeps a write's request slot and range lock until
                                // its remote leg ended (defect 10 undone)
};

struct MutationInfo {
  Mutation mutation;
  std::string_view name;
  std::string_view oracle;  // the oracle expected to catch it
};

// Every mutation but `none`, in declaration order.
std::span<const MutationInfo> mutations();
std::string_view mutation_name(Mutation mutation);
std::optional<Mutation> parse_mutation(std::string_view name);

}  // namespace hast::replication

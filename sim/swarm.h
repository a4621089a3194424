// Swarm runs: one seed draws a whole run — the replication mode (unless given), the
// workload's mix, timeouts, and a schedule of faults and operator actions — runs it on a
// SimCluster, and judges it with the oracles (reference/fault-model.md §6.5, §6.7).
//
// Run structure: a safety phase (workload plus faults: secondary kill, power loss and
// restart; primary kill and restart as primary; failover to the secondary after the
// primary's death in fullsync and memsync; partitions one way or both, clogs; split-brain
// episodes: the secondary promoted while the partitioned primary still serves; zombie
// primaries: paused past the timeout while the secondary is promoted; the secondary's
// disk swapped for an empty one, or for another resource's disk which the handshake must
// refuse until the operator replaces it with an empty one; half of the power losses
// wait, on their own random stream, for a multi-sector write or a metadata-area write in
// flight, which the power loss then drops, lands or tears), then a
// liveness phase: faults stop, the network heals, nodes restart, roles are set (after a
// split-brain, HAST's recovery: the losing node is re-created and becomes secondary), the
// workload stops, and the pair must converge.
//
// Judged by a Judge (judge.h), told every operator action: O1, O2, O3, O4, O5, O6, O7, O8,
// O10, and O11 with check_determinism (the seed run twice gives one hash). The oracles
// only watch: a run hashes the same with them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/replication/mutation.h"
#include "sim/ground_truth.h"

namespace hast::sim {

// The faults and operator actions of the safety phase. A drawn schedule uses the first
// eleven; foreign_disk is drawn as a variant of empty_disk (a stream of its own, so that
// adding it left the other seeds' plans as they were). An action that does not apply when
// its time comes (a node is down, the pair is not in sync, ...) turns into a milder one,
// as the swarm's operator would.
enum class SwarmFault : std::uint8_t {
  kill_secondary,
  power_loss_secondary,
  restart_primary,     // kill -9 the primary; it comes back as primary
  power_loss_primary,  // likewise after a power loss
  failover,            // kill the primary, promote the secondary (not in async)
  partition_both,
  partition_one_way,
  clog,
  split_brain,   // partition, then promote the secondary while the primary serves
  zombie,        // pause the primary past the timeout, promote the secondary
  empty_disk,    // the secondary's disk swapped for an empty one (row 17)
  foreign_disk,  // the secondary's disk swapped for another resource's (row 17)
};
inline constexpr int swarm_fault_kinds = 12;
std::string_view swarm_fault_name(SwarmFault fault);

struct PlannedFault {
  Duration at{};  // from the start of the run; within the safety phase
  SwarmFault fault = SwarmFault::kill_secondary;
};

struct RunOptions {
  std::uint64_t seed = 1;
  std::optional<config::ReplicationMode> mode;  // drawn from the seed when absent
  replication::Mutation mutation = replication::Mutation::none;
  bool check_determinism = false;
  bool timeline = false;  // print what happened as it happens
  // An explicit plan (a fuzz target, a test): the fault schedule, and knobs the seed
  // would otherwise draw. The seed still draws the rest (workload, latencies, choices
  // inside a fault).
  std::optional<std::vector<PlannedFault>> schedule;
  Duration safety_phase = std::chrono::seconds(6);
  std::optional<int> timeout_seconds;  // hast.conf `timeout`, 1..3 when drawn
  std::optional<bool> disk_faults;      // transient disk errors on both disks
};

struct RunReport {
  std::uint64_t seed = 0;
  config::ReplicationMode mode = config::ReplicationMode::memsync;
  std::string hash;
  std::string summary;  // seed, events, time, hash
  std::vector<Violation> violations;
  std::map<std::string, std::uint64_t> coverage;  // fault and protocol counters
  bool ok() const { return violations.empty(); }
  // "hast-sim run --seed N --mode M [--mutation X]"
  std::string replay_command(replication::Mutation mutation) const;
};

RunReport run_seed(const RunOptions& options);

}  // namespace hast::sim

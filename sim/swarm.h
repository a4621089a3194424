// Swarm runs: one seed draws a whole run — the replication mode (unless given), the
// workload's mix, timeouts, and a schedule of faults and operator actions — runs it on a
// SimCluster, and judges it with the oracles (reference/fault-model.md §6.5, §6.7).
//
// Run structure: a safety phase (workload plus faults: secondary kill, power loss and
// restart; primary kill and restart as primary; failover to the secondary after the
// primary's death in fullsync and memsync; partitions one way or both, clogs; split-brain
// episodes: the secondary promoted while the partitioned primary still serves; zombie
// primaries: paused past the timeout while the secondary is promoted), then a
// liveness phase: faults stop, the network heals, nodes restart, roles are set (after a
// split-brain, HAST's recovery: the losing node is re-created and becomes secondary), the
// workload stops, and the pair must converge.
//
// Oracles checked: O1 (every read, online, with the per-fault allowances of ground_truth.h),
// O3 (activemap coverage, online: every 100 ms and around every death, from the disks'
// persisted maps, activemap_oracle.h), O4 (convergence: both nodes complete, nothing dirty,
// data areas byte-identical, within T_conv), O6 (a split-brain episode the operator
// created is reported, and none is reported without one), O7 (a secondary never holds two
// primary sessions, from the wire, session_oracle.h; and a write acknowledged while both
// nodes served as primary is flagged by a split-brain or survives), O10 (bounded write
// latency under gray failure, latency_oracle.h), O11 (with check_determinism: the seed
// run twice gives one hash). The online oracles only watch: a run hashes the same with
// them.
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

struct RunOptions {
  std::uint64_t seed = 1;
  std::optional<config::ReplicationMode> mode;  // drawn from the seed when absent
  replication::Mutation mutation = replication::Mutation::none;
  bool check_determinism = false;
  bool timeline = false;  // print what happened as it happens
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

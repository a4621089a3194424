// Judge: the oracles of reference/fault-model.md §6.5 attached to one SimCluster run, for
// any driver (the swarm, the scenario runner, the fuzz target). The driver makes things
// happen; the judge watches and, told what the operator did, decides what the run was
// allowed to lose and what it must still show at the end.
//
// Lifecycle (world context throughout: call from the driver's code between world steps or
// from world events):
//   1. Construct on the cluster before the run starts (before start_pair): the online
//      oracles attach at once — O1 (GroundTruth, every read the workload checks), O3
//      (ActivemapOracle, every 100 ms and around every death), O7's session half
//      (SessionOracle, on the wire), O10 (LatencyOracle), and this class's own watch for
//      O5 (after every `syncdone`) and O8 (every acknowledged write, at its answer). The
//      online oracles only watch: a run hashes the same with or without a judge.
//   2. Tell it the operator-level facts as they happen (the "Facts" section). A fact
//      widens AllowedLoss (O2) or creates an expected split-brain (O6); a driver that
//      forgets one gets false violations, never missed ones, except O6's "reported without
//      a cause" which needs every episode told.
//   3. Call liveness_started() when faults stop; drive the roles; then finish(primary,
//      secondary): it runs the world until converged() or the convergence limit and
//      returns every violation, the online ones included. coverage() holds the counters.
//
// Oracles and their names in Violation::oracle:
//   O1  per-sector register on every read (ground_truth.h).
//   O2  mode durability: every acknowledged write not in AllowedLoss(mode, history)
//       survives. AllowedLoss is what the facts allow: writes a power loss may have dropped
//       (acked, unflushed, not FUA: power_loss), writes a node served since its last
//       connect when it was failed over out of sync or lost a split-brain (failover,
//       split_brain, zombie_promoted, recreated), and every write a split-brain episode
//       saw begin. Checked by a sweep of the serving node's data area, each sector judged
//       as a read at that instant: after each failover (failover_settled) and once the
//       pair converged (finish). A sector the serving node's persisted metadata lists as
//       stale (its good copy is on the peer) is skipped by the failover sweep.
//   O3  activemap coverage (activemap_oracle.h).
//   O4  convergence: within the limit both nodes complete, nothing dirty, the workload
//       idle, the data areas byte-identical.
//   O5  sync direction: right after each `syncdone` on the node serving as primary, its
//       data area holds every write O2 requires (same sweep, stale extents skipped): a
//       synchronisation that copied older data over a surviving write is caught where it
//       happened, not at the next read. The peer (the sync's other end, its target unless
//       the primary was the out-of-date one) is swept too, judged as one read spanning the
//       pass (issued at its `syncstart`, answered at `syncdone`): it must hold every write
//       that had to survive when the pass started, or a write concurrent with the pass.
//       Sound because only the walk clears a sync mark, after a remote FLUSH, and a pass
//       reports `syncdone` only with nothing marked: its last FLUSH was sent after
//       `syncstart`, behind every remote leg answered (or, in async, queued) before it,
//       and the secondary runs a FLUSH as a barrier behind the writes it received before.
//       So such a leg is on the peer's disk at `syncdone`, or it failed and marked its
//       extent, which the pass copied or which stops `syncdone`. Remote legs of writes
//       answered during the pass may still be in flight: those writes are concurrent. Not
//       swept: a peer that is down or restarted since `syncstart`; sectors its disk failed
//       to write (or discard) since `syncstart`; extents its own metadata lists stale.
//   O6  split-brain accounting: a split-brain episode the operator created in which both
//       sides wrote is reported; none is reported without an episode. A foreign disk
//       (another resource's metadata) is always refused: the handshake never syncs to or
//       from it and its bytes never change while it is in place (disk_replaced).
//   O7  one primary session at a time (session_oracle.h), and a write acknowledged while
//       both nodes served as primary ends in a reported split-brain or survives.
//   O8  acknowledgement integrity: when a write is answered OK, the serving node's current
//       disk view holds it (or a newer write) in every sector, unless its persisted
//       metadata lists the extent stale — then, as when the mode is fullsync and the pair
//       was connected throughout the write, the peer's current view must hold it (a
//       failed remote disk write is the only excuse: it must show in the peer disk's
//       fault log). Writes answered EIO while both nodes ran connected are counted
//       ("O8 writes failed while a copy was reachable"), not fatal.
//   O10 bounded latency (latency_oracle.h).
//   O11 determinism: check_determinism() on two runs' hashes.
//
// Coverage counters: "O2 sweeps", "O2 sectors checked", "O3 checkpoints applied", "O5
// syncs checked", "O5 sweeps", "O5 sectors checked", "O5 target sweeps", "O5 target sectors
// checked", "O5 target sweeps skipped", "O6 foreign disk checks", "O7
// sessions accepted", "O7 dual-primary writes", "O8 acks checked", "O8 writes failed
// while a copy was reachable", "O10 writes judged", "<oracle> violations" (the judge's own
// oracles keep 8 violations each and count the rest), and without a prefix "split-brains
// detected", "spurious split-brains", "foreign disks refused". Drivers add their own with
// count().
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/config/config.h"
#include "sim/cluster.h"
#include "sim/ground_truth.h"

namespace hast::sim {

class ActivemapOracle;
class LatencyOracle;
class SessionOracle;

struct JudgeOptions {
  config::ReplicationMode mode = config::ReplicationMode::memsync;
  Duration timeout = std::chrono::seconds(20);  // hast.conf `timeout`
  Duration keepalive = std::chrono::seconds(10);
  Duration convergence_limit = std::chrono::seconds(120);  // O4's T_conv
  bool strict_async = false;  // O10's strict reading (latency_oracle.h)
  // The new oracles can be switched off one by one (tests that show an older oracle
  // still catches a mutation alone).
  bool check_o2 = true;
  bool check_o5 = true;         // the sweep of the node that reported `syncdone`
  bool check_o5_target = true;  // the sweep of its peer over the pass (see O5 below)
  bool check_o8 = true;

  // The options a cluster was built with (mode, timeout, keepalive).
  static JudgeOptions for_cluster(const ClusterOptions& cluster);
};

// What the operator put in place of a node's disk.
enum class DiskReplacement : std::uint8_t {
  empty,    // blank: `hastctl create` follows; must become a sync target, never a source
  foreign,  // another resource's disk (valid metadata, another resuid): must be refused
};

class Judge {
 public:
  // Attaches the online oracles to `cluster` (which must outlive the judge).
  Judge(SimCluster& cluster, JudgeOptions options);
  ~Judge();
  Judge(const Judge&) = delete;
  Judge& operator=(const Judge&) = delete;

  // ---- Facts (call when the operator acts; `now` is the world's time) ----
  // The serving node `id` lost power: its acked, unflushed, non-FUA writes may be gone.
  // (A secondary's power loss needs no fact: the primary still holds everything.)
  void power_loss(NodeId id);
  // `old_primary` was killed and `promoted` is being made primary. `in_sync`: the pair was
  // complete, nothing to sync, when it happened. Out of sync, the old primary's writes
  // since its last connect may be missing on the promoted node: they join AllowedLoss and
  // the episode counts as a split-brain the operator created (loser: old_primary).
  void failover(NodeId old_primary, NodeId promoted, bool in_sync);
  // The promoted node refused the role (inconsistent data) and the old primary is brought
  // back: an out-of-sync failover's episode is over without a split-brain.
  void promotion_refused(NodeId old_primary, NodeId promoted);
  // The promoted node now serves: O2 sweeps its data area (stale extents skipped).
  // Call once the promotion is done and its node is running (the swarm: 50 ms after the
  // role change).
  void failover_settled(NodeId promoted);
  // The operator promoted `promoted` while `old_primary` still serves (partitioned):
  // a split-brain episode from now on; the old primary's writes since its last connect
  // (async: all) may be missing on the promoted node.
  void split_brain(NodeId old_primary, NodeId promoted);
  // A paused primary `zombie` was taken for dead and `promoted` is being made primary
  // now (row 15): a split-brain episode from now on, as split_brain().
  void zombie_promoted(NodeId zombie, NodeId promoted);
  // Split-brain recovery: `id`'s data was discarded (`hastctl create`) and it rejoins as
  // secondary: every write it served may be gone; O3 waits for convergence.
  void recreated(NodeId id);
  // `id`'s disk was swapped (the node is down). `foreign`: the judge remembers the disk's
  // bytes and the hook events so far, and checks at disk_restored() and in finish() that
  // the disk's bytes never changed and that neither node reported `connect` meanwhile
  // (O6: the resuid mismatch was refused, so nothing synced to or from it).
  void disk_replaced(NodeId id, DiskReplacement kind);
  // The foreign disk on `id` is taken out now, before anything touches it (the node is
  // down; the driver then puts the right disk back or an empty one). Counts "foreign
  // disks refused" when O6 held.
  void disk_restored(NodeId id);
  // Faults stop: the network heals, the workload stops; split-brain allowances end.
  void liveness_started();

  // ---- Queries ----
  // True while an operator-created split-brain episode (or out-of-sync failover) is open:
  // from the fact that opened it until promotion_refused() or the end of the run (O6 then
  // expects a report exactly when both sides wrote since it opened, and none otherwise).
  bool split_brain_open() const { return episode_.open; }
  std::optional<NodeId> split_brain_loser() const;
  // `hastctl status` on both: primary/secondary as given, both complete, nothing to
  // sync, nothing dirty, no sync running, the workload idle.
  bool converged(NodeId primary, NodeId secondary);

  // ---- End of run ----
  // Runs the world until converged(primary, secondary) or the convergence limit, then
  // applies the final checks (O4, O2's final sweep, O7's dual-primary writes, O6) and
  // returns every violation of the run, online oracles' included. Call once.
  std::vector<Violation> finish(NodeId primary, NodeId secondary);
  // Counters, including the online oracles' once finish() ran.
  const std::map<std::string, std::uint64_t>& coverage() const { return coverage_; }
  void count(std::string_view counter, std::uint64_t by = 1);

  // O11: two runs of one seed gave `first` and `second`.
  static std::optional<Violation> check_determinism(const std::string& first,
                                                    const std::string& second);

 private:
  class Watch;  // the O5/O8 world observer
  struct Episode {
    bool open = false;   // operator-created, not yet resolved by liveness or a refusal
    NodeId loser = 0;
    Instant since{};
  };
  struct Foreign {
    bool present = false;
    std::uint64_t content_hash = 0;  // the disk's whole current view when swapped in
    std::uint64_t metadata_hash = 0;
    std::size_t events_at_swap = 0;  // hook events recorded before the swap
  };

  World& world() { return cluster_.world(); }
  std::uint32_t extent_size();  // from the disks' metadata
  Instant last_event(NodeId id, replication::HookEvent event) const;
  void open_episode(NodeId loser, Instant since);
  bool diverged() const;
  // How a sweep judges: as a read issued at `since` (default: now) and answered now; the
  // counters are named `counters` (default: the oracle); sectors in `excused` (data-area
  // byte ranges [first, second)) are not checked.
  struct SweepSpan {
    std::optional<Instant> since;
    std::string_view counters;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> excused;
  };
  // O2's sweep of `id`'s data area as a read at now; violations named `oracle`.
  void sweep(NodeId id, std::string_view oracle, std::string_view why, bool skip_stale,
             const SweepSpan& span = {});
  std::vector<bool> stale_extents(NodeId id);
  void check_foreign(NodeId id, std::string_view why);
  std::uint64_t metadata_hash(NodeId id);
  void check_dual_primary(NodeId primary);
  void check_split_brain_accounting();
  std::string describe_difference(std::uint64_t offset);
  void report(std::string oracle, std::string detail);
  void collect_online();

  SimCluster& cluster_;
  JudgeOptions options_;
  std::unique_ptr<ActivemapOracle> activemap_;
  std::unique_ptr<LatencyOracle> latency_;
  std::unique_ptr<SessionOracle> sessions_;
  std::unique_ptr<Watch> watch_;
  Episode episode_;
  std::array<Foreign, 2> foreign_{};
  std::vector<Violation> violations_;  // the judge's own (O2, O4..O8)
  std::map<std::string, std::uint64_t> coverage_;
  bool finished_ = false;
};

}  // namespace hast::sim

// LatencyOracle: O10 of reference/fault-model.md §6.5, bounded latency under gray failure,
// judged from the ground truth's write records (issue and completion times on the client's
// side), never from the code under test.
//
// Statement. Every client write a primary completes (acknowledged or failed) completes
// within its bound of simulated time after it was issued, and a write still pending past
// its bound is reported too (a hang):
//   - fullsync and memsync, and in async the writes the primary replicates like fullsync
//     (FUA writes, discards and write-zeroes, §7.3): timeout + keepalive + slack + disk.
//     A connected peer that is slow, clogged, partitioned, paused or powered off must not
//     hold an acknowledgement longer than the timeout (then the link drops and the primary
//     degrades); the keepalive and the slack absorb the link's own timers (a receive
//     deadline is armed when the receiver starts waiting, up to a keepalive interval of
//     quiet before it) and the reconnect;
//   - async: slack + disk. The primary never waits for the peer (defect 10): a write's
//     client is answered when its local leg (and the durable dirty mark) is done, and its
//     remote leg then gives back the client's request slot and waits in a bounded
//     replication backlog (a full backlog drops the send: the extent stays dirty and the
//     resync sends it); its range lock comes free once the local leg succeeded, the remote
//     leg being queued in order by then (range_lock.h, defect 7). So neither a full request
//     pool nor an earlier overlapping write excuses a wait. Two waits are made on purpose
//     and get the fullsync bound: while a synchronisation runs, a sync chunk holds its range
//     until the peer answered (§8.3, as in HAST); and a write whose local leg failed waits
//     for the secondary's final reply, the only one that can make it good (write_ack.h),
//     holding its range lock until then, so a later write over an overlapping range is
//     judged from the moment that earlier write's remote leg must have ended (its client
//     answer + timeout + keepalive). strict_async turns these two exceptions off.
// `disk` is disk_ops_per_write times the largest latency the serving node's disk draws
// without its slow tail (the map flush, the data write, a counter write, lock waits
// behind writes of the same kind).
//
// Excluded (the swarm knows its fault schedule): a write whose [issue, completion]
// overlaps a pause of the node serving it (a zombie: nothing of it runs), or a slow-tail
// draw of that node's own disk (its own gray failure, not the peer's); writes cut off by
// their node's death (never completed). The check is online: completed writes are judged
// every `period`, and once more by finish().
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "sim/cluster.h"

namespace hast::sim {

struct LatencyOracleOptions {
  config::ReplicationMode mode = config::ReplicationMode::memsync;
  Duration timeout = std::chrono::seconds(20);  // hast.conf `timeout`
  Duration keepalive = std::chrono::seconds(10);
  Duration slack = std::chrono::seconds(1);
  std::uint32_t disk_ops_per_write = 8;
  Duration period = std::chrono::milliseconds(50);
  std::size_t violations_max = 8;  // later ones are counted, not kept
  // Judge every async write by slack + disk, even one that waits behind a sync chunk or
  // for the secondary after its local leg failed (see the file comment).
  bool strict_async = false;
};

class LatencyOracle final : public WorldObserver {
 public:
  // Watches the writes recorded in `cluster`'s ground truth from now on.
  LatencyOracle(SimCluster& cluster, LatencyOracleOptions options);
  ~LatencyOracle() override;
  LatencyOracle(const LatencyOracle&) = delete;
  LatencyOracle& operator=(const LatencyOracle&) = delete;

  // Judges every write completed so far and every pending one past its bound.
  void finish() { judge(); }

  const std::vector<Violation>& violations() const { return violations_; }
  std::uint64_t suppressed() const { return suppressed_; }
  std::uint64_t judged() const { return judged_; }
  std::uint64_t excluded() const { return excluded_; }
  Duration worst() const { return worst_; }  // largest latency judged

  // WorldObserver.
  void after_step() override;
  void on_pause(NodeId node, Instant until) override;

 private:
  struct Pause {
    Instant from;
    Instant until;
  };

  void judge();
  // True when the write was judged (completed, or pending past its bound).
  bool judge_one(const WriteRecord& write, Instant now);
  Duration bound(const WriteRecord& write) const;
  Instant serialised_start(const WriteRecord& write, Instant end) const;
  bool waits_for_the_link(const WriteRecord& write, Instant end) const;
  bool synchronising(NodeId node, Instant from, Instant until) const;
  bool local_write_failed(const WriteRecord& write, Instant end) const;
  bool replicated_like_fullsync(const WriteRecord& write) const;
  bool excluded(const WriteRecord& write, Instant until) const;
  void report(const WriteRecord& write, Duration latency, Instant now);
  std::string overlapping(const WriteRecord& write) const;
  std::uint64_t recent_requests(const WriteRecord& write) const;

  SimCluster& cluster_;
  LatencyOracleOptions options_;
  Instant next_check_{};
  WriteId seen_ = 0;        // writes up to this id were looked at
  std::set<WriteId> open_;  // looked at while pending
  std::map<NodeId, std::vector<Pause>> pauses_;
  std::vector<Violation> violations_;
  std::uint64_t suppressed_ = 0;
  std::uint64_t judged_ = 0;
  std::uint64_t excluded_ = 0;
  Duration worst_{0};
};

}  // namespace hast::sim

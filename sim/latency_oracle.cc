// O10, bounded latency under gray failure (see latency_oracle.h).
#include "sim/latency_oracle.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/replication/primary.h"

namespace hast::sim {
namespace {

std::string seconds(Duration duration) {
  return fmt::format("{:.3f}s", std::chrono::duration<double>(duration).count());
}

}  // namespace

LatencyOracle::LatencyOracle(SimCluster& cluster, LatencyOracleOptions options)
    : cluster_(cluster), options_(options) {
  HAST_ASSERT(options_.timeout.count() > 0);
  HAST_ASSERT(options_.period.count() > 0);
  seen_ = cluster_.truth().write_count();
  cluster_.world().add_observer(*this);
}

LatencyOracle::~LatencyOracle() {
  cluster_.world().remove_observer(*this);
}

void LatencyOracle::after_step() {
  Instant now = cluster_.world().now();
  if (now < next_check_) return;
  next_check_ = now + options_.period;
  judge();
}

void LatencyOracle::on_pause(NodeId node, Instant until) {
  pauses_[node].push_back(Pause{cluster_.world().now(), until});
}

void LatencyOracle::judge() {
  const GroundTruth& truth = cluster_.truth();
  Instant now = cluster_.world().now();
  for (; seen_ < truth.write_count(); seen_++) {
    if (!judge_one(truth.write(seen_ + 1), now)) open_.insert(seen_ + 1);
  }
  for (auto it = open_.begin(); it != open_.end();) {
    it = judge_one(truth.write(*it), now) ? open_.erase(it) : std::next(it);
  }
}

bool LatencyOracle::judge_one(const WriteRecord& write, Instant now) {
  if (write.outcome == Outcome::cut_off) return true;  // its node died: never completed
  bool pending = write.outcome == Outcome::pending;
  Instant end = pending ? now : write.end;
  Duration latency = end - write.issue;
  bool late = latency > bound(write) && !waits_for_the_link(write, end) &&
              end - serialised_start(write, end) > bound(write);
  if (pending && !late) return false;
  if (excluded(write, end)) {
    excluded_ += pending ? 0 : 1;
    return !pending;
  }
  judged_ += pending ? 0 : 1;
  worst_ = std::max(worst_, latency);
  if (late) report(write, latency, now);
  return true;
}

// An async write waits behind an earlier write over an overlapping range only while that one
// holds its range lock (range_lock.h): until its local leg ended, which the disk bounds,
// unless the local leg failed: then the earlier write waits for the secondary's final
// reply, the only one that can make it good (write_ack.h), and keeps its lock until then.
// Such an earlier write took the lock at the latest when its client was answered, and its
// remote leg ends within timeout + keepalive of that, like a fullsync write: `write` is
// judged from then. The latest such moment, or `write`'s issue.
Instant LatencyOracle::serialised_start(const WriteRecord& write, Instant end) const {
  Instant start = write.issue;
  if (options_.strict_async || replicated_like_fullsync(write)) return start;
  const GroundTruth& truth = cluster_.truth();
  Duration remote = options_.timeout + options_.keepalive;
  for (WriteId id = write.id - 1; id >= 1; id--) {
    const WriteRecord& earlier = truth.write(id);
    if (earlier.issue + 2 * remote + bound(write) < write.issue) break;  // long settled
    bool overlap = earlier.offset < write.offset + write.length &&
                   write.offset < earlier.offset + earlier.length;
    if (!overlap || earlier.node != write.node) continue;
    if (!local_write_failed(earlier, end)) continue;  // its lock came free after its local leg
    // A pending write may be what `write`, pending too, waits for: judge it first. A
    // completed `write` never waited for it (the lock comes free after its answer).
    if (earlier.outcome == Outcome::pending && write.outcome == Outcome::pending) return end;
    bool ended = earlier.outcome == Outcome::ok || earlier.outcome == Outcome::failed;
    if (!ended || earlier.end > end) continue;
    start = std::max(start, earlier.end + remote);
  }
  return std::min(start, end);
}

// FUA writes, discards and write-zeroes wait for both legs in every mode (§7.3).
bool LatencyOracle::replicated_like_fullsync(const WriteRecord& write) const {
  return options_.mode != config::ReplicationMode::async || write.fua == Fua::yes || write.zero;
}

// The other waits of an async write the design makes on purpose (unless strict): a
// synchronisation ran on the serving node meanwhile (a sync chunk holds its range until
// the peer answered, §8.3); the node's own disk failed the write (then only the
// secondary's final reply can make it good, write_ack.h). Each such write is bounded like
// a fullsync write instead. Not excused (defect 10): a full request pool. An async write
// gives its request slot back once its client is answered, so the pool holds only
// requests whose clients wait, never one for an async write's remote leg.
bool LatencyOracle::waits_for_the_link(const WriteRecord& write, Instant end) const {
  if (options_.strict_async || replicated_like_fullsync(write)) return false;
  if (end - write.issue <= bound(write) + options_.timeout + options_.keepalive) {
    if (synchronising(write.node, write.issue, end)) return true;
    if (local_write_failed(write, end)) return true;
  }
  return false;
}

// A synchronisation of `node` ran at some time in [from, until] (hook events).
bool LatencyOracle::synchronising(NodeId node, Instant from, Instant until) const {
  bool running = false;
  for (const RecordedEvent& recorded : cluster_.events()) {
    if (recorded.node != node) continue;
    if (recorded.when > until) break;
    auto event = recorded.record.event;
    if (event == replication::HookEvent::syncstart) running = true;
    bool over = event == replication::HookEvent::syncdone ||
                event == replication::HookEvent::syncintr ||
                event == replication::HookEvent::disconnect;
    if (over && recorded.when < from) running = false;
    if (running && recorded.when >= from) return true;
  }
  return running;
}

// The serving node's disk failed a write over `write`'s range while it was in progress.
bool LatencyOracle::local_write_failed(const WriteRecord& write, Instant end) const {
  const SimDisk& disk = cluster_.disk(write.node);
  std::uint64_t start = cluster_.local_offset() + write.offset;
  for (const SimDiskFaultRecord& record : disk.fault_log()) {
    if (record.when > end) break;
    bool overlap = record.offset < start + write.length && start < record.offset + record.length;
    if (record.kind == SimDiskFaultKind::write_error && record.when >= write.issue && overlap) {
      return true;
    }
  }
  return false;
}

Duration LatencyOracle::bound(const WriteRecord& write) const {
  const SimDiskFaults& faults = cluster_.disk(write.node).faults();
  auto disk_max = faults.latency_min + std::chrono::duration_cast<Duration>(
                                           faults.latency_mean * SimDiskFaults::exponential_cap);
  Duration bound = options_.slack + disk_max * options_.disk_ops_per_write;
  if (replicated_like_fullsync(write)) bound += options_.timeout + options_.keepalive;
  return bound;
}

// The serving node was paused, or its own disk drew its slow tail, between the write's
// issue and `until`.
bool LatencyOracle::excluded(const WriteRecord& write, Instant until) const {
  auto found = pauses_.find(write.node);
  if (found != pauses_.end()) {
    for (const Pause& pause : found->second) {
      if (pause.from <= until && pause.until >= write.issue) return true;
    }
  }
  const auto& log = cluster_.disk(write.node).fault_log();
  auto first = std::lower_bound(
      log.begin(), log.end(), write.issue,
      [](const SimDiskFaultRecord& record, Instant when) { return record.when < when; });
  for (auto it = first; it != log.end() && it->when <= until; ++it) {
    if (it->kind == SimDiskFaultKind::slow) return true;
  }
  return false;
}

// "write 12 (issued at ..., ok at ...)": the latest write issued before `write` over an
// overlapping range within the link's timeout, which the primary serialises `write` behind.
std::string LatencyOracle::overlapping(const WriteRecord& write) const {
  const GroundTruth& truth = cluster_.truth();
  Instant horizon = write.issue - options_.timeout - options_.keepalive;
  for (WriteId id = write.id - 1; id >= 1; id--) {
    const WriteRecord& earlier = truth.write(id);
    if (earlier.issue < horizon) break;
    bool overlap = earlier.offset < write.offset + write.length &&
                   write.offset < earlier.offset + earlier.length && earlier.node == write.node;
    if (!overlap) continue;
    return fmt::format("write {} (issued at {}, {} at {})", id, format_instant(earlier.issue),
                       earlier.outcome == Outcome::ok ? "ok" : "not ok",
                       format_instant(earlier.end));
  }
  return "none";
}

// How many requests `write`'s node took in the timeout + keepalive before `write`
// (diagnostics: how busy the primary was).
std::uint64_t LatencyOracle::recent_requests(const WriteRecord& write) const {
  const GroundTruth& truth = cluster_.truth();
  Instant horizon = write.issue - options_.timeout - options_.keepalive;
  std::uint64_t count = 0;
  for (WriteId id = write.id - 1; id >= 1 && truth.write(id).issue >= horizon; id--) {
    count += truth.write(id).node == write.node ? 1 : 0;
  }
  return count;
}

void LatencyOracle::report(const WriteRecord& write, Duration latency, Instant now) {
  if (violations_.size() >= options_.violations_max) {
    suppressed_++;
    return;
  }
  bool pending = write.outcome == Outcome::pending;
  std::string mode =
      replicated_like_fullsync(write) && options_.mode == config::ReplicationMode::async
          ? "async, replicated like fullsync"
          : std::string(config::replication_name(options_.mode));
  Duration rest = options_.slack;
  std::string parts = fmt::format("slack {}", seconds(options_.slack));
  if (replicated_like_fullsync(write)) {
    rest += options_.timeout + options_.keepalive;
    parts = fmt::format("timeout {} + keepalive {} + {}", seconds(options_.timeout),
                        seconds(options_.keepalive), parts);
  }
  violations_.push_back(Violation{
      "O10",
      fmt::format(
          "{} {} write {} ({}{}, {} bytes at sector {}) {} after {} (issued at {}{}); "
          "the bound is {} ({} + disk {}), and neither was the primary paused nor was "
          "its disk slow meanwhile; the latest earlier write over an overlapping range: "
          "{}; writes it took in the timeout + keepalive before: {}",
          cluster_.node(write.node).name(), pending ? "has not completed" : "completed", write.id,
          mode, write.fua == Fua::yes ? ", FUA" : "", write.length, write.offset / sector_bytes,
          pending ? "still pending" : "completing", seconds(latency), format_instant(write.issue),
          pending ? fmt::format(", now {}", format_instant(now))
                  : fmt::format(", {} at {}", write.outcome == Outcome::ok ? "ok" : "failed",
                                format_instant(write.end)),
          seconds(bound(write)), parts, seconds(bound(write) - rest), overlapping(write),
          recent_requests(write))});
}

}  // namespace hast::sim

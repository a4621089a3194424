// The oracles of one run (see judge.h): facts, the O5/O8 watch, sweeps and final checks.
#include "sim/judge.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "core/meta/metadata.h"
#include "sim/activemap_oracle.h"
#include "sim/latency_oracle.h"
#include "sim/session_oracle.h"

namespace hast::sim {

using meta::Role;
using replication::HookEvent;

namespace {

constexpr std::size_t kViolationsMax = 8;  // per new oracle; later ones are counted

LatencyOracleOptions latency_options(const JudgeOptions& options) {
  LatencyOracleOptions latency;
  latency.mode = options.mode;
  latency.timeout = options.timeout;
  latency.keepalive = options.keepalive;
  latency.strict_async = options.strict_async;
  return latency;
}

NodeId peer_of(NodeId id) {
  return id == 0 ? 1 : 0;
}

}  // namespace

JudgeOptions JudgeOptions::for_cluster(const ClusterOptions& cluster) {
  JudgeOptions options;
  options.mode = cluster.mode;
  options.timeout = std::chrono::seconds(cluster.timeout_seconds);
  options.keepalive = cluster.timing.keepalive;
  return options;
}

// O5 and O8 online: new hook events (syncdone) and client writes as they are answered.
class Judge::Watch final : public WorldObserver {
 public:
  explicit Watch(Judge& judge) : judge_(judge) { judge_.world().add_observer(*this); }
  ~Watch() override { judge_.world().remove_observer(*this); }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  void after_step() override;
  void after_death(NodeId node, DeathKind /*kind*/) override {
    deaths_[node].push_back(judge_.world().now());
  }
  // Judges every deferred remote check (at the end of the run).
  void finish();

 private:
  struct Pending {
    WriteId id = 0;
    std::uint64_t peer_incarnation = 0;
  };
  struct Deferred {
    WriteId id = 0;
    std::uint64_t peer_incarnation = 0;
    Instant due{};
    std::string missing;  // what the peer's disk held at the answer
  };
  // Where a node's latest sync pass began: when, and its peer's incarnation then.
  struct SyncStart {
    Instant when = Instant::min();
    std::uint64_t peer_incarnation = 0;
  };
  void syncs();
  // O5 on the peer of `primary`, whose pass just ended with `syncdone` (judge.h).
  void sweep_sync_peer(NodeId primary);
  void acks(bool all_due = false);
  void check_ack(const Pending& pending);
  // The first sector of `write` that `id`'s current view holds neither it nor a newer
  // write in ("sector N holds V"), or nullopt when it holds it all.
  std::optional<std::string> missing(NodeId id, WriteId write);
  bool peer_excused(const Deferred& deferred);
  bool connected_at(NodeId id, Instant when) const;

  Judge& judge_;
  std::size_t events_seen_ = 0;
  WriteId writes_seen_ = 0;
  std::vector<Pending> pending_;
  std::vector<Deferred> deferred_;
  std::array<std::vector<Instant>, 2> deaths_;  // per node: when its incarnations ended
  std::array<std::optional<SyncStart>, 2> sync_starts_;
};

void Judge::Watch::after_step() {
  syncs();
  acks();
}

void Judge::Watch::syncs() {
  const auto& events = judge_.cluster_.events();
  for (; events_seen_ < events.size(); events_seen_++) {
    const RecordedEvent& recorded = events[events_seen_];
    if (recorded.record.event == HookEvent::syncstart) {
      sync_starts_[recorded.node] =
          SyncStart{recorded.when, judge_.cluster_.node(peer_of(recorded.node)).incarnation()};
    }
    if (recorded.record.event != HookEvent::syncdone) continue;
    if (judge_.options_.check_o5) {
      judge_.count("O5 syncs checked");
      judge_.sweep(recorded.node, "O5",
                   fmt::format("right after {}'s sync completed",
                               judge_.cluster_.node(recorded.node).name()),
                   /*skip_stale=*/true);
    }
    if (judge_.options_.check_o5_target) sweep_sync_peer(recorded.node);
  }
}

void Judge::Watch::sweep_sync_peer(NodeId primary) {
  NodeId peer = peer_of(primary);
  std::optional<SyncStart> start = std::exchange(sync_starts_[primary], std::nullopt);
  SimNode& node = judge_.cluster_.node(peer);
  if (!start || !node.running() || node.incarnation() != start->peer_incarnation) {
    judge_.count("O5 target sweeps skipped");
    return;
  }
  Judge::SweepSpan span{start->when, "O5 target", {}};
  std::uint64_t base = judge_.cluster_.local_offset();
  for (const SimDiskFaultRecord& fault : judge_.cluster_.disk(peer).fault_log()) {
    bool failed_write = fault.kind == SimDiskFaultKind::write_error ||
                        fault.kind == SimDiskFaultKind::discard_error;
    if (!failed_write || fault.when < start->when || fault.offset + fault.length <= base) {
      continue;
    }
    std::uint64_t first = std::max(fault.offset, base) - base;
    span.excused.emplace_back(first, fault.offset + fault.length - base);
  }
  judge_.sweep(peer, "O5",
               fmt::format("{}'s data area right after {}'s sync pass (begun at {}) completed",
                           node.name(), judge_.cluster_.node(primary).name(),
                           format_instant(start->when)),
               /*skip_stale=*/true, span);
}

void Judge::Watch::acks(bool all_due) {
  GroundTruth& truth = judge_.cluster_.truth();
  for (; writes_seen_ < truth.write_count(); writes_seen_++) {
    NodeId peer = peer_of(truth.write(writes_seen_ + 1).node);
    pending_.push_back(Pending{writes_seen_ + 1, judge_.cluster_.node(peer).incarnation()});
  }
  std::erase_if(pending_, [&](const Pending& pending) {
    const WriteRecord& write = truth.write(pending.id);
    if (write.outcome == Outcome::pending) return false;
    if (judge_.options_.check_o8) check_ack(pending);
    return true;
  });
  Instant now = judge_.world().now();
  std::erase_if(deferred_, [&](const Deferred& deferred) {
    if (!all_due && deferred.due > now) return false;
    if (!peer_excused(deferred)) {
      const WriteRecord& write = truth.write(deferred.id);
      judge_.report("O8", fmt::format(
          "write {} [{}, +{}) answered OK at {} by {} ({}), yet {}'s disk did not hold it "
          "then and its copy was required (fullsync, or the local copy failed); no disk "
          "write error, disconnect or death excuses it: {}",
          write.id, write.offset, write.length, format_instant(write.end),
          judge_.cluster_.node(write.node).name(), config::replication_name(judge_.options_.mode),
          judge_.cluster_.node(peer_of(write.node)).name(), deferred.missing));
    }
    return true;
  });
}

void Judge::Watch::finish() {
  acks(/*all_due=*/true);
}

std::optional<std::string> Judge::Watch::missing(NodeId id, WriteId write_id) {
  const WriteRecord& write = judge_.cluster_.truth().write(write_id);
  std::vector<std::byte> data(write.length);
  judge_.cluster_.disk(id).peek_current(judge_.cluster_.local_offset() + write.offset, data);
  for (std::uint64_t i = 0; i < write.length / sector_bytes; i++) {
    SectorValue value = decode_sector(std::span(data).subspan(i * sector_bytes, sector_bytes));
    std::uint64_t sector = write.offset / sector_bytes + i;
    if (judge_.cluster_.truth().holds_or_newer(write_id, sector, value)) continue;
    return fmt::format("its sector {} holds {}; history: {}", sector,
                       GroundTruth::describe_value(value),
                       judge_.cluster_.truth().describe_sector(sector));
  }
  return std::nullopt;
}

void Judge::Watch::check_ack(const Pending& pending) {
  const WriteRecord& write = judge_.cluster_.truth().write(pending.id);
  NodeId serving = write.node;
  NodeId peer = peer_of(serving);
  if (write.outcome == Outcome::failed) {
    if (judge_.cluster_.node(peer).running() && connected_at(serving, write.end)) {
      judge_.count("O8 writes failed while a copy was reachable");
    }
    return;
  }
  if (write.outcome != Outcome::ok || !judge_.cluster_.node(serving).running()) return;
  judge_.count("O8 acks checked");
  auto stale = judge_.stale_extents(serving);
  std::uint32_t extent_size = judge_.extent_size();
  bool any_stale = false;
  for (std::uint64_t at = write.offset; at < write.offset + write.length; at += extent_size) {
    std::uint64_t extent = at / extent_size;
    any_stale = any_stale || (extent < stale.size() && stale[extent]);
  }
  auto local_missing = missing(serving, write.id);
  bool local = !local_missing;
  if (!local && !any_stale) {
    judge_.report("O8", fmt::format(
        "write {} [{}, +{}) answered OK at {} by {}, whose disk does not hold it (and its "
        "persisted metadata lists no extent of it stale, {} stale in all): {}",
        write.id, write.offset, write.length, format_instant(write.end),
        judge_.cluster_.node(serving).name(), std::count(stale.begin(), stale.end(), true),
        *local_missing));
    return;
  }
  // The peer's copy is required when the local one failed, and in fullsync while the
  // pair was connected.
  bool remote_required = !local || (judge_.options_.mode == config::ReplicationMode::fullsync &&
                                    connected_at(serving, write.issue));
  if (!remote_required || write.dual_primary) return;
  std::optional<std::string> peer_missing = "it is down";
  if (judge_.cluster_.node(peer).running()) peer_missing = missing(peer, write.id);
  if (!peer_missing) return;
  // A disconnect may be reported after the answer (a reset, a timeout): judge later.
  Duration grace = judge_.options_.timeout + judge_.options_.keepalive + std::chrono::seconds(1);
  deferred_.push_back(
      Deferred{write.id, pending.peer_incarnation, write.end + grace, std::move(*peer_missing)});
}

// The peer's copy may be missing with an answer OK: its disk failed the write, it died or
// restarted, the link dropped around the write, or the write may be lost by a fact.
bool Judge::Watch::peer_excused(const Deferred& deferred) {
  const WriteRecord& write = judge_.cluster_.truth().write(deferred.id);
  NodeId peer = peer_of(write.node);
  if (write.may_be_lost) return true;
  if (judge_.cluster_.node(peer).incarnation() != deferred.peer_incarnation) return true;
  Instant until = deferred.due;
  for (const RecordedEvent& recorded : judge_.cluster_.events()) {
    if (recorded.record.event == HookEvent::disconnect && recorded.when >= write.issue &&
        recorded.when <= until) {
      return true;
    }
  }
  for (const SimDiskFaultRecord& fault : judge_.cluster_.disk(peer).fault_log()) {
    bool failed_write = fault.kind == SimDiskFaultKind::write_error ||
                        fault.kind == SimDiskFaultKind::discard_error;
    if (failed_write && fault.when >= write.issue && fault.when <= write.end) return true;
  }
  return false;
}

// `id` had completed a handshake in its current incarnation and not lost the link since,
// at `when`.
bool Judge::Watch::connected_at(NodeId id, Instant when) const {
  Instant born = Instant::min();
  for (Instant death : deaths_[id]) {
    if (death <= when) born = death;
  }
  bool connected = false;
  for (const RecordedEvent& recorded : judge_.cluster_.events()) {
    if (recorded.node != id || recorded.when > when || recorded.when < born) continue;
    if (recorded.record.event == HookEvent::connect) connected = true;
    if (recorded.record.event == HookEvent::disconnect) connected = false;
  }
  return connected;
}

Judge::Judge(SimCluster& cluster, JudgeOptions options)
    : cluster_(cluster),
      options_(options),
      activemap_(std::make_unique<ActivemapOracle>(cluster)),
      latency_(std::make_unique<LatencyOracle>(cluster, latency_options(options))),
      sessions_(std::make_unique<SessionOracle>(cluster)),
      watch_(std::make_unique<Watch>(*this)) {}

Judge::~Judge() = default;

void Judge::count(std::string_view counter, std::uint64_t by) {
  coverage_[std::string(counter)] += by;
}

void Judge::report(std::string oracle, std::string detail) {
  std::uint64_t& seen = coverage_[oracle + " violations"];
  if (seen++ >= kViolationsMax) return;
  violations_.push_back(Violation{std::move(oracle), std::move(detail)});
}

std::uint32_t Judge::extent_size() {
  std::vector<std::byte> block(meta::metadata_size);
  for (NodeId id : {0u, 1u}) {
    cluster_.disk(id).peek_current(0, block);
    auto area = meta::decode_area(block, "judge");
    if (area && area->metadata.extent_size_bytes > 0) return area->metadata.extent_size_bytes;
  }
  return 256 * 1024;  // no metadata yet: nothing is stale either
}

// ---- Facts ----

Instant Judge::last_event(NodeId id, HookEvent event) const {
  Instant last = Instant::min();
  for (const RecordedEvent& recorded : cluster_.events()) {
    if (recorded.node == id && recorded.record.event == event) last = recorded.when;
  }
  return last;
}

void Judge::open_episode(NodeId loser, Instant since) {
  episode_.open = true;
  episode_.loser = loser;
  episode_.since = since;
}

std::optional<NodeId> Judge::split_brain_loser() const {
  if (!episode_.open) return std::nullopt;
  return episode_.loser;
}

void Judge::power_loss(NodeId /*id*/) {
  cluster_.truth().power_loss(world().now());
}

void Judge::failover(NodeId old_primary, NodeId /*promoted*/, bool in_sync) {
  if (in_sync) return;
  // The old primary may have acknowledged writes the promoted node lacks (it was degraded,
  // or the node is a half-synced target); when it returns, the counters decide.
  cluster_.truth().discard_writes(old_primary, last_event(old_primary, HookEvent::connect));
  open_episode(old_primary, world().now());
}

void Judge::promotion_refused(NodeId /*old_primary*/, NodeId /*promoted*/) {
  episode_.open = false;
}

void Judge::failover_settled(NodeId promoted) {
  if (!options_.check_o2 || !cluster_.node(promoted).running()) return;
  sweep(promoted, "O2", fmt::format("after the failover to {}", cluster_.node(promoted).name()),
        /*skip_stale=*/true);
}

void Judge::split_brain(NodeId old_primary, NodeId /*promoted*/) {
  open_episode(old_primary, world().now());
  cluster_.truth().set_split_brain(true);
  // The promoted node lacks what the old primary acknowledged without it: in async
  // possibly anything, otherwise what it acknowledged since it was last connected.
  cluster_.truth().discard_writes(old_primary, options_.mode == config::ReplicationMode::async
                                                   ? Instant::min()
                                                   : last_event(old_primary, HookEvent::connect));
}

void Judge::zombie_promoted(NodeId zombie, NodeId /*promoted*/) {
  open_episode(zombie, world().now());
  cluster_.truth().set_split_brain(true);
  cluster_.truth().discard_writes(zombie, last_event(zombie, HookEvent::connect));
}

void Judge::recreated(NodeId id) {
  // O3 waits for the pair to converge: the re-created node's blank map does not cover the
  // history its data area still holds (activemap_oracle.h).
  activemap_->set_suspended(true);
  cluster_.truth().discard_writes(id, Instant::min());
}

void Judge::disk_replaced(NodeId id, DiskReplacement kind) {
  if (kind != DiskReplacement::foreign) return;
  Foreign& foreign = foreign_[id];
  foreign.present = true;
  foreign.content_hash = cluster_.disk(id).content_hash();
  foreign.metadata_hash = metadata_hash(id);
  foreign.events_at_swap = cluster_.events().size();
}

void Judge::disk_restored(NodeId id) {
  std::size_t seen = violations_.size();
  check_foreign(id, "when it was taken out");
  if (violations_.size() == seen) count("foreign disks refused");
  foreign_[id].present = false;
}

// A hash of the metadata block as the disk shows it now (cache included).
std::uint64_t Judge::metadata_hash(NodeId id) {
  std::vector<std::byte> block(meta::metadata_size);
  cluster_.disk(id).peek_current(0, block);
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (std::byte b : block) hash = (hash ^ static_cast<std::uint64_t>(b)) * 0x100000001b3ULL;
  return hash;
}

// O6: another resource's disk is refused, so nothing on it ever changes.
void Judge::check_foreign(NodeId id, std::string_view why) {
  const Foreign& foreign = foreign_[id];
  if (!foreign.present) return;
  count("O6 foreign disk checks");
  const auto& events = cluster_.events();
  for (std::size_t i = foreign.events_at_swap; i < events.size(); i++) {
    if (events[i].record.event != HookEvent::connect) continue;
    return report("O6", fmt::format("{} connected at {} while {} held another resource's disk "
                                    "(a different resuid), {}: the handshake must refuse it",
                                    cluster_.node(events[i].node).name(),
                                    format_instant(events[i].when), cluster_.node(id).name(), why));
  }
  if (cluster_.disk(id).content_hash() != foreign.content_hash) {
    report("O6", fmt::format("{}'s foreign disk (another resource's) had its data area "
                             "modified, {}: the resuid mismatch was not refused",
                             cluster_.node(id).name(), why));
  } else if (metadata_hash(id) != foreign.metadata_hash) {
    report("O6", fmt::format("{}'s foreign disk (another resource's) had its metadata "
                             "modified, {}: the resuid mismatch was not refused",
                             cluster_.node(id).name(), why));
  }
}

void Judge::liveness_started() {
  cluster_.truth().set_split_brain(false);
}

// ---- Checks ----

bool Judge::converged(NodeId primary, NodeId secondary) {
  auto a = cluster_.status(primary);
  auto b = cluster_.status(secondary);
  return a && b && a->role == Role::primary && b->role == Role::secondary &&
         a->status == "complete" && b->status == "complete" && a->sync_extents == 0 &&
         a->dirty_bytes == 0 && !a->sync.running && cluster_.workload().idle();
}

// Per extent: listed stale in `id`'s persisted metadata (its good copy is on the peer).
std::vector<bool> Judge::stale_extents(NodeId id) {
  std::vector<std::byte> block(meta::metadata_size);
  cluster_.disk(id).peek_current(0, block);
  auto area = meta::decode_area(block, "judge");  // both copies, as the node reads them
  if (!area) return {};
  std::vector<bool> stale;
  for (meta::ExtentIndex extent : area->metadata.stale_extents) {
    if (extent.value >= stale.size()) stale.resize(extent.value + 1);
    stale[extent.value] = true;
  }
  return stale;
}

void Judge::sweep(NodeId id, std::string_view oracle, std::string_view why, bool skip_stale,
                  const SweepSpan& span) {
  std::vector<bool> stale = skip_stale ? stale_extents(id) : std::vector<bool>{};
  std::uint32_t extent = extent_size();
  GroundTruth& truth = cluster_.truth();
  Instant now = world().now();
  Instant since = span.since.value_or(now);
  std::string_view counters = span.counters.empty() ? oracle : span.counters;
  auto excused = [&span](std::uint64_t offset) {
    return std::any_of(span.excused.begin(), span.excused.end(),
                       [offset](const auto& range) {
                         return range.first <= offset && offset < range.second;
                       });
  };
  count(fmt::format("{} sweeps", counters));
  std::vector<std::byte> chunk(1 << 16);
  std::uint64_t checked = 0;
  for (std::uint64_t at = 0; at < cluster_.data_size(); at += chunk.size()) {
    std::uint64_t n = std::min<std::uint64_t>(chunk.size(), cluster_.data_size() - at);
    cluster_.disk(id).peek_current(cluster_.local_offset() + at, std::span(chunk).first(n));
    for (std::uint64_t i = 0; i < n / sector_bytes; i++) {
      std::uint64_t offset = at + i * sector_bytes;
      if (offset / extent < stale.size() && stale[offset / extent]) continue;
      if (!span.excused.empty() && excused(offset)) continue;
      SectorValue value = decode_sector(std::span(chunk).subspan(i * sector_bytes, sector_bytes));
      checked++;
      if (truth.durable_value(offset / sector_bytes, value, since, now)) continue;
      report(std::string(oracle),
             fmt::format("{} at {}: {}'s sector {} holds {}, but a write that must survive "
                         "({}) is newer; history: {}",
                         why, format_instant(now), cluster_.node(id).name(), offset / sector_bytes,
                         GroundTruth::describe_value(value),
                         config::replication_name(options_.mode),
                         truth.describe_sector(offset / sector_bytes)));
      count(fmt::format("{} sectors checked", counters), checked);
      return;  // one per sweep: the rest is usually the same loss
    }
  }
  count(fmt::format("{} sectors checked", counters), checked);
}

// Ground truth of a split-brain: both nodes acknowledged writes since the episode began.
bool Judge::diverged() const {
  bool old_wrote = false, new_wrote = false;
  const GroundTruth& truth = cluster_.truth();
  for (WriteId id = 1; id <= truth.write_count(); id++) {
    const WriteRecord& write = truth.write(id);
    if (write.outcome != Outcome::ok || write.issue < episode_.since) continue;
    old_wrote = old_wrote || write.node == episode_.loser;
    new_wrote = new_wrote || write.node != episode_.loser;
  }
  return old_wrote && new_wrote;
}

std::string Judge::describe_difference(std::uint64_t offset) {
  std::uint64_t sector = offset / sector_bytes;
  return fmt::format(
      "converged, but the data areas differ: first at sector {} (extent {}): {} holds {}, {} "
      "holds {}; history: {}",
      sector, offset / extent_size(), cluster_.node(0).name(),
      GroundTruth::describe_value(cluster_.peek_sector(0, sector * sector_bytes)),
      cluster_.node(1).name(),
      GroundTruth::describe_value(cluster_.peek_sector(1, sector * sector_bytes)),
      cluster_.truth().describe_sector(sector));
}

// O7, zombie writes: a write acknowledged while the other node also served as primary
// must not be merged silently. Either a split-brain was reported at reconnect (the
// operator then chose whose data to keep), or the write survived: every sector of it holds
// its data or a newer write's once the pair converged.
void Judge::check_dual_primary(NodeId primary) {
  GroundTruth& truth = cluster_.truth();
  std::vector<WriteId> dual = truth.dual_primary_writes();
  count("O7 dual-primary writes", dual.size());
  if (dual.empty()) return;
  Instant first = truth.write(dual.front()).issue;
  for (const RecordedEvent& recorded : cluster_.events()) {
    if (recorded.record.event == HookEvent::split_brain && recorded.when >= first) return;
  }
  for (WriteId id : dual) {
    const WriteRecord& write = truth.write(id);
    for (std::uint64_t at = write.offset; at < write.offset + write.length; at += sector_bytes) {
      SectorValue value = cluster_.peek_sector(primary, at);
      if (truth.holds_or_newer(id, at / sector_bytes, value)) continue;
      report("O7", fmt::format("{} acknowledged write {} at {} while {} also served as primary; no "
                               "split-brain was reported, yet after convergence sector {} holds "
                               "{}, older than the write: merged silently; history: {}",
                               cluster_.node(write.node).name(), id, format_instant(write.end),
                               cluster_.node(peer_of(write.node)).name(), at / sector_bytes,
                               GroundTruth::describe_value(value),
                               truth.describe_sector(at / sector_bytes)));
      return;
    }
  }
}

void Judge::check_split_brain_accounting() {
  std::uint64_t reported = cluster_.count_events(0, HookEvent::split_brain) +
                           cluster_.count_events(1, HookEvent::split_brain);
  bool expected = episode_.open && diverged();
  if (expected && reported == 0) {
    report("O6", "both nodes wrote as primary; no split-brain reported");
  }
  if (!episode_.open && reported > 0) report("O6", "split-brain reported without a cause");
  if (episode_.open && !expected && reported > 0) count("spurious split-brains");
  if (expected && reported > 0) count("split-brains detected");
}

// The online oracles' findings, once the run is over (O3, O7, O10, and O8's deferred).
void Judge::collect_online() {
  watch_->finish();
  activemap_->set_suspended(false);
  activemap_->checkpoint("after convergence");
  latency_->finish();
  count("O3 checkpoints applied", activemap_->applied());
  count("O7 sessions accepted", sessions_->sessions_accepted());
  count("O10 writes judged", latency_->judged());
}

std::vector<Violation> Judge::finish(NodeId primary, NodeId secondary) {
  HAST_ASSERT_MSG(!finished_, "Judge::finish called twice");
  finished_ = true;
  std::vector<Violation> violations = cluster_.truth().violations();
  bool done = world().run_until([&] { return converged(primary, secondary); },
                                world().now() + options_.convergence_limit);
  collect_online();
  for (const auto* found :
       {&activemap_->violations(), &sessions_->violations(), &latency_->violations()}) {
    violations.insert(violations.end(), found->begin(), found->end());
  }
  for (NodeId id : {0u, 1u}) check_foreign(id, "at the end of the run");
  if (!done) {
    report("O4", "the pair did not converge within the limit");
  } else if (auto differ = cluster_.first_difference()) {
    report("O4", describe_difference(*differ));
  } else {
    if (options_.check_o2) sweep(primary, "O2", "after convergence", /*skip_stale=*/false);
    check_dual_primary(primary);
  }
  check_split_brain_accounting();
  violations.insert(violations.end(), violations_.begin(), violations_.end());
  return violations;
}

std::optional<Violation> Judge::check_determinism(const std::string& first,
                                                  const std::string& second) {
  if (first == second) return std::nullopt;
  return Violation{"O11", fmt::format("the same seed gave two hashes: {} and {}", first, second)};
}

}  // namespace hast::sim

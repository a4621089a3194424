// One swarm run: the plan drawn from the seed, the fault schedule, the liveness phase and
// the final checks (see swarm.h).
#include "sim/swarm.h"

#include <array>
#include <cstdio>

#include <fmt/format.h>

#include "core/meta/metadata.h"
#include "sim/activemap_oracle.h"
#include "sim/cluster.h"
#include "sim/latency_oracle.h"
#include "sim/session_oracle.h"
#include "sim/sim_network.h"

namespace hast::sim {
namespace {

using namespace std::chrono_literals;
using meta::Role;
using replication::HookEvent;

constexpr Duration kSafetyPhase = 6s;
constexpr Duration kConvergenceLimit = 120s;

enum class Fault : std::uint8_t {
  kill_secondary,
  power_loss_secondary,
  restart_primary,
  power_loss_primary,
  failover,
  partition_both,
  partition_one_way,
  clog,
  split_brain,
  zombie,
  empty_disk,
};
constexpr int kFaultKinds = 11;

Duration between(Prng& random, Duration low, Duration high) {
  return Duration(static_cast<Duration::rep>(uniform(
      random, static_cast<std::uint64_t>(low.count()), static_cast<std::uint64_t>(high.count()))));
}

class Runner {
 public:
  Runner(const RunOptions& options, config::ReplicationMode mode, ClusterOptions cluster_options)
      : options_(options),
        mode_(mode),
        cluster_timeout_(cluster_options.timeout_seconds),
        extent_size_(cluster_options.extent_size),
        cluster_(cluster_options),
        plan_(derive_seed(options.seed, "swarm-plan")),
        activemap_(cluster_),
        latency_(cluster_, latency_options(cluster_options)),
        sessions_(cluster_) {}

  RunReport run();

 private:
  World& world() { return cluster_.world(); }
  void say(std::string_view what);
  void count(std::string_view counter) { coverage_[std::string(counter)]++; }
  void schedule_faults();
  void inject(Fault fault);
  void restart_later(NodeId id, Role role, Duration delay);
  void replace_disk_later(NodeId id, Duration delay);
  bool primary_has_stale_extents();
  bool failover_safe();
  void liveness();
  bool converged();
  void check_promotion(NodeId old, NodeId promoted);
  Instant last_event(NodeId id, HookEvent event) const;
  bool diverged() const;
  void check(RunReport& report);
  void check_dual_primary(std::vector<Violation>& violations);
  void collect_online(std::vector<Violation>& violations);
  std::string describe_difference(std::uint64_t offset);
  static LatencyOracleOptions latency_options(const ClusterOptions& cluster);

  RunOptions options_;
  config::ReplicationMode mode_;
  int cluster_timeout_ = 20;
  std::uint32_t extent_size_;
  SimCluster cluster_;
  Prng plan_;
  NodeId primary_ = 0;
  NodeId secondary_ = 1;
  bool split_brain_ = false;
  std::array<bool, 2> fresh_disk_{};  // swapped in empty, not known to be synced yet
  NodeId split_loser_ = 0;
  Instant split_since_{};
  std::map<std::string, std::uint64_t> coverage_;
  // The online oracles watch from construction on (O3, O10, O7's session half).
  ActivemapOracle activemap_;
  LatencyOracle latency_;
  SessionOracle sessions_;
};

LatencyOracleOptions Runner::latency_options(const ClusterOptions& cluster) {
  LatencyOracleOptions options;
  options.mode = cluster.mode;
  options.timeout = std::chrono::seconds(cluster.timeout_seconds);
  options.keepalive = cluster.timing.keepalive;
  return options;
}

void Runner::say(std::string_view what) {
  world().trace_text("operator", what);
  if (options_.timeline) {
    std::printf("%s operator: %s\n", format_instant(world().now()).c_str(),
                std::string(what).c_str());
  }
}

void Runner::restart_later(NodeId id, Role role, Duration delay) {
  world().after(delay, "restart", [this, id, role] {
    if (!cluster_.node(id).running()) cluster_.start(id);
    world().after(10ms, "role", [this, id, role] { cluster_.set_role(id, role); });
    say(fmt::format("restart {} as {}", cluster_.node(id).name(), meta::role_name(role)));
  });
}

// The node's disk is swapped for an empty one once nothing of its last incarnation is in
// flight, then `hastctl create` and `role secondary` (row 17).
void Runner::replace_disk_later(NodeId id, Duration delay) {
  world().after(delay, "replace disk", [this, id] {
    if (cluster_.node(id).running()) return;
    if (cluster_.disk(id).in_flight_count() > 0) return replace_disk_later(id, 10ms);
    cluster_.disk(id).replace_with_empty();
    fresh_disk_[id] = true;
    cluster_.start(id, /*create=*/true);
    world().after(10ms, "role", [this, id] { cluster_.set_role(id, Role::secondary); });
    say(fmt::format("hastctl create on {}'s new disk; role secondary", cluster_.node(id).name()));
  });
}

// The primary's metadata on its disk lists stale extents (read from the disk's bytes).
bool Runner::primary_has_stale_extents() {
  std::vector<std::byte> block(meta::metadata_size);
  cluster_.disk(primary_).peek_current(0, block);
  auto metadata = meta::decode_block(block, "swarm");
  return !metadata || !metadata->stale_extents.empty();
}

// A failover is safe only from a pair in sync: promoting a half-synced node is what the
// inconsistent flag (not modelled yet) must refuse.
bool Runner::failover_safe() {
  auto status = cluster_.status(primary_);
  return status && status->status == "complete" && status->sync_extents == 0 &&
         !status->sync.running && cluster_.node(secondary_).running();
}

void Runner::inject(Fault fault) {
  if (split_brain_) return;  // the episode runs to the liveness phase untouched
  SimNode& primary = cluster_.node(primary_);
  SimNode& secondary = cluster_.node(secondary_);
  if (!primary.running() || !secondary.running()) return;  // a restart is pending
  SimNetwork& network = world().network();
  switch (fault) {
    case Fault::kill_secondary:
      say("kill -9 the secondary");
      count("secondary kills");
      secondary.kill();
      return restart_later(secondary_, Role::secondary, between(plan_, 100ms, 1500ms));
    case Fault::power_loss_secondary:
      say("power loss on the secondary");
      count("secondary power losses");
      secondary.power_loss();
      return restart_later(secondary_, Role::secondary, between(plan_, 100ms, 1500ms));
    case Fault::restart_primary:
      say("kill -9 the primary; it comes back as primary");
      count("primary restarts");
      primary.kill();
      return restart_later(primary_, Role::primary, between(plan_, 50ms, 800ms));
    case Fault::power_loss_primary:
      say("power loss on the primary; it comes back as primary");
      count("primary power losses");
      primary.power_loss();
      cluster_.truth().power_loss(world().now());
      return restart_later(primary_, Role::primary, between(plan_, 50ms, 800ms));
    case Fault::failover: {
      if (mode_ == config::ReplicationMode::async) return inject(Fault::restart_primary);
      bool in_sync = failover_safe();
      // An operator does not promote a disk that was just swapped in empty and never
      // synced: it holds nothing (its promotion would start a new resource, refused by
      // the other node's resuid for good).
      if (in_sync) fresh_disk_[secondary_] = false;
      if (fresh_disk_[secondary_]) return inject(Fault::restart_primary);
      say(fmt::format("kill -9 the primary; promote {}{}", secondary.name(),
                      in_sync ? "" : " (the pair was not in sync)"));
      count(in_sync ? "failovers" : "failovers out of sync");
      primary.kill();
      if (!in_sync) {
        // The old primary may have acknowledged writes the promoted node lacks (it was
        // degraded or the node is a half-synced target); when it returns, the counters
        // decide: a split-brain to recover from by hand, or a refusal to promote.
        cluster_.truth().discard_writes(primary_, last_event(primary_, HookEvent::connect));
        split_brain_ = true;
        split_since_ = world().now();
        split_loser_ = primary_;
      }
      NodeId old = primary_;
      std::swap(primary_, secondary_);
      world().after(between(plan_, 20ms, 300ms), "promote", [this, old, id = primary_] {
        cluster_.set_role(id, Role::primary);
        world().after(50ms, "check promotion", [this, old, id] { check_promotion(old, id); });
      });
      return restart_later(old, Role::secondary, between(plan_, 400ms, 1500ms));
    }
    case Fault::partition_both: {
      say("partition both ways");
      count("partitions");
      network.partition_both(primary_, secondary_);
      world().after(between(plan_, 100ms, 2500ms), "heal", [this] {
        world().network().heal_all();
        say("heal");
      });
      return;
    }
    case Fault::partition_one_way: {
      bool outbound = chance(plan_, 0.5);
      say(outbound ? "cut primary → secondary" : "cut secondary → primary");
      count("one-way partitions");
      outbound ? network.partition(primary_, secondary_) : network.partition(secondary_, primary_);
      world().after(between(plan_, 100ms, 2500ms), "heal", [this] {
        world().network().heal_all();
        say("heal");
      });
      return;
    }
    case Fault::clog:
      say("clog the link");
      count("clogs");
      return network.clog(primary_, secondary_, between(plan_, 50ms, 1500ms));
    case Fault::zombie: {
      // The primary freezes past the timeout; the operator, taking it for dead, promotes
      // the secondary; then the old primary wakes and carries on (row 15).
      if (!failover_safe()) return inject(Fault::clog);
      Duration timeout = std::chrono::seconds(cluster_timeout_);
      Duration pause = timeout + between(plan_, 500ms, 2s);
      if (world().now() + pause + 300ms > Instant{} + kSafetyPhase) return inject(Fault::clog);
      say(fmt::format("pause the primary for {}", format_instant(Instant{} + pause)));
      count("zombie primaries");
      primary.pause(pause);
      split_brain_ = true;
      split_loser_ = primary_;
      std::swap(primary_, secondary_);
      world().after(timeout + 200ms, "promote", [this, id = primary_, old = split_loser_] {
        split_since_ = world().now();
        cluster_.truth().set_split_brain(true);
        cluster_.truth().discard_writes(old, last_event(old, HookEvent::connect));
        cluster_.set_role(id, Role::primary);
        say(fmt::format("promote {} (the old primary looks dead)", cluster_.node(id).name()));
      });
      return;
    }
    case Fault::empty_disk:
      // Row 17: the secondary's disk is swapped for an empty one, which the operator
      // creates and makes secondary again: it must become a sync target, never a source.
      // Not while an extent's only good copy is on it (a local write failed on the
      // primary): that double fault loses acknowledged data by construction.
      if (primary_has_stale_extents()) return inject(Fault::kill_secondary);
      say("kill the secondary; its disk is replaced by an empty one");
      count("empty disks");
      secondary.kill();
      return replace_disk_later(secondary_, between(plan_, 100ms, 1500ms));
    case Fault::split_brain:
      // Promoting a half-synced node is what the inconsistent flag must refuse (defect 8,
      // not modelled yet): only split a pair that is in sync.
      if (!failover_safe()) return inject(Fault::partition_both);
      say(fmt::format("partition, then promote {} while {} still serves", secondary.name(),
                      primary.name()));
      count("split-brains");
      network.partition_both(primary_, secondary_);
      split_brain_ = true;
      split_since_ = world().now();
      split_loser_ = primary_;  // the operator will keep the promoted node's data
      cluster_.truth().set_split_brain(true);
      // The promoted node lacks what the old primary acknowledged without it: in async
      // possibly anything, otherwise what it acknowledged since it was last connected.
      cluster_.truth().discard_writes(primary_, mode_ == config::ReplicationMode::async
                                                    ? Instant::min()
                                                    : last_event(primary_, HookEvent::connect));
      world().after(100ms, "promote",
                    [this, id = secondary_] { cluster_.set_role(id, Role::primary); });
      std::swap(primary_, secondary_);
      return;
  }
}

void Runner::schedule_faults() {
  // Swarm: each run enables a random subset of fault kinds.
  std::vector<Fault> enabled;
  for (int kind = 0; kind < kFaultKinds; kind++) {
    if (chance(plan_, 0.5)) enabled.push_back(static_cast<Fault>(kind));
  }
  if (enabled.empty()) enabled.push_back(static_cast<Fault>(uniform(plan_, 0, kFaultKinds - 1)));
  auto count = uniform(plan_, 2, 8);
  for (std::uint64_t i = 0; i < count; i++) {
    Fault fault = enabled[uniform(plan_, 0, enabled.size() - 1)];
    Duration at = between(plan_, 300ms, kSafetyPhase - 500ms);
    world().at(Instant{} + at, "fault", [this, fault] { inject(fault); });
  }
}

Instant Runner::last_event(NodeId id, HookEvent event) const {
  Instant last = Instant::min();
  for (const RecordedEvent& recorded : cluster_.events()) {
    if (recorded.node == id && recorded.record.event == event) last = recorded.when;
  }
  return last;
}

// Ground truth of a split-brain: both nodes acknowledged writes since the partition, so
// neither holds the other's (before it, the old primary's writes reached the other node
// or were already discarded as unreplicated).
bool Runner::diverged() const {
  bool old_wrote = false, new_wrote = false;
  const GroundTruth& truth = const_cast<SimCluster&>(cluster_).truth();
  for (WriteId id = 1; id <= truth.write_count(); id++) {
    const WriteRecord& write = truth.write(id);
    if (write.outcome != Outcome::ok || write.issue < split_since_) continue;
    old_wrote = old_wrote || write.node == split_loser_;
    new_wrote = new_wrote || write.node != split_loser_;
  }
  return old_wrote && new_wrote;
}

// A promotion the node refused (its data is inconsistent: a sync to it never completed)
// leaves the operator one choice: bring the old primary back as primary.
void Runner::check_promotion(NodeId old, NodeId promoted) {
  auto status = cluster_.status(promoted);
  if (!status || status->role == Role::primary) return;
  say(fmt::format("{} refused to become primary; bring {} back as primary",
                  cluster_.node(promoted).name(), cluster_.node(old).name()));
  count("refused promotions");
  primary_ = old;
  secondary_ = promoted;
  split_brain_ = false;
  world().after(450ms, "restore", [this, old, promoted] {
    if (!cluster_.node(old).running()) cluster_.start(old);
    world().after(10ms, "roles", [this, old, promoted] {
      cluster_.set_role(old, Role::primary);
      cluster_.set_role(promoted, Role::secondary);
    });
  });
}

bool Runner::converged() {
  auto a = cluster_.status(primary_);
  auto b = cluster_.status(secondary_);
  return a && b && a->role == Role::primary && b->role == Role::secondary &&
         a->status == "complete" && b->status == "complete" && a->sync_extents == 0 &&
         a->dirty_bytes == 0 && !a->sync.running && cluster_.workload().idle();
}

void Runner::liveness() {
  say("liveness phase: faults stop, the network heals, roles are set");
  cluster_.workload().stop();
  cluster_.disk(0).faults_off();
  cluster_.disk(1).faults_off();
  world().network().heal_all();
  for (NodeId id : {primary_, secondary_}) {
    if (!cluster_.node(id).running()) cluster_.start(id);
  }
  world().run_for(50ms);
  cluster_.set_role(primary_, Role::primary);
  if (!split_brain_) {
    cluster_.set_role(secondary_, Role::secondary);
    return;
  }
  // The losing node tries to rejoin as is: if both sides wrote, the handshake must report
  // the split-brain; otherwise the counters say which side is behind and sync resolves it.
  cluster_.set_role(split_loser_, Role::secondary);
  cluster_.truth().set_split_brain(false);
  world().run_until(
      [this] {
        return cluster_.count_events(split_loser_, HookEvent::split_brain) > 0 || converged();
      },
      world().now() + 10s);
  if (cluster_.count_events(split_loser_, HookEvent::split_brain) == 0) return;
  // HAST's recovery on the node whose data is discarded: init, create, secondary.
  say(fmt::format("split-brain recovery: re-create {}", cluster_.node(split_loser_).name()));
  // O3 waits for the pair to converge: the re-created node's blank map does not cover the
  // history its data area still holds (activemap_oracle.h).
  activemap_.set_suspended(true);
  cluster_.truth().discard_writes(split_loser_, Instant::min());
  cluster_.recreate(split_loser_, Role::secondary);
}

std::string Runner::describe_difference(std::uint64_t offset) {
  std::uint64_t sector = offset / sector_bytes;
  return fmt::format(
      "converged, but the data areas differ: first at sector {} (extent {}): {} holds {}, {} "
      "holds {}; history: {}",
      sector, offset / extent_size_, cluster_.node(0).name(),
      GroundTruth::describe_value(cluster_.peek_sector(0, sector * sector_bytes)),
      cluster_.node(1).name(),
      GroundTruth::describe_value(cluster_.peek_sector(1, sector * sector_bytes)),
      cluster_.truth().describe_sector(sector));
}

// The online oracles' findings, once the run is over (O3, O7, O10).
void Runner::collect_online(std::vector<Violation>& violations) {
  activemap_.set_suspended(false);
  activemap_.checkpoint("after convergence");
  latency_.finish();
  for (const auto* found :
       {&activemap_.violations(), &sessions_.violations(), &latency_.violations()}) {
    violations.insert(violations.end(), found->begin(), found->end());
  }
  coverage_["O3 checkpoints applied"] += activemap_.applied();
  coverage_["O7 sessions accepted"] += sessions_.sessions_accepted();
  coverage_["O10 writes judged"] += latency_.judged();
}

// O7, zombie writes: a write acknowledged while the other node also served as primary
// must not be merged silently. Either a split-brain was reported at reconnect (the
// operator then chose whose data to keep), or the write survived: every sector of it holds
// its data or a newer write's once the pair converged.
void Runner::check_dual_primary(std::vector<Violation>& violations) {
  GroundTruth& truth = cluster_.truth();
  std::vector<WriteId> dual = truth.dual_primary_writes();
  coverage_["O7 dual-primary writes"] += dual.size();
  if (dual.empty()) return;
  Instant first = truth.write(dual.front()).issue;
  for (const RecordedEvent& recorded : cluster_.events()) {
    if (recorded.record.event == HookEvent::split_brain && recorded.when >= first) return;
  }
  for (WriteId id : dual) {
    const WriteRecord& write = truth.write(id);
    for (std::uint64_t at = write.offset; at < write.offset + write.length; at += sector_bytes) {
      SectorValue value = cluster_.peek_sector(primary_, at);
      if (truth.holds_or_newer(id, at / sector_bytes, value)) continue;
      violations.push_back(Violation{
          "O7", fmt::format("{} acknowledged write {} at {} while {} also served as primary; no "
                            "split-brain was reported, yet after convergence sector {} holds {}, "
                            "older than the write: merged silently; history: {}",
                            cluster_.node(write.node).name(), id, format_instant(write.end),
                            cluster_.node(write.node == 0 ? 1 : 0).name(), at / sector_bytes,
                            GroundTruth::describe_value(value),
                            truth.describe_sector(at / sector_bytes))});
      return;
    }
  }
}

void Runner::check(RunReport& report) {
  auto& violations = report.violations;
  violations = cluster_.truth().violations();
  bool done = world().run_until([this] { return converged(); }, world().now() + kConvergenceLimit);
  collect_online(violations);
  if (!done) {
    violations.push_back(Violation{"O4", "the pair did not converge within the limit"});
  } else if (auto differ = cluster_.first_difference()) {
    violations.push_back(Violation{"O4", describe_difference(*differ)});
  } else {
    check_dual_primary(violations);
  }
  std::uint64_t reported = cluster_.count_events(0, HookEvent::split_brain) +
                           cluster_.count_events(1, HookEvent::split_brain);
  bool expected = split_brain_ && diverged();
  if (expected && reported == 0) {
    violations.push_back(Violation{"O6", "both nodes wrote as primary; no split-brain reported"});
  }
  if (!split_brain_ && reported > 0) {
    violations.push_back(Violation{"O6", "split-brain reported without a cause"});
  }
  if (split_brain_ && !expected && reported > 0) coverage_["spurious split-brains"]++;
  if (expected && reported > 0) coverage_["split-brains detected"]++;
}

RunReport Runner::run() {
  // `hastctl create` runs on healthy disks; the drawn faults start with the roles.
  SimDiskFaults faults = cluster_.disk(0).faults();
  cluster_.disk(0).faults_off();
  cluster_.disk(1).faults_off();
  world().at(Instant{} + 5ms, "disk faults", [this, faults] {
    cluster_.disk(0).set_faults(faults);
    cluster_.disk(1).set_faults(faults);
  });
  cluster_.start_pair(primary_, secondary_, 50ms);
  schedule_faults();
  world().run_for(kSafetyPhase);
  liveness();
  RunReport report;
  report.seed = options_.seed;
  report.mode = mode_;
  check(report);
  report.hash = world().hash().hex();
  report.summary = world().summary();
  coverage_["reads checked"] = cluster_.truth().reads_checked();
  coverage_["writes"] = cluster_.truth().write_count();
  for (NodeId id : {0u, 1u}) {
    SimDisk& disk = cluster_.disk(id);
    coverage_["disk read errors"] += disk.fault_count(SimDiskFaultKind::read_error) +
                                     disk.fault_count(SimDiskFaultKind::latent_read);
    coverage_["disk write errors"] += disk.fault_count(SimDiskFaultKind::write_error);
    coverage_["disk flush errors"] += disk.fault_count(SimDiskFaultKind::flush_error);
    coverage_["syncs completed"] += cluster_.count_events(id, HookEvent::syncdone);
    coverage_["disconnects"] += cluster_.count_events(id, HookEvent::disconnect);
  }
  report.coverage = coverage_;
  return report;
}

ClusterOptions plan_cluster(const RunOptions& options, config::ReplicationMode mode) {
  Prng random(derive_seed(options.seed, "swarm-cluster"));
  ClusterOptions cluster;
  cluster.seed = options.seed;
  cluster.mode = mode;
  cluster.mutation = options.mutation;
  cluster.echo_logs = options.timeline;
  cluster.timeout_seconds = static_cast<int>(uniform(random, 1, 3));
  cluster.timing.keepalive = between(random, 200ms, 1s);
  cluster.timing.reconnect = between(random, 100ms, 1s);
  cluster.workload = WorkloadOptions::swarm(random);
  // Disk faults the protocol must survive: transient read, write and flush errors and
  // latent sector errors (silent corruption is out: without checksums at rest nothing can
  // tell it from data, reference/fault-model.md §6.6 row 13).
  if (chance(random, 0.5)) {
    cluster.disk.faults.read_error_probability = chance(random, 0.5) ? 0.01 : 0;
    cluster.disk.faults.write_error_probability = chance(random, 0.5) ? 0.005 : 0;
    cluster.disk.faults.flush_error_probability = chance(random, 0.5) ? 0.01 : 0;
    cluster.disk.faults.latent_error_probability = chance(random, 0.5) ? 0.002 : 0;
  }
  cluster.workload.request_bytes_max =
      std::min<std::uint64_t>(cluster.workload.request_bytes_max, 128 * 1024);
  return cluster;
}

}  // namespace

std::string RunReport::replay_command(replication::Mutation mutation) const {
  std::string command =
      fmt::format("hast-sim run --seed {} --mode {}", seed, config::replication_name(mode));
  if (mutation != replication::Mutation::none) {
    command += fmt::format(" --mutation {}", replication::mutation_name(mutation));
  }
  return command;
}

RunReport run_seed(const RunOptions& options) {
  config::ReplicationMode mode = options.mode.value_or(
      static_cast<config::ReplicationMode>(derive_seed(options.seed, "swarm-mode") % 3));
  Runner first(options, mode, plan_cluster(options, mode));
  RunReport report = first.run();
  if (options.check_determinism) {
    RunOptions quiet = options;
    quiet.timeline = false;
    Runner second(quiet, mode, plan_cluster(quiet, mode));
    RunReport again = second.run();
    if (again.hash != report.hash) {
      report.violations.push_back(Violation{
          "O11", fmt::format("the same seed gave two hashes: {} and {}", report.hash, again.hash)});
    }
  }
  return report;
}

}  // namespace hast::sim

// One swarm run: the plan drawn from the seed, the fault schedule, the liveness phase and
// the final checks (see swarm.h).
#include "sim/swarm.h"

#include <array>
#include <cstdio>
#include <functional>
#include <memory>

#include <fmt/format.h>

#include "core/assert.h"
#include "core/meta/metadata.h"
#include "sim/cluster.h"
#include "sim/judge.h"
#include "sim/sim_network.h"

namespace hast::sim {
namespace {

using namespace std::chrono_literals;
using meta::Role;
using replication::HookEvent;


using Fault = SwarmFault;
constexpr int kFaultKinds = 11;  // the drawn ones: all but foreign_disk

Duration between(Prng& random, Duration low, Duration high) {
  return Duration(static_cast<Duration::rep>(uniform(
      random, static_cast<std::uint64_t>(low.count()), static_cast<std::uint64_t>(high.count()))));
}

class Runner final : public WorldObserver {
 public:
  Runner(const RunOptions& options, config::ReplicationMode mode, ClusterOptions cluster_options)
      : options_(options),
        mode_(mode),
        cluster_timeout_(cluster_options.timeout_seconds),
        cluster_(cluster_options),
        plan_(derive_seed(options.seed, "swarm-plan")),
        disk_swap_(derive_seed(options.seed, "swarm-foreign-disk")),
        power_aim_(derive_seed(options.seed, "swarm-power-aim")),
        judge_(cluster_, JudgeOptions::for_cluster(cluster_options)) {}

  RunReport run();

 private:
  World& world() { return cluster_.world(); }
  void say(std::string_view what);
  void count(std::string_view counter) { coverage_[std::string(counter)]++; }
  // Starts a node on the disk it has (no `hastctl create`); the metadata copy its hastd
  // opens is counted once its status reports one (after_step).
  void start_node(NodeId id);
  // Watches (changing nothing) for the status of a node started by start_node to report
  // the copy of the metadata area it opened (ResourceStatus::metadata_copy).
  void after_step() override;
  // A power loss on `id` (the primary or the secondary, as `primary` says), aimed or not
  // at a multi-sector write in flight (see the definition).
  void power_loss_later(NodeId id, bool primary);
  bool tearable_write_in_flight(NodeId id, bool metadata);
  void cut_power(NodeId id, bool primary);
  void schedule_faults();
  void inject(Fault fault);
  void restart_later(NodeId id, Role role, Duration delay);
  void replace_disk_later(NodeId id, Duration delay);
  void foreign_disk_later(NodeId id, Duration delay);
  void remove_foreign_later(NodeId id, Duration delay);
  void take_out_foreign(NodeId id);
  bool primary_has_stale_extents();
  bool failover_safe();
  void liveness();
  bool converged() { return judge_.converged(primary_, secondary_); }
  void check_promotion(NodeId old, NodeId promoted);

  RunOptions options_;
  config::ReplicationMode mode_;
  int cluster_timeout_ = 20;
  SimCluster cluster_;
  Prng plan_;
  // Draws for the foreign-disk fault: a stream of its own, so that adding it left every
  // other seed's plan as it was.
  Prng disk_swap_;
  // Draws for aiming power losses at writes in flight: a stream of its own, likewise.
  Prng power_aim_;
  NodeId primary_ = 0;
  NodeId secondary_ = 1;
  bool split_brain_ = false;
  std::array<bool, 2> fresh_disk_{};  // swapped in empty, not known to be synced yet
  std::array<bool, 2> foreign_{};     // holds another resource's disk
  std::array<bool, 2> open_pending_{};  // started by start_node, no metadata copy reported yet
  std::uint64_t foreign_swaps_ = 0;
  NodeId split_loser_ = 0;
  std::map<std::string, std::uint64_t> coverage_;
  // The oracles watch from construction on; told what the operator does (judge.h).
  Judge judge_;
};

void Runner::say(std::string_view what) {
  world().trace_text("operator", what);
  if (options_.timeline) {
    std::printf("%s operator: %s\n", format_instant(world().now()).c_str(),
                std::string(what).c_str());
  }
}

void Runner::start_node(NodeId id) {
  HAST_ASSERT(!cluster_.node(id).running());
  open_pending_[id] = true;
  cluster_.start(id);
}

// A start on the second copy means a metadata write was torn or cut between the copies, the
// case the second copy exists for. The node reports it once its role left init.
void Runner::after_step() {
  for (NodeId id : {0u, 1u}) {
    if (!open_pending_[id] || !cluster_.node(id).running()) continue;
    auto status = cluster_.status(id);
    if (!status || !status->metadata_copy) continue;
    open_pending_[id] = false;
    if (*status->metadata_copy != meta::MetadataCopy::second) continue;
    count("metadata opened from the second copy");
    if (options_.timeline) {
      std::printf("%s %s opens its metadata from the second copy\n",
                  format_instant(world().now()).c_str(), cluster_.node(id).name().c_str());
    }
  }
}

// Half the power losses strike at once. The other half are aimed at a write in flight of
// more than one sector on the node's disk, one the cut can tear: a quarter at any such
// write (data or activemap), polled every 50 us for up to 50 ms; a quarter at a write to
// the metadata area (what its two copies must survive; rarer), polled every 100 us for up
// to 500 ms. The power goes at the first such write, or when the wait runs out.
void Runner::power_loss_later(NodeId id, bool primary) {
  const std::uint64_t aim = uniform(power_aim_, 0, 3);
  if (aim < 2) return cut_power(id, primary);
  const bool metadata = aim == 3;
  const Duration period = metadata ? Duration(100us) : Duration(50us);
  auto poll = std::make_shared<std::function<void(int)>>();
  *poll = [this, id, primary, metadata, period, weak = std::weak_ptr(poll)](int left) {
    if (left == 0 || tearable_write_in_flight(id, metadata)) {
      if (left > 0) count(metadata ? "power losses aimed at a metadata write"
                                   : "power losses aimed at a write in flight");
      return cut_power(id, primary);
    }
    world().after(period, "aim power loss", [next = weak.lock(), left] { (*next)(left - 1); });
  };
  (*poll)(metadata ? 5000 : 1000);
}

bool Runner::tearable_write_in_flight(NodeId id, bool metadata) {
  const SimDisk& disk = cluster_.disk(id);
  const std::uint64_t sector = disk.options().sector_size;
  for (const SimDisk::InFlightWrite& write : disk.in_flight_writes()) {
    if (write.length <= sector || write.discard) continue;
    if (!metadata || write.offset < meta::metadata_size) return true;
  }
  return false;
}

// The power loss itself, unless the node's part changed meanwhile (it died, a failover
// swapped the roles, a split-brain episode began): then nothing happens.
void Runner::cut_power(NodeId id, bool primary) {
  if (split_brain_ || id != (primary ? primary_ : secondary_) ||
      !cluster_.node(primary_).running() || !cluster_.node(secondary_).running()) {
    return count("aimed power losses called off");
  }
  if (!primary) {
    say("power loss on the secondary");
    count("secondary power losses");
    cluster_.node(id).power_loss();
    return restart_later(id, Role::secondary, between(plan_, 100ms, 1500ms));
  }
  say("power loss on the primary; it comes back as primary");
  count("primary power losses");
  cluster_.node(id).power_loss();
  judge_.power_loss(id);
  restart_later(id, Role::primary, between(plan_, 50ms, 800ms));
}

void Runner::restart_later(NodeId id, Role role, Duration delay) {
  world().after(delay, "restart", [this, id, role] {
    if (!cluster_.node(id).running()) start_node(id);
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
    take_out_foreign(id);
    cluster_.disk(id).replace_with_empty();
    fresh_disk_[id] = true;
    cluster_.start(id, /*create=*/true);
    world().after(10ms, "role", [this, id] { cluster_.set_role(id, Role::secondary); });
    say(fmt::format("hastctl create on {}'s new disk; role secondary", cluster_.node(id).name()));
  });
}

// Row 17's other half: the node's disk is swapped for another resource's (valid metadata,
// another resuid, its own data) and the node started as secondary again. The handshake
// must refuse it, the primary serves on degraded, and the foreign disk is never written;
// later the operator takes it out and puts an empty disk in (create, secondary).
void Runner::foreign_disk_later(NodeId id, Duration delay) {
  world().after(delay, "foreign disk", [this, id] {
    if (cluster_.node(id).running()) return;
    if (cluster_.disk(id).in_flight_count() > 0) return foreign_disk_later(id, 10ms);
    // Each swap brings a disk of yet another resource (a node may get a second one while
    // the first is still in place).
    cluster_.swap_in_foreign_disk(id, 0xf0f0f0f0f0f0f0f0ULL + foreign_swaps_++);
    judge_.disk_replaced(id, DiskReplacement::foreign);
    foreign_[id] = true;
    fresh_disk_[id] = true;  // an operator does not promote it
    start_node(id);
    world().after(10ms, "role", [this, id] { cluster_.set_role(id, Role::secondary); });
    say(fmt::format("{} restarts on another resource's disk; role secondary",
                    cluster_.node(id).name()));
    remove_foreign_later(id, between(disk_swap_, 300ms, 2s));
  });
}

// The operator notices the refusal: stop the node, take the foreign disk out, put an empty
// one in (then as replace_disk_later).
void Runner::remove_foreign_later(NodeId id, Duration delay) {
  world().after(delay, "remove foreign disk", [this, id] {
    if (!foreign_[id]) return;
    if (cluster_.node(id).running()) {
      say(fmt::format("stop {}: its disk belongs to another resource", cluster_.node(id).name()));
      cluster_.node(id).kill();
    }
    replace_disk_later(id, 10ms);
  });
}

void Runner::take_out_foreign(NodeId id) {
  if (!foreign_[id]) return;
  judge_.disk_restored(id);
  foreign_[id] = false;
}

// The primary's metadata on its disk lists stale extents (read from the disk's bytes).
bool Runner::primary_has_stale_extents() {
  std::vector<std::byte> block(meta::metadata_size);
  cluster_.disk(primary_).peek_current(0, block);
  auto area = meta::decode_area(block, "swarm");
  return !area || !area->metadata.stale_extents.empty();
}

// A failover is safe only from a pair in sync: promoting a half-synced node is what the
// inconsistent flag must refuse. The primary's "complete" counts only once it connected to
// the secondary's present incarnation: a secondary that was killed or lost power and came
// back may not be noticed yet (the old connection half-open, a remote FLUSH unanswered),
// and the writes its cache held are gone although the primary has nothing to sync yet.
// Fault-model §6.6 row 5 allows their loss when the primary never reconnected before the
// promotion: the operator waits for the reconnection (an `hastctl status` that was already
// "complete" before the reboot proves nothing).
bool Runner::failover_safe() {
  auto status = cluster_.status(primary_);
  auto connected = cluster_.last_event(primary_, HookEvent::connect);
  auto secondary_started = cluster_.started_at(secondary_);
  bool current = connected && secondary_started && *connected > *secondary_started;
  return status && status->status == "complete" && status->sync_extents == 0 &&
         !status->sync.running && cluster_.node(secondary_).running() && current;
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
      return power_loss_later(secondary_, /*primary=*/false);
    case Fault::restart_primary:
      say("kill -9 the primary; it comes back as primary");
      count("primary restarts");
      primary.kill();
      return restart_later(primary_, Role::primary, between(plan_, 50ms, 800ms));
    case Fault::power_loss_primary:
      return power_loss_later(primary_, /*primary=*/true);
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
      judge_.failover(primary_, secondary_, in_sync);
      if (!in_sync) {
        // The old primary may have acknowledged writes the promoted node lacks (it was
        // degraded or the node is a half-synced target); when it returns, the counters
        // decide: a split-brain to recover from by hand, or a refusal to promote.
        split_brain_ = true;
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
      if (world().now() + pause + 300ms > Instant{} + options_.safety_phase) {
        return inject(Fault::clog);
      }
      say(fmt::format("pause the primary for {}", format_instant(Instant{} + pause)));
      count("zombie primaries");
      primary.pause(pause);
      split_brain_ = true;
      split_loser_ = primary_;
      std::swap(primary_, secondary_);
      world().after(timeout + 200ms, "promote", [this, id = primary_, old = split_loser_] {
        judge_.zombie_promoted(old, id);
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
      if (!options_.schedule && chance(disk_swap_, 0.4)) return inject(Fault::foreign_disk);
      say("kill the secondary; its disk is replaced by an empty one");
      count("empty disks");
      secondary.kill();
      return replace_disk_later(secondary_, between(plan_, 100ms, 1500ms));
    case Fault::foreign_disk:
      if (primary_has_stale_extents()) return inject(Fault::kill_secondary);
      say("kill the secondary; its disk is replaced by another resource's");
      count("foreign disks");
      secondary.kill();
      return foreign_disk_later(secondary_, between(plan_, 100ms, 1500ms));
    case Fault::split_brain:
      // Promoting a half-synced node is what the inconsistent flag must refuse (defect 8,
      // not modelled yet): only split a pair that is in sync.
      if (!failover_safe()) return inject(Fault::partition_both);
      say(fmt::format("partition, then promote {} while {} still serves", secondary.name(),
                      primary.name()));
      count("split-brains");
      network.partition_both(primary_, secondary_);
      split_brain_ = true;
      split_loser_ = primary_;  // the operator will keep the promoted node's data
      judge_.split_brain(primary_, secondary_);
      world().after(100ms, "promote",
                    [this, id = secondary_] { cluster_.set_role(id, Role::primary); });
      std::swap(primary_, secondary_);
      return;
  }
}

void Runner::schedule_faults() {
  if (options_.schedule) {
    for (const PlannedFault& planned : *options_.schedule) {
      world().at(Instant{} + planned.at, "fault", [this, fault = planned.fault] { inject(fault); });
    }
    return;
  }
  // Swarm: each run enables a random subset of fault kinds.
  std::vector<Fault> enabled;
  for (int kind = 0; kind < kFaultKinds; kind++) {
    if (chance(plan_, 0.5)) enabled.push_back(static_cast<Fault>(kind));
  }
  if (enabled.empty()) enabled.push_back(static_cast<Fault>(uniform(plan_, 0, kFaultKinds - 1)));
  auto count = uniform(plan_, 2, 8);
  for (std::uint64_t i = 0; i < count; i++) {
    Fault fault = enabled[uniform(plan_, 0, enabled.size() - 1)];
    Duration at = between(plan_, 300ms, options_.safety_phase - 500ms);
    world().at(Instant{} + at, "fault", [this, fault] { inject(fault); });
  }
}

// A promotion the node refused (its data is inconsistent: a sync to it never completed)
// leaves the operator one choice: bring the old primary back as primary.
void Runner::check_promotion(NodeId old, NodeId promoted) {
  auto status = cluster_.status(promoted);
  if (!status) return;
  if (status->role == Role::primary) return judge_.failover_settled(promoted);
  judge_.promotion_refused(old, promoted);
  say(fmt::format("{} refused to become primary; bring {} back as primary",
                  cluster_.node(promoted).name(), cluster_.node(old).name()));
  count("refused promotions");
  primary_ = old;
  secondary_ = promoted;
  split_brain_ = false;
  world().after(450ms, "restore", [this, old, promoted] {
    if (!cluster_.node(old).running()) start_node(old);
    world().after(10ms, "roles", [this, old, promoted] {
      cluster_.set_role(old, Role::primary);
      cluster_.set_role(promoted, Role::secondary);
    });
  });
}

void Runner::liveness() {
  say("liveness phase: faults stop, the network heals, roles are set");
  judge_.liveness_started();
  cluster_.workload().stop();
  cluster_.disk(0).faults_off();
  cluster_.disk(1).faults_off();
  world().network().heal_all();
  for (NodeId id : {primary_, secondary_}) {
    if (!foreign_[id]) continue;
    // The foreign disk comes out (a pending swap back may not have run yet).
    if (cluster_.node(id).running()) cluster_.node(id).kill();
    world().run_until([this, id] { return cluster_.disk(id).in_flight_count() == 0; },
                      world().now() + 1s);
    take_out_foreign(id);
    cluster_.disk(id).replace_with_empty();
    fresh_disk_[id] = true;
    cluster_.start(id, /*create=*/true);
    say(fmt::format("take the foreign disk out of {}; hastctl create on an empty one",
                    cluster_.node(id).name()));
  }
  for (NodeId id : {primary_, secondary_}) {
    if (!cluster_.node(id).running()) start_node(id);
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
  world().run_until(
      [this] {
        return cluster_.count_events(split_loser_, HookEvent::split_brain) > 0 || converged();
      },
      world().now() + 10s);
  if (cluster_.count_events(split_loser_, HookEvent::split_brain) == 0) return;
  // HAST's recovery on the node whose data is discarded: init, create, secondary.
  say(fmt::format("split-brain recovery: re-create {}", cluster_.node(split_loser_).name()));
  judge_.recreated(split_loser_);
  cluster_.recreate(split_loser_, Role::secondary);
}

RunReport Runner::run() {
  // The drawn disk faults start at 5 ms, which may be while `hastctl create` still runs:
  // a create they fail is run again (SimCluster::start), as is one on a replaced disk.
  SimDiskFaults faults = cluster_.disk(0).faults();
  cluster_.disk(0).faults_off();
  cluster_.disk(1).faults_off();
  world().at(Instant{} + 5ms, "disk faults", [this, faults] {
    cluster_.disk(0).set_faults(faults);
    cluster_.disk(1).set_faults(faults);
  });
  world().add_observer(*this);
  cluster_.start_pair(primary_, secondary_, 50ms);
  schedule_faults();
  world().run_for(options_.safety_phase);
  liveness();
  RunReport report;
  report.seed = options_.seed;
  report.mode = mode_;
  report.violations = judge_.finish(primary_, secondary_);
  world().remove_observer(*this);
  for (const auto& [name, value] : judge_.coverage()) coverage_[name] += value;
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
    coverage_["in-flight writes torn by power loss"] += disk.stats().in_flight_torn;
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
  if (options.timeout_seconds) cluster.timeout_seconds = *options.timeout_seconds;
  cluster.timing.keepalive = between(random, 200ms, 1s);
  cluster.timing.reconnect = between(random, 100ms, 1s);
  cluster.workload = WorkloadOptions::swarm(random);
  // Disk faults the protocol must survive: transient read, write and flush errors and
  // latent sector errors (silent corruption is out: without checksums at rest nothing can
  // tell it from data, reference/fault-model.md §6.6 row 13).
  bool disk_faults = chance(random, 0.5);
  if (options.disk_faults) disk_faults = *options.disk_faults;
  if (disk_faults) {
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

std::string_view swarm_fault_name(SwarmFault fault) {
  static constexpr std::array<std::string_view, swarm_fault_kinds> names = {
      "kill_secondary", "power_loss_secondary", "restart_primary", "power_loss_primary",
      "failover",       "partition_both",       "partition_one_way", "clog",
      "split_brain",    "zombie",               "empty_disk",        "foreign_disk"};
  return names.at(static_cast<std::size_t>(fault));
}

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
    if (auto differ = Judge::check_determinism(report.hash, again.hash)) {
      report.violations.push_back(*differ);
    }
  }
  return report;
}

}  // namespace hast::sim

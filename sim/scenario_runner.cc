// The scenario runner (see scenario_runner.h): actions, facts, expectations, the end.
#include "sim/scenario_runner.h"

#include <algorithm>
#include <array>
#include <optional>

#include <fmt/format.h>

#include "sim/cluster.h"
#include "sim/judge.h"
#include "sim/sim_network.h"

namespace hast::sim {
namespace {

using namespace std::chrono_literals;
using meta::Role;
using replication::HookEvent;

constexpr Duration kRoleDelay = 10ms;       // restart ... as ROLE: hastd is up by then
constexpr Duration kSettleDelay = 50ms;     // a promoted node serves by then (the swarm's)
constexpr Duration kDiskQuietRetry = 10ms;  // swap-disk waits for writes in flight

ClusterOptions cluster_options(const Scenario& scenario, const ScenarioRunOptions& options) {
  ClusterOptions cluster;
  cluster.seed = options.seed;
  cluster.mode = scenario.mode;
  cluster.timeout_seconds = scenario.timeout_seconds;
  cluster.disk_bytes = scenario.settings.disk_bytes;
  cluster.extent_size = scenario.settings.extent_size;
  cluster.keep_dirty = scenario.settings.keep_dirty;
  cluster.timing.keepalive = scenario.settings.keepalive;
  cluster.timing.reconnect = scenario.settings.reconnect;
  cluster.timing.timeout = std::chrono::seconds(scenario.timeout_seconds);
  cluster.workload = scenario.workload;
  cluster.echo_logs = options.node_logs;
  cluster.mutation = options.mutation;
  cluster.config_text = scenario.config_text;
  cluster.node_names = scenario.nodes;
  cluster.node_hosts = scenario.hosts;
  cluster.resource_name = scenario.resource;
  cluster.clock_offsets = scenario.settings.clock_offset;
  cluster.keep_trace = options.keep_trace;
  cluster.replay_command = scenario_replay_command(scenario.file, options.seed, options.mutation);
  return cluster;
}

class Runner {
 public:
  Runner(const Scenario& scenario, const ScenarioRunOptions& options)
      : scenario_(scenario),
        options_(options),
        cluster_(cluster_options(scenario, options)),
        judge_(cluster_, JudgeOptions::for_cluster(cluster_.options())),
        jitter_(derive_seed(options.seed, "scenario-jitter")) {}

  ScenarioReport run();

 private:
  struct Pending {
    const Action* action;
    Instant since;
  };

  World& world() { return cluster_.world(); }
  std::string name(NodeId id) { return cluster_.node(id).name(); }
  void say(Instant when, const std::string& text);
  void schedule();
  void execute(const Action& action);
  // Each returns nullopt when done, else why not (empty: deferred, it runs again later).
  std::optional<std::string> node_action(const Action& action);
  std::optional<std::string> net_action(const Action& action);
  std::optional<std::string> disk_action(const Action& action);
  std::optional<std::string> swap_disk(const Action& action);
  void promote(NodeId id);
  void settle(NodeId old_primary, NodeId promoted);
  void dying(NodeId id);
  void may_lose(const Action& action);
  void expect(const Action& action);
  void decide(const Action& action, bool held, const std::string& seen, Instant since);
  bool evaluate(const Expectation& expect, std::string& seen);
  bool evaluate_state(const Expectation& expect, std::string& seen);
  bool converged(std::string& seen);
  bool holds_acked(NodeId id, std::string& seen);
  std::string describe(NodeId id);
  bool poll();
  void end(ScenarioReport& report);

  const Scenario& scenario_;
  ScenarioRunOptions options_;
  SimCluster cluster_;
  Judge judge_;
  Prng jitter_;
  std::vector<Pending> pending_;
  std::size_t events_seen_ = 0;
  std::array<bool, 2> in_sync_at_death_{};
  std::optional<NodeId> serving_;  // the node last made primary
  ScenarioReport report_;
};

void Runner::say(Instant when, const std::string& text) {
  std::string line = fmt::format("{:>10}  {}", format_instant(when), text);
  if (options_.print) options_.print(line);
  report_.timeline.push_back(std::move(line));
}

// One world event per instant at which `at` lines run, executing them in file order (the
// world orders events of one instant by the seed). Jitter delays actions, never
// expectations, and never reorders lines: a line runs no earlier than the one before it.
void Runner::schedule() {
  std::vector<std::pair<Duration, std::vector<const Action*>>> groups;
  for (const Action& action : scenario_.actions) {
    Duration at = action.at;
    if (action.kind != ActionKind::expect && scenario_.settings.jitter > 0s) {
      at += Duration(static_cast<Duration::rep>(
          uniform(jitter_, 0, static_cast<std::uint64_t>(scenario_.settings.jitter.count()))));
    }
    if (!groups.empty()) at = std::max(at, groups.back().first);
    if (groups.empty() || groups.back().first != at) groups.push_back({at, {}});
    groups.back().second.push_back(&action);
  }
  for (auto& [at, actions] : groups) {
    world().at(Instant{} + at, "scenario", [this, group = std::move(actions)] {
      for (const Action* action : group)
        execute(*action);
    });
  }
  if (scenario_.workload_from) {
    world().at(Instant{} + *scenario_.workload_from, "scenario", [this] {
      say(world().now(), "workload starts");
      cluster_.workload().start();
    });
    world().at(Instant{} + *scenario_.workload_to, "scenario", [this] {
      say(world().now(), "workload stops");
      cluster_.workload().stop();
    });
  }
}

void Runner::execute(const Action& action) {
  world().trace_text(
      "scenario", fmt::format("{} scenario line {}: {}", format_instant(world().now()), action.line,
                              action.text));
  if (action.kind == ActionKind::expect) return expect(action);
  std::optional<std::string> failure;
  switch (action.kind) {
    case ActionKind::partition:
    case ActionKind::clog:
    case ActionKind::heal:
      failure = net_action(action);
      break;
    case ActionKind::disk_slow:
    case ActionKind::disk_fail:
    case ActionKind::disk_latent:
    case ActionKind::disk_lose_writes:
    case ActionKind::disk_misdirect:
    case ActionKind::disk_healthy:
      failure = disk_action(action);
      break;
    case ActionKind::swap_disk:
      failure = swap_disk(action);
      break;
    case ActionKind::workload_start:
      cluster_.workload().start();
      break;
    case ActionKind::workload_stop:
      cluster_.workload().stop();
      break;
    case ActionKind::may_lose:
      may_lose(action);
      break;
    default:
      failure = node_action(action);
      break;
  }
  if (!failure) return say(world().now(), action.text);
  if (failure->empty()) return;  // deferred: it runs again later
  say(world().now(), fmt::format("{}  FAILED (line {}): {}", action.text, action.line, *failure));
  report_.action_failures.push_back(
      fmt::format("line {}: {}: {}", action.line, action.text, *failure));
}

std::optional<std::string> Runner::node_action(const Action& action) {
  NodeId id = action.node;
  SimNode& node = cluster_.node(id);
  bool needs_down = action.kind == ActionKind::create || action.kind == ActionKind::start;
  if (needs_down && node.running()) return fmt::format("{} is running", name(id));
  bool needs_up = action.kind != ActionKind::restart && !needs_down;
  if (needs_up && !node.running()) return fmt::format("{} is down", name(id));
  switch (action.kind) {
    case ActionKind::create:
    case ActionKind::start:
      cluster_.start(id, action.kind == ActionKind::create);
      return std::nullopt;
    case ActionKind::restart:
      if (node.running()) {
        dying(id);
        node.kill();
      }
      cluster_.start(id);
      if (action.role) {
        world().after(kRoleDelay, "scenario", [this, id, role = *action.role] {
          if (role == Role::primary) promote(id);
          if (!cluster_.set_role(id, role)) say(world().now(), name(id) + " is down: no role");
        });
      }
      return std::nullopt;
    case ActionKind::role:
      if (*action.role == Role::primary) promote(id);
      if (!cluster_.set_role(id, *action.role)) return "the role command was not queued";
      return std::nullopt;
    case ActionKind::recreate:
      judge_.recreated(id);
      if (!cluster_.recreate(id, *action.role)) return "the command was not queued";
      return std::nullopt;
    case ActionKind::kill:
      dying(id);
      node.kill();
      return std::nullopt;
    case ActionKind::power_loss: {
      bool primary = cluster_.status(id) && cluster_.status(id)->role == Role::primary;
      dying(id);
      node.power_loss();
      if (primary) judge_.power_loss(id);
      return std::nullopt;
    }
    case ActionKind::pause:
      node.pause(action.duration);
      return std::nullopt;
    default:
      HAST_UNREACHABLE();
  }
}

std::optional<std::string> Runner::net_action(const Action& action) {
  SimNetwork& network = world().network();
  if (action.kind == ActionKind::heal) {
    action.peer ? network.heal(action.node, *action.peer) : network.heal_all();
    return std::nullopt;
  }
  NodeId from = action.node, to = *action.peer;
  if (action.kind == ActionKind::partition) {
    action.one_way ? network.partition(from, to) : network.partition_both(from, to);
    return std::nullopt;
  }
  network.clog(from, to, action.duration);
  if (!action.one_way) network.clog(to, from, action.duration);
  return std::nullopt;
}

std::optional<std::string> Runner::disk_action(const Action& action) {
  SimDisk& disk = cluster_.disk(action.node);
  SimDiskFaults faults = disk.faults();
  switch (action.kind) {
    case ActionKind::disk_slow:
      faults.latency_min = action.duration;
      faults.latency_mean = std::max<Duration>(action.duration / 10, 1us);
      break;
    case ActionKind::disk_fail:
      (action.disk_op == DiskOp::read    ? faults.read_error_probability
       : action.disk_op == DiskOp::write ? faults.write_error_probability
                                         : faults.flush_error_probability) = action.probability;
      break;
    case ActionKind::disk_lose_writes:
      faults.lost_write_probability = action.probability;
      break;
    case ActionKind::disk_misdirect:
      faults.misdirect_probability = action.probability;
      break;
    case ActionKind::disk_healthy:
      disk.set_faults(SimDiskFaults{});
      disk.clear_latent_errors();
      return std::nullopt;
    case ActionKind::disk_latent: {
      if (cluster_.data_size() == 0) return "no resource was created yet (no data area)";
      if (action.offset + action.length > cluster_.data_size()) {
        return fmt::format("the data area ends at {}", cluster_.data_size());
      }
      std::uint64_t sector = disk.options().sector_size;
      std::uint64_t first = (cluster_.local_offset() + action.offset) / sector;
      std::uint64_t last = (cluster_.local_offset() + action.offset + action.length - 1) / sector;
      for (std::uint64_t at = first; at <= last; at++)
        disk.inject_latent_error(at);
      return std::nullopt;
    }
    default:
      HAST_UNREACHABLE();
  }
  disk.set_faults(faults);
  return std::nullopt;
}

std::optional<std::string> Runner::swap_disk(const Action& action) {
  NodeId id = action.node;
  if (cluster_.node(id).running()) return fmt::format("{} is running", name(id));
  if (cluster_.data_size() == 0) return "no resource was created yet";
  if (cluster_.disk(id).in_flight_count() > 0) {
    // The dead incarnation's writes are still settling; swap once they did.
    world().after(kDiskQuietRetry, "scenario", [this, &action] { execute(action); });
    return "";  // not done yet: no line now
  }
  judge_.disk_restored(id);  // a no-op unless a foreign disk was in place
  if (action.swap == SwapKind::foreign) {
    // Another pair's disk: this layout and resource name, its own resuid and counters.
    cluster_.swap_in_foreign_disk(id, derive_seed(options_.seed, "foreign-resuid") | 1);
    judge_.disk_replaced(id, DiskReplacement::foreign);
  } else {
    cluster_.disk(id).replace_with_empty();
    judge_.disk_replaced(id, DiskReplacement::empty);
  }
  return std::nullopt;
}

// Operator facts of `role NODE primary`, from what the other node is doing.
void Runner::promote(NodeId id) {
  NodeId other = id == 0 ? 1 : 0;
  SimNode& node = cluster_.node(other);
  bool was_serving = serving_ == other;
  serving_ = id;
  if (!was_serving) return;
  if (node.running() && node.paused()) {
    say(world().now(), fmt::format("fact: {} is paused as primary: {} is a zombie (row 15)",
                                   name(other), name(other)));
    return judge_.zombie_promoted(other, id);
  }
  auto status = cluster_.status(other);
  if (node.running() && status && status->role == Role::primary) {
    say(world().now(),
        fmt::format("fact: {} still serves as primary: a split-brain episode", name(other)));
    return judge_.split_brain(other, id);
  }
  if (node.running()) return;
  bool in_sync = in_sync_at_death_[other];
  say(world().now(), fmt::format("fact: failover {} -> {} ({})", name(other), name(id),
                                 in_sync ? "the pair was in sync" : "the pair was NOT in sync"));
  judge_.failover(other, id, in_sync);
  world().after(kSettleDelay, "scenario", [this, other, id] { settle(other, id); });
}

void Runner::settle(NodeId old_primary, NodeId promoted) {
  auto status = cluster_.status(promoted);
  if (status && status->role != Role::primary) {
    say(world().now(), fmt::format("fact: {} refused to become primary", name(promoted)));
    serving_ = old_primary;
    return judge_.promotion_refused(old_primary, promoted);
  }
  judge_.failover_settled(promoted);
}

// Before `id` dies: was the pair in sync (for a later failover)?
void Runner::dying(NodeId id) {
  NodeId peer = id == 0 ? 1 : 0;
  auto status = cluster_.status(id);
  in_sync_at_death_[id] = status && status->role == Role::primary && status->status == "complete" &&
                          status->sync_extents == 0 && !status->sync.running &&
                          cluster_.node(peer).running();
}

void Runner::may_lose(const Action& action) {
  Instant since = Instant::min();
  if (action.since == LossSince::time) since = Instant{} + action.duration;
  if (action.since == LossSince::connect) {
    for (const RecordedEvent& recorded : cluster_.events()) {
      if (recorded.node == action.node && recorded.record.event == HookEvent::connect) {
        since = recorded.when;
      }
    }
  }
  cluster_.truth().discard_writes(action.node, since);
}

void Runner::expect(const Action& action) {
  std::string seen;
  if (evaluate(action.expect, seen)) return decide(action, true, seen, world().now());
  if (!action.expect.within) return decide(action, false, seen, world().now());
  pending_.push_back(Pending{&action, world().now()});
  Instant deadline = world().now() + *action.expect.within;
  world().at(deadline, "scenario deadline", [this, &action] {
    auto found = std::find_if(pending_.begin(), pending_.end(),
                              [&](const Pending& p) { return p.action == &action; });
    if (found == pending_.end()) return;
    Instant since = found->since;
    pending_.erase(found);
    std::string last;
    bool held = evaluate(action.expect, last);
    decide(action, held, last, since);
  });
}

void Runner::decide(const Action& action, bool held, const std::string& seen, Instant since) {
  Instant now = world().now();
  std::string waited =
      now > since ? fmt::format(" (after {})", format_duration(now - since)) : std::string();
  say(now, fmt::format("expect {}  {}{}: {}", action.text.substr(7), held ? "held" : "FAILED",
                       waited, seen));
  report_.expectations.push_back(ExpectationResult{action.line, action.text, held, seen, now});
}

// Before every world step: print new hook events, settle pending `within`s that hold.
bool Runner::poll() {
  const auto& events = cluster_.events();
  for (; events_seen_ < events.size(); events_seen_++) {
    const RecordedEvent& recorded = events[events_seen_];
    std::string text = fmt::format("{} hook {}", name(recorded.node),
                                   replication::hook_event_name(recorded.record.event));
    if (recorded.record.event == HookEvent::role) {
      text += fmt::format(" {} -> {}", meta::role_name(recorded.record.old_role),
                          meta::role_name(recorded.record.new_role));
    }
    say(recorded.when, text);
  }
  for (std::size_t i = 0; i < pending_.size();) {
    std::string seen;
    if (!evaluate(pending_[i].action->expect, seen)) {
      i++;
      continue;
    }
    Pending done = pending_[i];
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    decide(*done.action, true, seen, done.since);
  }
  return false;
}

// ---- Expectations ----

bool Runner::evaluate(const Expectation& expect, std::string& seen) {
  NodeId id = expect.node;
  switch (expect.kind) {
    case ExpectKind::down:
    case ExpectKind::up: {
      bool running = cluster_.node(id).running();
      seen = fmt::format("{} is {}", name(id), running ? "running" : "down");
      return running == (expect.kind == ExpectKind::up);
    }
    case ExpectKind::state:
      return evaluate_state(expect, seen);
    case ExpectKind::hook: {
      std::uint64_t count = cluster_.count_events(id, expect.event);
      seen = fmt::format("{} ran {} `{}` hook(s)", name(id), count,
                         replication::hook_event_name(expect.event));
      return expect.count.holds(count);
    }
    case ExpectKind::split_brain:
    case ExpectKind::no_split_brain: {
      std::uint64_t a = cluster_.count_events(0, HookEvent::split_brain);
      std::uint64_t b = cluster_.count_events(1, HookEvent::split_brain);
      seen = fmt::format("split-brain reported {} time(s) by {}, {} by {}", a, name(0), b, name(1));
      std::uint64_t reported = expect.on ? (*expect.on == 0 ? a : b) : a + b;
      return (reported > 0) == (expect.kind == ExpectKind::split_brain);
    }
    case ExpectKind::identical: {
      if (cluster_.data_size() == 0) {
        seen = "no resource was created yet";
        return false;
      }
      auto differ = cluster_.first_difference();
      seen = differ ? fmt::format("the data areas first differ at offset {} (extent {})", *differ,
                                  *differ / scenario_.settings.extent_size)
                    : std::string("the data areas are byte-identical");
      return !differ;
    }
    case ExpectKind::converged:
      return converged(seen);
    case ExpectKind::holds_acked:
      return holds_acked(id, seen);
    case ExpectKind::writes: {
      const GroundTruth& truth = cluster_.truth();
      std::uint64_t acked = 0, failed = 0;
      for (WriteId write = 1; write <= truth.write_count(); write++) {
        acked += truth.write(write).outcome == Outcome::ok ? 1 : 0;
        failed += truth.write(write).outcome == Outcome::failed ? 1 : 0;
      }
      seen = fmt::format("{} writes acknowledged OK, {} failed", acked, failed);
      return expect.count.holds(expect.failed_writes ? failed : acked);
    }
  }
  HAST_UNREACHABLE();
}

std::string Runner::describe(NodeId id) {
  auto status = cluster_.status(id);
  if (!cluster_.node(id).running() || !status) return fmt::format("{} is down", name(id));
  return fmt::format(
      "{}: role {}, status {}, dirty {}, sync {}{}{}", name(id), meta::role_name(status->role),
      status->status, status->dirty_bytes, status->sync.running ? "running" : "done",
      status->inconsistent ? ", inconsistent" : "", cluster_.node(id).paused() ? ", paused" : "");
}

bool Runner::evaluate_state(const Expectation& expect, std::string& seen) {
  seen = describe(expect.node);
  auto status = cluster_.node(expect.node).running() ? cluster_.status(expect.node) : std::nullopt;
  if (!status) return false;
  if (expect.role && status->role != *expect.role) return false;
  if (expect.status && status->status != *expect.status) return false;
  if (expect.dirty && !expect.dirty->holds(status->dirty_bytes)) return false;
  if (expect.syncing && status->sync.running != *expect.syncing) return false;
  if (expect.inconsistent && status->inconsistent != *expect.inconsistent) return false;
  return true;
}

// One node primary, the other secondary, both complete, nothing dirty or to sync, and the
// data areas identical.
bool Runner::converged(std::string& seen) {
  seen = describe(0) + "; " + describe(1);
  auto a = cluster_.status(0);
  auto b = cluster_.status(1);
  if (!a || !b || !cluster_.node(0).running() || !cluster_.node(1).running()) return false;
  NodeId primary = a->role == Role::primary ? 0 : 1;
  const auto& p = primary == 0 ? *a : *b;
  const auto& s = primary == 0 ? *b : *a;
  if (p.role != Role::primary || s.role != Role::secondary) return false;
  if (p.status != "complete" || s.status != "complete") return false;
  if (p.dirty_bytes != 0 || p.sync_extents != 0 || p.sync.running) return false;
  auto differ = cluster_.first_difference();
  if (differ) seen += fmt::format("; the data areas differ at offset {}", *differ);
  return !differ;
}

// Every sector of `id`'s data area, as a read would see it now, holds a value the ground
// truth admits: no acknowledged write outside the allowed loss is missing.
bool Runner::holds_acked(NodeId id, std::string& seen) {
  if (cluster_.data_size() == 0) {
    seen = "no resource was created yet";
    return false;
  }
  GroundTruth& truth = cluster_.truth();
  std::vector<std::byte> chunk(1 << 16);
  for (std::uint64_t at = 0; at < cluster_.data_size(); at += chunk.size()) {
    std::uint64_t n = std::min<std::uint64_t>(chunk.size(), cluster_.data_size() - at);
    cluster_.disk(id).peek_effective(cluster_.local_offset() + at, std::span(chunk).first(n));
    for (std::uint64_t i = 0; i < n / sector_bytes; i++) {
      std::uint64_t sector = (at + i * sector_bytes) / sector_bytes;
      SectorValue value = decode_sector(std::span(chunk).subspan(i * sector_bytes, sector_bytes));
      if (truth.durable_value(sector, value, world().now())) continue;
      seen = fmt::format("{}'s sector {} holds {}; history: {}", name(id), sector,
                         GroundTruth::describe_value(value), truth.describe_sector(sector));
      return false;
    }
  }
  seen = fmt::format("{} holds every one of the {} writes that must survive", name(id),
                     truth.write_count());
  return true;
}

// ---- The end ----

void Runner::end(ScenarioReport& report) {
  say(world().now(),
      "end of the script: the workload stops, the network heals, disk faults "
      "stop; waiting for the pair to converge");
  cluster_.workload().stop();
  world().network().heal_all();
  cluster_.disk(0).faults_off();
  cluster_.disk(1).faults_off();
  judge_.liveness_started();
  NodeId primary = serving_.value_or(0);
  for (NodeId id : {0u, 1u}) {
    auto status = cluster_.node(id).running() ? cluster_.status(id) : std::nullopt;
    if (status && status->role == Role::primary) primary = id;
    say(world().now(), describe(id));
  }
  report.violations = judge_.finish(primary, primary == 0 ? 1 : 0);
  poll();
  say(world().now(), report.violations.empty()
                         ? std::string("oracles: all held (the pair converged)")
                         : fmt::format("oracles: {} violation(s)", report.violations.size()));
}

ScenarioReport Runner::run() {
  if (!scenario_.name.empty()) say(world().now(), "scenario: " + scenario_.name);
  say(world().now(), fmt::format("{} and {} ({}), replication {}, timeout {}s", name(0), name(1),
                                 scenario_.resource, config::replication_name(scenario_.mode),
                                 scenario_.timeout_seconds));
  schedule();
  world().run_until([this] { return poll(); }, Instant{} + scenario_.duration);
  poll();
  HAST_ASSERT(pending_.empty());
  end(report_);
  report_.seed = options_.seed;
  report_.hash = world().hash().hex();
  report_.summary = world().summary();
  report_.coverage = judge_.coverage();
  report_.coverage["reads checked"] = cluster_.truth().reads_checked();
  report_.coverage["writes"] = cluster_.truth().write_count();
  if (options_.keep_trace) report_.trace = world().trace_lines();
  return std::move(report_);
}

}  // namespace

bool ScenarioReport::expectations_held() const {
  return std::all_of(expectations.begin(), expectations.end(),
                     [](const ExpectationResult& result) { return result.held; });
}

ScenarioReport run_scenario(const Scenario& scenario, const ScenarioRunOptions& options) {
  Runner runner(scenario, options);
  return runner.run();
}

std::string scenario_replay_command(const std::string& file, std::uint64_t seed,
                                    replication::Mutation mutation) {
  std::string command = fmt::format("hast-sim run {} --seed {}", file, seed);
  if (mutation != replication::Mutation::none) {
    command += fmt::format(" --mutation {}", replication::mutation_name(mutation));
  }
  return command;
}

}  // namespace hast::sim

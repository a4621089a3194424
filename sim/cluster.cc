// The simulated two-node cluster (see cluster.h).
#include "sim/cluster.h"

#include <utility>

#include <fmt/format.h>

#include "core/replication/local_component.h"

namespace hast::sim {
namespace {

std::string config_text(config::ReplicationMode mode, int timeout_seconds) {
  return fmt::format(
      "listen tcp://0.0.0.0\n"
      "replication {}\n"
      "timeout {}\n"
      "resource shared {{\n"
      "  local /dev/sim\n"
      "  on hasta {{\n    remote tcp://10.0.0.2\n  }}\n"
      "  on hastb {{\n    remote tcp://10.0.0.1\n  }}\n"
      "}}\n",
      config::replication_name(mode), timeout_seconds);
}

}  // namespace

// Serves the primary's frontend to the cluster's workload.
class SimCluster::Frontends final : public replication::FrontendFactory {
 public:
  Frontends(SimCluster& cluster, NodeIo& io, NodeId node)
      : cluster_(cluster), io_(io), node_(node) {}
  Result<std::unique_ptr<BlockFrontend>> open(const config::ResourceConfig&,
                                              std::uint64_t data_size) override {
    return std::unique_ptr<BlockFrontend>(
        std::make_unique<SimBlockFrontend>(io_.scheduler, *cluster_.workload_, node_, data_size));
  }
  void close(BlockFrontend& frontend) override { static_cast<SimBlockFrontend&>(frontend).close(); }

 private:
  SimCluster& cluster_;
  NodeIo& io_;
  NodeId node_;
};

class SimCluster::Recorder final : public replication::EventSink {
 public:
  Recorder(SimCluster& cluster, NodeId node) : cluster_(cluster), node_(node) {}
  void on_event(const replication::EventRecord& record) override {
    cluster_.world_.trace_text("hook", replication::hook_event_name(record.event));
    cluster_.events_.push_back(RecordedEvent{cluster_.world_.now(), node_, record});
  }

 private:
  SimCluster& cluster_;
  NodeId node_;
};

SimCluster::SimCluster(const ClusterOptions& options)
    : options_(options),
      world_(options.seed,
             WorldOptions{options.replay_command.empty()
                              ? fmt::format("hast-sim run --seed {}", options.seed)
                              : options.replay_command,
                          options.keep_trace, options.echo_logs}) {
  workload_ = std::make_unique<Workload>(world_, truth_, options_.workload);
  auto parsed = config::parse(options_.config_text.empty()
                                  ? config_text(options_.mode, options_.timeout_seconds)
                                  : options_.config_text);
  HAST_ASSERT_MSG(parsed.has_value(), "cluster config: {}", parsed.error().message());
  config_ = std::move(*parsed);
  for (NodeId id = 0; id < 2; id++) {
    SimDiskOptions disk_options = options_.disk;
    disk_options.size_bytes = options_.disk_bytes;
    disks_.push_back(&world_.add_disk(fmt::format("{}-disk", options_.node_names[id]),
                                      disk_options));
    auto& node = world_.add_node(SimNodeOptions{.name = options_.node_names[id],
                                                .hosts = {options_.node_hosts[id]},
                                                .clock_offset = options_.clock_offsets[id],
                                                .stack_size = 1 << 20});
    node.attach_disk(*disks_.back());
    node.set_program([this, id](NodeIo& io) { program(id, io); });
  }
  create_pending_.assign(2, false);
  inboxes_.assign(2, nullptr);
  running_.assign(2, nullptr);
}

SimCluster::~SimCluster() {
  workload_->stop();
  for (NodeId id = 0; id < 2; id++) {
    if (world_.node(id).running()) world_.node(id).kill();
  }
}

void SimCluster::start(NodeId id, bool create) {
  create_pending_[id] = create;
  pending_role_[id].reset();
  started_at_[id] = world_.now();
  world_.node(id).start();
}

void SimCluster::program(NodeId id, NodeIo& io) {
  struct Forget {
    SimCluster& cluster;
    NodeId id;
    ~Forget() {
      cluster.inboxes_[id] = nullptr;
      cluster.running_[id] = nullptr;
    }
  } forget{*this, id};
  if (create_pending_[id]) {
    if (!create_resource(id, io)) return;  // the node died meanwhile
    create_pending_[id] = false;
  }
  config::NodeIdentity identity;
  identity.hostname = options_.node_names[id];
  auto resolved = config::resolve(config_, identity);
  HAST_ASSERT_MSG(resolved.has_value(), "resolve: {}", resolved.error().message());
  Frontends frontends(*this, io, id);
  Recorder recorder(*this, id);
  replication::HastNode hast(io, std::move(*resolved), recorder, frontends, options_.timing,
                             options_.mutation);
  auto started = hast.start();
  HAST_ASSERT_MSG(started.has_value(), "hastd start: {}", started.error().message());
  fiber::Channel<Command> inbox(io.scheduler, 16);
  inboxes_[id] = &inbox;
  running_[id] = &hast;
  if (auto role = std::exchange(pending_role_[id], std::nullopt)) {
    HAST_ASSERT(inbox.try_push(Command{*role}));
  }
  while (true) {
    auto command = inbox.pop();
    if (!command) break;
    if (command->create) {
      ignore_error(hast.set_role(options_.resource_name, meta::Role::init), "logged by the node");
      if (!create_resource(id, io)) break;  // the node is shutting down
    }
    ignore_error(hast.set_role(options_.resource_name, command->role), "logged by the node");
  }
  hast.stop();
}

// `hastctl create` as an operator runs it: when it fails (a disk fault the simulation
// injected), the error is logged and the command run again after a pause, until it
// succeeds. False when the node is shutting down meanwhile.
bool SimCluster::create_resource(NodeId id, NodeIo& io) {
  replication::CreateOptions create{options_.extent_size, options_.keep_dirty, 0};
  for (std::uint64_t attempt = 1;; attempt++) {
    auto created = replication::create_local(io.disk, options_.resource_name, create);
    if (created) {
      data_size_ = created->data_size_bytes;
      local_offset_ = created->local_offset_bytes;
      return true;
    }
    create_failures_++;
    world_.trace("operator.create_failed", id, attempt);
    log_error(io.log, "[{}] hastctl create failed (attempt {}): {}; running it again",
              options_.resource_name, attempt, created.error().message());
    if (!io.scheduler.sleep_for(create_retry_pause)) return false;
  }
}

void SimCluster::start_pair(NodeId primary, NodeId secondary, std::optional<Duration> workload_at) {
  HAST_ASSERT(primary != secondary);
  start(0, true);
  start(1, true);
  world_.at(Instant{} + std::chrono::milliseconds(10), "roles", [this, primary, secondary] {
    HAST_ASSERT(set_role(secondary, meta::Role::secondary));
    HAST_ASSERT(set_role(primary, meta::Role::primary));
  });
  if (workload_at) world_.at(Instant{} + *workload_at, "workload", [this] { workload_->start(); });
}

bool SimCluster::set_role(NodeId id, meta::Role role) {
  if (inboxes_[id] == nullptr && world_.node(id).running() && create_pending_[id]) {
    // `hastctl create` is still being run again: the role waits for hastd.
    world_.trace("operator.role_pending", id, meta::role_code(role));
    pending_role_[id] = role;
    return true;
  }
  if (inboxes_[id] == nullptr) return false;
  world_.trace("operator.role", id, meta::role_code(role));
  return inboxes_[id]->try_push(Command{role});
}

bool SimCluster::recreate(NodeId id, meta::Role role) {
  if (inboxes_[id] == nullptr) return false;
  world_.trace("operator.recreate", id, meta::role_code(role));
  return inboxes_[id]->try_push(Command{role, true});
}

std::optional<replication::ResourceStatus> SimCluster::status(NodeId id) {
  if (running_[id] == nullptr) return std::nullopt;
  auto status = running_[id]->status(options_.resource_name);
  if (!status) return std::nullopt;
  return *status;
}

bool SimCluster::data_identical() {
  return !first_difference().has_value();
}

std::optional<std::uint64_t> SimCluster::first_difference() {
  HAST_ASSERT(data_size_ > 0);
  std::vector<std::byte> left(1 << 16), right(1 << 16);
  for (std::uint64_t at = 0; at < data_size_; at += left.size()) {
    std::uint64_t n = std::min<std::uint64_t>(left.size(), data_size_ - at);
    disks_[0]->peek_current(local_offset_ + at, std::span(left).first(n));
    disks_[1]->peek_current(local_offset_ + at, std::span(right).first(n));
    auto [l, r] = std::mismatch(left.begin(), left.begin() + n, right.begin());
    if (l != left.begin() + n) return at + static_cast<std::uint64_t>(l - left.begin());
  }
  return std::nullopt;
}

SectorValue SimCluster::peek_sector(NodeId id, std::uint64_t data_offset) {
  std::vector<std::byte> sector(sector_bytes);
  disks_[id]->peek_current(local_offset_ + data_offset, sector);
  return decode_sector(sector);
}

std::uint64_t SimCluster::count_events(NodeId id, replication::HookEvent event) const {
  std::uint64_t count = 0;
  for (const RecordedEvent& recorded : events_) {
    if (recorded.node == id && recorded.record.event == event) count++;
  }
  return count;
}

std::optional<Instant> SimCluster::last_event(NodeId id, replication::HookEvent event) const {
  for (auto recorded = events_.rbegin(); recorded != events_.rend(); ++recorded) {
    if (recorded->node == id && recorded->record.event == event) return recorded->when;
  }
  return std::nullopt;
}

void SimCluster::swap_in_foreign_disk(NodeId id, std::uint64_t resuid) {
  SimDisk& disk = *disks_[id];
  HAST_ASSERT_MSG(!world_.node(id).running() && disk.in_flight_count() == 0,
                  "swap_in_foreign_disk: {} is running or has writes in flight",
                  world_.node(id).name());
  std::vector<std::byte> block(meta::metadata_size);
  disk.peek_current(0, block);
  auto metadata = meta::decode_block(block, disk.name());
  HAST_ASSERT_MSG(metadata.has_value(), "swap_in_foreign_disk: {}", metadata.error().message());
  HAST_ASSERT(resuid != 0 && resuid != metadata->resuid);
  metadata->resuid = resuid;
  metadata->local_count = 5;
  metadata->remote_count = 3;
  metadata->prev_role = meta::Role::secondary;
  metadata->stale_extents.clear();
  metadata->inconsistent = false;
  disk.replace_with_empty();
  SimDiskFaults faults = disk.faults();  // the swap itself never fails
  disk.faults_off();
  auto put = [&](std::uint64_t offset, std::span<const std::byte> bytes) {
    auto op = disk.begin_write(disk.register_owner(), offset, bytes, Fua::yes);
    auto written = disk.complete_write(op);
    HAST_ASSERT_MSG(written.has_value(), "swap_in_foreign_disk: {}", written.error().message());
  };
  put(0, meta::encode_block(*metadata));
  std::vector<std::byte> foreign(sector_bytes, std::byte{0xf0});
  for (std::uint64_t at = 0; at < metadata->data_size_bytes; at += 64 * 1024) {
    put(metadata->local_offset_bytes + at, foreign);
  }
  disk.set_faults(faults);
}

}  // namespace hast::sim

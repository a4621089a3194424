// The status model (see status.h).
#include "core/control/status.h"

#include <cmath>
#include <string>

namespace hast::control {
namespace {

proto::Role wire_role(meta::Role role) {
  auto wire = static_cast<proto::Role>(meta::role_code(role));
  HAST_ASSERT(wire != proto::Role::undef);
  return wire;
}

proto::WorkerStatus wire_worker(const replication::ResourceStatus& status) {
  HAST_ASSERT(status.status != "-");
  HAST_ASSERT(status.requests_in_flight <= replication::request_count_max);
  const replication::PrimaryStats& stats = status.primary;
  proto::WorkerStatus worker;
  worker.status = status.status;
  worker.dirty = status.dirty_bytes;
  worker.extentsize = status.extent_size;
  worker.keepdirty = status.keep_dirty;
  worker.stat_read = stats.reads;
  worker.stat_write = stats.writes;
  worker.stat_delete = stats.deletes;
  worker.stat_flush = stats.flushes;
  worker.stat_activemap_update = status.activemap_updates;
  worker.stat_read_error = stats.read_errors;
  worker.stat_write_error = stats.write_errors;
  worker.stat_delete_error = stats.delete_errors;
  worker.stat_flush_error = stats.flush_errors;
  if (status.role == meta::Role::primary) {
    worker.idle_queue_size = replication::request_count_max - status.requests_in_flight;
    // async: remote legs still on their way after the client was answered (defect 10).
    worker.send_queue_size = status.async_backlog;
  }
  return worker;
}

proto::SyncStatus wire_sync(const replication::SyncProgress& sync, Instant now) {
  proto::SyncStatus wire;
  wire.running = sync.running;
  wire.done = sync.synced_bytes;
  wire.total = sync.total_bytes;
  wire.eta_seconds = sync_eta_seconds(sync, now);
  HAST_ASSERT(!wire.eta_seconds || wire.running);
  return wire;
}

}  // namespace

std::optional<std::uint64_t> sync_eta_seconds(const replication::SyncProgress& sync, Instant now) {
  if (!sync.running || sync.synced_bytes == 0 || now <= sync.started) return std::nullopt;
  std::uint64_t remaining =
      sync.total_bytes > sync.synced_bytes ? sync.total_bytes - sync.synced_bytes : 0;
  double elapsed = std::chrono::duration<double>(now - sync.started).count();
  HAST_ASSERT(elapsed > 0);
  double eta = elapsed * static_cast<double>(remaining) / static_cast<double>(sync.synced_bytes);
  return static_cast<std::uint64_t>(std::ceil(eta));
}

proto::ResourceStatus wire_status(const replication::ResourceStatus& status,
                                  const config::ResourceConfig& config, Instant now) {
  HAST_ASSERT(status.name == config.name);
  HAST_ASSERT(!status.status.empty());
  proto::ResourceStatus wire;
  wire.resource = status.name;
  wire.provname = status.provider_name;
  wire.localpath = status.local_path;
  wire.remoteaddr = status.remote;
  if (!status.source.empty()) wire.sourceaddr = status.source;
  wire.replication = std::string(config::replication_name(status.replication));
  wire.checksum = std::string(config::checksum_name(config.checksum));
  wire.compression = std::string(config::compression_name(config.compression));
  wire.role = wire_role(status.role);
  wire.workerpid = 0;
  if (status.status != "-") wire.worker = wire_worker(status);
  wire.inconsistent = status.inconsistent;
  if (status.metadata_copy) {
    wire.metadata_copy = std::string(meta::metadata_copy_name(*status.metadata_copy));
  }
  if (status.role == meta::Role::primary) wire.sync = wire_sync(status.sync, now);
  return wire;
}

proto::ResourceStatus unknown_resource_status(std::string_view name) {
  proto::ResourceStatus wire;
  wire.resource = std::string(name);
  wire.error = proto::ehast_noentry;
  return wire;
}

}  // namespace hast::control

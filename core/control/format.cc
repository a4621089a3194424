// hastctl's text output (see format.h; FreeBSD's sbin/hastctl/hastctl.c and
// lib/libutil/humanize_number.c).
#include "core/control/format.h"

#include <algorithm>

#include <fmt/format.h>

namespace hast::control {
namespace {

// An index of a reply whose worker fields are absent reads them as 0, like FreeBSD's
// nv_get_* on a missing field.
const proto::WorkerStatus& worker_or_zero(const proto::ResourceStatus& status) {
  static const proto::WorkerStatus zero;
  return status.worker ? *status.worker : zero;
}

void append_statistics(std::string& out, const proto::WorkerStatus& worker) {
  out += "  statistics:\n";
  out += fmt::format("    reads: {}\n", worker.stat_read);
  out += fmt::format("    writes: {}\n", worker.stat_write);
  out += fmt::format("    deletes: {}\n", worker.stat_delete);
  out += fmt::format("    flushes: {}\n", worker.stat_flush);
  out += fmt::format("    activemap updates: {}\n", worker.stat_activemap_update);
  out += fmt::format("    local errors: read: {}, write: {}, delete: {}, flush: {}\n",
                     worker.stat_read_error, worker.stat_write_error, worker.stat_delete_error,
                     worker.stat_flush_error);
  out += fmt::format("    queues: local: {}, send: {}, recv: {}, done: {}, idle: {}\n",
                     worker.local_queue_size, worker.send_queue_size, worker.recv_queue_size,
                     worker.done_queue_size, worker.idle_queue_size);
}

// The extension lines of `list` (see format.h).
void append_list_extensions(std::string& out, const proto::ResourceStatus& status) {
  if (status.inconsistent) out += "  inconsistent: yes\n";
  if (status.metadata_copy == "second") out += "  metadata: read from the second copy\n";
  if (!status.sync || !status.sync->running) return;
  const proto::SyncStatus& sync = *status.sync;
  // Marks made while the sync runs can push `done` past `total`: never above 100%.
  double fraction = sync.total == 0 ? 0.0 : static_cast<double>(sync.done) / sync.total;
  auto percent = static_cast<unsigned>(std::min(100.0, fraction * 100.0));
  out += fmt::format("  sync: {}% ({}B of {}B)", percent, humanize_number(sync.done),
                     humanize_number(sync.total));
  if (sync.eta_seconds) out += ", eta: " + format_duration(*sync.eta_seconds);
  out += "\n";
}

void append_list_entry(std::string& out, const proto::ResourceStatus& status) {
  out += fmt::format("{}:\n", status.resource);
  if (status.error != 0) {
    out += fmt::format("  error: {}\n", status.error);
    return;
  }
  const proto::WorkerStatus& worker = worker_or_zero(status);
  out += fmt::format("  role: {}\n", proto::role_name(status.role));
  out += fmt::format("  provname: {}\n", status.provname);
  out += fmt::format("  localpath: {}\n", status.localpath);
  out += fmt::format("  extentsize: {} ({}B)\n", worker.extentsize,
                     humanize_number(worker.extentsize));
  out += fmt::format("  keepdirty: {}\n", worker.keepdirty);
  out += fmt::format("  remoteaddr: {}\n", status.remoteaddr);
  if (status.sourceaddr) out += fmt::format("  sourceaddr: {}\n", *status.sourceaddr);
  out += fmt::format("  replication: {}\n", status.replication);
  if (status.worker) out += fmt::format("  status: {}\n", status.worker->status);
  if (status.workerpid != 0) out += fmt::format("  workerpid: {}\n", status.workerpid);
  out += fmt::format("  dirty: {} ({}B)\n", worker.dirty, humanize_number(worker.dirty));
  append_list_extensions(out, status);
  append_statistics(out, worker);
}

std::string set_role_reason(std::int16_t error) {
  switch (error) {
    case proto::ehast_inconsistent:
      return " (the local component is inconsistent: a synchronisation to it did not "
             "complete; use --force)";
    case proto::ehast_role_failed:
      return " (the new role could not start; the resource is in role init)";
    default:
      return "";
  }
}

}  // namespace

std::string humanize_number(std::uint64_t value) {
  // HN_AUTOSCALE in a 5-byte buffer: digits + a one-letter prefix + NUL, so the quotient
  // must stay below 10^(5 - 2) = 1000.
  static constexpr const char* prefixes[] = {"", "K", "M", "G", "T", "P", "E"};
  constexpr int scale_max = 7;
  constexpr std::uint64_t divisor = 1024;
  constexpr std::uint64_t decimal_cut = 973;  // ceil(.95 * 1024)
  constexpr std::uint64_t max = 1000;
  std::uint64_t quotient = value;
  std::uint64_t remainder = 0;
  int scale = 0;
  // Divide until it fits; once more when the rounding below would overflow the column.
  while ((quotient >= max ||
          (quotient == max - 1 && (remainder >= decimal_cut || remainder >= divisor / 2))) &&
         scale < scale_max) {
    remainder = quotient % divisor;
    quotient /= divisor;
    scale++;
  }
  HAST_ASSERT(scale < scale_max);
  if (((quotient == 9 && remainder < decimal_cut) || quotient < 9) && scale > 0) {
    std::uint64_t tenths = (remainder * 10 + divisor / 2) / divisor;
    return fmt::format("{}.{}{}", quotient + tenths / 10, tenths % 10, prefixes[scale]);
  }
  return fmt::format("{}{}", quotient + (remainder + divisor / 2) / divisor, prefixes[scale]);
}

std::string format_duration(std::uint64_t seconds) {
  std::uint64_t days = seconds / 86400;
  std::uint64_t hours = seconds / 3600 % 24;
  std::uint64_t minutes = seconds / 60 % 60;
  std::uint64_t rest = seconds % 60;
  if (days > 0) return fmt::format("{}d{:02}h{:02}m{:02}s", days, hours, minutes, rest);
  if (hours > 0) return fmt::format("{}h{:02}m{:02}s", hours, minutes, rest);
  if (minutes > 0) return fmt::format("{}m{:02}s", minutes, rest);
  return fmt::format("{}s", rest);
}

std::string format_status(const proto::StatusReply& reply) {
  std::string out;
  if (reply.resources.empty()) return out;
  out += "Name\tStatus\t Role\t\tComponents\n";
  for (const proto::ResourceStatus& status : reply.resources) {
    if (status.error != 0) {
      out += fmt::format("{}\tERR{}\n", status.resource, status.error);
      continue;
    }
    std::string_view state = status.worker ? std::string_view(status.worker->status) : "-";
    out += fmt::format("{}\t{:<9}{:<15}{}\t{}\n", status.resource, state,
                       proto::role_name(status.role), status.localpath, status.remoteaddr);
  }
  return out;
}

std::string format_list(const proto::StatusReply& reply) {
  std::string out;
  for (const proto::ResourceStatus& status : reply.resources)
    append_list_entry(out, status);
  return out;
}

std::string format_dump(const meta::Metadata& metadata) {
  std::string out;
  out += fmt::format("resource: {}\n", metadata.resource);
  out += fmt::format("    datasize: {} ({}B)\n", metadata.data_size_bytes,
                     humanize_number(metadata.data_size_bytes));
  out += fmt::format("    extentsize: {} ({}B)\n", metadata.extent_size_bytes,
                     humanize_number(metadata.extent_size_bytes));
  out += fmt::format("    keepdirty: {}\n", metadata.keep_dirty);
  out += fmt::format("    localoff: {}\n", metadata.local_offset_bytes);
  out += fmt::format("    resuid: {}\n", metadata.resuid);
  out += fmt::format("    localcnt: {}\n", metadata.local_count);
  out += fmt::format("    remotecnt: {}\n", metadata.remote_count);
  out += fmt::format("    prevrole: {}\n", meta::role_name(metadata.prev_role));
  if (metadata.inconsistent) out += "    inconsistent: yes\n";
  if (!metadata.stale_extents.empty()) {
    std::string list;
    for (meta::ExtentIndex extent : metadata.stale_extents)
      list += fmt::format("{}{}", list.empty() ? "" : ", ", extent.value);
    out += fmt::format("    stale: {}\n", list);
  }
  return out;
}

std::string format_set_role_warnings(const proto::SetRoleReply& reply) {
  std::string out;
  for (const proto::SetRoleResult& result : reply.resources) {
    if (result.error == 0) continue;
    out += fmt::format("[WARNING] [{}] Received error {} from hastd{}.\n", result.resource,
                       result.error, set_role_reason(result.error));
  }
  return out;
}

std::string format_reply_error(std::int16_t error) {
  HAST_ASSERT(error != 0);
  return fmt::format("[ERROR] Error {} received from hastd.\n", error);
}

std::string format_error(std::string_view message) {
  HAST_ASSERT(!message.empty());
  return fmt::format("[ERROR] {}\n", message);
}

int reply_exit_code(const proto::SetRoleReply& reply) {
  if (reply.error != 0) return exit_software;
  for (const proto::SetRoleResult& result : reply.resources) {
    if (result.error != 0) return result.error;
  }
  return exit_ok;
}

int reply_exit_code(const proto::StatusReply& reply) {
  if (reply.error != 0) return exit_software;
  for (const proto::ResourceStatus& status : reply.resources) {
    if (status.error != 0) return status.error;
  }
  return exit_ok;
}

}  // namespace hast::control

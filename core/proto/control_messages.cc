// Control protocol messages (reference/hast-spec.md §6.7; FreeBSD's control.c
// control_handle/control_status/control_status_worker, hastctl.c).
#include "core/proto/control_messages.h"

#include <fmt/format.h>

#include "core/proto/nv_fields.h"

namespace hast::proto {
namespace {

std::string indexed(std::string_view name, std::size_t index) {
  return fmt::format("{}{}", name, index);
}

bool settable(Role role) {
  return role == Role::init || role == Role::primary || role == Role::secondary;
}

// Appends a top-level error when there is one, or when the nv would otherwise be empty.
void add_top_level_error(Nv& nv, std::int16_t error) {
  if (error != 0 || nv.empty()) nv.add_int16("error", error);
  HAST_ASSERT(!nv.empty());
}

// A role sent as a string (`role<i>`): one of role_name's values.
Role read_role_name(FieldReader& in, const std::string& field) {
  auto name = in.required<std::string>(field);
  if (in.failed()) return Role::undef;
  auto role = parse_role(name);
  if (!role) in.reject(fmt::format("field '{}' is not a role: '{}'", field, name));
  return role.value_or(Role::undef);
}

void add_worker(Nv& nv, const WorkerStatus& worker, std::size_t i) {
  nv.add_string(indexed("status", i), worker.status);
  nv.add_uint64(indexed("dirty", i), worker.dirty);
  nv.add_uint32(indexed("extentsize", i), worker.extentsize);
  nv.add_uint32(indexed("keepdirty", i), worker.keepdirty);
  nv.add_uint64(indexed("stat_read", i), worker.stat_read);
  nv.add_uint64(indexed("stat_write", i), worker.stat_write);
  nv.add_uint64(indexed("stat_delete", i), worker.stat_delete);
  nv.add_uint64(indexed("stat_flush", i), worker.stat_flush);
  nv.add_uint64(indexed("stat_activemap_update", i), worker.stat_activemap_update);
  nv.add_uint64(indexed("stat_read_error", i), worker.stat_read_error);
  nv.add_uint64(indexed("stat_write_error", i), worker.stat_write_error);
  nv.add_uint64(indexed("stat_delete_error", i), worker.stat_delete_error);
  nv.add_uint64(indexed("stat_flush_error", i), worker.stat_flush_error);
  nv.add_uint64(indexed("idle_queue_size", i), worker.idle_queue_size);
  nv.add_uint64(indexed("local_queue_size", i), worker.local_queue_size);
  nv.add_uint64(indexed("send_queue_size", i), worker.send_queue_size);
  nv.add_uint64(indexed("recv_queue_size", i), worker.recv_queue_size);
  nv.add_uint64(indexed("done_queue_size", i), worker.done_queue_size);
}

WorkerStatus read_worker(FieldReader& in, std::size_t i) {
  auto u64 = [&in, i](std::string_view name) {
    return in.required<std::uint64_t>(indexed(name, i));
  };
  WorkerStatus worker;
  worker.status = in.required<std::string>(indexed("status", i));
  worker.dirty = u64("dirty");
  worker.extentsize = in.required<std::uint32_t>(indexed("extentsize", i));
  worker.keepdirty = in.required<std::uint32_t>(indexed("keepdirty", i));
  worker.stat_read = u64("stat_read");
  worker.stat_write = u64("stat_write");
  worker.stat_delete = u64("stat_delete");
  worker.stat_flush = u64("stat_flush");
  worker.stat_activemap_update = u64("stat_activemap_update");
  worker.stat_read_error = u64("stat_read_error");
  worker.stat_write_error = u64("stat_write_error");
  worker.stat_delete_error = u64("stat_delete_error");
  worker.stat_flush_error = u64("stat_flush_error");
  worker.idle_queue_size = u64("idle_queue_size");
  worker.local_queue_size = u64("local_queue_size");
  worker.send_queue_size = u64("send_queue_size");
  worker.recv_queue_size = u64("recv_queue_size");
  worker.done_queue_size = u64("done_queue_size");
  return worker;
}

void add_extensions(Nv& nv, const ResourceStatus& status, std::size_t i) {
  if (status.inconsistent) nv.add_uint8(indexed("inconsistent", i), 1);
  if (status.metadata_copy) nv.add_string(indexed("metacopy", i), *status.metadata_copy);
  if (!status.sync) return;
  const SyncStatus& sync = *status.sync;
  nv.add_uint8(indexed("sync_running", i), sync.running ? 1 : 0);
  nv.add_uint64(indexed("sync_done", i), sync.done);
  nv.add_uint64(indexed("sync_total", i), sync.total);
  if (sync.eta_seconds) nv.add_uint64(indexed("sync_eta", i), *sync.eta_seconds);
}

void read_extensions(FieldReader& in, ResourceStatus& status, std::size_t i) {
  status.inconsistent = in.optional<std::uint8_t>(indexed("inconsistent", i)).value_or(0) != 0;
  status.metadata_copy = in.optional<std::string>(indexed("metacopy", i));
  if (!in.exists(indexed("sync_total", i))) return;
  SyncStatus sync;
  sync.running = in.required<std::uint8_t>(indexed("sync_running", i)) != 0;
  sync.done = in.required<std::uint64_t>(indexed("sync_done", i));
  sync.total = in.required<std::uint64_t>(indexed("sync_total", i));
  sync.eta_seconds = in.optional<std::uint64_t>(indexed("sync_eta", i));
  status.sync = sync;
}

void add_resource_status(Nv& nv, const ResourceStatus& status, std::size_t i) {
  nv.add_string(indexed("resource", i), status.resource);
  if (status.error != 0) {
    ResourceStatus bare;
    bare.resource = status.resource;
    bare.error = status.error;
    HAST_ASSERT_MSG(status == bare, "status of '{}' with error {} and other fields",
                    status.resource, status.error);
    nv.add_int16(indexed("error", i), status.error);
    return;
  }
  nv.add_string(indexed("provname", i), status.provname);
  nv.add_string(indexed("localpath", i), status.localpath);
  nv.add_string(indexed("remoteaddr", i), status.remoteaddr);
  if (status.sourceaddr) nv.add_string(indexed("sourceaddr", i), *status.sourceaddr);
  nv.add_string(indexed("replication", i), status.replication);
  nv.add_string(indexed("checksum", i), status.checksum);
  nv.add_string(indexed("compression", i), status.compression);
  nv.add_string(indexed("role", i), role_name(status.role));
  nv.add_int32(indexed("workerpid", i), status.workerpid);
  if (status.worker) add_worker(nv, *status.worker, i);
  add_extensions(nv, status, i);
}

ResourceStatus read_resource_status(FieldReader& in, std::size_t i) {
  ResourceStatus status;
  status.resource = in.required<std::string>(indexed("resource", i));
  status.error = in.optional<std::int16_t>(indexed("error", i)).value_or(0);
  if (status.error != 0) return status;
  status.provname = in.required<std::string>(indexed("provname", i));
  status.localpath = in.required<std::string>(indexed("localpath", i));
  status.remoteaddr = in.required<std::string>(indexed("remoteaddr", i));
  status.sourceaddr = in.optional<std::string>(indexed("sourceaddr", i));
  status.replication = in.required<std::string>(indexed("replication", i));
  status.checksum = in.required<std::string>(indexed("checksum", i));
  status.compression = in.required<std::string>(indexed("compression", i));
  status.role = read_role_name(in, indexed("role", i));
  status.workerpid = in.required<std::int32_t>(indexed("workerpid", i));
  if (in.exists(indexed("status", i))) status.worker = read_worker(in, i);
  read_extensions(in, status, i);
  return status;
}

}  // namespace

// ---- Request ----

Nv ControlRequest::to_nv() const {
  HAST_ASSERT(!resources.empty());
  HAST_ASSERT(role.has_value() == (cmd == ControlCommand::set_role));
  HAST_ASSERT(!force || cmd == ControlCommand::set_role);
  Nv nv;
  nv.add_uint8("cmd", static_cast<std::uint8_t>(cmd));
  if (role) {
    HAST_ASSERT(settable(*role));
    nv.add_uint8("role", static_cast<std::uint8_t>(*role));
  }
  for (std::size_t i = 0; i < resources.size(); i++) {
    nv.add_string(indexed("resource", i), resources[i]);
  }
  if (force) nv.add_uint8("force", 1);
  return nv;
}

Result<ControlRequest> ControlRequest::from_nv(const Nv& nv) {
  auto cmd = nv.get_uint8("cmd").value_or(0);
  if (cmd == 0) return fail(Errc::corruption, "control request: missing field 'cmd'");
  ControlRequest request;
  request.cmd = static_cast<ControlCommand>(cmd);
  if (request.cmd == ControlCommand::set_role) {
    auto role = static_cast<Role>(nv.get_uint8("role").value_or(0));
    if (!settable(role)) {
      return fail(Errc::invalid_argument,
                  fmt::format("control request: invalid role {}",
                              static_cast<unsigned>(static_cast<std::uint8_t>(role))));
    }
    request.role = role;
    request.force = nv.get_uint8("force").value_or(0) != 0;
  }
  for (std::size_t i = 0;; i++) {
    auto name = nv.get_string(indexed("resource", i));
    if (!name) break;
    request.resources.emplace_back(*name);
  }
  if (request.resources.empty()) {
    return fail(Errc::invalid_argument, "control request: missing field 'resource0'");
  }
  if (request.cmd != ControlCommand::set_role && request.cmd != ControlCommand::status &&
      request.cmd != ControlCommand::stop) {
    return fail(Errc::unsupported, fmt::format("control request: unknown cmd {}", cmd));
  }
  return request;
}

std::optional<std::int16_t> control_reply_error(const Error& error) {
  switch (error.code()) {
    case Errc::invalid_argument:
      return ehast_invalid;
    case Errc::unsupported:
      return ehast_unimplemented;
    default:
      return std::nullopt;
  }
}

// ---- Set-role reply ----

Nv SetRoleReply::to_nv() const {
  Nv nv;
  for (std::size_t i = 0; i < resources.size(); i++) {
    const SetRoleResult& result = resources[i];
    HAST_ASSERT_MSG((result.error != 0) != result.previous_role.has_value(),
                    "set-role result for '{}' needs exactly one of error and role",
                    result.resource);
    nv.add_string(indexed("resource", i), result.resource);
    if (result.error != 0) {
      nv.add_int16(indexed("error", i), result.error);
    } else {
      nv.add_string(indexed("role", i), role_name(*result.previous_role));
    }
  }
  add_top_level_error(nv, error);
  return nv;
}

Result<SetRoleReply> SetRoleReply::from_nv(const Nv& nv) {
  FieldReader in(nv, "set-role reply");
  SetRoleReply reply;
  for (std::size_t i = 0; in.exists(indexed("resource", i)) && !in.failed(); i++) {
    SetRoleResult result;
    result.resource = in.required<std::string>(indexed("resource", i));
    result.error = in.optional<std::int16_t>(indexed("error", i)).value_or(0);
    if (result.error == 0) result.previous_role = read_role_name(in, indexed("role", i));
    reply.resources.push_back(std::move(result));
  }
  reply.error = in.optional<std::int16_t>("error").value_or(0);
  HAST_TRY(in.status());
  return reply;
}

// ---- Status reply ----

Nv StatusReply::to_nv() const {
  Nv nv;
  for (std::size_t i = 0; i < resources.size(); i++) {
    add_resource_status(nv, resources[i], i);
  }
  add_top_level_error(nv, error);
  return nv;
}

Result<StatusReply> StatusReply::from_nv(const Nv& nv) {
  FieldReader in(nv, "status reply");
  StatusReply reply;
  for (std::size_t i = 0; in.exists(indexed("resource", i)) && !in.failed(); i++) {
    reply.resources.push_back(read_resource_status(in, i));
  }
  reply.error = in.optional<std::int16_t>("error").value_or(0);
  HAST_TRY(in.status());
  return reply;
}

}  // namespace hast::proto

// Handshake, request and reply messages (reference/hast-spec.md §6.3, §6.4; FreeBSD's
// primary.c init_remote, secondary.c init_remote/requnpack/send_thread, hastd.c
// listen_accept).
#include "core/proto/messages.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/proto/nv_fields.h"

namespace hast::proto {
namespace {

constexpr std::string_view ext_batchflush = "ext_batchflush";
constexpr std::string_view ext_maxrequest = "ext_maxrequest";

void add_token(Nv& nv, const Token& token) {
  nv.add_uint8_array("token", token);
}

// A required 16-byte uint8-array token.
Token read_token(FieldReader& in) {
  auto bytes = in.required<std::vector<std::uint8_t>>("token");
  Token token{};
  if (in.failed()) return token;
  if (bytes.size() != token_size) {
    in.reject(fmt::format("token of {} bytes, expected {}", bytes.size(), token_size));
    return token;
  }
  std::copy(bytes.begin(), bytes.end(), token.begin());
  return token;
}

// `version` absent or 0 reads as 1 (protocol v1 peers do not send it).
std::uint8_t read_version(FieldReader& in) {
  std::uint8_t version = in.optional<std::uint8_t>("version").value_or(0);
  return version == 0 ? protocol_version_initial : version;
}

void add_extensions(Nv& nv, const Extensions& extensions) {
  if (extensions.batch_flush) nv.add_uint8(ext_batchflush, 1);
  if (extensions.request_size_max) {
    std::uint32_t size = *extensions.request_size_max;
    HAST_ASSERT(size >= request_size_send_default);
    HAST_ASSERT(size <= request_size_accept_max);
    nv.add_uint32(ext_maxrequest, size);
  }
}

Extensions read_extensions(FieldReader& in) {
  Extensions extensions;
  extensions.batch_flush = in.optional<std::uint8_t>(ext_batchflush).value_or(0) != 0;
  auto size = in.optional<std::uint32_t>(ext_maxrequest);
  if (size && *size < request_size_send_default) {
    in.reject(fmt::format("{} {} below {}", ext_maxrequest, *size, request_size_send_default));
  } else if (size) {
    extensions.request_size_max = std::min(*size, request_size_accept_max);
  }
  return extensions;
}

// Builds the value or returns the first failure the reader recorded.
template <typename T>
Result<T> finish(const FieldReader& in, T value) {
  HAST_TRY(in.status());
  return value;
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::init:
      return "init";
    case Role::primary:
      return "primary";
    case Role::secondary:
      return "secondary";
    case Role::undef:
      return "unknown";
  }
  return "unknown";  // an out-of-range value, as FreeBSD's role2str
}

std::optional<Role> parse_role(std::string_view name) {
  for (auto role : {Role::undef, Role::init, Role::primary, Role::secondary}) {
    if (role_name(role) == name) return role;
  }
  return std::nullopt;
}

std::string errmsg_wrong_role(Role role) {
  return fmt::format("Remote node acts as {} for the resource and not as secondary.",
                     role_name(role));
}

std::string errmsg_resuid_mismatch(std::uint64_t primary, std::uint64_t secondary) {
  return fmt::format("Resource unique ID mismatch (primary={}, secondary={}).", primary, secondary);
}

std::uint32_t request_size_send_max(const Extensions& peer) {
  std::uint32_t size = peer.request_size_max.value_or(request_size_send_default);
  HAST_ASSERT(size >= request_size_send_default);
  HAST_ASSERT(size <= request_size_accept_max);
  return size;
}

// ---- Handshake ----

Nv HelloRequest::to_nv() const {
  HAST_ASSERT(version >= 1);
  Nv nv;
  nv.add_string("resource", resource);
  nv.add_uint8("version", version);
  return nv;
}

Result<HelloRequest> HelloRequest::from_nv(const Nv& nv) {
  FieldReader in(nv, "hello");
  HelloRequest hello;
  hello.resource = in.required<std::string>("resource");
  hello.version = read_version(in);
  return finish(in, std::move(hello));
}

Result<std::optional<Token>> hello_token(const Nv& nv) {
  FieldReader in(nv, "hello");
  if (!in.exists("token")) return std::optional<Token>();
  Token token = read_token(in);
  HAST_TRY(in.status());
  return std::optional<Token>(token);
}

Nv HelloReply::to_nv() const {
  HAST_ASSERT(version >= 1);
  HAST_ASSERT(version <= protocol_version_max);
  Nv nv;
  nv.add_uint8("version", version);
  add_token(nv, token);
  return nv;
}

Result<HelloReply> HelloReply::from_nv(const Nv& nv) {
  FieldReader in(nv, "hello reply");
  HelloReply reply;
  reply.version = read_version(in);
  if (reply.version > protocol_version_max) {
    in.reject(fmt::format("Invalid version received ({}).", reply.version), Errc::unsupported);
  }
  reply.token = read_token(in);
  return finish(in, reply);
}

Nv Refusal::to_nv() const {
  Nv nv;
  nv.add_string("errmsg", errmsg);
  if (wait) nv.add_uint8("wait", 1);
  return nv;
}

Result<Refusal> Refusal::from_nv(const Nv& nv) {
  FieldReader in(nv, "refusal");
  Refusal refusal;
  refusal.errmsg = in.required<std::string>("errmsg");
  refusal.wait = in.exists("wait");
  return finish(in, std::move(refusal));
}

bool is_refusal(const Nv& nv) {
  return nv.exists("errmsg");
}

Nv IdentityRequest::to_nv() const {
  Nv nv;
  nv.add_string("resource", resource);
  add_token(nv, token);
  if (virgin) nv.add_int8("virgin", 1);
  nv.add_uint64("resuid", resuid);
  nv.add_uint64("localcnt", local_count);
  nv.add_uint64("remotecnt", remote_count);
  add_extensions(nv, extensions);
  return nv;
}

Result<IdentityRequest> IdentityRequest::from_nv(const Nv& nv) {
  FieldReader in(nv, "identity");
  IdentityRequest identity;
  identity.resource = in.required<std::string>("resource");
  identity.token = read_token(in);
  identity.virgin = in.exists("virgin");
  identity.resuid = in.required<std::uint64_t>("resuid");
  identity.local_count = in.required<std::uint64_t>("localcnt");
  identity.remote_count = in.required<std::uint64_t>("remotecnt");
  identity.extensions = read_extensions(in);
  return finish(in, std::move(identity));
}

Nv AcceptReply::to_nv() const {
  HAST_ASSERT(sync_source == SyncSource::primary || sync_source == SyncSource::secondary);
  Nv nv;
  nv.add_int64("datasize", datasize);
  nv.add_int32("extentsize", extentsize);
  nv.add_uint64("localcnt", local_count);
  nv.add_uint64("remotecnt", remote_count);
  if (virgin) nv.add_int8("virgin", 1);
  nv.add_uint8("syncsrc", static_cast<std::uint8_t>(sync_source));
  nv.add_uint32("mapsize", mapsize);
  add_extensions(nv, extensions);
  return nv;
}

Result<AcceptReply> AcceptReply::from_nv(const Nv& nv) {
  FieldReader in(nv, "accept reply");
  AcceptReply reply;
  reply.datasize = in.required<std::int64_t>("datasize");
  reply.extentsize = in.required<std::int32_t>("extentsize");
  reply.local_count = in.required<std::uint64_t>("localcnt");
  reply.remote_count = in.required<std::uint64_t>("remotecnt");
  reply.virgin = in.exists("virgin");
  auto source = in.required<std::uint8_t>("syncsrc");
  reply.sync_source = static_cast<SyncSource>(source);
  if (reply.sync_source != SyncSource::primary && reply.sync_source != SyncSource::secondary) {
    in.reject(fmt::format("syncsrc {} is neither 1 (primary) nor 2 (secondary)", source));
  }
  reply.mapsize = in.required<std::uint32_t>("mapsize");
  reply.extensions = read_extensions(in);
  return finish(in, reply);
}

// ---- Requests and replies ----

std::string_view request_command_name(RequestCommand command) {
  switch (command) {
    case RequestCommand::read:
      return "READ";
    case RequestCommand::write:
      return "WRITE";
    case RequestCommand::discard:
      return "DELETE";
    case RequestCommand::flush:
      return "FLUSH";
    case RequestCommand::keepalive:
      return "KEEPALIVE";
  }
  HAST_UNREACHABLE();
}

Nv Request::to_nv() const {
  Nv nv;
  nv.add_uint8("cmd", static_cast<std::uint8_t>(cmd));
  if (cmd == RequestCommand::keepalive) {
    HAST_ASSERT(seq == 0 && offset == 0 && length == 0);
    HAST_ASSERT(!memsync);
    if (sync_done) nv.add_uint8("ext_syncdone", 1);
    return nv;
  }
  HAST_ASSERT(!sync_done);
  HAST_ASSERT_MSG(seq != 0, "{} request with seq 0", request_command_name(cmd));
  HAST_ASSERT(!memsync || cmd == RequestCommand::write);
  nv.add_uint64("seq", seq);
  nv.add_uint64("offset", offset);
  nv.add_uint64("length", length);
  if (memsync) nv.add_uint8("memsync", 1);
  return nv;
}

Result<Request> Request::from_nv(const Nv& nv) {
  FieldReader in(nv, "request");
  Request request;
  auto cmd = in.optional<std::uint8_t>("cmd").value_or(0);
  if (cmd == 0) in.reject("missing field 'cmd'");
  if (cmd > static_cast<std::uint8_t>(RequestCommand::keepalive)) {
    in.reject(fmt::format("unknown cmd {}", cmd));
  }
  HAST_TRY(in.status());
  request.cmd = static_cast<RequestCommand>(cmd);
  if (request.cmd == RequestCommand::keepalive) {
    request.sync_done = in.exists("ext_syncdone");
    return request;
  }

  request.seq = in.optional<std::uint64_t>("seq").value_or(0);
  if (request.cmd == RequestCommand::flush) {
    request.offset = in.optional<std::uint64_t>("offset").value_or(0);
    request.length = in.optional<std::uint64_t>("length").value_or(0);
  } else {
    request.offset = in.required<std::uint64_t>("offset");
    request.length = in.required<std::uint64_t>("length");
  }
  request.memsync = request.cmd == RequestCommand::write && in.exists("memsync");
  return finish(in, request);
}

Result<void> validate_request(const Request& request, std::uint32_t sector_size,
                              std::uint64_t datasize, std::uint32_t request_size_max) {
  HAST_ASSERT(sector_size > 0);
  auto invalid = [&request](std::string reason) {
    return fail(Errc::invalid_argument,
                fmt::format("{} request (seq {}): {}", request_command_name(request.cmd),
                            request.seq, reason));
  };
  if (request.cmd == RequestCommand::keepalive) return ok();
  if (request.seq == 0) return invalid("no 'seq' field");
  if (request.cmd == RequestCommand::flush) return ok();
  if (request.length == 0) return invalid("data length is zero");
  if (request.cmd != RequestCommand::discard && request.length > request_size_max) {
    return invalid(
        fmt::format("data length {} over the limit of {}", request.length, request_size_max));
  }
  if (request.offset % sector_size != 0) {
    return invalid(
        fmt::format("offset {} not a multiple of the sector size {}", request.offset, sector_size));
  }
  if (request.length % sector_size != 0) {
    return invalid(
        fmt::format("length {} not a multiple of the sector size {}", request.length, sector_size));
  }
  if (request.offset > datasize || request.length > datasize - request.offset) {
    return invalid(
        fmt::format("range {}+{} past the data size {}", request.offset, request.length, datasize));
  }
  return ok();
}

Nv Reply::to_nv() const {
  HAST_ASSERT(seq != 0);
  HAST_ASSERT_MSG(!(received && error != 0), "memsync 'received' reply with an error");
  Nv nv;
  nv.add_uint64("seq", seq);
  if (received) nv.add_int8("received", 1);
  if (error != 0) nv.add_int16("error", error);
  return nv;
}

Result<Reply> Reply::from_nv(const Nv& nv) {
  FieldReader in(nv, "reply");
  Reply reply;
  reply.seq = in.required<std::uint64_t>("seq");
  if (!in.failed() && reply.seq == 0) in.reject("seq 0");
  reply.received = in.exists("received");
  reply.error = in.optional<std::int16_t>("error").value_or(0);
  if (reply.received && reply.error != 0) in.reject("'received' with an error");
  return finish(in, reply);
}

// ---- errno ----

std::int16_t wire_errno_from_errc(Errc code) {
  switch (code) {
    case Errc::io:
    case Errc::split_brain:
      return wire_errno::eio;
    case Errc::corruption:
      return wire_errno::eintegrity;
    case Errc::not_found:
      return wire_errno::enoent;
    case Errc::disconnected:
      return wire_errno::enotconn;
    case Errc::timed_out:
      return wire_errno::etimedout;
    case Errc::no_space:
      return wire_errno::enospc;
    case Errc::invalid_argument:
      return wire_errno::einval;
    case Errc::cancelled:
      return wire_errno::eintr;
    case Errc::unsupported:
      return wire_errno::eopnotsupp;
    case Errc::refused:
      return wire_errno::econnrefused;
    case Errc::busy:
      return wire_errno::ebusy;
  }
  HAST_UNREACHABLE();
}

Errc errc_from_wire_errno(std::int16_t wire_errno) {
  HAST_ASSERT(wire_errno != 0);
  switch (wire_errno) {
    case wire_errno::enoent:
      return Errc::not_found;
    case wire_errno::eintr:
      return Errc::cancelled;
    case wire_errno::enospc:
    case wire_errno::enomem:
      return Errc::no_space;
    case wire_errno::einval:
      return Errc::invalid_argument;
    case wire_errno::eopnotsupp:
      return Errc::unsupported;
    case wire_errno::enotconn:
      return Errc::disconnected;
    case wire_errno::etimedout:
      return Errc::timed_out;
    case wire_errno::econnrefused:
      return Errc::refused;
    case wire_errno::ebusy:
      return Errc::busy;
    case wire_errno::eintegrity:
      return Errc::corruption;
    default:
      return Errc::io;  // EIO, ENXIO, EROFS, EPERM and anything unknown
  }
}

}  // namespace hast::proto

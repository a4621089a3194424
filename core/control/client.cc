// hastctl's control exchange (see client.h; FreeBSD's sbin/hastctl/hastctl.c main).
#include "core/control/client.h"

#include <array>

#include <fmt/format.h>

#include "core/control/format.h"
#include "core/proto/frame.h"

namespace hast::control {
namespace {

// strerror-like words for an error kind, as FreeBSD's pjdlog_exit appends them.
std::string_view reason(Errc code) {
  switch (code) {
    case Errc::refused:
      return "Connection refused";
    case Errc::not_found:
      return "No such file or directory";
    case Errc::timed_out:
      return "Operation timed out";
    case Errc::disconnected:
      return "Connection reset by peer";
    case Errc::cancelled:
      return "Operation canceled";
    case Errc::corruption:
      return "Malformed reply";
    case Errc::unsupported:
      return "Protocol not supported";
    case Errc::invalid_argument:
      return "Invalid argument";
    case Errc::busy:
      return "Device busy";
    default:
      return "Input/output error";
  }
}

std::string_view step_text(ClientStep step) {
  switch (step) {
    case ClientStep::connect:
      return "Unable to connect to hastd via";
    case ClientStep::send:
      return "Unable to send command to hastd via";
    case ClientStep::receive:
      return "Unable to receive reply from hastd via";
  }
  HAST_UNREACHABLE();
}

}  // namespace

int ClientError::exit_code() const {
  return step == ClientStep::connect ? exit_os_error : exit_unavailable;
}

std::string ClientError::message() const {
  return fmt::format("{} {}: {}.", step_text(step), address, reason(error.code()));
}

ControlClient::ControlClient(Network& network, Clock& clock, config::ConfiguredAddress control,
                             Duration timeout)
    : network_(network), clock_(clock), control_(std::move(control)), timeout_(timeout) {
  HAST_ASSERT(timeout_ > Duration::zero());
  HAST_ASSERT(!control_.text.empty());
}

ClientResult<proto::SetRoleReply> ControlClient::set_role(meta::Role role,
                                                          std::vector<std::string> resources,
                                                          bool force) {
  HAST_ASSERT(!resources.empty());
  proto::ControlRequest request;
  request.cmd = proto::ControlCommand::set_role;
  request.role = static_cast<proto::Role>(meta::role_code(role));
  request.resources = std::move(resources);
  request.force = force;
  return typed<proto::SetRoleReply>(request);
}

ClientResult<proto::StatusReply> ControlClient::status(std::vector<std::string> resources) {
  proto::ControlRequest request;
  request.cmd = proto::ControlCommand::status;
  request.resources = resources.empty() ? std::vector<std::string>{"all"} : std::move(resources);
  return typed<proto::StatusReply>(request);
}

ClientResult<proto::SetRoleReply> ControlClient::stop() {
  proto::ControlRequest request;
  request.cmd = proto::ControlCommand::stop;
  request.resources = {"all"};
  return typed<proto::SetRoleReply>(request);
}

template <typename Reply>
ClientResult<Reply> ControlClient::typed(const proto::ControlRequest& request) {
  auto nv = exchange(request.to_nv());
  if (!nv) return nv.error();
  auto reply = Reply::from_nv(*nv);
  if (!reply) return failure(ClientStep::receive, reply.error());
  return std::move(*reply);
}

ClientResult<proto::Nv> ControlClient::exchange(const proto::Nv& request) {
  HAST_ASSERT(!request.empty());
  auto connected =
      network_.connect(control_.address, std::nullopt, deadline_after(clock_, timeout_));
  if (!connected) return failure(ClientStep::connect, connected.error());
  Connection& connection = **connected;
  auto sent = proto::send_message(connection, proto::protocol_version_max, request, {},
                                  deadline_after(clock_, timeout_));
  if (!sent) {
    connection.close();
    return failure(ClientStep::send, sent.error());
  }
  auto received = receive(connection);
  connection.close();
  if (!received) return failure(ClientStep::receive, received.error());
  return std::move(*received);
}

// recv_message, except that an nv size of 0 (FreeBSD's empty reply) is an empty nv.
Result<proto::Nv> ControlClient::receive(Connection& connection) {
  Deadline deadline = deadline_after(clock_, timeout_);
  std::array<std::byte, proto::frame_header_size> header{};
  HAST_TRY(connection.recv_exact(header, deadline));
  bool empty = header[1] == std::byte{0} && header[2] == std::byte{0} &&
               header[3] == std::byte{0} && header[4] == std::byte{0};
  if (empty && static_cast<std::uint8_t>(header[0]) <= proto::protocol_version_max) {
    return proto::Nv{};
  }
  auto decoded = proto::decode_header(header, proto::nv_size_max_default);
  if (!decoded) return fail(decoded.error());
  std::vector<std::byte> blob(decoded->nv_size);
  HAST_TRY(connection.recv_exact(blob, deadline));
  return proto::Nv::decode(blob);
}

ClientError ControlClient::failure(ClientStep step, const Error& error) const {
  return ClientError{step, error, control_.text};
}

}  // namespace hast::control

// hastd's control socket (see server.h; FreeBSD's sbin/hastd/control.c control_handle).
#include "core/control/server.h"

#include <fmt/format.h>

#include "core/control/status.h"
#include "core/proto/frame.h"
#include "core/proto/messages.h"

namespace hast::control {
namespace {

constexpr std::string_view kAll = "all";
// Back-off after an accept error that is not the listener closing (e.g. EMFILE), so a
// persistent error does not spin.
constexpr Duration kAcceptRetry = std::chrono::milliseconds(100);

// A control request carries no payload; one that announces a payload fails the receive.
proto::RecvLimits request_limits() {
  proto::RecvLimits limits;
  limits.nv_size_max = 64 * 1024;  // thousands of resource names
  limits.payload_max = 0;
  limits.payload_discard_max = 0;
  return limits;
}

std::int16_t set_role_error(const Error& error) {
  switch (error.code()) {
    case Errc::not_found:
      return proto::ehast_noentry;
    case Errc::busy:
      return proto::ehast_inconsistent;
    default:
      return proto::ehast_role_failed;
  }
}

proto::Role wire_role(meta::Role role) {
  return static_cast<proto::Role>(meta::role_code(role));
}

meta::Role core_role(proto::Role role) {
  auto converted = meta::role_from_code(static_cast<std::uint8_t>(role));
  HAST_ASSERT(converted.has_value());
  return *converted;
}

}  // namespace

ControlServer::ControlServer(fiber::Scheduler& scheduler, Log& log, replication::HastNode& node,
                             StopCallback on_stop, ControlServerOptions options)
    : scheduler_(scheduler),
      log_(log),
      node_(node),
      on_stop_(std::move(on_stop)),
      options_(options),
      role_changes_(scheduler, 1),
      acceptor_(scheduler),
      sessions_(scheduler) {
  HAST_ASSERT(on_stop_ != nullptr);
  HAST_ASSERT(options_.session_count_max > 0);
  HAST_ASSERT(options_.timeout > Duration::zero());
}

ControlServer::~ControlServer() {
  HAST_ASSERT_MSG(stopped_ || listener_ == nullptr || scheduler_.is_shut_down(),
                  "control server destroyed while running");
}

Result<void> ControlServer::start(std::unique_ptr<Listener> listener) {
  HAST_ASSERT(listener != nullptr);
  HAST_ASSERT(listener_ == nullptr);
  listener_ = std::move(listener);
  log_debug(log_, "Control socket listening on {}.", listener_->address().to_string());
  auto spawned = acceptor_.spawn("control-accept", [this] { accept_loop(); });
  if (!spawned) return fail(spawned.error());
  return ok();
}

Result<void> ControlServer::replace_listener(std::unique_ptr<Listener> listener) {
  HAST_ASSERT(listener != nullptr);
  HAST_ASSERT(listener_ != nullptr);
  if (!stopped_) {
    listener_->close();
    acceptor_.cancel_and_join();
  }
  if (stopped_) {
    listener->close();
    return fail(Errc::cancelled, "control server stopped");
  }
  acceptor_.reset();
  listener_ = std::move(listener);
  log_debug(log_, "Control socket listening on {}.", listener_->address().to_string());
  auto spawned = acceptor_.spawn("control-accept", [this] { accept_loop(); });
  if (!spawned) return fail(spawned.error());
  return ok();
}

void ControlServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (listener_ != nullptr) listener_->close();
  acceptor_.cancel_and_join();
  sessions_.cancel_and_join();
  HAST_ASSERT(sessions_.size() == 0);
}

void ControlServer::accept_loop() {
  while (true) {
    auto accepted = listener_->accept(std::nullopt);
    if (!accepted) {
      if (accepted.error().code() == Errc::cancelled || scheduler_.current_cancelled()) return;
      log_warning(log_, "Unable to accept control connection: {}", accepted.error().message());
      if (!scheduler_.sleep_for(kAcceptRetry)) return;
      continue;
    }
    admit(std::move(*accepted));
  }
}

void ControlServer::admit(std::unique_ptr<Connection> connection) {
  HAST_ASSERT(connection != nullptr);
  counters_.accepted++;
  if (sessions_.size() >= options_.session_count_max) {
    counters_.rejected_busy++;
    log_warning(log_, "Too many control connections ({}); closing the new one.", sessions_.size());
    connection->close();
    return;
  }
  std::shared_ptr<Connection> shared = std::move(connection);
  auto spawned = sessions_.spawn("control-session", [this, shared] {
    serve(*shared);
    shared->close();
  });
  if (!spawned) shared->close();
}

// One exchange: receive, answer, and for `stop` run the callback once the reply is out.
void ControlServer::serve(Connection& connection) {
  auto message = proto::recv_message(connection, request_limits(),
                                     deadline_after(scheduler_.clock(), options_.timeout));
  if (!message) {
    counters_.receive_failed++;
    if (message.error().code() == Errc::cancelled) return;  // the server is stopping
    log_warning(log_, "Unable to receive control request: {}", message.error().message());
    return;
  }
  auto request = proto::ControlRequest::from_nv(message->nv);
  if (!request) {
    counters_.malformed++;
    log_warning(log_, "Invalid control request: {}", request.error().message());
    auto error = proto::control_reply_error(request.error());
    if (error) ignore_error(reply(connection, proto::SetRoleReply{{}, *error}.to_nv()), "logged");
    return;
  }
  auto answer = dispatch(*request);
  if (!answer) return;
  ignore_error(reply(connection, *answer), "logged by reply()");
  if (request->cmd == proto::ControlCommand::stop) {
    log_info(log_, "Stop requested through the control socket.");
    on_stop_();
  }
}

Result<void> ControlServer::reply(Connection& connection, const proto::Nv& nv) {
  HAST_ASSERT(!nv.empty());
  auto sent = proto::send_message(connection, proto::protocol_version_max, nv, {},
                                  deadline_after(scheduler_.clock(), options_.timeout));
  if (!sent) {
    log_warning(log_, "Unable to send control reply: {}", sent.error().message());
    return sent;
  }
  counters_.answered++;
  return ok();
}

std::optional<proto::Nv> ControlServer::dispatch(const proto::ControlRequest& request) {
  switch (request.cmd) {
    case proto::ControlCommand::set_role:
      return set_role(request);
    case proto::ControlCommand::status:
      return status(request);
    case proto::ControlCommand::stop:
      return proto::SetRoleReply{}.to_nv();
  }
  HAST_UNREACHABLE();
}

std::vector<std::string> ControlServer::expand(const std::vector<std::string>& resources) const {
  HAST_ASSERT(!resources.empty());
  // FreeBSD expands `all` only as the first name; later names are taken literally.
  if (resources[0] == kAll) return node_.resource_names();
  return resources;
}

std::optional<proto::Nv> ControlServer::set_role(const proto::ControlRequest& request) {
  HAST_ASSERT(request.role.has_value());
  // Role changes suspend while the old role stops: one at a time, in arrival order.
  if (!role_changes_.acquire()) return std::nullopt;
  fiber::Permit permit(role_changes_);
  meta::Role role = core_role(*request.role);
  proto::SetRoleReply reply;
  for (const std::string& name : expand(request.resources)) {
    auto previous = node_.set_role(name, role, request.force);
    proto::SetRoleResult result{name, 0, std::nullopt};
    if (previous) {
      result.previous_role = wire_role(*previous);
    } else {
      result.error = set_role_error(previous.error());
      log_warning(log_, "[{}] Unable to change role to {}: {}", name, meta::role_name(role),
                  previous.error().message());
    }
    reply.resources.push_back(std::move(result));
  }
  return reply.to_nv();
}

proto::Nv ControlServer::status(const proto::ControlRequest& request) const {
  Instant now = scheduler_.clock().now();
  proto::StatusReply reply;
  for (const std::string& name : expand(request.resources)) {
    auto status = node_.status(name);
    if (!status && status.error().code() == Errc::not_found) {
      reply.resources.push_back(unknown_resource_status(name));
      continue;
    }
    if (!status) {
      // FreeBSD: a worker that cannot be asked fails the whole reply with its errno.
      reply.error = proto::wire_errno_from_errc(status.error().code());
      continue;
    }
    // status() suspended while the resource's executor answered: a reload may have
    // removed the resource meanwhile.
    const config::ResourceConfig* config = node_.config().find(name);
    if (config == nullptr) {
      reply.resources.push_back(unknown_resource_status(name));
      continue;
    }
    reply.resources.push_back(wire_status(*status, *config, now));
  }
  return reply.to_nv();
}

}  // namespace hast::control

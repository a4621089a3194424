// ControlServer: hastd's side of the control socket (reference/hast-spec.md §6.7, §3.3):
// `role`, `status`/`list`, and our `stop`.
//
// Model: the daemon opens the listener (a Unix socket, before daemonising) and hands it
// to start(); an accept fiber then spawns one session fiber per client. A session is one
// exchange, as in FreeBSD: receive one request (within options.timeout, so a silent
// client cannot hold a fiber forever), answer it, close. Sessions are independent: a
// client that sends garbage, stalls or disconnects loses only its own connection, and at
// most options.session_count_max sessions exist at once (the next client is closed at
// once). Role changes (from `role` requests) run one at a time, in arrival order, since a
// role change suspends while the old role stops; `status` never waits for them (it
// suspends only while each resource's executor answers, HastNode::status; a resource a
// reload removed meanwhile is answered as unknown).
//
// Answers, in FreeBSD's words (ControlRequest::from_nv and control_reply_error):
// - a request that cannot be received or has no `cmd`: close without a reply;
// - no `resource0`, or set_role without a valid `role`: top-level `error` = 2;
// - an unknown `cmd`: top-level `error` = 4;
// - set_role: per resource (`resource0 = "all"` = every configured resource, in
//   configuration order) the previous role, or `error<i>` = 1 (unknown resource), 101
//   (primary refused on an inconsistent component without `force`), 102 (the new role
//   could not start; the resource is in init);
// - status: per resource the fields of core/control/status.h, or `error<i>` = 1; a
//   failure to read a known resource's status sets the top-level `error` to its errno;
// - stop: a reply with top-level `error` = 0 is sent first, then the stop callback runs
//   (the daemon sets every resource to init and exits: after the callback, the reply
//   may no longer be deliverable).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/fiber/semaphore.h"
#include "core/fiber/task_group.h"
#include "core/io/log.h"
#include "core/io/network.h"
#include "core/proto/control_messages.h"
#include "core/replication/node.h"

namespace hast::control {

struct ControlServerOptions {
  // How long a client has to send its request, and the reply to go out (HAST_TIMEOUT).
  Duration timeout = std::chrono::seconds(20);
  // Sessions served at once; a client beyond this is closed without a reply.
  std::size_t session_count_max = 32;
};

// What the server did, for tests and the simulator's coverage report.
struct ControlServerCounters {
  std::uint64_t accepted = 0;
  std::uint64_t rejected_busy = 0;   // closed at once: session_count_max reached
  std::uint64_t receive_failed = 0;  // no request arrived (timeout, disconnect, bad frame)
  std::uint64_t malformed = 0;       // a request from_nv refused (answered or closed)
  std::uint64_t answered = 0;        // replies sent in full
};

class ControlServer {
 public:
  // Called from a session fiber after the stop reply went out (or failed to), once per
  // stop request, so possibly more than once. It must not call stop()
  // or destroy the server (a fiber cannot join its own group): let the daemon's main
  // fiber do that, e.g. by setting an Event it waits on.
  using StopCallback = std::function<void()>;

  // Every reference must outlive the server. `on_stop` must not be empty.
  ControlServer(fiber::Scheduler& scheduler, Log& log, replication::HastNode& node,
                StopCallback on_stop, ControlServerOptions options = {});
  // Asserts that stop() was called (or the scheduler shut down).
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Starts accepting on `listener`, which the server now owns. Callable once. Errors:
  // Errc::cancelled when the scheduler is shutting down.
  Result<void> start(std::unique_ptr<Listener> listener);
  // Serves `listener` instead of the current one (a reload changed the control address):
  // the current listener is closed, sessions in progress carry on. Call after start(),
  // from a fiber that is not one of the server's. Errors: Errc::cancelled when the server
  // was stopped meanwhile (`listener` is then closed).
  Result<void> replace_listener(std::unique_ptr<Listener> listener);
  // Closes the listener, cancels every session and waits for them (a role change in
  // progress still stops the old role; a new role whose start is cancelled ends in init,
  // see HastNode::set_role). Idempotent. Call from a fiber of the scheduler that is not
  // one of the server's.
  void stop();

  std::size_t session_count() const { return sessions_.size(); }
  const ControlServerCounters& counters() const { return counters_; }

 private:
  void accept_loop();
  void admit(std::unique_ptr<Connection> connection);
  void serve(Connection& connection);
  // The reply to `request`, or nullopt when the server is shutting down.
  std::optional<proto::Nv> dispatch(const proto::ControlRequest& request);
  std::optional<proto::Nv> set_role(const proto::ControlRequest& request);
  proto::Nv status(const proto::ControlRequest& request) const;
  std::vector<std::string> expand(const std::vector<std::string>& resources) const;
  Result<void> reply(Connection& connection, const proto::Nv& nv);

  fiber::Scheduler& scheduler_;
  Log& log_;
  replication::HastNode& node_;
  StopCallback on_stop_;
  ControlServerOptions options_;
  std::unique_ptr<Listener> listener_;
  fiber::Semaphore role_changes_;  // one role change at a time
  fiber::TaskGroup acceptor_;
  fiber::TaskGroup sessions_;
  ControlServerCounters counters_;
  bool stopped_ = false;
};

}  // namespace hast::control

// ControlClient: hastctl's side of the control socket (reference/hast-spec.md §3.1,
// §3.7, §6.7): connect, send one request, receive one reply, close.
//
// Model: one exchange per call, from a fiber; each step (connect, send, receive) has its
// own deadline of `timeout` (HAST_TIMEOUT, 20 s, as FreeBSD's per-call socket timeouts).
// A failure says which step failed, which gives hastctl's exit code, and names the
// control address as configured, in FreeBSD's words:
//   connect  "Unable to connect to hastd via <addr>: <reason>."      exit 71 (EX_OSERR)
//   send     "Unable to send command to hastd via <addr>: <reason>."  exit 69
//   receive  "Unable to receive reply from hastd via <addr>: <reason>." exit 69
// A reply that arrives is returned whatever its errors: the top-level and per-resource
// errors are the caller's (core/control/format.h reply_exit_code).
//
// FreeBSD's hastd answers a request that matches no resource with a frame whose nv size
// is 0 (§3.4); FreeBSD's hastctl aborts on it, we read it as an empty reply (no
// resources, no error), so `status` on a daemon without resources prints nothing and
// exits 0.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/config/config.h"
#include "core/io/clock.h"
#include "core/io/network.h"
#include "core/meta/role.h"
#include "core/proto/control_messages.h"

namespace hast::control {

// HAST_TIMEOUT: the default deadline of each step.
inline constexpr Duration control_timeout = std::chrono::seconds(20);

enum class ClientStep : std::uint8_t { connect, send, receive };

struct ClientError {
  ClientStep step = ClientStep::connect;
  Error error{Errc::io};
  std::string address;  // the control address as configured ("/var/run/hastctl")

  // 71 for connect, 69 for send and receive.
  int exit_code() const;
  // The sentence of the file comment, ending with a period; the reason is a strerror-like
  // text for the error kind ("Connection refused", "Operation timed out", ...).
  std::string message() const;
};

// A reply, or the step that failed. Shaped like Result.
template <typename T>
class [[nodiscard]] ClientResult {
 public:
  ClientResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}            // NOLINT
  ClientResult(ClientError error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  const T& value() const& {
    HAST_ASSERT_MSG(has_value(), "ClientResult::value() on an error: {}", error_text());
    return std::get<0>(state_);
  }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  const ClientError& error() const {
    HAST_ASSERT(!has_value());
    return std::get<1>(state_);
  }

 private:
  std::string error_text() const { return has_value() ? "" : std::get<1>(state_).message(); }
  std::variant<T, ClientError> state_;
};

class ControlClient {
 public:
  // `control` is the `control` address of the configuration (config::NodeConfig). The
  // network and the clock must outlive the client.
  ControlClient(Network& network, Clock& clock, config::ConfiguredAddress control,
                Duration timeout = control_timeout);

  // `hastctl role <role> [--force] <names>`: `resources` non-empty (asserted); {"all"}
  // means every resource.
  ClientResult<proto::SetRoleReply> set_role(meta::Role role, std::vector<std::string> resources,
                                             bool force = false);
  // `hastctl status` / `list`: empty `resources` means all.
  ClientResult<proto::StatusReply> status(std::vector<std::string> resources);
  // `hastctl stop`: the reply carries only the top-level error (0 when accepted).
  ClientResult<proto::SetRoleReply> stop();

  // One raw exchange: sends `request` as is and returns the reply's nv (empty for
  // FreeBSD's empty reply). For requests the typed calls cannot build (tests).
  ClientResult<proto::Nv> exchange(const proto::Nv& request);

 private:
  template <typename Reply>
  ClientResult<Reply> typed(const proto::ControlRequest& request);
  Result<proto::Nv> receive(Connection& connection);
  ClientError failure(ClientStep step, const Error& error) const;

  Network& network_;
  Clock& clock_;
  config::ConfiguredAddress control_;
  Duration timeout_;
};

}  // namespace hast::control

// Network: listeners and ordered byte-stream connections (TCP or Unix sockets).
//
// Contract, common to every blocking method:
// - Called from a fiber; may suspend it. A Deadline (core/io/clock.h) bounds the wait:
//   when it passes the call fails with Errc::timed_out. Timeouts are deadlines from the
//   node's Clock, never socket options.
// - Buffers must stay valid until the call returns.
// - The transport contract is weak (STYLE.md R4): a connection can stall, reset or
//   half-open at any time. Bytes that arrive do so in order and exactly once; after a
//   reset nothing more arrives. A half-open connection delivers nothing and reports
//   nothing: only a deadline ends the wait. Corruption is the protocol's business
//   (checksums), not the transport's.
// - Errc::disconnected: the peer closed or reset; Errc::refused: nothing listens there;
//   Errc::cancelled: the owning node is being torn down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/io/clock.h"
#include "core/result.h"

namespace hast {

// A parsed transport address in HAST's syntax (reference/hast-spec.md §1.6):
// `tcp://host[:port]`, `tcp4://`, `tcp6://`, a bare host, `[v6]:port`, a bare IPv6
// literal, `uds://path`, `unix://path`, or an absolute path.
struct Address {
  enum class Kind : std::uint8_t { tcp, tcp4, tcp6, unix_socket };

  Kind kind = Kind::tcp;
  std::string host;        // TCP: name or literal, without brackets
  std::uint16_t port = 0;  // TCP: 0 when the text named none and no default applied
  std::string path;        // Unix socket path

  bool is_tcp() const { return kind != Kind::unix_socket; }

  // Canonical text: `tcp://host:port`, `tcp://[v6]:port`, `unix:///path`.
  std::string to_string() const;

  friend bool operator==(const Address&, const Address&) = default;
};

// Parses `text`; a TCP address without a port takes `default_port`. Errors name the
// problem (Errc::invalid_argument): empty text, a bad port, an unterminated bracket.
Result<Address> parse_address(std::string_view text, std::uint16_t default_port);

class Connection {
 public:
  virtual ~Connection() = default;

  // Sends all of `data`. Succeeds once the bytes are handed to the transport (not when
  // the peer has read them); suspends while the transport's send buffer is full.
  virtual Result<void> send(std::span<const std::byte> data, Deadline deadline) = 0;

  // Sends all of `head`, then all of `body`: the same bytes and contract as send(head)
  // then send(body), in one transport operation where the transport gathers (a sendmsg
  // of two pieces), so a message's header and its payload leave without being copied
  // together first. Either may be empty. This default makes the two calls.
  virtual Result<void> send_gather(std::span<const std::byte> head, std::span<const std::byte> body,
                                   Deadline deadline) {
    if (!head.empty()) HAST_TRY(send(head, deadline));
    if (!body.empty()) HAST_TRY(send(body, deadline));
    return ok();
  }

  // Receives exactly buffer.size() bytes. On failure the connection's position in the
  // stream is unknown: the caller closes it.
  virtual Result<void> recv_exact(std::span<std::byte> buffer, Deadline deadline) = 0;

  // Closes both directions. Idempotent; never suspends. Blocked calls on this
  // connection from other fibers fail with Errc::disconnected.
  virtual void close() = 0;

  virtual Address peer_address() const = 0;
  virtual Address local_address() const = 0;
};

class Listener {
 public:
  virtual ~Listener() = default;

  // Waits for the next incoming connection.
  virtual Result<std::unique_ptr<Connection>> accept(Deadline deadline) = 0;

  // Stops listening. Idempotent; a blocked accept() fails with Errc::cancelled.
  virtual void close() = 0;

  virtual Address address() const = 0;
};

class Network {
 public:
  virtual ~Network() = default;

  // Starts listening on `address`. Errc::busy if the address is in use.
  virtual Result<std::unique_ptr<Listener>> listen(const Address& address) = 0;

  // Connects to `remote`, from `source` when given (the local address to bind first).
  // Errc::refused when nothing listens, Errc::timed_out when the deadline passes first.
  virtual Result<std::unique_ptr<Connection>> connect(const Address& remote,
                                                      const std::optional<Address>& source,
                                                      Deadline deadline) = 0;
};

}  // namespace hast

// RealNetwork: the production Network (core/io/network.h) on TCP (IPv4, IPv6) and Unix
// stream sockets, driven by the io_uring poller (real/ring.h).
//
// Model: every wait on a socket (accept, connect, send, recv) is one io_uring operation
// run by the calling fiber; deadlines cancel the operation through the ring. Outside the
// ring only calls that never wait on the network are made: socket, setsockopt, bind,
// listen, getsockname, shutdown, close, the first attempt of a send (non-blocking:
// what the socket does not take at once goes through the ring), the non-blocking probe
// of a Unix socket path (see listen) and getaddrinfo. getaddrinfo blocks the thread for
// a host *name* (DNS); numeric hosts are tried first with AI_NUMERICHOST and never reach
// the resolver. HAST resolved names the same way (reference/hast-spec.md §1.6): only the
// first result is used, and tcp4:// / tcp6:// restrict the family.
//
// Addresses handed out (Listener::address, Connection::peer_address and local_address)
// are canonical: a TCP address is Kind::tcp with a numeric host as inet_ntop prints it
// ("127.0.0.2", "::1"; IPv4-mapped IPv6 peers are printed as IPv4) and the actual port;
// a Unix address is its path (empty for an unnamed client socket).
//
// Closing: Connection::close and Listener::close never suspend. They shut the socket down
// (shutdown(SHUT_RDWR)), which makes an operation in flight on it complete at once, and
// the blocked call then fails (Errc::disconnected for a connection, Errc::cancelled for a
// listener). The descriptor itself is closed when no operation is in flight on it any
// more (by close() or by the last such operation as it returns), so a descriptor number
// is never reused under a pending operation. Destroying a handle closes its descriptor;
// no call may be in progress on it then.
//
// Every descriptor is created close-on-exec. Threads: one RealNetwork and its handles
// serve the one thread that runs the Ring's scheduler.
#pragma once

#include <memory>
#include <optional>

#include "core/io/network.h"
#include "core/result.h"
#include "real/ring.h"

namespace hast::real {

// Backlog of every listening socket, as HAST's (reference/hast-spec.md §1.6).
inline constexpr int listen_backlog = 8;

class RealNetwork final : public Network {
 public:
  explicit RealNetwork(Ring& ring) : ring_(ring) {}

  // TCP: binds `address` with SO_REUSEADDR (and IPV6_V6ONLY for IPv6); port 0 picks an
  // ephemeral port, which Listener::address() then reports. Unix: a socket file left by
  // a dead process is replaced; one that accepts connections gives Errc::busy, as does
  // a path that exists and is not a socket. The Unix listener removes its file on
  // close() (if the file is still the one it created). Errors: Errc::busy (address in
  // use), Errc::not_found (the name does not resolve), Errc::invalid_argument (not an
  // address of this host, wrong family, path too long), Errc::unsupported (the kernel
  // lacks the address family). Does not suspend; callable from outside fibers.
  Result<std::unique_ptr<Listener>> listen(const Address& address) override;

  // For start-up only: for `total`, listen() tries an address in use (Errc::busy) again
  // every 50 ms. A hastd killed a moment ago still holds its listening sockets until the
  // kernel has torn its io_uring down, which finishes after the process is gone, so a
  // restart at once would find them in use. listen() then blocks the thread while it
  // waits: set it before serving, and back to zero (the default: no retry) after.
  void set_listen_retry(Duration total) { listen_retry_ = total; }

  // Binds `source` first when given (port 0 unless it names one; it must be TCP and of
  // the remote's family), sets TCP_NODELAY, then connects through the ring. Errors:
  // Errc::refused (nothing listens), Errc::timed_out (deadline), Errc::cancelled (the
  // fiber was cancelled), Errc::disconnected (unreachable, reset), Errc::busy (source
  // address in use), Errc::invalid_argument, Errc::not_found (name). Called from a fiber.
  Result<std::unique_ptr<Connection>> connect(const Address& remote,
                                              const std::optional<Address>& source,
                                              Deadline deadline) override;

 private:
  Ring& ring_;
  Duration listen_retry_ = Duration::zero();
};

// Moves `connection`, made by a RealNetwork on another ring (another thread's), to
// `ring`: the same socket, from now on driven by the thread of `ring`. The old handle is
// left closed (Errc::disconnected) without its descriptor being closed. Nothing is
// buffered in a handle, so no byte is lost. Precondition: no call is in progress on
// `connection`. Errors: Errc::invalid_argument (not a RealNetwork connection),
// Errc::disconnected (closed already). Does not suspend.
Result<std::unique_ptr<Connection>> adopt_connection(Ring& ring, Connection& connection);

// The canonical form of `address`: a TCP host name or literal resolved (as listen and
// connect do) into the numeric host that peer_address() would report, port kept; a Unix
// address unchanged. For comparing configured addresses with peer addresses.
Result<Address> canonical_address(const Address& address);

}  // namespace hast::real

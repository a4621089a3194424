// RealNetwork: listen and connect. Handles are in net_socket.cc, addresses in
// net_address.cc; the model is in real/net.h.
#include "real/net.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"
#include "real/net_socket.h"

namespace hast::real {
namespace {

using net::SocketAddress;

// A descriptor closed on every error path until it is handed to a handle.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Result<int> open_socket(int family, const Address& address) {
  int protocol = family == AF_UNIX ? 0 : IPPROTO_TCP;
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, protocol);
  if (fd >= 0) return fd;
  // A kernel without IPv6: the caller may skip such an address (HAST listens on
  // tcp6://[::] only where the family exists).
  if (errno == EAFNOSUPPORT) {
    return fail(Errc::unsupported,
                fmt::format("socket for {}: address family not supported", address.to_string()));
  }
  return fail(net::socket_error(errno, "socket for", address));
}

Result<void> set_option(int fd, int level, int name, const Address& address) {
  int one = 1;
  if (::setsockopt(fd, level, name, &one, sizeof one) == 0) return ok();
  return fail(net::socket_error(errno, "setsockopt on", address));
}

// bind(2) with HAST's messages: an address in use is Errc::busy, one that is not an
// address of this host Errc::invalid_argument.
Result<void> bind_to(int fd, const SocketAddress& where, std::string_view role,
                     const Address& address) {
  if (::bind(fd, where.get(), where.length) == 0) return ok();
  int error_number = errno;
  if (error_number == EADDRINUSE) {
    return fail(Errc::busy, fmt::format("{} {}: address in use", role, address.to_string()));
  }
  if (error_number == EADDRNOTAVAIL) {
    return fail(Errc::invalid_argument,
                fmt::format("{} {}: not an address of this host", role, address.to_string()));
  }
  return fail(net::socket_error(error_number, fmt::format("{}: bind", role), address));
}

Result<Address> local_address_of(int fd, const Address& address) {
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
    return fail(net::socket_error(errno, "getsockname on", address));
  }
  return net::to_address(local, length);
}

Result<std::unique_ptr<Listener>> listen_tcp(Ring& ring, const Address& address) {
  auto where = net::resolve(address, AF_UNSPEC);
  if (!where) return fail(where.error().wrap("listen"));
  auto fd = open_socket(where->family(), address);
  if (!fd) return fail(fd.error());
  OwnedFd owned(*fd);
  HAST_TRY(set_option(*fd, SOL_SOCKET, SO_REUSEADDR, address));
  // A v6 listener takes v6 only, so that tcp4 and tcp6 listeners can share a port and
  // peers are never reported as IPv4-mapped addresses.
  if (where->family() == AF_INET6) HAST_TRY(set_option(*fd, IPPROTO_IPV6, IPV6_V6ONLY, address));
  HAST_TRY(bind_to(*fd, *where, "listen on", address));
  if (::listen(*fd, listen_backlog) != 0) {
    return fail(net::socket_error(errno, "listen on", address));
  }
  auto bound = local_address_of(*fd, address);
  if (!bound) return fail(bound.error());
  std::unique_ptr<Listener> listener =
      std::make_unique<net::RealListener>(ring, owned.release(), *bound, std::nullopt);
  return listener;
}

// A socket file at the path of `address` is stale when nothing accepts connections on
// it: then it is removed. A probe connect that a live server answers (or queues) means
// the address is in use. The probe socket is non-blocking, so it never waits.
Result<void> remove_stale_socket(const SocketAddress& where, const Address& address) {
  struct stat status {};
  if (::lstat(address.path.c_str(), &status) != 0) {
    if (errno == ENOENT) return ok();
    return fail(net::socket_error(errno, "listen: stat", address));
  }
  if (!S_ISSOCK(status.st_mode)) {
    return fail(Errc::busy,
                fmt::format("listen on {}: exists and is not a socket", address.to_string()));
  }
  auto probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return fail(net::socket_error(errno, "listen: probe socket for", address));
  int rc = ::connect(probe, where.get(), where.length);
  int error_number = errno;
  ::close(probe);
  if (rc == 0 || error_number == EAGAIN || error_number == EINPROGRESS) {
    return fail(Errc::busy, fmt::format("listen on {}: address in use", address.to_string()));
  }
  if (error_number != ECONNREFUSED && error_number != ENOENT) {
    return fail(net::socket_error(error_number, "listen: probe", address));
  }
  if (::unlink(address.path.c_str()) != 0 && errno != ENOENT) {
    return fail(net::socket_error(errno, "listen: remove stale", address));
  }
  return ok();
}

Result<std::unique_ptr<Listener>> listen_unix(Ring& ring, const Address& address) {
  auto where = net::resolve(address, AF_UNSPEC);
  if (!where) return fail(where.error().wrap("listen"));
  auto fd = open_socket(AF_UNIX, address);
  if (!fd) return fail(fd.error());
  OwnedFd owned(*fd);
  if (::bind(*fd, where->get(), where->length) != 0) {
    if (errno != EADDRINUSE) return fail(net::socket_error(errno, "listen: bind", address));
    HAST_TRY(remove_stale_socket(*where, address));
    HAST_TRY(bind_to(*fd, *where, "listen on", address));
  }
  // From here on the file is ours: identify it so that close() removes only it.
  struct stat status {};
  if (::lstat(address.path.c_str(), &status) != 0 || ::listen(*fd, listen_backlog) != 0) {
    int error_number = errno;
    ::unlink(address.path.c_str());
    return fail(net::socket_error(error_number, "listen on", address));
  }
  net::RealListener::OwnedPath path{status.st_dev, status.st_ino};
  std::unique_ptr<Listener> listener =
      std::make_unique<net::RealListener>(ring, owned.release(), address, path);
  return listener;
}

// Binds a connecting socket to `source` (a TCP address of the remote's family).
Result<void> bind_source(int fd, const Address& source, int family) {
  if (!source.is_tcp()) {
    return fail(Errc::invalid_argument,
                fmt::format("source {}: not a TCP address", source.to_string()));
  }
  auto where = net::resolve(source, family);
  if (!where) return fail(where.error().wrap("source"));
  // Without a port, leave the choice of the port to connect(): the 4-tuple then only
  // has to be unique, not the local port.
  if (source.port == 0) {
    ignore_error(set_option(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, source),
                 "an optimisation; without it bind picks the port at once");
  }
  return bind_to(fd, *where, "source", source);
}

}  // namespace

Result<std::unique_ptr<Listener>> RealNetwork::listen(const Address& address) {
  constexpr auto pause = std::chrono::milliseconds(50);
  auto until = std::chrono::steady_clock::now() + listen_retry_;
  while (true) {
    auto listener = address.is_tcp() ? listen_tcp(ring_, address) : listen_unix(ring_, address);
    if (listener || listener.error().code() != Errc::busy) return listener;
    if (std::chrono::steady_clock::now() + pause > until) return listener;
    std::this_thread::sleep_for(pause);
  }
}

Result<std::unique_ptr<Connection>> RealNetwork::connect(const Address& remote,
                                                         const std::optional<Address>& source,
                                                         Deadline deadline) {
  std::string what = fmt::format("connect to {}", remote.to_string());
  auto where = net::resolve(remote, AF_UNSPEC);
  if (!where) return fail(where.error().wrap("connect"));
  auto fd = open_socket(where->family(), remote);
  if (!fd) return fail(fd.error());
  OwnedFd owned(*fd);
  if (remote.is_tcp()) {
    if (source) HAST_TRY(bind_source(*fd, *source, where->family()));
    HAST_TRY(set_option(*fd, IPPROTO_TCP, TCP_NODELAY, remote));
  } else if (source) {
    return fail(Errc::invalid_argument, what + ": a source address applies to TCP only");
  }
  int res = ring_.run(
      [&](io_uring_sqe* sqe) { io_uring_prep_connect(sqe, *fd, where->get(), where->length); },
      deadline);
  if (res < 0) return fail(errno_error(res, what));
  auto local = local_address_of(*fd, remote);
  if (!local) return fail(local.error());
  std::unique_ptr<Connection> connection = std::make_unique<net::RealConnection>(
      ring_, owned.release(), *local, net::to_address(where->storage, where->length));
  return connection;
}

Result<std::unique_ptr<Connection>> adopt_connection(Ring& ring, Connection& connection) {
  auto* real = dynamic_cast<net::RealConnection*>(&connection);
  if (real == nullptr) {
    return fail(Errc::invalid_argument,
                fmt::format("connection from {}: not a socket of this process",
                            connection.peer_address().to_string()));
  }
  auto fd = real->detach();
  if (!fd) return fail(fd.error());
  // Bytes the old handle read ahead belong to the stream: the new handle reads them first
  // (and reads ahead as the old one would have).
  std::unique_ptr<Connection> adopted = std::make_unique<net::RealConnection>(
      ring, *fd, real->local_address(), real->peer_address(), real->take_unread());
  return adopted;
}

}  // namespace hast::real

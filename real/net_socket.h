// Internals of RealNetwork (real/net.h): socket addresses and their resolution, the
// descriptor shared by the fibers that wait on it, and the Connection and Listener
// handles. Only real/net*.cc and their tests include this file.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/io/network.h"
#include "core/result.h"
#include "real/ring.h"

namespace hast::real::net {

// A resolved address in the form bind and connect take.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Resolves `address`: a Unix path as is; a TCP host first as a numeric literal, then as
// a name through getaddrinfo (blocking). `family` (AF_INET, AF_INET6 or AF_UNSPEC)
// narrows the choice further than the address's own kind. The first result wins.
// Errors: Errc::not_found (unknown name), Errc::invalid_argument (wrong family, path too
// long).
Result<SocketAddress> resolve(const Address& address, int family);

// The canonical Address of a socket address (see real/net.h).
Address to_address(const sockaddr_storage& storage, socklen_t length);

// Errors from plain socket calls: `errno` as an Error naming `what` and `address`.
Error socket_error(int error_number, std::string_view what, const Address& address);

// One socket descriptor and the ring operations in flight on it.
//
// Model: run() counts the operation in flight for as long as the ring holds it.
// close() marks the socket closed and shuts both directions down, so that operations in
// flight complete promptly (recv with 0 bytes, send with EPIPE, accept with an error);
// the descriptor is closed by whichever of close() and the last operation comes last.
// After close() no new operation starts.
class Socket {
 public:
  explicit Socket(int fd);
  // Closes the descriptor if still open; asserts nothing is in flight.
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  bool closed() const { return closed_; }
  unsigned in_flight() const { return in_flight_; }

  // Runs one ring operation on the descriptor: `prep(sqe, fd)` prepares it. Returns
  // cqe->res (or -ETIMEDOUT / -ECANCELED, see Ring::run). Precondition: !closed().
  template <typename Prep>
  int run(Ring& ring, Prep&& prep, Deadline deadline) {
    HAST_ASSERT(!closed_);
    HAST_ASSERT(fd_ >= 0);
    in_flight_++;
    OpGuard guard{*this};
    return ring.run([&](io_uring_sqe* sqe) { prep(sqe, fd_); }, deadline);
  }

  // Idempotent; never suspends.
  void close();

  // Gives the descriptor away (to a handle on another ring) without closing it; the
  // socket is then closed. Precondition: !closed(), nothing in flight.
  int detach();

  // Runs `call(fd)`, a non-blocking call that never waits (a MSG_DONTWAIT send), outside
  // the ring; returns its result. Precondition: !closed().
  template <typename Call>
  auto now(Call&& call) {
    HAST_ASSERT(!closed_);
    HAST_ASSERT(fd_ >= 0);
    return call(fd_);
  }

 private:
  // Ends one operation, also when its fiber is unwound.
  struct OpGuard {
    Socket& socket;
    ~OpGuard() { socket.op_done(); }
  };

  void op_done();
  void release();

  int fd_;
  unsigned in_flight_ = 0;
  bool closed_ = false;
};

// What a RealConnection leaves to the handle that adopts its descriptor: the bytes it
// received and nobody consumed yet, and whether its last ring recv was a long one (so the new
// handle's first read-ahead is short, as the old one's would have been).
struct Unread {
  std::vector<std::byte> bytes;
  bool after_long_read = false;
};

// A connected stream socket (accepted or connected). Contract: core/io/network.h and
// real/net.h. Errors: Errc::disconnected when the peer closed or reset the connection or
// when it was closed locally; Errc::timed_out at the deadline; Errc::cancelled when the
// calling fiber is cancelled.
//
// Read-ahead: a recv_exact of fewer than read_ahead_bytes asks the socket for up to
// read_ahead_bytes and keeps what it did not ask for, so a message's header, nv and a
// small payload (a 4 KiB request) cost one ring operation, not three, and so do several
// such messages sent together (a batch of requests or replies). Longer reads go
// straight into the caller's buffer once the kept bytes are used up, as one ring recv
// that completes when the buffer is full (MSG_WAITALL), not at every segment. Kept bytes
// move with the descriptor (take_unread, the constructor's `unread`).
//
// After such a long read the next read-ahead asks for short_read_ahead_bytes only: a
// stream of large messages (1 MiB writes) would otherwise bring the first 64 KiB of each
// payload in with the header and copy them a second time out of the read-ahead buffer (5 %
// of the secondary's CPU). Small messages still arrive in batches: only the first
// read-ahead after a long read is short.
class RealConnection final : public Connection {
 public:
  static constexpr std::size_t read_ahead_bytes = 64 * 1024;
  static constexpr std::size_t short_read_ahead_bytes = 4 * 1024;

  // `unread`: what a previous handle of the descriptor left (take_unread).
  RealConnection(Ring& ring, int fd, Address local, Address peer, Unread unread = {});

  // Both sends first try a non-blocking sendmsg outside the ring, which a socket with
  // room in its buffer takes whole: no ring operation, no suspension. What it does not
  // take goes through the ring, one sendmsg of both pieces that completes only once all
  // of it was sent (MSG_WAITALL), unless an error or the deadline ends it first.
  Result<void> send(std::span<const std::byte> data, Deadline deadline) override;
  Result<void> send_gather(std::span<const std::byte> head, std::span<const std::byte> body,
                           Deadline deadline) override;
  Result<void> recv_exact(std::span<std::byte> buffer, Deadline deadline) override;
  void close() override { socket_.close(); }
  // The descriptor, for a handle on another ring (adopt_connection); this handle is then
  // closed. Errors: Errc::disconnected when it was closed already. Precondition: no call
  // is in progress on it.
  Result<int> detach();
  // The read-ahead bytes not consumed yet and the read-ahead state, for the handle that
  // adopts the descriptor; none are kept afterwards.
  Unread take_unread();
  Address peer_address() const override { return peer_; }
  Address local_address() const override { return local_; }

 private:
  Error failure(int negative_errno, std::string_view what) const;
  Error closed_error(std::string_view what) const;
  // Moves kept bytes into the front of `buffer`; returns how many.
  std::size_t take_kept(std::span<std::byte> buffer);
  // One ring recv into `into`: the byte count (> 0) or the error. `whole`: the kernel
  // fills all of `into` before it completes (MSG_WAITALL; fewer bytes only when the peer
  // closed, at an error or at the deadline), else it completes with what is there.
  Result<std::size_t> recv_once(std::span<std::byte> into, bool whole, Deadline deadline);

  Ring& ring_;
  Socket socket_;
  // Read-ahead: rx_[rx_begin_, rx_end_) was received and not consumed yet.
  std::unique_ptr<std::byte[]> rx_;
  std::size_t rx_begin_ = 0;
  std::size_t rx_end_ = 0;
  bool after_long_read_ = false;  // the last ring recv went into a caller's long buffer
  Address local_;
  Address peer_;
};

// A listening socket. accept() sets TCP_NODELAY on TCP connections and skips over
// connections that failed before they were accepted; when the process or the system is
// out of descriptors or memory it pauses (accept_pause) and tries again, so a daemon's
// accept loop survives the shortage. Errors: Errc::cancelled after close() or when the
// calling fiber is cancelled; Errc::timed_out at the deadline; other errors of the
// listening socket itself as errno_error maps them.
class RealListener final : public Listener {
 public:
  // A Unix listener's socket file, identified by (device, inode): close() removes it
  // if the path still names that file.
  struct OwnedPath {
    dev_t device = 0;
    ino_t inode = 0;
  };
  RealListener(Ring& ring, int fd, Address address, std::optional<OwnedPath> owned_path);
  ~RealListener() override;

  Result<std::unique_ptr<Connection>> accept(Deadline deadline) override;
  void close() override;
  Address address() const override { return address_; }

 private:
  // One accept attempt: a connection, or std::nullopt for a transient failure to retry.
  Result<std::optional<std::unique_ptr<Connection>>> accept_once(Deadline deadline);
  Result<std::optional<std::unique_ptr<Connection>>> adopt(int fd, const sockaddr_storage& peer,
                                                           socklen_t peer_length);
  Result<void> pause(Deadline deadline);
  void remove_socket_file();

  Ring& ring_;
  Socket socket_;
  Address address_;
  std::optional<OwnedPath> owned_path_;
};

}  // namespace hast::real::net

// RealNetwork's handles: the shared descriptor (Socket), connections and listeners. The
// model, and why close() shuts down before it closes, is in real/net.h.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <utility>

#include <fmt/format.h>

#include "core/assert.h"
#include "real/net_socket.h"

namespace hast::real::net {
namespace {

// Largest byte count one send or recv asks for: ring results are ints.
constexpr std::size_t chunk_bytes_max = std::size_t{1} << 30;
static_assert(chunk_bytes_max <= INT_MAX);

// How long accept() waits before trying again when descriptors or memory ran out.
constexpr long accept_pause_ns = 100'000'000;

// accept(2) failures that concern one incoming connection, not the listener: "treat
// them like EAGAIN by retrying" (the Linux man page).
bool accept_failure_is_transient(int error_number) {
  switch (error_number) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENONET:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
      return true;
    default:
      return false;
  }
}

bool accept_failure_is_shortage(int error_number) {
  return error_number == EMFILE || error_number == ENFILE || error_number == ENOBUFS ||
         error_number == ENOMEM;
}

}  // namespace

// ---- Socket ----

Socket::Socket(int fd) : fd_(fd) {
  HAST_ASSERT(fd >= 0);
}

Socket::~Socket() {
  if (fd_ < 0) return;
  HAST_ASSERT_MSG(in_flight_ == 0, "socket destroyed while {} operations use it", in_flight_);
  release();
}

void Socket::close() {
  if (closed_) return;
  closed_ = true;
  // Completes what is in flight: a recv returns 0, a send EPIPE, an accept an error. A
  // socket that never connected answers ENOTCONN; nothing waits on it then.
  ::shutdown(fd_, SHUT_RDWR);
  if (in_flight_ == 0) release();
}

int Socket::detach() {
  HAST_ASSERT(!closed_);
  HAST_ASSERT_MSG(in_flight_ == 0, "socket handed over while {} operations use it", in_flight_);
  closed_ = true;
  return std::exchange(fd_, -1);
}

void Socket::op_done() {
  HAST_ASSERT(in_flight_ > 0);
  in_flight_--;
  if (closed_ && in_flight_ == 0) release();
}

void Socket::release() {
  HAST_ASSERT(fd_ >= 0);
  HAST_ASSERT(in_flight_ == 0);
  ::close(fd_);
  fd_ = -1;
}

// ---- RealConnection ----

RealConnection::RealConnection(Ring& ring, int fd, Address local, Address peer, Unread unread)
    : ring_(ring),
      socket_(fd),
      rx_(std::make_unique<std::byte[]>(std::max(read_ahead_bytes, unread.bytes.size()))),
      after_long_read_(unread.after_long_read),
      local_(std::move(local)),
      peer_(std::move(peer)) {
  std::copy(unread.bytes.begin(), unread.bytes.end(), rx_.get());
  rx_end_ = unread.bytes.size();
}

Unread RealConnection::take_unread() {
  HAST_ASSERT(rx_begin_ <= rx_end_);
  Unread unread{std::vector<std::byte>(rx_.get() + rx_begin_, rx_.get() + rx_end_),
                after_long_read_};
  rx_begin_ = rx_end_ = 0;
  after_long_read_ = false;
  return unread;
}

Result<int> RealConnection::detach() {
  if (socket_.closed()) return fail(closed_error("hand over"));
  return socket_.detach();
}

Error RealConnection::closed_error(std::string_view what) const {
  return Error(Errc::disconnected,
               fmt::format("{} on {}: connection closed locally", what, peer_.to_string()));
}

Error RealConnection::failure(int negative_errno, std::string_view what) const {
  HAST_ASSERT(negative_errno < 0);
  // Whatever the operation saw, a local close() is what ended it.
  if (socket_.closed()) return closed_error(what);
  return errno_error(negative_errno, fmt::format("{} on {}", what, peer_.to_string()));
}

Result<void> RealConnection::send(std::span<const std::byte> data, Deadline deadline) {
  return send_gather(data, {}, deadline);
}

Result<void> RealConnection::send_gather(std::span<const std::byte> head,
                                         std::span<const std::byte> body, Deadline deadline) {
  std::size_t total = head.size() + body.size();
  std::size_t sent = 0;
  bool first = true;
  while (sent < total) {
    if (socket_.closed()) return fail(closed_error("send"));
    // Whatever of the head is left, then the body. The iovecs and the msghdr live until
    // the operation completes (Ring::run waits).
    iovec pieces[2];
    std::size_t count = 0;
    if (sent < head.size()) {
      pieces[count++] = iovec{const_cast<std::byte*>(head.data() + sent), head.size() - sent};
    }
    std::size_t body_at = sent < head.size() ? 0 : sent - head.size();
    if (body_at < body.size()) {
      pieces[count++] = iovec{const_cast<std::byte*>(body.data() + body_at), body.size() - body_at};
    }
    // Ring results are ints: keep each operation under chunk_bytes_max.
    std::size_t room = chunk_bytes_max;
    for (std::size_t i = 0; i < count; i++) {
      pieces[i].iov_len = std::min(pieces[i].iov_len, room);
      room -= pieces[i].iov_len;
    }
    msghdr message{};
    message.msg_iov = pieces;
    message.msg_iovlen = count;
    int res = 0;
    if (first) {
      // Usually the socket takes it all at once: no ring operation, no suspension.
      first = false;
      ssize_t direct =
          socket_.now([&](int fd) { return ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT); });
      if (direct < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      res = direct < 0 ? -errno : static_cast<int>(direct);
    } else {
      // MSG_WAITALL: the kernel sends the rest as room frees up (a short count only at an
      // error or a cancellation), one completion and one wake-up instead of one per
      // partial send.
      auto prep = [&](io_uring_sqe* sqe, int fd) {
        io_uring_prep_sendmsg(sqe, fd, &message, MSG_NOSIGNAL | MSG_WAITALL);
      };
      res = socket_.run(ring_, prep, deadline);
    }
    if (res < 0) return fail(failure(res, "send"));
    if (res == 0) return fail(failure(-EPIPE, "send"));
    sent += static_cast<std::size_t>(res);
  }
  HAST_ASSERT(sent == total);
  return ok();
}

std::size_t RealConnection::take_kept(std::span<std::byte> buffer) {
  HAST_ASSERT(rx_begin_ <= rx_end_);
  std::size_t take = std::min(buffer.size(), rx_end_ - rx_begin_);
  if (take == 0) return 0;
  std::copy_n(rx_.get() + rx_begin_, take, buffer.data());
  rx_begin_ += take;
  if (rx_begin_ == rx_end_) rx_begin_ = rx_end_ = 0;
  return take;
}

Result<std::size_t> RealConnection::recv_once(std::span<std::byte> into, bool whole,
                                              Deadline deadline) {
  if (socket_.closed()) return fail(closed_error("recv"));
  std::byte* next = into.data();
  std::size_t length = std::min(into.size(), chunk_bytes_max);
  int flags = whole ? MSG_WAITALL : 0;
  int res = socket_.run(
      ring_, [&](io_uring_sqe* sqe, int fd) { io_uring_prep_recv(sqe, fd, next, length, flags); },
      deadline);
  if (res < 0) return fail(failure(res, "recv"));
  if (res == 0) {
    if (socket_.closed()) return fail(closed_error("recv"));
    return fail(Errc::disconnected, fmt::format("recv on {}: peer closed", peer_.to_string()));
  }
  return static_cast<std::size_t>(res);
}

Result<void> RealConnection::recv_exact(std::span<std::byte> buffer, Deadline deadline) {
  // Closed locally: nothing more is delivered, kept bytes included.
  if (socket_.closed() && !buffer.empty()) return fail(closed_error("recv"));
  std::size_t received = take_kept(buffer);
  while (received < buffer.size()) {
    std::size_t left = buffer.size() - received;
    if (left >= read_ahead_bytes) {
      // Long enough to go straight into the caller's buffer, in one completion.
      auto got = recv_once(buffer.subspan(received), true, deadline);
      if (!got) return fail(got.error());
      received += *got;
      after_long_read_ = true;
      continue;
    }
    HAST_ASSERT(rx_begin_ == 0 && rx_end_ == 0);
    std::size_t ahead =
        after_long_read_ ? std::max(left, short_read_ahead_bytes) : read_ahead_bytes;
    auto got = recv_once(std::span(rx_.get(), ahead), false, deadline);
    if (!got) return fail(got.error());
    after_long_read_ = false;
    rx_end_ = *got;
    received += take_kept(buffer.subspan(received));
  }
  HAST_ASSERT(received == buffer.size());
  return ok();
}

// ---- RealListener ----

RealListener::RealListener(Ring& ring, int fd, Address address, std::optional<OwnedPath> owned_path)
    : ring_(ring), socket_(fd), address_(std::move(address)), owned_path_(owned_path) {
  HAST_ASSERT(address_.is_tcp() != owned_path_.has_value());
}

RealListener::~RealListener() {
  close();
}

void RealListener::close() {
  if (socket_.closed()) return;
  socket_.close();
  remove_socket_file();
}

// Removes the socket file only if it is still ours: another listener may have replaced
// it since (for instance after this process was thought dead).
void RealListener::remove_socket_file() {
  if (!owned_path_) return;
  struct stat status {};
  if (::lstat(address_.path.c_str(), &status) != 0) return;
  if (status.st_dev != owned_path_->device || status.st_ino != owned_path_->inode) return;
  ::unlink(address_.path.c_str());
}

Result<std::unique_ptr<Connection>> RealListener::accept(Deadline deadline) {
  while (true) {
    auto accepted = accept_once(deadline);
    if (!accepted) return fail(accepted.error());
    if (accepted->has_value()) return std::move(**accepted);
  }
}

Result<std::optional<std::unique_ptr<Connection>>> RealListener::accept_once(Deadline deadline) {
  auto cancelled = [this] {
    return fail(Errc::cancelled,
                fmt::format("accept on {}: listener closed", address_.to_string()));
  };
  if (socket_.closed()) return cancelled();
  sockaddr_storage peer{};
  socklen_t peer_length = sizeof peer;
  auto* peer_pointer = reinterpret_cast<sockaddr*>(&peer);
  int res = socket_.run(
      ring_,
      [&](io_uring_sqe* sqe, int fd) {
        io_uring_prep_accept(sqe, fd, peer_pointer, &peer_length, SOCK_CLOEXEC);
      },
      deadline);
  // A connection that completed while close() ran is dropped: accept() reports the
  // close, as its contract says.
  if (res >= 0 && socket_.closed()) ::close(res);
  if (socket_.closed()) return cancelled();
  if (res >= 0) return adopt(res, peer, peer_length);
  if (accept_failure_is_transient(-res)) return std::optional<std::unique_ptr<Connection>>();
  if (accept_failure_is_shortage(-res)) {
    HAST_TRY(pause(deadline));
    return std::optional<std::unique_ptr<Connection>>();
  }
  return fail(errno_error(res, fmt::format("accept on {}", address_.to_string())));
}

// Wraps an accepted descriptor. A connection that cannot be set up (it was reset before
// TCP_NODELAY could be set, say) is closed and skipped: std::nullopt.
Result<std::optional<std::unique_ptr<Connection>>> RealListener::adopt(int fd,
                                                                       const sockaddr_storage& peer,
                                                                       socklen_t peer_length) {
  HAST_ASSERT(fd >= 0);
  int one = 1;
  bool usable =
      !address_.is_tcp() || ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
  sockaddr_storage local{};
  socklen_t local_length = sizeof local;
  usable = usable && ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0;
  if (!usable) {
    ::close(fd);
    return std::optional<std::unique_ptr<Connection>>();
  }
  std::unique_ptr<Connection> connection = std::make_unique<RealConnection>(
      ring_, fd, to_address(local, local_length), to_address(peer, peer_length));
  return std::optional<std::unique_ptr<Connection>>(std::move(connection));
}

// Sleeps accept_pause_ns on the ring (or until the deadline).
Result<void> RealListener::pause(Deadline deadline) {
  __kernel_timespec delay{0, accept_pause_ns};
  int res =
      ring_.run([&](io_uring_sqe* sqe) { io_uring_prep_timeout(sqe, &delay, 0, 0); }, deadline);
  if (res == -ETIME || res == 0) return ok();
  return fail(errno_error(res, fmt::format("accept on {}", address_.to_string())));
}

}  // namespace hast::real::net

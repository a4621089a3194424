#include "real/ring.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::real {
namespace {

// user_data tags that are not an Op: completions of cancel requests (ignored) and of the
// eventfd read. Ops are at least 8-byte aligned, so they never collide with these.
constexpr std::uint64_t tag_ignored = 0;
constexpr std::uint64_t tag_eventfd = 1;

__kernel_timespec to_timespec(Duration duration) {
  if (duration < Duration::zero()) duration = Duration::zero();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(duration);
  return __kernel_timespec{seconds.count(), (duration - seconds).count()};
}

}  // namespace

Ring::Ring(fiber::Scheduler& scheduler, RingPolling polling, unsigned entries, BufferPool& pool)
    : scheduler_(scheduler),
      poll_(polling.max),
      poll_max_ns_(polling.max.count()),
      contended_(polling.contended),
      only_on_idle_cpus_(polling.only_on_idle_cpus),
      pool_(pool) {
  // COOP_TASKRUN: completions are not signalled to this thread by an interrupt while it
  // runs fibers; it picks them up on its next io_uring_enter, which is where it waits
  // anyway (a blocked wait is still woken). Kernels before 5.19 refuse the flag.
  int rc = io_uring_queue_init(entries, &ring_, IORING_SETUP_COOP_TASKRUN);
  if (rc == -EINVAL) rc = io_uring_queue_init(entries, &ring_, 0);
  HAST_ASSERT_MSG(rc == 0, "io_uring_queue_init: {}", std::strerror(-rc));
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  HAST_ASSERT_MSG(event_fd_ >= 0, "eventfd: {}", std::strerror(errno));
  // A sparse table (5.19+) costs nothing until a chunk is registered into it.
  fixed_on_ = io_uring_register_buffers_sparse(&ring_, pool_.chunks_max()) == 0;
  if (fixed_on_) chunks_.assign(pool_.chunks_max(), Chunk::unknown);
}

Ring::~Ring() {
  HAST_ASSERT_MSG(in_flight_ == 0, "Ring destroyed with operations in flight (drain first)");
  io_uring_queue_exit(&ring_);  // cancels the eventfd read, if armed
  ::close(event_fd_);
  if (loadavg_fd_ >= 0) ::close(loadavg_fd_);
}

io_uring_sqe* Ring::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  HAST_ASSERT_MSG(sqe != nullptr, "io_uring submission queue full after submit");
  return sqe;
}

// Disk operations: they start the device's work at submission. The eventfd and signalfd
// reads of hastd's main loop and the FUSE frontend count too (the opcode does not tell
// them apart): at worst such a read goes at once, or one always in flight keeps a ring
// from starting its disk operations early.
bool Ring::starts_device_work(std::uint8_t opcode) {
  switch (opcode) {
    case IORING_OP_READ:
    case IORING_OP_WRITE:
    case IORING_OP_READV:
    case IORING_OP_WRITEV:
    case IORING_OP_FSYNC:
    case IORING_OP_FALLOCATE:
      return true;
    default:
      return false;
  }
}

// Measured (scripts/bench, 4 KiB QD1 writes): a write waiting in the submission queue
// behind the remote leg's send (and the secondary, which that send wakes and which may
// take this CPU) added 20-50 us to every write. Submitting it alone costs one
// io_uring_enter, so only the first disk operation of a burst goes at once; the others
// join the batch of the next wait(), behind a device that is busy anyway. (A fullsync
// write alone sends its remote leg first on purpose, Primary::let_remote_leg_lead: its
// local write is prepared after the send, with nothing else runnable, and goes with the
// next wait().)
void Ring::start_now_if_alone(const Op& op) {
  if (!op.device || device_in_flight_ != 1 || scheduler_.runnable_count() == 0) return;
  int rc = io_uring_submit(&ring_);
  HAST_ASSERT_MSG(rc >= 0 || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY, "io_uring submit: {}",
                  std::strerror(-rc));
}

int Ring::await(Op& op, Deadline deadline) {
  in_flight_++;
  op.waker = scheduler_.prepare_wait();
  fiber::WakeReason reason = scheduler_.wait(deadline);
  if (op.done) return op.result;
  // Timed out or cancelled: the kernel still owns the buffers until the CQE arrives.
  cancel(op);
  while (!op.done) {
    op.waker = scheduler_.prepare_wait();
    scheduler_.wait(std::nullopt, /*interruptible=*/false);
  }
  if (op.result != -ECANCELED) return op.result;
  return reason == fiber::WakeReason::timed_out ? -ETIMEDOUT : -ECANCELED;
}

void Ring::cancel(Op& op) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_cancel(sqe, &op, 0);
  io_uring_sqe_set_data64(sqe, tag_ignored);
}

int Ring::fixed(const void* data, std::size_t size) {
  if (!fixed_on_) return -1;
  int index = pool_.chunk_of(data, size);
  if (index < 0) return -1;
  Chunk& state = chunks_[static_cast<unsigned>(index)];
  if (state == Chunk::unknown) {
    std::span<std::byte> bytes = pool_.chunk(static_cast<unsigned>(index));
    iovec vector{bytes.data(), bytes.size()};
    // Pins the chunk's pages (faulting them in) until the ring is torn down. Refused
    // (ENOMEM past RLIMIT_MEMLOCK without CAP_IPC_LOCK, say): this chunk goes unfixed.
    int rc = io_uring_register_buffers_update_tag(&ring_, static_cast<unsigned>(index), &vector,
                                                  nullptr, 1);
    state = rc == 1 ? Chunk::registered : Chunk::refused;
    (state == Chunk::registered ? fixed_registered_ : fixed_refused_)++;
  }
  return state == Chunk::registered ? index : -1;
}

void Ring::arm_eventfd() {
  if (eventfd_armed_) return;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_read(sqe, event_fd_, &event_value_, sizeof event_value_, 0);
  io_uring_sqe_set_data64(sqe, tag_eventfd);
  eventfd_armed_ = true;
}

void Ring::wait(Deadline deadline) {
  arm_eventfd();
  Duration poll_max(poll_max_ns_.load(std::memory_order_relaxed));
  if (poll_max != poll_.max()) poll_ = PollWindow(poll_max);
  // The window learns only from waits that found nothing ready (polling on).
  bool learn = poll_max > Duration::zero() && io_uring_cq_ready(&ring_) == 0;
  Instant start{};
  if (learn) {
    start = scheduler_.clock().now();
    Duration window = poll_.current(start);
    if (window > Duration::zero() && cpus_spare(start)) {
      io_uring_submit(&ring_);
      Instant until = start + window;
      if (deadline && *deadline < until) until = *deadline;
      Spin spun = spin(until);
      if (spun == Spin::caught) {
        caught_spinning_++;
        poll_.record(scheduler_.clock().now() - start, /*caught=*/true);
        reap();
        return;
      }
      if (spun == Spin::contended) {
        poll_.contended(scheduler_.clock().now());
        learn = false;
      }
    }
  }
  // One io_uring_enter submits what the last pass prepared and waits for a completion
  // (liburing skips the call when nothing is to submit and a completion is ready).
  io_uring_cqe* cqe = nullptr;
  int rc;
  if (deadline) {
    __kernel_timespec timeout = to_timespec(*deadline - scheduler_.clock().now());
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &timeout, nullptr);
  } else {
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, nullptr, nullptr);
  }
  HAST_ASSERT_MSG(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY,
                  "io_uring wait: {}", std::strerror(-rc));
  if (learn) poll_.record(scheduler_.clock().now() - start, /*caught=*/false);
  reap();
}

// Spins until a completion is queued or `until`. Each round is one sched_yield(): another
// runnable thread gets this CPU, and the return from the system call runs the task work
// through which io_uring posts completions to a COOP_TASKRUN ring. A round that took
// longer than contended_ means another thread had the CPU meanwhile: spinning then only
// competes with work, so it stops and the wait blocks.
Ring::Spin Ring::spin(Instant until) {
  Instant last = scheduler_.clock().now();
  while (true) {
    sched_yield();
    if (io_uring_cq_ready(&ring_) > 0) return Spin::caught;
    Instant now = scheduler_.clock().now();
    if (now - last > contended_) return Spin::contended;
    if (now >= until) return Spin::expired;
    last = now;
  }
}

// /proc/loadavg's fourth field is "running/total": the threads runnable right now, this
// one included. Unreadable: assume CPUs are spare. The answer holds for spare_recheck: a
// read is a system call, and it came before the submission of what this pass prepared (a
// disk write waited for it), at every wait (measured: several per request at QD1).
bool Ring::cpus_spare(Instant now) {
  if (!only_on_idle_cpus_) return true;
  if (loadavg_fd_ == -1) {  // first spin: open it (rings that never spin never do)
    loadavg_fd_ = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (loadavg_fd_ < 0) loadavg_fd_ = -2;
    cpus_ = std::max(1, get_nprocs());
  }
  if (loadavg_fd_ < 0) return true;
  if (spare_checked_ && now < *spare_checked_ + spare_recheck) return spare_;
  spare_checked_ = now;
  spare_ = true;
  char text[128];
  ssize_t n = ::pread(loadavg_fd_, text, sizeof text - 1, 0);
  if (n <= 0) return true;
  text[n] = '\0';
  int running = 0;
  if (std::sscanf(text, "%*s %*s %*s %d/", &running) != 1) return true;
  spare_ = running <= cpus_;
  return spare_;
}

void Ring::reap() {
  io_uring_cqe* cqe = nullptr;
  unsigned head = 0;
  unsigned count = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    count++;
    std::uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag == tag_ignored) continue;
    if (tag == tag_eventfd) {
      eventfd_armed_ = false;
      notify_count_++;
      if (on_notify_) on_notify_();
      continue;
    }
    Op* op = reinterpret_cast<Op*>(static_cast<std::uintptr_t>(tag));
    op->result = cqe->res;
    op->done = true;
    in_flight_--;
    if (op->device) device_in_flight_--;
    op->waker.wake();
  }
  io_uring_cq_advance(&ring_, count);
}

void Ring::drain() {
  HAST_ASSERT_MSG(!scheduler_.in_fiber(), "Ring::drain() called from a fiber");
  if (in_flight_ == 0) return;
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
  io_uring_sqe_set_data64(sqe, tag_ignored);
  while (in_flight_ > 0) {
    io_uring_submit(&ring_);
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&ring_, &cqe);
    HAST_ASSERT_MSG(rc == 0 || rc == -EINTR, "io_uring drain: {}", std::strerror(-rc));
    reap();
  }
}

void Ring::notify() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
}

int errno_for(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
      return EINVAL;
    case Errc::no_space:
      return ENOSPC;
    case Errc::unsupported:
      return EOPNOTSUPP;
    default:
      return EIO;
  }
}

Error errno_error(int negative_errno, std::string_view what) {
  int e = -negative_errno;
  std::string context = fmt::format("{}: {}", what, std::strerror(e));
  switch (e) {
    case ECONNREFUSED:
      return Error(Errc::refused, context);
    case ETIMEDOUT:
    case ETIME:
      return Error(Errc::timed_out, context);
    case ECANCELED:
      return Error(Errc::cancelled, context);
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return Error(Errc::disconnected, context);
    case EADDRINUSE:
    case EBUSY:
    case EWOULDBLOCK:
      return Error(Errc::busy, context);
    case EOPNOTSUPP:
    case ENOTTY:
    case ENOSYS:
      return Error(Errc::unsupported, context);
    case ENOENT:
    case ENXIO:
      return Error(Errc::not_found, context);
    case ENOSPC:
      return Error(Errc::no_space, context);
    case EINVAL:
    case EADDRNOTAVAIL:
      return Error(Errc::invalid_argument, context);
    case EACCES:
    case EPERM:
      return Error(Errc::refused, context);
    default:
      return Error(Errc::io, context);
  }
}

}  // namespace hast::real

// Ring: the production poller. One io_uring per scheduler thread; every disk, socket and
// timer wait of real/ goes through it (DESIGN.md §3).
//
// Model: a fiber prepares one SQE with run(), which suspends it until the CQE arrives and
// returns cqe->res (a byte count, a descriptor, or -errno). SQEs prepared during one
// scheduling pass are submitted together when the scheduler runs out of runnable fibers
// and calls wait(), which submits them and blocks in the kernel until a completion or the
// next timer in one io_uring_enter (none when there is nothing to submit and a completion
// is ready). One exception: a disk operation (read, write, fsync, fallocate) prepared while
// no other disk operation is in flight and other fibers are runnable is submitted at once,
// so the device starts while those fibers run (a write is not held up behind the send of
// its remote leg); the rest of a burst waits for the batch. The ring is set up with
// COOP_TASKRUN where the kernel has it (5.19+).
//
// Buffers: run() returns only after the kernel has completed the operation, so the
// caller's buffers are never touched after it returns. A deadline that passes or a
// cancelled fiber cancels the operation (IORING_OP_ASYNC_CANCEL) and still waits for its
// completion; run() then returns -ETIMEDOUT or -ECANCELED unless the operation finished
// first. Before the scheduler is shut down, the owner calls drain(): every operation in
// flight is cancelled and completed, so unwinding fibers frees no buffer the kernel holds.
//
// Polling: with a non-zero `poll_max`, wait() first spins for an adaptive window
// (real/poll_window.h), yielding the CPU between looks at the completion queue, and
// blocks only when nothing arrived within it. Lower latency for request/reply traffic on
// machines where a blocked thread's CPU is slow to wake, at the cost of CPU time spent
// spinning; the window shrinks to nothing when waits are long (an idle or disk-bound
// thread). Zero (the default): always block at once.
//
// Registered buffers: fixed() tells a disk operation the registered-buffer index of a
// buffer that lies in a BufferPool chunk (real/buffer_pool.h), registering the chunk
// with this ring at its first use (the ring's table has a sparse slot per chunk). A fixed
// read or write then finds the buffer's pages pinned already. Where the kernel or the
// locked-memory limit refuses, fixed() answers -1 and the operation takes its buffer the
// ordinary way.
//
// Threads: a Ring serves the one thread that runs its scheduler; notify() is the only
// method another thread may call (it wakes wait() through an eventfd).
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/fiber/scheduler.h"
#include "core/io/clock.h"
#include "real/buffer_pool.h"
#include "real/poll_window.h"

namespace hast::real {

// How a Ring polls before it blocks (see Polling above).
struct RingPolling {
  Duration max{};  // the longest spin; zero: never spin
  // A spin round (one sched_yield) longer than this means another thread had the CPU
  // for a time slice: the spin stops, and spinning rests a while (PollWindow).
  Duration contended = std::chrono::microseconds(250);
  // Spin only while no more threads are runnable than the machine has CPUs (read from
  // /proc/loadavg before a spin, at most once a millisecond): a spinning thread that
  // yields to a CPU-bound one waits out that thread's time slice, where a blocked one
  // would have been woken at once.
  bool only_on_idle_cpus = true;
};

class Ring final : public fiber::Poller {
 public:
  // Aborts when the ring cannot be set up (io_uring unavailable): the daemon cannot run.
  // `pool`: whose chunks fixed() registers (the process's pool by default).
  explicit Ring(fiber::Scheduler& scheduler, RingPolling polling = {}, unsigned entries = 256,
                BufferPool& pool = BufferPool::process());
  ~Ring() override;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Prepares one SQE with `prep(sqe)`, submits it with the next batch and suspends the
  // calling fiber until it completes. Returns cqe->res. Called from a fiber.
  template <typename Prep>
  int run(Prep&& prep, Deadline deadline = std::nullopt) {
    Op op;
    io_uring_sqe* sqe = next_sqe();
    prep(sqe);
    io_uring_sqe_set_data(sqe, &op);
    op.device = starts_device_work(sqe->opcode);
    if (op.device) device_in_flight_++;
    start_now_if_alone(op);
    return await(op, deadline);
  }

  // Poller: submits pending SQEs and waits for completions until `deadline`.
  void wait(Deadline deadline) override;

  // Cancels every operation in flight and waits until each has completed. Called from
  // the scheduler's thread, outside any fiber, before Scheduler::shutdown().
  void drain();

  // Wakes a blocked wait() from any thread; the poller then calls the on_notify callback
  // on the scheduler's thread (outside fibers), which may wake or cancel fibers. Several
  // notifications may be seen as one.
  void notify();
  void set_on_notify(std::function<void()> callback) { on_notify_ = std::move(callback); }
  std::uint64_t notify_count() const { return notify_count_; }

  std::uint64_t in_flight() const { return in_flight_; }
  // A new polling maximum (zero: none); any thread may call it, the next wait() takes it.
  void set_poll_max(Duration max) { poll_max_ns_.store(max.count(), std::memory_order_relaxed); }
  // Waits that ended in the spin (for statistics and tests).
  std::uint64_t caught_spinning() const { return caught_spinning_; }

  // The registered-buffer index for a fixed read or write of [data, data + size), or -1
  // when it is not in the pool or its chunk cannot be registered. Called from the ring's
  // thread; a first use of a chunk costs one io_uring_register call.
  int fixed(const void* data, std::size_t size);
  // Chunks registered with this ring, and chunks whose registration the kernel refused
  // (the locked-memory limit without CAP_IPC_LOCK): for tests and statistics.
  unsigned fixed_registered() const { return fixed_registered_; }
  unsigned fixed_refused() const { return fixed_refused_; }

 private:
  struct Op {
    fiber::Waker waker;
    int result = 0;
    bool done = false;
    bool device = false;  // a disk operation (starts_device_work)
  };

  io_uring_sqe* next_sqe();
  static bool starts_device_work(std::uint8_t opcode);
  void start_now_if_alone(const Op& op);
  int await(Op& op, Deadline deadline);
  void cancel(Op& op);
  void reap();
  void arm_eventfd();
  enum class Spin { caught, expired, contended };
  Spin spin(Instant until);

  fiber::Scheduler& scheduler_;
  io_uring ring_{};
  int event_fd_ = -1;
  std::uint64_t event_value_ = 0;
  std::uint64_t notify_count_ = 0;
  std::uint64_t in_flight_ = 0;
  std::uint64_t device_in_flight_ = 0;  // disk operations among in_flight_
  bool eventfd_armed_ = false;
  PollWindow poll_;
  std::atomic<std::int64_t> poll_max_ns_;
  Duration contended_;
  bool only_on_idle_cpus_;
  int loadavg_fd_ = -1;  // /proc/loadavg once a spin opened it; -2: unreadable
  int cpus_ = 1;
  // The last look at /proc/loadavg and its answer, good for spare_recheck.
  static constexpr Duration spare_recheck = std::chrono::milliseconds(1);
  std::optional<Instant> spare_checked_;
  bool spare_ = true;
  bool cpus_spare(Instant now);
  std::uint64_t caught_spinning_ = 0;
  std::function<void()> on_notify_;
  // Registered buffers: per pool chunk, whether it is registered here (a refused chunk
  // stays unfixed on this ring); fixed_on_ false and no chunks when the kernel gave the
  // ring no sparse table.
  enum class Chunk : std::uint8_t { unknown, registered, refused };
  BufferPool& pool_;
  bool fixed_on_ = false;
  std::vector<Chunk> chunks_;
  unsigned fixed_registered_ = 0;
  unsigned fixed_refused_ = 0;
};

// Converts a negative-errno result of run() into an Errc for the Result world; `what`
// names the operation for the error message.
Error errno_error(int negative_errno, std::string_view what);

// The other way, for the block frontends (FUSE, ublk) that answer a kernel: the errno a
// failed request is answered with. EINVAL, ENOSPC, EOPNOTSUPP for those kinds; EIO for
// everything else (a role change, a lost peer, a failing disk), as a failing disk's.
int errno_for(Errc code);

}  // namespace hast::real

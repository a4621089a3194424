// Scheduler: cooperative fibers on one thread (Boost.Context `fiber`, fcontext).
//
// Model: one scheduler per node. All protocol code runs in fibers it spawns; a fiber runs
// until it suspends (yield, sleep, a wait on an Event, Channel or I/O) and nothing else
// runs on the thread meanwhile, so core code needs no locks. When no fiber is runnable
// the owner of the scheduler waits for something to happen: the production loop calls a
// Poller (io_uring), the simulator advances virtual time to its next event. Timers are
// kept here, in the node's Clock time.
//
// Waiting: a fiber that must wait for an outside event calls prepare_wait(), hands the
// returned Waker to whoever will complete the event, then calls wait(). The Waker may be
// used before wait() is reached (the wait then returns at once) and is ignored once the
// wait has ended, so stale completions cannot wake a fiber twice.
//
// Cancellation: cancel(id) makes the fiber's current and future waits fail with
// Errc::cancelled. shutdown() is what a dying node does after its I/O handles are marked
// dead: every fiber is unwound (Boost's forced_unwind runs its destructors) and no wait
// suspends again, so nothing completes on the node's behalf. Fibers are unwound newest
// first, so a child fiber, which may refer to its parent's locals, goes before its
// parent.
//
// Failures: an exception escaping a fiber is captured in the fiber, carried to the
// scheduler's own stack and rethrown from run_ready() as FiberFailure naming the fiber,
// never swallowed. Rule (Boost 1.74): never suspend inside a catch block.
#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/fiber/node_reuse.h"
#include "core/io/clock.h"
#include "core/io/random.h"
#include "core/io/stack.h"
#include "core/result.h"

namespace hast::fiber {

using FiberId = std::uint64_t;

// Why a wait ended.
enum class WakeReason : std::uint8_t { woken, timed_out, cancelled };

// What the production loop calls when no fiber is runnable.
class Poller {
 public:
  virtual ~Poller() = default;

  // Blocks until an outside event (I/O completion) may have made a fiber runnable, or
  // until `deadline` (the scheduler's clock) has passed; std::nullopt means no timer is
  // pending. May return early. Runs on the scheduler's own stack, never in a fiber.
  virtual void wait(Deadline deadline) = 0;
};

// Receives every scheduling decision, for the simulator's trace hash.
class SchedulerObserver {
 public:
  enum class Kind : std::uint8_t { spawn, resume, finish, unwind };
  virtual ~SchedulerObserver() = default;
  virtual void on_fiber(Kind kind, FiberId id) = 0;
};

// Order in which runnable fibers run. fifo is the production order; random picks among
// the runnable fibers with the injected Random (the simulator explores interleavings).
enum class ReadyOrder : std::uint8_t { fifo, random };

// An exception that escaped a fiber, rethrown on the scheduler's stack.
class FiberFailure : public std::runtime_error {
 public:
  FiberFailure(std::string fiber_name, std::exception_ptr original, const std::string& what);
  const std::string& fiber_name() const { return fiber_name_; }
  std::exception_ptr original() const { return original_; }

 private:
  std::string fiber_name_;
  std::exception_ptr original_;
};

class Scheduler;

// A handle that ends one particular wait of one fiber. Copyable; safe to use late (it
// is then ignored) but not after the scheduler is destroyed.
class Waker {
 public:
  Waker() = default;
  void wake() const;
  bool valid() const { return scheduler_ != nullptr; }

 private:
  friend class Scheduler;
  Waker(Scheduler* scheduler, FiberId fiber, std::uint64_t generation)
      : scheduler_(scheduler), fiber_(fiber), generation_(generation) {}

  Scheduler* scheduler_ = nullptr;
  FiberId fiber_ = 0;
  std::uint64_t generation_ = 0;
};

// Told when a fiber spawned with it ends: returns or is unwound (TaskGroup's bookkeeping).
// fiber_exited() runs on the fiber's own stack, as the last thing the fiber does (the
// scheduler's current() is still that fiber), so it may wake other fibers but must not
// suspend.
class FiberExitHook {
 public:
  virtual ~FiberExitHook() = default;
  virtual void fiber_exited(FiberId id) = 0;
};

struct SchedulerOptions {
  ReadyOrder order = ReadyOrder::fifo;
  // Upper bound on live fibers; spawning beyond it is a bug (asserted).
  std::size_t fiber_count_max = 4096;
};

class Scheduler {
 public:
  // `random` is used only with ReadyOrder::random and may be null otherwise.
  Scheduler(Clock& clock, StackAllocator& stacks, Random* random, SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Creates a fiber that runs `body` when first scheduled. Callable from a fiber or from
  // outside. Fails (Errc::cancelled) after shutdown().
  Result<FiberId> spawn(std::string name, std::function<void()> body);
  // The same, and `exit_hook` (kept alive by the fiber until it ends) is told when the
  // fiber ends.
  Result<FiberId> spawn(std::string name, std::function<void()> body,
                        std::shared_ptr<FiberExitHook> exit_hook);

  // Runs runnable fibers until none is left, firing due timers first. Returns the
  // earliest pending timer, if any. Rethrows a fiber's escaped exception as FiberFailure.
  // Must not be called from a fiber.
  Deadline run_ready();

  // The production loop: run_ready(), then poller.wait() while nothing is runnable,
  // until stop() is called or no fiber is left.
  void run(Poller& poller);

  // Makes run() return after the current pass. Callable from a fiber.
  void stop() { stop_requested_ = true; }

  // Unwinds every fiber and refuses new ones; waits no longer suspend. Idempotent.
  // Must not be called from a fiber of this scheduler.
  void shutdown();

  // ---- Called from a fiber of this scheduler ----

  // Lets the other runnable fibers run; the caller runs again after them.
  void yield();

  // Lets the other runnable fibers run first, and those they make runnable, for at most
  // `rounds` yields; returns at once when none is runnable. What a fiber that gathers the
  // work of others (a batch of messages to send) calls before it takes the batch.
  void yield_to_others(int rounds);

  // Suspends until the clock reaches `when`. Errc::cancelled if cancelled first.
  Result<void> sleep_until(Instant when);
  Result<void> sleep_for(Duration duration);

  // Starts a wait: returns the Waker that ends it. At most one wait per fiber at a time.
  Waker prepare_wait();

  // Suspends until the Waker from prepare_wait() is used, the deadline passes or the
  // fiber is cancelled. Returns at once if the Waker was already used. With
  // `interruptible` false a cancelled fiber still waits (a parent waiting for its
  // cancelled children to end); only shutdown ends such a wait early.
  WakeReason wait(Deadline deadline, bool interruptible = true);

  // The running fiber's id; asserts that a fiber is running.
  FiberId current() const;
  bool in_fiber() const { return current_ != nullptr; }

  // ---- Callable from anywhere ----

  // Cancels a fiber: its waits fail with Errc::cancelled from now on. Unknown or
  // finished ids are ignored.
  void cancel(FiberId id);
  bool cancelled(FiberId id) const;
  // True once shutdown() began, or when the running fiber was cancelled.
  bool current_cancelled() const;

  Clock& clock() const { return clock_; }
  std::size_t fiber_count() const { return fibers_.size(); }
  std::size_t runnable_count() const { return ready_.size(); }
  bool is_shut_down() const { return shut_down_; }
  std::uint64_t switch_count() const { return switch_count_; }
  void set_observer(SchedulerObserver* observer) { observer_ = observer; }

 private:
  struct Fiber;
  using TimerKey = std::tuple<Instant, std::uint64_t, FiberId>;
  using FiberMap = std::map<FiberId, std::unique_ptr<Fiber>>;
  // Nodes of fibers_ kept after their fiber ended, each with its Fiber, reused by spawn():
  // a request's fiber then allocates neither. At most this many are kept.
  static constexpr std::size_t spare_fibers_max = 256;

  void wake(FiberId id, std::uint64_t generation, WakeReason reason);
  void make_ready(Fiber& fiber, WakeReason reason);
  void fire_due_timers();
  void resume(Fiber& fiber);
  void retire(FiberId id);
  FiberMap::node_type fiber_node(FiberId id);
  void make_context(Fiber& fiber);
  void run_body(Fiber& fiber);
  void rethrow_failure();
  void suspend_current();
  FiberId pick_ready();
  Fiber& current_fiber() const;
  void notify(SchedulerObserver::Kind kind, FiberId id);
  void invariants() const;

  friend class Waker;

  Clock& clock_;
  StackAllocator& stacks_;
  Random* random_;
  SchedulerOptions options_;
  SchedulerObserver* observer_ = nullptr;

  FiberMap fibers_;  // ordered: deterministic unwinding
  std::vector<FiberMap::node_type> spare_fibers_;
  std::deque<FiberId> ready_;
  std::set<TimerKey> timers_;
  NodeReuse<std::set<TimerKey>> timer_nodes_;  // timers_'s nodes: a timed wait allocates none
  FiberId next_id_ = 1;
  std::uint64_t next_timer_seq_ = 0;
  std::uint64_t switch_count_ = 0;
  Fiber* current_ = nullptr;
  bool stop_requested_ = false;
  bool shut_down_ = false;
  std::string failed_fiber_;
  std::exception_ptr failure_;
};

// Converts a WakeReason of a wait that expected a Waker into a Result.
Result<void> wake_result(WakeReason reason, std::string_view what);

}  // namespace hast::fiber

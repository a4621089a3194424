// Scheduler implementation. See scheduler.h for the model.
//
// Each fiber owns two Boost.Context continuations: `context` (the fiber itself, valid
// while it is suspended) and `caller` (the scheduler's stack, valid while it runs).
// resume() switches into the fiber; suspend_current() switches back. Fibers are kept in
// an ordered map so unwinding at shutdown happens in a deterministic order.
#include "core/fiber/scheduler.h"

#include <optional>
#include <utility>

#include <fmt/format.h>
#include <boost/context/fiber.hpp>

namespace hast::fiber {
namespace {

namespace ctx = boost::context;

// Adapts the injected StackAllocator to Boost.Context's stack-allocator concept.
class BoostStackAdapter {
 public:
  explicit BoostStackAdapter(StackAllocator& stacks) : stacks_(&stacks) {}

  ctx::stack_context allocate() {
    Stack stack = stacks_->allocate();
    HAST_ASSERT(stack.base != nullptr);
    HAST_ASSERT(stack.size == stacks_->stack_size());
    ctx::stack_context result;
    result.size = stack.size;
    result.sp = static_cast<char*>(stack.base) + stack.size;
    return result;
  }

  void deallocate(ctx::stack_context& context) noexcept {
    HAST_ASSERT(context.sp != nullptr);
    void* base = static_cast<char*>(context.sp) - context.size;
    stacks_->deallocate(Stack{base, context.size});
  }

 private:
  StackAllocator* stacks_;
};

}  // namespace

struct Scheduler::Fiber {
  FiberId id = 0;
  std::string name;
  std::function<void()> body;
  std::shared_ptr<FiberExitHook> exit_hook;  // told when the fiber ends (may be null)
  ctx::fiber context;  // the fiber while suspended (empty while running or finished)
  ctx::fiber caller;   // the scheduler while the fiber runs
  bool finished = false;
  bool exiting = false;    // running its exit hook, which must not suspend
  bool queued = false;     // in ready_
  bool suspended = false;  // parked inside wait()
  bool cancelled = false;
  bool interruptible = true;  // of the current wait
  // The current wait: prepare_wait() bumps the generation and arms it; a wake with the
  // same generation completes it once.
  std::uint64_t generation = 0;
  bool wait_armed = false;
  bool wait_done = false;
  WakeReason reason = WakeReason::woken;
  std::optional<TimerKey> timer;
};

FiberFailure::FiberFailure(std::string fiber_name, std::exception_ptr original,
                           const std::string& what)
    : std::runtime_error(what), fiber_name_(std::move(fiber_name)), original_(original) {}

void Waker::wake() const {
  HAST_ASSERT(scheduler_ != nullptr);
  scheduler_->wake(fiber_, generation_, WakeReason::woken);
}

Scheduler::Scheduler(Clock& clock, StackAllocator& stacks, Random* random, SchedulerOptions options)
    : clock_(clock), stacks_(stacks), random_(random), options_(options) {
  HAST_ASSERT(options_.order == ReadyOrder::fifo || random_ != nullptr);
  HAST_ASSERT(options_.fiber_count_max > 0);
}

Scheduler::~Scheduler() {
  shutdown();
}

Result<FiberId> Scheduler::spawn(std::string name, std::function<void()> body) {
  return spawn(std::move(name), std::move(body), nullptr);
}

// The Fiber and its map node come from a fiber that ended when one is spare (reset to a
// fresh Fiber's state), else from the heap.
Scheduler::FiberMap::node_type Scheduler::fiber_node(FiberId id) {
  FiberMap::node_type node;
  if (spare_fibers_.empty()) {
    FiberMap scratch;
    scratch.emplace(id, std::make_unique<Fiber>());
    node = scratch.extract(scratch.begin());
  } else {
    node = std::move(spare_fibers_.back());
    spare_fibers_.pop_back();
    node.key() = id;
  }
  HAST_ASSERT(!node.empty());
  HAST_ASSERT(node.mapped() != nullptr);
  return node;
}

Result<FiberId> Scheduler::spawn(std::string name, std::function<void()> body,
                                 std::shared_ptr<FiberExitHook> exit_hook) {
  if (shut_down_) return fail(Errc::cancelled, fmt::format("spawn {}", name));
  HAST_ASSERT_MSG(fibers_.size() < options_.fiber_count_max, "too many fibers ({})",
                  fibers_.size());
  HAST_ASSERT(body != nullptr);
  FiberMap::node_type node = fiber_node(next_id_++);
  Fiber& fiber = *node.mapped();  // stays put: the map holds it by pointer
  fiber.id = node.key();
  fiber.name = std::move(name);
  fiber.body = std::move(body);
  fiber.exit_hook = std::move(exit_hook);
  make_context(fiber);
  bool inserted = fibers_.insert(std::move(node)).inserted;
  HAST_ASSERT(inserted);
  make_ready(fiber, WakeReason::woken);
  notify(SchedulerObserver::Kind::spawn, fiber.id);
  return fiber.id;
}

// Gives `fiber` its stack and its context, suspended before its body: the first resume()
// runs run_body() on the new stack. When the body is done the context hands the scheduler
// back. At shutdown a started fiber leaves by Boost's forced_unwind. One never resumed
// never runs its body: with fcontext Boost unwinds it before its entry; the ucontext
// backend (BOOST_USE_UCONTEXT, the fuzz builds) enters it instead, so the entry checks.
void Scheduler::make_context(Fiber& fiber) {
  HAST_ASSERT(!fiber.context);
  HAST_ASSERT(!fiber.finished);
  Fiber* target = &fiber;
  fiber.context = ctx::fiber(std::allocator_arg, BoostStackAdapter(stacks_),
                             [this, target](ctx::fiber&& caller) {
                               target->caller = std::move(caller);
                               if (!shut_down_) run_body(*target);
                               target->finished = true;
                               return std::move(target->caller);
                             });
}

// Runs the body on the fiber's own stack and tells the exit hook however the body ends
// (unwinding too). An exception that escapes is kept for rethrow_failure().
void Scheduler::run_body(Fiber& fiber) {
  HAST_ASSERT(current_ == &fiber);
  std::exception_ptr escaped;
  try {
    struct Exit {
      Fiber& fiber;
      ~Exit() {
        fiber.exiting = true;
        if (fiber.exit_hook) fiber.exit_hook->fiber_exited(fiber.id);
      }
    } exit{fiber};
    fiber.body();
  } catch (const ctx::detail::forced_unwind&) {
    throw;  // Boost unwinding a fiber at shutdown
  } catch (...) {
    escaped = std::current_exception();
  }
  // Outside the catch block (Boost 1.74 rule).
  if (escaped) {
    failure_ = escaped;
    failed_fiber_ = fiber.name;
  }
}

Deadline Scheduler::run_ready() {
  HAST_ASSERT_MSG(!in_fiber(), "run_ready() called from a fiber");
  fire_due_timers();
  while (!ready_.empty()) {
    FiberId id = pick_ready();
    auto found = fibers_.find(id);
    HAST_ASSERT(found != fibers_.end());
    Fiber& fiber = *found->second;
    fiber.queued = false;
    resume(fiber);
    invariants();
    if (ready_.empty()) fire_due_timers();
  }
  if (timers_.empty()) return std::nullopt;
  return std::get<0>(*timers_.begin());
}

void Scheduler::run(Poller& poller) {
  stop_requested_ = false;
  while (!stop_requested_ && !fibers_.empty()) {
    Deadline next_timer = run_ready();
    if (stop_requested_ || fibers_.empty()) break;
    if (ready_.empty()) poller.wait(next_timer);
  }
}

void Scheduler::shutdown() {
  HAST_ASSERT_MSG(!in_fiber(), "shutdown() called from a fiber");
  if (shut_down_) return;
  shut_down_ = true;
  ready_.clear();
  timers_.clear();
  // Unwind newest first (children before the parents whose locals they may use). A fiber
  // being unwound is the current fiber, so anything its destructors call sees a shut-down
  // scheduler and never suspends.
  while (!fibers_.empty()) {
    auto newest = std::prev(fibers_.end());
    Fiber& fiber = *newest->second;
    FiberId id = fiber.id;
    // The fiber leaves its wait by unwinding, not by returning from it.
    fiber.suspended = false;
    fiber.wait_armed = false;
    fiber.timer.reset();
    current_ = &fiber;
    { ctx::fiber doomed = std::move(fiber.context); }  // forced_unwind runs here
    current_ = nullptr;
    notify(SchedulerObserver::Kind::unwind, id);
    fibers_.erase(id);
  }
  HAST_ASSERT(fibers_.empty());
  HAST_ASSERT(ready_.empty());
  failure_ = nullptr;  // a failure while unwinding is not reported
}

void Scheduler::yield() {
  Fiber& fiber = current_fiber();
  if (shut_down_) return;
  make_ready(fiber, WakeReason::woken);
  suspend_current();
}

void Scheduler::yield_to_others(int rounds) {
  for (int i = 0; i < rounds && !ready_.empty() && !shut_down_; i++)
    yield();
}

Result<void> Scheduler::sleep_until(Instant when) {
  prepare_wait();
  WakeReason reason = wait(when);
  if (reason == WakeReason::cancelled) return fail(Errc::cancelled, "sleep");
  return ok();
}

Result<void> Scheduler::sleep_for(Duration duration) {
  HAST_ASSERT(duration.count() >= 0);
  return sleep_until(clock_.now() + duration);
}

Waker Scheduler::prepare_wait() {
  Fiber& fiber = current_fiber();
  HAST_ASSERT_MSG(!fiber.suspended, "prepare_wait() while suspended");
  fiber.generation++;
  fiber.wait_armed = true;
  fiber.wait_done = false;
  return Waker(this, fiber.id, fiber.generation);
}

WakeReason Scheduler::wait(Deadline deadline, bool interruptible) {
  Fiber& fiber = current_fiber();
  HAST_ASSERT_MSG(fiber.wait_armed, "wait() without prepare_wait()");
  fiber.wait_armed = false;
  fiber.interruptible = interruptible;
  if (shut_down_ || (fiber.cancelled && interruptible)) {
    fiber.wait_done = true;
    return WakeReason::cancelled;
  }
  if (fiber.wait_done) return fiber.reason;
  if (deadline && *deadline <= clock_.now()) {
    fiber.wait_done = true;
    return WakeReason::timed_out;
  }
  if (deadline) {
    TimerKey key{*deadline, next_timer_seq_++, fiber.id};
    bool added = timer_nodes_.insert(timers_, key);
    HAST_ASSERT(added);
    fiber.timer = key;
  }
  fiber.suspended = true;
  suspend_current();
  fiber.suspended = false;
  HAST_ASSERT(fiber.wait_done || shut_down_);
  HAST_ASSERT(!fiber.timer.has_value());
  return shut_down_ ? WakeReason::cancelled : fiber.reason;
}

FiberId Scheduler::current() const {
  return current_fiber().id;
}

void Scheduler::cancel(FiberId id) {
  auto found = fibers_.find(id);
  if (found == fibers_.end()) return;
  Fiber& fiber = *found->second;
  fiber.cancelled = true;
  if (fiber.suspended && fiber.interruptible) wake(id, fiber.generation, WakeReason::cancelled);
}

bool Scheduler::cancelled(FiberId id) const {
  auto found = fibers_.find(id);
  return found != fibers_.end() && found->second->cancelled;
}

bool Scheduler::current_cancelled() const {
  return shut_down_ || (current_ != nullptr && current_->cancelled);
}

void Scheduler::wake(FiberId id, std::uint64_t generation, WakeReason reason) {
  auto found = fibers_.find(id);
  if (found == fibers_.end()) return;  // finished or unwound: a late completion
  Fiber& fiber = *found->second;
  if (fiber.generation != generation || fiber.wait_done) return;  // a stale waker
  fiber.wait_done = true;
  fiber.reason = reason;
  if (fiber.timer) {
    timer_nodes_.erase(timers_, *fiber.timer);
    fiber.timer.reset();
  }
  if (fiber.suspended && !shut_down_) make_ready(fiber, reason);
}

void Scheduler::make_ready(Fiber& fiber, WakeReason reason) {
  HAST_ASSERT(!fiber.finished);
  fiber.reason = reason;
  if (fiber.queued) return;
  fiber.queued = true;
  ready_.push_back(fiber.id);
}

void Scheduler::fire_due_timers() {
  if (timers_.empty()) return;
  Instant now = clock_.now();
  while (!timers_.empty() && std::get<0>(*timers_.begin()) <= now) {
    TimerKey key = *timers_.begin();
    timer_nodes_.erase(timers_, timers_.begin());
    auto found = fibers_.find(std::get<2>(key));
    HAST_ASSERT(found != fibers_.end());
    Fiber& fiber = *found->second;
    HAST_ASSERT(fiber.timer == key);
    fiber.timer.reset();
    wake(fiber.id, fiber.generation, WakeReason::timed_out);
  }
}

void Scheduler::resume(Fiber& fiber) {
  HAST_ASSERT(current_ == nullptr);
  HAST_ASSERT(!fiber.finished);
  HAST_ASSERT(static_cast<bool>(fiber.context));
  current_ = &fiber;
  switch_count_++;
  notify(SchedulerObserver::Kind::resume, fiber.id);
  fiber.context = std::move(fiber.context).resume();
  current_ = nullptr;
  if (fiber.finished) retire(fiber.id);
  rethrow_failure();
}

void Scheduler::retire(FiberId id) {
  notify(SchedulerObserver::Kind::finish, id);
  auto found = fibers_.find(id);
  HAST_ASSERT(found != fibers_.end());
  HAST_ASSERT(!found->second->context);
  HAST_ASSERT(!found->second->queued);
  FiberMap::node_type node = fibers_.extract(found);
  // What the body captured goes now, as when the Fiber was destroyed here.
  Fiber& fiber = *node.mapped();
  fiber.body = nullptr;
  fiber.exit_hook.reset();
  if (spare_fibers_.size() >= spare_fibers_max) return;
  std::string name = std::move(fiber.name);  // keeps its storage for the next name
  name.clear();
  fiber = Fiber{};
  fiber.name = std::move(name);
  spare_fibers_.push_back(std::move(node));
}

void Scheduler::rethrow_failure() {
  if (!failure_) return;
  std::exception_ptr failure = std::exchange(failure_, nullptr);
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& error) {
    what = error.what();
  } catch (...) {
  }
  throw FiberFailure(failed_fiber_, failure,
                     fmt::format("exception escaped fiber '{}': {}", failed_fiber_, what));
}

void Scheduler::suspend_current() {
  Fiber& fiber = current_fiber();
  HAST_ASSERT_MSG(!fiber.exiting, "fiber '{}' suspended in its exit hook", fiber.name);
  HAST_ASSERT(static_cast<bool>(fiber.caller));
  fiber.caller = std::move(fiber.caller).resume();
  HAST_ASSERT(current_ == &fiber);
}

FiberId Scheduler::pick_ready() {
  HAST_ASSERT(!ready_.empty());
  std::size_t index = 0;
  if (options_.order == ReadyOrder::random && ready_.size() > 1) {
    index = static_cast<std::size_t>(uniform(*random_, 0, ready_.size() - 1));
  }
  FiberId id = ready_[index];
  if (index == 0) {
    ready_.pop_front();  // the fifo order's case: cheaper than a general erase
  } else {
    ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(index));
  }
  return id;
}

Scheduler::Fiber& Scheduler::current_fiber() const {
  HAST_ASSERT_MSG(current_ != nullptr, "not called from a fiber");
  return *current_;
}

void Scheduler::notify(SchedulerObserver::Kind kind, FiberId id) {
  if (observer_ != nullptr) observer_->on_fiber(kind, id);
}

void Scheduler::invariants() const {
  HAST_ASSERT(current_ == nullptr);
  HAST_ASSERT(ready_.size() <= fibers_.size());
  HAST_ASSERT(timers_.size() <= fibers_.size());
}

Result<void> wake_result(WakeReason reason, std::string_view what) {
  switch (reason) {
    case WakeReason::woken:
      return ok();
    case WakeReason::timed_out:
      return fail(Errc::timed_out, std::string(what));
    case WakeReason::cancelled:
      return fail(Errc::cancelled, std::string(what));
  }
  HAST_UNREACHABLE();
}

}  // namespace hast::fiber

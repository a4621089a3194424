// TaskGroup: the fibers of one activity (a primary worker, one connection's session), so
// the activity can be cancelled and joined as a whole.
//
// Model: spawn() starts a fiber that belongs to the group; cancel() cancels every live
// member (their waits fail with Errc::cancelled, see Scheduler::cancel); join() waits
// until every member has finished. A role change is `group.cancel(); group.join();`: every
// request in flight fails cleanly before the next role starts. The group must outlive its
// fibers: destroy it only after join() (asserted), or after the scheduler's shutdown.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "core/fiber/node_reuse.h"
#include "core/fiber/wait_queue.h"

namespace hast::fiber {

class TaskGroup {
 public:
  explicit TaskGroup(Scheduler& scheduler)
      : scheduler_(scheduler), state_(std::make_shared<State>(scheduler)) {}
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup() {
    HAST_ASSERT_MSG(state_->live.empty() || scheduler_.is_shut_down(),
                    "task group destroyed with {} live fibers", state_->live.size());
  }

  // Starts `body` in a new member fiber. Fails (Errc::cancelled) once the group is
  // cancelled, so a cancelled activity cannot grow.
  Result<FiberId> spawn(std::string name, std::function<void()> body) {
    if (state_->cancelled) return fail(Errc::cancelled, "spawn " + name + " in a cancelled group");
    // Members share the state, not the group: at a node's death the group may be unwound
    // (destroyed) before some of its members are. The state leaves the live set as the
    // member's last act (Scheduler's exit hook).
    auto spawned = scheduler_.spawn(std::move(name), std::move(body), state_);
    if (spawned) state_->join(*spawned);
    return spawned;
  }

  // Cancels every live member. Idempotent; never suspends.
  void cancel() {
    state_->cancelled = true;
    for (FiberId id : state_->live)
      scheduler_.cancel(id);
  }

  // Waits until no member is live. A member may not join its own group.
  Result<void> join(Deadline deadline = std::nullopt) {
    HAST_ASSERT_MSG(!scheduler_.in_fiber() || state_->live.count(scheduler_.current()) == 0,
                    "a fiber joined its own task group");
    while (!state_->live.empty()) {
      WakeReason reason = state_->finished.wait(deadline);
      if (reason != WakeReason::woken && !state_->live.empty()) return wake_result(reason, "join");
    }
    return ok();
  }

  // Cancels every member and waits until all have ended, even when the caller itself is
  // cancelled: the way a parent cleans up before the locals its children use go away.
  // Returns early only at scheduler shutdown (children are unwound first then).
  void cancel_and_join() {
    cancel();
    HAST_ASSERT(!scheduler_.in_fiber() || state_->live.count(scheduler_.current()) == 0);
    while (!state_->live.empty()) {
      if (state_->finished.wait(std::nullopt, false) == WakeReason::cancelled) return;
    }
  }

  // Waits until every member has ended without cancelling them and even when the caller
  // itself is cancelled (a session letting the writes it accepted reach the disk).
  void join_all() {
    HAST_ASSERT(!scheduler_.in_fiber() || state_->live.count(scheduler_.current()) == 0);
    while (!state_->live.empty()) {
      if (state_->finished.wait(std::nullopt, false) == WakeReason::cancelled) return;
    }
  }

  // Allows spawning again after a cancel() and join() (a new activity in the same group).
  void reset() {
    HAST_ASSERT(state_->live.empty());
    state_->cancelled = false;
  }

  std::size_t size() const { return state_->live.size(); }
  bool cancelled() const { return state_->cancelled; }
  Scheduler& scheduler() const { return scheduler_; }

 private:
  struct State final : FiberExitHook {
    explicit State(Scheduler& scheduler_ref) : scheduler(scheduler_ref), finished(scheduler_ref) {}
    // Adds a member, in a set node left by an earlier member when there is one.
    void join(FiberId id) {
      bool added = nodes.insert(live, id);
      HAST_ASSERT(added);
    }
    void fiber_exited(FiberId id) override {
      HAST_ASSERT(scheduler.in_fiber());
      HAST_ASSERT(scheduler.current() == id);
      std::size_t erased = nodes.erase(live, id);
      HAST_ASSERT(erased == 1);
      finished.wake_all();
    }
    Scheduler& scheduler;
    WaitQueue finished;
    std::set<FiberId> live;
    NodeReuse<std::set<FiberId>, 64> nodes;  // nodes of ended members, for reuse
    bool cancelled = false;
  };

  Scheduler& scheduler_;
  std::shared_ptr<State> state_;
};

}  // namespace hast::fiber

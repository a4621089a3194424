// Event: a flag fibers can wait for.
//
// Model: manual reset. set() wakes every waiter and the event stays set until reset();
// wait() on a set event returns at once. Belongs to one scheduler.
#pragma once

#include "core/fiber/wait_queue.h"

namespace hast::fiber {

class Event {
 public:
  explicit Event(Scheduler& scheduler) : waiters_(scheduler) {}

  // Suspends until the event is set. Errc::timed_out when the deadline passes first,
  // Errc::cancelled when the fiber is cancelled.
  Result<void> wait(Deadline deadline = std::nullopt) {
    while (!set_) {
      WakeReason reason = waiters_.wait(deadline);
      if (reason != WakeReason::woken) return wake_result(reason, "event wait");
    }
    return ok();
  }

  void set() {
    set_ = true;
    waiters_.wake_all();
  }
  void reset() { set_ = false; }
  bool is_set() const { return set_; }

 private:
  WaitQueue waiters_;
  bool set_ = false;
};

}  // namespace hast::fiber

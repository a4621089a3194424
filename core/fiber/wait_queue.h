// WaitQueue: fibers waiting for a condition that another fiber or an I/O completion
// changes. The building block of Event and Channel.
//
// Model: a waiter registers its Waker and suspends; whoever changes the condition calls
// wake_all(), and every waiter re-checks the condition itself (no wake-up is ever lost,
// because a waiter that finds the condition false simply waits again).
#pragma once

#include <algorithm>
#include <vector>

#include "core/fiber/scheduler.h"

namespace hast::fiber {

class WaitQueue {
 public:
  explicit WaitQueue(Scheduler& scheduler) : scheduler_(scheduler) {}
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  // Suspends the calling fiber until wake_all(), the deadline or cancellation (unless
  // `interruptible` is false, see Scheduler::wait).
  WakeReason wait(Deadline deadline, bool interruptible = true) {
    Waker waker = scheduler_.prepare_wait();
    std::size_t ticket = next_ticket_++;
    waiters_.push_back(Entry{ticket, waker});
    WakeReason reason = scheduler_.wait(deadline, interruptible);
    // Leave the list whatever ended the wait, so the list never holds stale wakers.
    std::erase_if(waiters_, [ticket](const Entry& entry) { return entry.ticket == ticket; });
    return reason;
  }

  // Wakes every waiter. Callable from any fiber or from outside the scheduler.
  void wake_all() {
    std::vector<Entry> woken;
    woken.swap(waiters_);
    for (const Entry& entry : woken)
      entry.waker.wake();
  }

  bool empty() const { return waiters_.empty(); }
  Scheduler& scheduler() const { return scheduler_; }

 private:
  struct Entry {
    std::size_t ticket;
    Waker waker;
  };

  Scheduler& scheduler_;
  std::vector<Entry> waiters_;
  std::size_t next_ticket_ = 0;
};

}  // namespace hast::fiber

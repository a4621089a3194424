// WaitQueue: fibers waiting for a condition that another fiber or an I/O completion
// changes. The building block of Event and Channel.
//
// Model: a waiter registers its Waker and suspends; whoever changes the condition calls
// wake_all(), and every waiter re-checks the condition itself (no wake-up is ever lost,
// because a waiter that finds the condition false simply waits again).
#pragma once

#include <algorithm>
#include <optional>
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
    add(Entry{ticket, waker});
    WakeReason reason = scheduler_.wait(deadline, interruptible);
    // Leave the queue whatever ended the wait, so it never holds stale wakers.
    remove(ticket);
    return reason;
  }

  // Wakes every waiter, oldest first. Callable from any fiber or from outside the
  // scheduler. A wake only makes a fiber runnable (nothing runs meanwhile), so the queue
  // is walked in place and keeps its storage.
  void wake_all() {
    if (first_) first_->waker.wake();
    for (const Entry& entry : more_)
      entry.waker.wake();
    first_.reset();
    more_.clear();
  }

  bool empty() const { return !first_ && more_.empty(); }
  Scheduler& scheduler() const { return scheduler_; }

 private:
  struct Entry {
    std::size_t ticket;
    Waker waker;
  };

  // Waiters in arrival order: first_ (when set) is older than every entry of more_. Most
  // queues (a request's, a connection's) have one waiter at most, which first_ holds
  // without allocating.
  void add(const Entry& entry) {
    if (!first_ && more_.empty()) {
      first_ = entry;
    } else {
      more_.push_back(entry);
    }
  }
  void remove(std::size_t ticket) {
    if (first_ && first_->ticket == ticket) {
      first_.reset();
      return;
    }
    std::erase_if(more_, [ticket](const Entry& entry) { return entry.ticket == ticket; });
  }

  Scheduler& scheduler_;
  std::optional<Entry> first_;
  std::vector<Entry> more_;
  std::size_t next_ticket_ = 0;
};

}  // namespace hast::fiber

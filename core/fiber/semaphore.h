// Semaphore: a bounded count of permits, for pools with back-pressure (the request pool of
// reference/hast-spec.md §7.5: at most N requests in flight; the next one waits).
#pragma once

#include <cstddef>

#include "core/fiber/wait_queue.h"

namespace hast::fiber {

class Semaphore {
 public:
  Semaphore(Scheduler& scheduler, std::size_t permits)
      : available_(permits), capacity_(permits), waiters_(scheduler) {
    HAST_ASSERT(permits > 0);
  }

  // Takes a permit, waiting while none is free. Errc::timed_out / Errc::cancelled.
  Result<void> acquire(Deadline deadline = std::nullopt) {
    while (available_ == 0) {
      WakeReason reason = waiters_.wait(deadline);
      if (reason != WakeReason::woken && available_ == 0) {
        return wake_result(reason, "semaphore");
      }
    }
    available_--;
    return ok();
  }

  void release() {
    HAST_ASSERT_MSG(available_ < capacity_, "semaphore released more than acquired");
    available_++;
    waiters_.wake_all();
  }

  std::size_t available() const { return available_; }
  std::size_t in_use() const { return capacity_ - available_; }
  std::size_t capacity() const { return capacity_; }

 private:
  std::size_t available_;
  std::size_t capacity_;
  WaitQueue waiters_;
};

// Holds one permit for a scope.
class Permit {
 public:
  explicit Permit(Semaphore& semaphore) : semaphore_(&semaphore) {}
  Permit(Permit&& other) noexcept : semaphore_(other.semaphore_) { other.semaphore_ = nullptr; }
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  Permit& operator=(Permit&&) = delete;
  ~Permit() {
    if (semaphore_ != nullptr) semaphore_->release();
  }

 private:
  Semaphore* semaphore_;
};

}  // namespace hast::fiber

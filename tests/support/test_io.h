// Small test doubles for unit tests of core: a manual clock, heap stacks, and a poller
// that jumps the manual clock to the next timer (a one-node simulated poller).
#pragma once

#include <cstddef>
#include <new>

#include "core/assert.h"
#include "core/fiber/scheduler.h"
#include "core/io/clock.h"
#include "core/io/stack.h"

namespace hast::test {

class ManualClock final : public Clock {
 public:
  Instant now() const override { return now_; }
  WallTime wall() const override { return WallTime(now_.time_since_epoch()); }
  void advance_to(Instant when) {
    HAST_ASSERT(when >= now_);
    now_ = when;
  }

 private:
  Instant now_{};
};

class HeapStacks final : public StackAllocator {
 public:
  explicit HeapStacks(std::size_t size = 128 * 1024) : size_(size) {}
  Stack allocate() override {
    live_++;
    return Stack{::operator new (size_, std::align_val_t{64}), size_};
  }
  void deallocate(Stack stack) override {
    live_--;
    ::operator delete (stack.base, std::align_val_t{64});
  }
  std::size_t stack_size() const override { return size_; }
  int live() const { return live_; }

 private:
  std::size_t size_;
  int live_ = 0;
};

// Jumps the clock to the deadline; with no deadline there is nothing left to happen.
class ClockJumpPoller final : public fiber::Poller {
 public:
  explicit ClockJumpPoller(ManualClock& clock) : clock_(clock) {}
  void wait(Deadline deadline) override {
    HAST_ASSERT_MSG(deadline.has_value(), "deadlock: fibers wait and no timer is pending");
    if (*deadline > clock_.now()) clock_.advance_to(*deadline);
    waits_++;
  }
  int waits() const { return waits_; }

 private:
  ManualClock& clock_;
  int waits_ = 0;
};

}  // namespace hast::test

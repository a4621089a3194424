// Real clock, random source and fiber stacks: the production implementations of the
// core/io interfaces that need no ring.
#pragma once

#include <cstddef>
#include <vector>

#include "core/io/clock.h"
#include "core/io/random.h"
#include "core/io/stack.h"

namespace hast::real {

// Monotonic time from CLOCK_MONOTONIC (steady_clock), wall time from the system clock.
// now() asserts it never goes backwards.
class RealClock final : public Clock {
 public:
  Instant now() const override;
  WallTime wall() const override;

 private:
  mutable Instant last_{};
};

// getrandom(2), buffered. Aborts if the kernel cannot provide randomness.
class RealRandom final : public Random {
 public:
  std::uint64_t next_u64() override;

 private:
  std::uint64_t buffer_[64]{};
  std::size_t next_ = 64;
};

// Stacks mapped with mmap, each with an inaccessible guard page below it, so an overflow
// faults instead of corrupting memory. Freed stacks are kept in a pool for reuse.
// One thread only (StackAllocator's contract).
class GuardedStacks final : public StackAllocator {
 public:
  // `size` is rounded up to whole pages.
  explicit GuardedStacks(std::size_t size);
  ~GuardedStacks() override;
  GuardedStacks(const GuardedStacks&) = delete;
  GuardedStacks& operator=(const GuardedStacks&) = delete;

  Stack allocate() override;
  void deallocate(Stack stack) override;
  std::size_t stack_size() const override { return size_; }
  std::size_t mapped() const { return mapped_; }

 private:
  std::size_t page_;
  std::size_t size_;
  std::size_t mapped_ = 0;
  std::vector<Stack> pool_;
};

}  // namespace hast::real

// StackAllocator: where fiber stacks come from.
//
// Model: the scheduler asks for one stack per fiber and returns it when the fiber ends or
// is unwound. Production maps guard-paged stacks from a pool (an overflow faults instead
// of corrupting memory); the simulator may use a plain pool. All stacks of one allocator
// have the same size. An allocator serves one thread.
//
// Sizing: liblzf's compressor keeps about 512 KiB on the stack; code that runs it must be
// on a fiber whose stack is large enough (see core/fiber/stack_size.h).
#pragma once

#include <cstddef>

namespace hast {

// A block of memory [base, base + size) to run a fiber on. The stack grows down from
// base + size. `base` is aligned to 16 bytes at least.
struct Stack {
  void* base = nullptr;
  std::size_t size = 0;
};

class StackAllocator {
 public:
  virtual ~StackAllocator() = default;

  // Returns a stack of stack_size() usable bytes. Running out of memory is fatal (the
  // allocator aborts): the scheduler bounds the number of fibers instead.
  virtual Stack allocate() = 0;

  // Takes back a stack returned by allocate(). The fiber that ran on it has ended.
  virtual void deallocate(Stack stack) = 0;

  // Usable bytes of every stack this allocator returns.
  virtual std::size_t stack_size() const = 0;
};

}  // namespace hast

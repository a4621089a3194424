#include "real/clock.h"

#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "core/assert.h"

namespace hast::real {

Instant RealClock::now() const {
  auto since = std::chrono::steady_clock::now().time_since_epoch();
  Instant t{std::chrono::duration_cast<Duration>(since)};
  HAST_ASSERT_MSG(t >= last_, "monotonic clock went backwards");
  last_ = t;
  return t;
}

WallTime RealClock::wall() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

std::uint64_t RealRandom::next_u64() {
  if (next_ == std::size(buffer_)) {
    auto* bytes = reinterpret_cast<char*>(buffer_);
    std::size_t filled = 0;
    while (filled < sizeof buffer_) {
      ssize_t n = getrandom(bytes + filled, sizeof buffer_ - filled, 0);
      if (n < 0 && errno == EINTR) continue;
      HAST_ASSERT_MSG(n > 0, "getrandom: {}", std::strerror(errno));
      filled += static_cast<std::size_t>(n);
    }
    next_ = 0;
  }
  return buffer_[next_++];
}

GuardedStacks::GuardedStacks(std::size_t size)
    : page_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))),
      size_((size + page_ - 1) / page_ * page_) {
  HAST_ASSERT(size_ > 0);
}

GuardedStacks::~GuardedStacks() {
  for (const Stack& stack : pool_) {
    munmap(static_cast<char*>(stack.base) - page_, stack.size + page_);
  }
}

Stack GuardedStacks::allocate() {
  if (!pool_.empty()) {
    Stack stack = pool_.back();
    pool_.pop_back();
    return stack;
  }
  void* area = mmap(nullptr, size_ + page_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  HAST_ASSERT_MSG(area != MAP_FAILED, "mmap fiber stack: {}", std::strerror(errno));
  // The lowest page is the guard: the stack grows down into it on overflow.
  HAST_ASSERT(mprotect(area, page_, PROT_NONE) == 0);
  mapped_++;
  return Stack{static_cast<char*>(area) + page_, size_};
}

void GuardedStacks::deallocate(Stack stack) {
  HAST_ASSERT(stack.size == size_);
  pool_.push_back(stack);
}

}  // namespace hast::real

// Simulated clock, random stream, log, stacks and scheduler tracing.
#include "sim/sim_io.h"

#include <cstdio>
#include <cstdlib>
#include <new>

#include <fmt/format.h>

namespace hast::sim {
namespace {

// 2026-01-01T00:00:00Z in seconds since the Unix epoch.
constexpr std::int64_t kWallEpochSeconds = 1767225600;

}  // namespace

WallTime SimClock::wall() const {
  return WallTime(std::chrono::seconds(kWallEpochSeconds)) + now().time_since_epoch();
}

SimRandom::SimRandom(World& world, std::uint64_t seed, std::uint32_t node)
    : world_(world), prng_(seed), node_(node) {}

std::uint64_t SimRandom::next_u64() {
  std::uint64_t value = prng_.next_u64();
  world_.trace("random", node_, value);
  return value;
}

void SimLog::write(LogLevel level, std::string_view message) {
  std::string line = fmt::format("{} {} {}: {}", format_instant(world_.now()), node_name_,
                                 log_level_name(level), message);
  world_.trace_text("log", line);
  if (world_.options().echo_logs) std::printf("%s\n", line.c_str());
}

PoolStackAllocator::PoolStackAllocator(std::size_t stack_size) : stack_size_(stack_size) {
  HAST_ASSERT(stack_size_ >= 16 * 1024);
  HAST_ASSERT(stack_size_ % 16 == 0);
}

PoolStackAllocator::~PoolStackAllocator() {
  HAST_ASSERT_MSG(outstanding_ == 0, "{} fiber stacks still in use", outstanding_);
  for (void* stack : free_)
    ::operator delete (stack, std::align_val_t{64});
}

Stack PoolStackAllocator::allocate() {
  void* base = nullptr;
  if (!free_.empty()) {
    base = free_.back();
    free_.pop_back();
  } else {
    base = ::operator new (stack_size_, std::align_val_t{64});
  }
  outstanding_++;
  return Stack{base, stack_size_};
}

void PoolStackAllocator::deallocate(Stack stack) {
  HAST_ASSERT(stack.size == stack_size_);
  HAST_ASSERT(outstanding_ > 0);
  outstanding_--;
  free_.push_back(stack.base);
}

void SchedulerTrace::on_fiber(Kind kind, fiber::FiberId id) {
  world_.trace("fiber", node_, static_cast<std::uint64_t>(kind), id);
}

}  // namespace hast::sim

// The small simulated services of a node: clock, random stream, log, fiber stacks, and
// the observer that feeds scheduling decisions into the trace hash.
//
// Model: each is one node incarnation's own instance (no globals). The clock reads the
// world's virtual time plus the node's offset; the random stream is derived from the world
// seed, the node's name and the incarnation number, and every draw enters the trace hash;
// the log keeps lines with virtual time and node name.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/fiber/scheduler.h"
#include "core/io/clock.h"
#include "core/io/log.h"
#include "core/io/random.h"
#include "core/io/stack.h"
#include "core/prng.h"
#include "sim/world.h"

namespace hast::sim {

class SimNode;

class SimClock final : public Clock {
 public:
  SimClock(World& world, Duration offset) : world_(world), offset_(offset) {}
  Instant now() const override { return world_.now() + offset_; }
  // Wall time: a fixed epoch (2026-01-01) plus virtual time, so logs read naturally.
  WallTime wall() const override;

 private:
  World& world_;
  Duration offset_;
};

class SimRandom final : public Random {
 public:
  SimRandom(World& world, std::uint64_t seed, std::uint32_t node);
  std::uint64_t next_u64() override;

 private:
  World& world_;
  Prng prng_;
  std::uint32_t node_;
};

class SimLog final : public Log {
 public:
  SimLog(World& world, std::string node_name) : world_(world), node_name_(std::move(node_name)) {}
  void write(LogLevel level, std::string_view message) override;

 private:
  World& world_;
  std::string node_name_;
};

// A pool of plain heap stacks (no guard page; the simulator favours speed). Freed stacks
// are reused. Serves one thread.
class PoolStackAllocator final : public StackAllocator {
 public:
  explicit PoolStackAllocator(std::size_t stack_size);
  ~PoolStackAllocator() override;
  PoolStackAllocator(const PoolStackAllocator&) = delete;
  PoolStackAllocator& operator=(const PoolStackAllocator&) = delete;

  Stack allocate() override;
  void deallocate(Stack stack) override;
  std::size_t stack_size() const override { return stack_size_; }
  std::size_t outstanding() const { return outstanding_; }

 private:
  std::size_t stack_size_;
  std::vector<void*> free_;
  std::size_t outstanding_ = 0;
};

// Mixes every spawn, resume, finish and unwind of one node's fibers into the trace hash.
class SchedulerTrace final : public fiber::SchedulerObserver {
 public:
  SchedulerTrace(World& world, std::uint32_t node) : world_(world), node_(node) {}
  void on_fiber(Kind kind, fiber::FiberId id) override;

 private:
  World& world_;
  std::uint32_t node_;
};

}  // namespace hast::sim

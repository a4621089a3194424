// Clock: a node's view of time.
//
// Model: every node owns one Clock instance (no global clock), so the simulator can give
// each node its own offset and drift. Monotonic time is an `Instant`, a time point of the
// node clock that cannot be mixed with wall-clock time or with another clock's points.
// Sleeping and timers belong to the fiber scheduler (core/fiber), never to this interface.
//
// No safety property may depend on the clock: timeouts decide liveness only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace hast {

// Tag type of the node's monotonic clock. It has no static now(): the only way to read
// the time is through a Clock instance.
struct NodeClockTag {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<NodeClockTag, duration>;
  static constexpr bool is_steady = true;
};

using Duration = std::chrono::nanoseconds;
using Instant = NodeClockTag::time_point;
using WallTime = std::chrono::time_point<std::chrono::system_clock, Duration>;

// A point in node time after which a blocking call gives up with Errc::timed_out.
// std::nullopt means "no deadline": the call may wait forever.
using Deadline = std::optional<Instant>;

class Clock {
 public:
  virtual ~Clock() = default;

  // Monotonic time of this node. Never decreases between two calls on the same Clock
  // (the real clock asserts this). Does not suspend.
  virtual Instant now() const = 0;

  // Wall-clock time of this node, for logs and status output only. May jump in either
  // direction. Does not suspend.
  virtual WallTime wall() const = 0;
};

// Deadline `timeout` after the clock's current time.
inline Deadline deadline_after(const Clock& clock, Duration timeout) {
  return clock.now() + timeout;
}

}  // namespace hast

// PollWindow: how long a poller spins, looking for completions, before it blocks.
//
// Why: on a virtual machine a thread that blocks lets its vCPU halt, and waking a halted
// vCPU costs tens of microseconds (measured here: 4 KiB QD1 fullsync writes, where a
// request crosses five thread wake-ups between fio, both hastd and the devices, went from
// 317 to 206 us p50 when nothing let the vCPUs halt). A poller that spins briefly before it
// blocks finds the completion without a wake-up.
//
// Adaptive (the scheme of adaptive polling in event loops such as qemu's AioContext): the
// window starts at zero; a wait that blocked for less than `max` means spinning longer
// would have caught it, so the window grows (doubling from `grow_start`, capped at max);
// a wait longer than `max` means the spin was wasted, so the window halves (and drops to
// zero below grow_start). An idle or disk-bound thread thus spins next to never; a thread
// whose completions come within `max` spins until they do. `max` zero: never spin. A spin
// that found the CPU taken by another thread stops spinning for `cooldown`: on a busy
// machine a yielding spinner waits out other threads' time slices.
//
// Pure logic: the poller measures, this decides. One thread.
#pragma once

#include "core/io/clock.h"

namespace hast::real {

class PollWindow {
 public:
  explicit PollWindow(Duration max, Duration grow_start = std::chrono::microseconds(4),
                      Duration cooldown = std::chrono::milliseconds(100));

  // How long a wait starting at `now` may spin before it blocks.
  Duration current(Instant now) const { return now < cooling_until_ ? Duration::zero() : current_; }
  Duration max() const { return max_; }

  // After a wait: `idle` is the time from its start until a completion arrived (or the
  // wait ended), `caught` whether the spin saw it (then idle <= current()).
  void record(Duration idle, bool caught);

  // After a spin that stopped at `now` because another thread had the CPU: no spinning
  // for the cooldown, then the window grows again from zero.
  void contended(Instant now);

 private:
  Duration max_;
  Duration grow_start_;
  Duration cooldown_;
  Duration current_{};
  Instant cooling_until_{};

  void shrink();
};

}  // namespace hast::real

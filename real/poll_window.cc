#include "real/poll_window.h"

#include <algorithm>

#include "core/assert.h"

namespace hast::real {

PollWindow::PollWindow(Duration max, Duration grow_start, Duration cooldown)
    : max_(max), grow_start_(grow_start), cooldown_(cooldown) {
  HAST_ASSERT(max >= Duration::zero() && grow_start > Duration::zero());
}

void PollWindow::record(Duration idle, bool caught) {
  if (caught || max_ == Duration::zero()) return;
  if (idle > max_) {
    shrink();
  } else {
    current_ = std::min(max_, std::max(grow_start_, current_ * 2));
  }
}

void PollWindow::contended(Instant now) {
  current_ = Duration::zero();
  cooling_until_ = now + cooldown_;
}

void PollWindow::shrink() {
  current_ /= 2;
  if (current_ < grow_start_) current_ = Duration::zero();
}

}  // namespace hast::real

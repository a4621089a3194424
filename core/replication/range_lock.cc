// Range locks (see range_lock.h). Entries live in one list in arrival order; an entry may
// be held when no earlier entry, held or waiting, overlaps it. That one rule gives both
// mutual exclusion and first-come-first-served fairness.
#include "core/replication/range_lock.h"

#include <algorithm>
#include <utility>

namespace hast::replication {
namespace {

bool overlap(std::uint64_t a_offset, std::uint64_t a_length, std::uint64_t b_offset,
             std::uint64_t b_length) {
  return a_offset < b_offset + b_length && b_offset < a_offset + a_length;
}

}  // namespace

RangeLockGuard::RangeLockGuard(RangeLockGuard&& other) noexcept
    : locks_(std::exchange(other.locks_, nullptr)), id_(other.id_) {}

RangeLockGuard& RangeLockGuard::operator=(RangeLockGuard&& other) noexcept {
  if (this != &other) {
    release();
    locks_ = std::exchange(other.locks_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

void RangeLockGuard::release() {
  if (locks_ == nullptr) return;
  std::exchange(locks_, nullptr)->release(id_);
}

Result<RangeLockGuard> RangeLocks::lock(LockKind kind, std::uint64_t offset, std::uint64_t length,
                                        Deadline deadline) {
  return acquire(reserve(kind, offset, length), deadline);
}

std::uint64_t RangeLocks::reserve(LockKind kind, std::uint64_t offset, std::uint64_t length) {
  HAST_ASSERT(length > 0);
  HAST_ASSERT(offset + length > offset);
  std::uint64_t id = next_id_++;
  if (spare_.empty()) {
    entries_.push_back(Entry{id, kind, offset, length, false});
  } else {
    entries_.splice(entries_.end(), spare_, spare_.begin());
    entries_.back() = Entry{id, kind, offset, length, false};
  }
  return id;
}

Result<RangeLockGuard> RangeLocks::acquire(std::uint64_t reservation, Deadline deadline) {
  auto self = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& entry) { return entry.id == reservation; });
  HAST_ASSERT_MSG(self != entries_.end(), "unknown reservation {}", reservation);
  HAST_ASSERT(!self->held);
  while (!can_take(*self)) {
    fiber::WakeReason reason = waiters_.wait(deadline);
    if (reason != fiber::WakeReason::woken && !can_take(*self)) {
      cancel_reservation(reservation);
      return fail(fiber::wake_result(reason, "range lock").error());
    }
  }
  self->held = true;
  return RangeLockGuard(this, reservation);
}

void RangeLocks::cancel_reservation(std::uint64_t reservation) {
  auto found = std::find_if(entries_.begin(), entries_.end(),
                            [&](const Entry& entry) { return entry.id == reservation; });
  if (found == entries_.end()) return;
  HAST_ASSERT(!found->held);
  drop(found);
  waiters_.wake_all();  // later waiters may have been queued behind this one
}

bool RangeLocks::can_take(const Entry& entry) const {
  for (const Entry& other : entries_) {
    if (other.id == entry.id) return true;
    if (overlap(other.offset, other.length, entry.offset, entry.length)) return false;
  }
  HAST_UNREACHABLE();
}

bool RangeLocks::is_locked(LockKind kind, std::uint64_t offset, std::uint64_t length) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& entry) {
    return entry.held && entry.kind == kind && overlap(entry.offset, entry.length, offset, length);
  });
}

void RangeLocks::release(std::uint64_t id) {
  auto found = std::find_if(entries_.begin(), entries_.end(),
                            [id](const Entry& entry) { return entry.id == id; });
  HAST_ASSERT(found != entries_.end());
  HAST_ASSERT(found->held);
  drop(found);
  waiters_.wake_all();
}

void RangeLocks::drop(std::list<Entry>::iterator entry) {
  HAST_ASSERT(entry != entries_.end());
  if (spare_.size() >= spare_max) {
    entries_.erase(entry);
    return;
  }
  spare_.splice(spare_.end(), entries_, entry);
  HAST_ASSERT(spare_.size() <= spare_max);
}

std::size_t RangeLocks::held_count() const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.held; }));
}

std::size_t RangeLocks::waiting_count() const {
  return entries_.size() - held_count();
}

}  // namespace hast::replication

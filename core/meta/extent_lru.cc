// The keep-dirty list as a doubly linked list over a fixed slot array.
#include "core/meta/extent_lru.h"

#include <algorithm>

#include "core/assert.h"

namespace hast::meta {

ExtentLru::ExtentLru(std::uint64_t extent_count, std::uint32_t keep_dirty)
    : slots_(static_cast<std::size_t>(std::min<std::uint64_t>(keep_dirty, extent_count))),
      slot_of_(extent_count, none) {
  HAST_ASSERT(keep_dirty > 0);
  HAST_ASSERT(extent_count > 0);
  HAST_ASSERT(extent_count <= extent_count_max);
}

void ExtentLru::unlink(std::uint32_t slot) {
  HAST_ASSERT(slot < size_);
  Slot& s = slots_[slot];
  if (s.prev == none) {
    HAST_ASSERT(head_ == slot);
    head_ = s.next;
  } else {
    slots_[s.prev].next = s.next;
  }
  if (s.next == none) {
    HAST_ASSERT(tail_ == slot);
    tail_ = s.prev;
  } else {
    slots_[s.next].prev = s.prev;
  }
  s.prev = none;
  s.next = none;
}

void ExtentLru::link_front(std::uint32_t slot) {
  HAST_ASSERT(slot < size_);
  HAST_ASSERT(head_ != slot);
  Slot& s = slots_[slot];
  s.prev = none;
  s.next = head_;
  if (head_ != none) slots_[head_].prev = slot;
  head_ = slot;
  if (tail_ == none) tail_ = slot;
}

ExtentLru::Touch ExtentLru::touch(ExtentIndex extent) {
  HAST_ASSERT(extent.value < slot_of_.size());
  Touch result;
  std::uint32_t slot = slot_of_[extent.value];
  if (slot != none) {
    if (head_ != slot) {
      unlink(slot);
      link_front(slot);
    }
    HAST_ASSERT(head_ == slot);
    return result;
  }
  result.inserted = true;
  if (size_ < capacity()) {
    slot = size_++;
  } else {
    slot = tail_;
    HAST_ASSERT(slot != none);
    result.evicted = slots_[slot].extent;
    unlink(slot);
    slot_of_[result.evicted->value] = none;
    removals_++;
  }
  slots_[slot].extent = extent;
  slot_of_[extent.value] = slot;
  link_front(slot);
  HAST_ASSERT(size_ <= capacity());
  HAST_ASSERT(head_ == slot);
  return result;
}

bool ExtentLru::contains(ExtentIndex extent) const {
  HAST_ASSERT(extent.value < slot_of_.size());
  return slot_of_[extent.value] != none;
}

void ExtentLru::clear() {
  for (std::uint32_t slot = head_; slot != none; slot = slots_[slot].next)
    slot_of_[slots_[slot].extent.value] = none;
  removals_ += size_;
  head_ = none;
  tail_ = none;
  size_ = 0;
}

std::vector<ExtentIndex> ExtentLru::most_recent_first() const {
  std::vector<ExtentIndex> extents;
  for (std::uint32_t slot = head_; slot != none; slot = slots_[slot].next)
    extents.push_back(slots_[slot].extent);
  HAST_ASSERT(extents.size() == size_);
  return extents;
}

}  // namespace hast::meta

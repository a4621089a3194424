// ExtentLru: HAST's keep-dirty list, the most recently written extents
// (reference/hast-spec.md §5).
//
// Model: an ordered list of distinct extents, most recently touched first, holding at most
// capacity() of them. Touching an extent moves it to the front, inserting it when absent
// and evicting the least recently touched one when the list is full. Order depends only on
// the sequence of calls (no hashing, no pointer order). Storage is a fixed slot array
// linked both ways plus one slot index per extent, all allocated by the constructor, so
// touch() is O(1) and never allocates.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/meta/layout.h"

namespace hast::meta {

class ExtentLru {
 public:
  // A list over extents [0, extent_count) keeping at most min(keep_dirty, extent_count).
  ExtentLru(std::uint64_t extent_count, std::uint32_t keep_dirty);

  struct Touch {
    bool inserted = false;               // the extent was not in the list
    std::optional<ExtentIndex> evicted;  // pushed out to make room, never the touched one
  };
  Touch touch(ExtentIndex extent);

  bool contains(ExtentIndex extent) const;
  // Extents that ever left the list (evictions, and those dropped by clear()). While it
  // stays the same, every extent contains() found stays in the list.
  std::uint64_t removals() const { return removals_; }
  std::uint32_t size() const { return size_; }
  std::uint32_t capacity() const { return static_cast<std::uint32_t>(slots_.size()); }
  void clear();
  // The extents, most recently touched first. Allocates: for tests and diagnostics.
  std::vector<ExtentIndex> most_recent_first() const;

 private:
  static constexpr std::uint32_t none = 0xffffffff;
  struct Slot {
    ExtentIndex extent;
    std::uint32_t prev = none;  // towards the front (more recent)
    std::uint32_t next = none;  // towards the back (less recent)
  };
  void unlink(std::uint32_t slot);
  void link_front(std::uint32_t slot);

  std::vector<Slot> slots_;
  std::vector<std::uint32_t> slot_of_;  // per extent: its slot, or none
  std::uint32_t head_ = none;
  std::uint32_t tail_ = none;
  std::uint32_t size_ = 0;
  std::uint64_t removals_ = 0;
};

}  // namespace hast::meta

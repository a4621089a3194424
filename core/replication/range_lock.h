// RangeLocks: byte-range locks of the primary (reference/hast-spec.md §7.4, with HAST
// defect 7 of DESIGN.md §1.2 fixed).
//
// Model: two kinds of holder. A *regular* write locks its range from before its activemap
// update until its final completion (even after an early memsync ack); a *sync* chunk
// locks its range from its read to its write. With the resource in async the primary
// releases a regular write's lock as soon as its local leg succeeded (Primary::write_range,
// defect 10: a later write must not wait for the peer): its remote leg is queued by then,
// the later write's remote leg queues behind it on the one ordered connection, and the
// secondary applies overlapping requests in arrival order, so both disks still apply the
// two in one order. A write whose local leg failed keeps its lock until the secondary's
// final reply (that reply decides it; write_ack.h). Rules:
// - a regular write waits while its range overlaps a sync chunk or another regular write
//   (HAST lets overlapping regular writes run concurrently, so the two disks could apply
//   them in different orders and end with different bytes; we serialise them);
// - a sync chunk waits while its range overlaps any regular write.
// Waiters are served in arrival order: a waiter also waits for every earlier waiter whose
// range overlaps its own, so a stream of short writes cannot starve a sync chunk.
// Reads and discards are not locked (as in HAST). Everything runs on one scheduler; no
// thread safety is needed or provided.
#pragma once

#include <cstdint>
#include <list>
#include <optional>

#include "core/fiber/wait_queue.h"
#include "core/result.h"

namespace hast::replication {

enum class LockKind : std::uint8_t { regular, sync };

class RangeLocks;

// A held lock; releases on destruction (moves transfer ownership).
class RangeLockGuard {
 public:
  RangeLockGuard() = default;
  RangeLockGuard(RangeLockGuard&& other) noexcept;
  RangeLockGuard& operator=(RangeLockGuard&& other) noexcept;
  RangeLockGuard(const RangeLockGuard&) = delete;
  RangeLockGuard& operator=(const RangeLockGuard&) = delete;
  ~RangeLockGuard() { release(); }

  void release();
  bool held() const { return locks_ != nullptr; }

 private:
  friend class RangeLocks;
  RangeLockGuard(RangeLocks* locks, std::uint64_t id) : locks_(locks), id_(id) {}

  RangeLocks* locks_ = nullptr;
  std::uint64_t id_ = 0;
};

class RangeLocks {
 public:
  explicit RangeLocks(fiber::Scheduler& scheduler) : waiters_(scheduler) {}
  RangeLocks(const RangeLocks&) = delete;
  RangeLocks& operator=(const RangeLocks&) = delete;

  // Waits until [offset, offset + length) can be locked for `kind`, then locks it.
  // Errc::timed_out or Errc::cancelled when the wait ends otherwise (nothing is held).
  Result<RangeLockGuard> lock(LockKind kind, std::uint64_t offset, std::uint64_t length,
                              Deadline deadline = std::nullopt);

  // Two-step form, for a caller that must fix the order of its requests without waiting
  // (the secondary's receiver): reserve() takes a place in the queue at once and never
  // suspends; acquire() later waits for that place to be granted. A reservation that is
  // never acquired must be cancelled (or the queue behind it stalls).
  std::uint64_t reserve(LockKind kind, std::uint64_t offset, std::uint64_t length);
  Result<RangeLockGuard> acquire(std::uint64_t reservation, Deadline deadline = std::nullopt);
  void cancel_reservation(std::uint64_t reservation);

  // True when some held lock of `kind` overlaps the range.
  bool is_locked(LockKind kind, std::uint64_t offset, std::uint64_t length) const;

  std::size_t held_count() const;
  std::size_t waiting_count() const;

 private:
  friend class RangeLockGuard;
  struct Entry {
    std::uint64_t id;
    LockKind kind;
    std::uint64_t offset;
    std::uint64_t length;
    bool held;
  };

  bool can_take(const Entry& entry) const;
  void release(std::uint64_t id);
  // Takes the entry out of entries_, keeping its list node (in spare_) for a later one.
  void drop(std::list<Entry>::iterator entry);

  // Nodes kept, at most: a lock per request comes and goes without allocating.
  static constexpr std::size_t spare_max = 256;

  std::list<Entry> entries_;  // held and waiting, in arrival order
  std::list<Entry> spare_;    // nodes of dropped entries (contents meaningless)
  fiber::WaitQueue waiters_;
  std::uint64_t next_id_ = 1;
};

}  // namespace hast::replication

// GroundTruth: what the clients did and saw, recorded outside the code under test, and the
// per-sector register oracle (O1 of reference/fault-model.md §6.5) that judges every read.
//
// Model: every write carries unique data: each sector starts with a stamp naming the write
// and the sector's index inside it, and the rest of the sector is derived from the stamp, so
// any sector read back traces to the one write it came from (or to "zero": never written,
// discarded or written with zeroes). A read of sector s issued at time t may return the
// value of a write W when
//   - W began before the read ended (W.issue < read.end), and
//   - no *surviving* write W' to s lies wholly between them: W' acknowledged OK, ended
//     after W ended and began after W ended, and ended before the read began.
// Writes that failed, or were cut off by a crash, are "maybe applied": admissible, but they
// never exclude anything. A write *survives* unless a power loss may have dropped it (it
// was not flushed — no flush acknowledged OK after it ended and before the loss — and
// not FUA); a write that may have been dropped no longer excludes older values either.
// Multi-sector writes are not atomic across sectors: each sector is judged alone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/io/clock.h"
#include "core/io/disk.h"

namespace hast::sim {

using WriteId = std::uint64_t;  // 0 is the "zero" value (never written, discarded)

inline constexpr std::uint32_t stamp_magic = 0x48415354;  // "HAST"
inline constexpr std::size_t sector_bytes = 512;

// Fills `data` (whole sectors) with the stamped content of write `id`.
void stamp_sectors(WriteId id, std::span<std::byte> data);
// Fills `sector` (sector_bytes) with sector `index` of write `id`: what stamp_sectors
// writes there, so decode_sector() of it gives back (id, index).
void stamp_sector(WriteId id, std::uint32_t index, std::span<std::byte> sector);

// What one sector holds: a write's stamp, zero, or garbage (a violation by itself).
struct SectorValue {
  enum class Kind : std::uint8_t { zero, stamped, garbage };
  Kind kind = Kind::zero;
  WriteId id = 0;
  std::uint32_t index = 0;  // sector index inside the write
};

SectorValue decode_sector(std::span<const std::byte> sector);

enum class Outcome : std::uint8_t { pending, ok, failed, cut_off };

struct WriteRecord {
  WriteId id = 0;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool zero = false;  // discard or write-zeroes: the value is "zero"
  Fua fua = Fua::no;
  Instant issue{};
  Instant end{};  // ack, failure or cut-off time (valid unless pending)
  Outcome outcome = Outcome::pending;
  bool may_be_lost = false;  // acked, then a power loss may have dropped it
  std::uint32_t node = 0;    // the node that served it
  // Acknowledged while another node also served clients as primary (O7): a zombie's
  // write, or either side's during a split-brain.
  bool dual_primary = false;
  bool lost_to_power = false;  // acked and unflushed when its node lost power
};

// A violation found by an oracle, with what is needed to replay and understand it.
struct Violation {
  std::string oracle;  // "O1", ...
  std::string detail;  // the sector, the writes involved, what was read
};

class GroundTruth {
 public:
  // ---- Recording (the workload calls these) ----
  WriteId begin_write(std::uint64_t offset, std::uint64_t length, bool zero, Fua fua, Instant issue,
                      std::uint32_t node = 0);
  void end_write(WriteId id, bool ok, Instant end);
  std::uint64_t begin_flush(Instant issue);
  void end_flush(std::uint64_t flush, bool ok, Instant end);
  // A write or flush whose node died before completing it: it may or may not be applied.
  void cut_off_write(WriteId id, Instant when);
  void cut_off_flush(std::uint64_t flush, Instant when);
  // Every write and flush still pending is cut off.
  void cut_off_pending(Instant when);
  // The serving node lost power at `when`: acked writes that were not durable may be lost.
  void power_loss(Instant when);
  // While a split-brain lasts, the two primaries' histories diverge: writes begun then
  // exclude nothing (each node's reads judge only what is admissible on some node).
  void set_split_brain(bool active) { split_brain_ = active; }
  // Writes `node` served since `since` may be gone: the operator discarded that node's
  // data (split-brain recovery).
  void discard_writes(std::uint32_t node, Instant since);

  // ---- O7: writes acknowledged by two primaries ----
  // Write `id` was acknowledged OK while another node also served clients as primary.
  void mark_dual_primary(WriteId id);
  // Those writes, in id order, except the ones a power loss may have dropped.
  std::vector<WriteId> dual_primary_writes() const;
  // True when `value`, read from `sector` once the pair converged, is write `id`'s own
  // sector or the value of a write not older than `id` (one that had not completed when
  // `id` was issued): `id` was not lost.
  bool holds_or_newer(WriteId id, std::uint64_t sector, const SectorValue& value) const;

  // ---- Checking (O1) ----
  // Judges a read of [offset, offset + data.size()) issued at `issue` that returned `data`
  // at `end`. Records and returns the violations (none when every sector is admissible).
  std::vector<Violation> check_read(std::uint64_t offset, std::span<const std::byte> data,
                                    Instant issue, Instant end);

  const std::vector<Violation>& violations() const { return violations_; }

  // ---- O2, O5: durability sweeps ----
  // True when `value`, found in `sector` of the serving node's data area at `at`, is what
  // a read issued and answered at `at` may return (O1's rule: not garbage, and no write
  // that must survive — acked OK, not in AllowedLoss — is newer than it). Records nothing.
  bool durable_value(std::uint64_t sector, const SectorValue& value, Instant at) const;
  // The same for a sweep judged as one read issued at `issue` and answered at `end`: the
  // writes that must survive are those that did at `issue`; writes issued before `end`
  // are concurrent with it (O5's sweep of a sync target over the sync's span).
  bool durable_value(std::uint64_t sector, const SectorValue& value, Instant issue,
                     Instant end) const {
    return value.kind != SectorValue::Kind::garbage && admissible(sector, value, issue, end);
  }

  const WriteRecord& write(WriteId id) const;
  std::size_t write_count() const { return writes_.size(); }
  std::uint64_t reads_checked() const { return reads_checked_; }
  // The writes to `sector` (index of 512-byte sectors) with their times and outcomes.
  std::string describe_sector(std::uint64_t sector) const;
  // "w12#3" (write 12, its sector 3), "zero" or "garbage".
  static std::string describe_value(const SectorValue& value);

 private:
  struct Flush {
    Instant issue{};
    Instant end{};
    Outcome outcome = Outcome::pending;
  };

  bool admissible(std::uint64_t sector, const SectorValue& value, Instant read_issue,
                  Instant read_end) const;
  bool candidate(const WriteRecord& write, std::uint64_t sector, const SectorValue& value,
                 Instant read_end) const;

  std::vector<WriteRecord> writes_;  // index = id - 1
  // Calls fn(id) for the writes to `sector`, newest (last issued) first, until fn returns
  // true; returns whether it did.
  template <typename Fn>
  bool any_write_newest_first(std::uint64_t sector, Fn&& fn) const;

  // The writes to each sector as lists threaded through one array, newest first: a write
  // appends one entry per sector it covers, next to each other, so the entries a read of
  // consecutive sectors looks at are close in memory (a list per sector missed the cache
  // on every sector). `newest_` is indexed by sector and grown to the highest sector
  // written (the clients' devices are small); 0 means none, else an index + 1. The array
  // is kept in blocks of entry_block entries: growing it never copies what it holds
  // (a run appends about a million entries).
  struct SectorEntry {
    std::uint32_t id = 0;     // the write (asserted to fit)
    std::uint32_t older = 0;  // the previous entry of the same sector (index + 1), or 0
  };
  static constexpr std::uint64_t entry_block = std::uint64_t{1} << 16;
  const SectorEntry& entry(std::uint64_t index) const {
    return entry_blocks_[index / entry_block][index % entry_block];
  }
  std::vector<std::unique_ptr<SectorEntry[]>> entry_blocks_;
  std::uint64_t entry_count_ = 0;
  std::vector<std::uint32_t> newest_;
  std::vector<Flush> flushes_;
  std::vector<Violation> violations_;
  std::uint64_t reads_checked_ = 0;
  bool split_brain_ = false;
};

}  // namespace hast::sim

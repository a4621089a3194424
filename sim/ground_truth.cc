// Ground truth and the per-sector register oracle (see ground_truth.h).
#include "sim/ground_truth.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "core/assert.h"
#include "core/prng.h"
#include "sim/stamp_body.h"

namespace hast::sim {
namespace {

constexpr std::size_t kStampBytes = stamp_body::stamp_bytes;
static_assert(kStampBytes + stamp_body::body_bytes == sector_bytes);

}  // namespace

void stamp_sectors(WriteId id, std::span<std::byte> data) {
  HAST_ASSERT(id != 0);
  HAST_ASSERT(data.size() % sector_bytes == 0);
  for (std::size_t s = 0; s < data.size() / sector_bytes; s++) {
    stamp_sector(id, static_cast<std::uint32_t>(s), data.subspan(s * sector_bytes, sector_bytes));
  }
}

void stamp_sector(WriteId id, std::uint32_t index, std::span<std::byte> sector) {
  HAST_ASSERT(id != 0);
  HAST_ASSERT(sector.size() == sector_bytes);
  std::memcpy(sector.data(), &stamp_magic, 4);
  std::memcpy(sector.data() + 4, &id, 8);
  std::memcpy(sector.data() + 12, &index, 4);
  stamp_body::fill(stamp_body::base(id, index), sector.data() + kStampBytes);
}

SectorValue decode_sector(std::span<const std::byte> sector) {
  HAST_ASSERT(sector.size() == sector_bytes);
  SectorValue value{SectorValue::Kind::garbage};
  std::uint32_t magic = 0;
  std::memcpy(&magic, sector.data(), 4);
  // A stamped sector is never all zero (the magic is not), so the magic decides first.
  if (magic != stamp_magic) return stamp_body::all_zero(sector.data()) ? SectorValue{} : value;
  std::memcpy(&value.id, sector.data() + 4, 8);
  std::memcpy(&value.index, sector.data() + 12, 4);
  if (value.id == 0 ||
      !stamp_body::matches(stamp_body::base(value.id, value.index), sector.data() + kStampBytes)) {
    return SectorValue{SectorValue::Kind::garbage};
  }
  value.kind = SectorValue::Kind::stamped;
  return value;
}

WriteId GroundTruth::begin_write(std::uint64_t offset, std::uint64_t length, bool zero, Fua fua,
                                 Instant issue, std::uint32_t node) {
  HAST_ASSERT(length > 0);
  HAST_ASSERT(offset % sector_bytes == 0 && length % sector_bytes == 0);
  WriteId id = writes_.size() + 1;
  writes_.push_back(WriteRecord{id, offset, length, zero, fua, issue});
  writes_.back().node = node;
  writes_.back().may_be_lost = split_brain_;
  const std::uint64_t end = (offset + length) / sector_bytes;
  if (newest_.size() < end) newest_.resize(end, 0);
  const std::uint64_t limit = std::numeric_limits<std::uint32_t>::max();
  HAST_ASSERT_MSG(id <= limit && entry_count_ + (end - offset / sector_bytes) <= limit,
                  "ground truth: more writes or sector entries than it can index");
  for (std::uint64_t s = offset / sector_bytes; s < end; s++) {
    if (entry_count_ % entry_block == 0) {
      entry_blocks_.push_back(std::make_unique_for_overwrite<SectorEntry[]>(entry_block));
    }
    entry_blocks_.back()[entry_count_ % entry_block] =
        SectorEntry{static_cast<std::uint32_t>(id), newest_[s]};
    newest_[s] = static_cast<std::uint32_t>(++entry_count_);
  }
  return id;
}

template <typename Fn>
bool GroundTruth::any_write_newest_first(std::uint64_t sector, Fn&& fn) const {
  std::uint64_t at = sector < newest_.size() ? newest_[sector] : 0;
  while (at != 0) {
    HAST_ASSERT(at <= entry_count_);
    const SectorEntry& found = entry(at - 1);
    if (fn(WriteId{found.id})) return true;
    HAST_ASSERT(found.older < at);
    at = found.older;
  }
  return false;
}

void GroundTruth::end_write(WriteId id, bool ok, Instant end) {
  HAST_ASSERT(id >= 1 && id <= writes_.size());
  WriteRecord& record = writes_[id - 1];
  HAST_ASSERT_MSG(record.outcome == Outcome::pending, "write {} completed twice", id);
  record.outcome = ok ? Outcome::ok : Outcome::failed;
  record.end = end;
}

std::uint64_t GroundTruth::begin_flush(Instant issue) {
  flushes_.push_back(Flush{issue});
  return flushes_.size() - 1;
}

void GroundTruth::end_flush(std::uint64_t flush, bool ok, Instant end) {
  HAST_ASSERT(flush < flushes_.size());
  HAST_ASSERT(flushes_[flush].outcome == Outcome::pending);
  flushes_[flush].outcome = ok ? Outcome::ok : Outcome::failed;
  flushes_[flush].end = end;
}

void GroundTruth::cut_off_write(WriteId id, Instant when) {
  HAST_ASSERT(id >= 1 && id <= writes_.size());
  WriteRecord& record = writes_[id - 1];
  HAST_ASSERT(record.outcome == Outcome::pending);
  record.outcome = Outcome::cut_off;
  record.end = when;
}

void GroundTruth::cut_off_flush(std::uint64_t flush, Instant when) {
  HAST_ASSERT(flush < flushes_.size());
  HAST_ASSERT(flushes_[flush].outcome == Outcome::pending);
  flushes_[flush].outcome = Outcome::cut_off;
  flushes_[flush].end = when;
}

void GroundTruth::cut_off_pending(Instant when) {
  for (WriteRecord& record : writes_) {
    if (record.outcome != Outcome::pending) continue;
    record.outcome = Outcome::cut_off;
    record.end = when;
  }
  for (Flush& flush : flushes_) {
    if (flush.outcome != Outcome::pending) continue;
    flush.outcome = Outcome::cut_off;
    flush.end = when;
  }
}

void GroundTruth::power_loss(Instant when) {
  cut_off_pending(when);
  for (WriteRecord& record : writes_) {
    if (record.outcome != Outcome::ok || record.fua == Fua::yes || record.may_be_lost) continue;
    bool flushed = std::any_of(flushes_.begin(), flushes_.end(), [&](const Flush& flush) {
      return flush.outcome == Outcome::ok && flush.issue >= record.end && flush.end <= when;
    });
    if (flushed) continue;
    record.may_be_lost = true;
    record.lost_to_power = true;
  }
}

void GroundTruth::discard_writes(std::uint32_t node, Instant since) {
  for (WriteRecord& record : writes_) {
    if (record.node == node && record.issue >= since) record.may_be_lost = true;
  }
}

void GroundTruth::mark_dual_primary(WriteId id) {
  HAST_ASSERT(id >= 1 && id <= writes_.size());
  HAST_ASSERT(writes_[id - 1].outcome == Outcome::ok);
  writes_[id - 1].dual_primary = true;
}

std::vector<WriteId> GroundTruth::dual_primary_writes() const {
  std::vector<WriteId> ids;
  for (const WriteRecord& record : writes_) {
    if (record.dual_primary && !record.lost_to_power) ids.push_back(record.id);
  }
  return ids;
}

bool GroundTruth::holds_or_newer(WriteId id, std::uint64_t sector, const SectorValue& value) const {
  const WriteRecord& mine = write(id);
  HAST_ASSERT(mine.offset <= sector * sector_bytes);
  HAST_ASSERT(sector * sector_bytes < mine.offset + mine.length);
  auto newer = [&](const WriteRecord& other) {
    return other.outcome == Outcome::pending || other.end > mine.issue;
  };
  if (value.kind == SectorValue::Kind::garbage) return false;
  if (value.kind == SectorValue::Kind::stamped) {
    if (value.id == 0 || value.id > writes_.size()) return false;
    const WriteRecord& other = writes_[value.id - 1];
    bool covers = other.offset <= sector * sector_bytes &&
                  sector * sector_bytes < other.offset + other.length;
    if (!covers || !candidate(other, sector, value, Instant::max())) return false;
    return value.id == id || newer(other);
  }
  if (sector >= newest_.size() || newest_[sector] == 0) return mine.zero;
  return any_write_newest_first(sector, [&](WriteId other) {
    const WriteRecord& record = writes_[other - 1];
    return record.zero && (other == id || newer(record));
  });
}

const WriteRecord& GroundTruth::write(WriteId id) const {
  HAST_ASSERT(id >= 1 && id <= writes_.size());
  return writes_[id - 1];
}

bool GroundTruth::candidate(const WriteRecord& write, std::uint64_t sector,
                            const SectorValue& value, Instant read_end) const {
  if (write.issue >= read_end) return false;
  if (value.kind == SectorValue::Kind::zero) return write.zero;
  if (write.zero || write.id != value.id) return false;
  return value.index == (sector * sector_bytes - write.offset) / sector_bytes;
}

bool GroundTruth::admissible(std::uint64_t sector, const SectorValue& value, Instant read_issue,
                             Instant read_end) const {
  // A write W is excluded when a surviving write began after W ended and ended before the
  // read began, so only the latest start among such writes matters. Scanning from the
  // newest issued, the first such write has the latest start.
  std::optional<Instant> latest_start;
  any_write_newest_first(sector, [&](WriteId id) {
    const WriteRecord& later = writes_[id - 1];
    if (later.outcome != Outcome::ok || later.may_be_lost || later.end >= read_issue) {
      return false;
    }
    latest_start = later.issue;
    return true;
  });
  auto excluded = [&](const WriteRecord& earlier) {
    if (!latest_start || earlier.outcome == Outcome::pending) return false;
    return *latest_start > earlier.end;
  };
  if (value.kind == SectorValue::Kind::stamped) {
    // One write carries this stamp; it must cover this sector and not be excluded.
    if (value.id == 0 || value.id > writes_.size()) return false;
    const WriteRecord& write = writes_[value.id - 1];
    bool covers = write.offset <= sector * sector_bytes &&
                  sector * sector_bytes < write.offset + write.length;
    return covers && candidate(write, sector, value, read_end) && !excluded(write);
  }
  // Zero: the initial content ("ended" before time began, never lost) or a zero write.
  // Newest first: a recent zero write is the one likely to be admissible, and the answer
  // does not depend on the order.
  if (!latest_start) return true;
  return any_write_newest_first(sector, [&](WriteId id) {
    const WriteRecord& write = writes_[id - 1];
    return candidate(write, sector, value, read_end) && !excluded(write);
  });
}

bool GroundTruth::durable_value(std::uint64_t sector, const SectorValue& value,
                                Instant at) const {
  return value.kind != SectorValue::Kind::garbage && admissible(sector, value, at, at);
}

std::vector<Violation> GroundTruth::check_read(std::uint64_t offset,
                                               std::span<const std::byte> data, Instant issue,
                                               Instant end) {
  HAST_ASSERT(offset % sector_bytes == 0 && data.size() % sector_bytes == 0);
  HAST_ASSERT(issue <= end);
  reads_checked_++;
  std::vector<Violation> found;
  for (std::size_t i = 0; i < data.size() / sector_bytes; i++) {
    std::uint64_t sector = offset / sector_bytes + i;
    SectorValue value = decode_sector(data.subspan(i * sector_bytes, sector_bytes));
    if (value.kind != SectorValue::Kind::garbage && admissible(sector, value, issue, end)) {
      continue;
    }
    std::string what = describe_value(value);
    found.push_back(Violation{
        "O1", fmt::format("sector {} (byte {}) read {} in a read issued at {}ns; history: {}",
                          sector, sector * sector_bytes, what, issue.time_since_epoch().count(),
                          describe_sector(sector))});
  }
  violations_.insert(violations_.end(), found.begin(), found.end());
  return found;
}

std::string GroundTruth::describe_value(const SectorValue& value) {
  switch (value.kind) {
    case SectorValue::Kind::garbage:
      return "garbage";
    case SectorValue::Kind::zero:
      return "zero";
    case SectorValue::Kind::stamped:
      break;
  }
  return fmt::format("write {} (its sector {})", value.id, value.index);
}

std::string GroundTruth::describe_sector(std::uint64_t sector) const {
  std::vector<WriteId> ids;
  any_write_newest_first(sector, [&](WriteId id) {
    ids.push_back(id);
    return false;
  });
  if (ids.empty()) return "never written";
  std::reverse(ids.begin(), ids.end());  // in issue order
  std::string text;
  static constexpr const char* outcomes[] = {"pending", "ok", "failed", "cut off"};
  for (WriteId id : ids) {
    const WriteRecord& w = writes_[id - 1];
    text += fmt::format("[w{}{} {}..{}ns {}{}] ", id, w.zero ? " zero" : "",
                        w.issue.time_since_epoch().count(), w.end.time_since_epoch().count(),
                        outcomes[static_cast<int>(w.outcome)], w.may_be_lost ? " maybe-lost" : "");
  }
  return text;
}

}  // namespace hast::sim

// Compact storage of disk contents: 512-byte units kept as the value they decode to.
//
// The client workload writes stamped sectors (ground_truth.h: a 16-byte stamp naming the
// write and the sector, then a body derived from the stamp), and most of a simulated disk
// holds such sectors or zeroes. Kept whole, a 16 MiB disk image does not fit the
// processor's caches and every simulated write, read and flush moves its bytes through
// memory. So the simulator's storage (SparseImage and the disk cache, sim_disk_pristine.h)
// keeps a unit as its decoded value (zero, or sector i of write w) when decode_sector()
// finds that the bytes are exactly that value, and keeps its bytes otherwise (metadata,
// the activemap, garbage, a foreign disk's bytes, anything else). Whether a unit is
// compact is decided from its bytes each time it is stored, never assumed, and a read
// expands the value back to the same bytes: the code under test and the oracles see
// exactly what was written. Units are 512 bytes whatever the disk's sector size (a
// multiple of 512), so a write torn at sector granularity lands whole units.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sim/ground_truth.h"

namespace hast::sim {

inline constexpr std::size_t unit_bytes = sector_bytes;

// One unit in 16 bytes: its decoded value, or where its bytes are kept.
struct UnitHead {
  enum class Kind : std::uint8_t { zero, stamped, raw };
  std::uint64_t id = 0;     // stamped: the write; raw: the store's slot for the bytes
  std::uint32_t index = 0;  // stamped: the sector inside the write
  Kind kind = Kind::zero;

  bool compact() const { return kind != Kind::raw; }
  friend bool operator==(const UnitHead&, const UnitHead&) = default;
};
static_assert(sizeof(UnitHead) == 16, "a unit's head is a thirty-second of its bytes");

// The head of `unit` (unit_bytes): compact when expand_unit() of it gives back exactly
// these bytes, else Kind::raw with id 0 (the caller keeps the bytes and sets the slot).
UnitHead encode_unit(std::span<const std::byte> unit);
// Writes the bytes of a compact unit into `out` (unit_bytes).
void expand_unit(const UnitHead& head, std::span<std::byte> out);

// A sequence of units (a cached write's bytes): a head per unit, and the bytes of the
// units that are not compact.
class UnitRun {
 public:
  UnitRun() = default;
  // Encodes `bytes` (a whole number of units, at least one).
  explicit UnitRun(std::span<const std::byte> bytes);

  bool empty() const { return heads_.empty(); }
  std::size_t size() const { return heads_.size(); }
  const UnitHead& head(std::size_t i) const { return heads_[i]; }
  // The bytes of a raw unit of this run, given its head.
  std::span<const std::byte> raw(const UnitHead& head) const;
  std::size_t raw_count() const { return raw_.size() / unit_bytes; }
  // Writes the bytes of units [first, first + out.size() / unit_bytes) into `out` (a whole
  // number of units, within the run).
  void read(std::size_t first, std::span<std::byte> out) const;

 private:
  std::vector<UnitHead> heads_;
  std::vector<std::byte> raw_;  // raw units' bytes, unit_bytes each, by slot
};

}  // namespace hast::sim

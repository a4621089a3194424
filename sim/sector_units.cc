// Compact storage of disk contents (see sector_units.h).
#include "sim/sector_units.h"

#include <cstring>

#include "core/assert.h"

namespace hast::sim {

UnitHead encode_unit(std::span<const std::byte> unit) {
  HAST_ASSERT(unit.size() == unit_bytes);
  // decode_sector() says `stamped` only when the stamp and the whole body match, and
  // `zero` only when every byte is zero: both expand back to exactly these bytes.
  const SectorValue value = decode_sector(unit);
  switch (value.kind) {
    case SectorValue::Kind::zero:
      return UnitHead{};
    case SectorValue::Kind::stamped:
      HAST_ASSERT(value.id != 0);
      return UnitHead{value.id, value.index, UnitHead::Kind::stamped};
    case SectorValue::Kind::garbage:
      return UnitHead{0, 0, UnitHead::Kind::raw};
  }
  HAST_UNREACHABLE();
}

void expand_unit(const UnitHead& head, std::span<std::byte> out) {
  HAST_ASSERT(out.size() == unit_bytes);
  HAST_ASSERT_MSG(head.compact(), "a raw unit has no value to expand");
  if (head.kind == UnitHead::Kind::zero) {
    std::memset(out.data(), 0, unit_bytes);
  } else {
    stamp_sector(head.id, head.index, out);
  }
}

UnitRun::UnitRun(std::span<const std::byte> bytes) {
  HAST_ASSERT(!bytes.empty());
  HAST_ASSERT(bytes.size() % unit_bytes == 0);
  heads_.reserve(bytes.size() / unit_bytes);
  for (std::size_t at = 0; at < bytes.size(); at += unit_bytes) {
    const std::span<const std::byte> unit = bytes.subspan(at, unit_bytes);
    UnitHead head = encode_unit(unit);
    if (!head.compact()) {
      head.id = raw_.size() / unit_bytes;
      raw_.insert(raw_.end(), unit.begin(), unit.end());
    }
    heads_.push_back(head);
  }
  HAST_ASSERT(heads_.size() == bytes.size() / unit_bytes);
}

std::span<const std::byte> UnitRun::raw(const UnitHead& head) const {
  HAST_ASSERT(!head.compact());
  HAST_ASSERT(head.id < raw_count());
  return std::span(raw_).subspan(head.id * unit_bytes, unit_bytes);
}

void UnitRun::read(std::size_t first, std::span<std::byte> out) const {
  HAST_ASSERT(out.size() % unit_bytes == 0);
  const std::size_t count = out.size() / unit_bytes;
  HAST_ASSERT(first <= heads_.size() && count <= heads_.size() - first);
  for (std::size_t i = 0; i < count; i++) {
    const UnitHead& unit = heads_[first + i];
    const std::span<std::byte> target = out.subspan(i * unit_bytes, unit_bytes);
    if (unit.compact()) {
      expand_unit(unit, target);
    } else {
      std::memcpy(target.data(), raw(unit).data(), unit_bytes);
    }
  }
}

}  // namespace hast::sim

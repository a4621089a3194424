// Layout of a local component: where the metadata, the activemap and the data live
// (reference/hast-spec.md §4.1). Pure arithmetic: numbers in, numbers or an error out.
//
//   offset 0                : metadata block, metadata_size (4096) bytes
//   offset 4096             : activemap, map_size_bytes
//   offset 4096 + map size  : the data area ("localoff"), data_size_bytes
//
// HAST computes the layout once, in `hastctl create`, from the media size: the number of
// extents covers everything after the metadata block (`nextents = ceil((mediasize - 4096) /
// extentsize)`), the map is one bit per extent rounded up to 8 bytes (FreeBSD's bitstring
// of unsigned longs) and then to the sector size, and the data area is what remains.
// Afterwards every number comes from the metadata block, never from the configuration.
//
// Where HAST asserts (a non-power-of-two extent size aborts `hastctl create`) or silently
// produces a useless layout (a media size smaller than the metadata, an empty data area),
// compute_layout returns Errc::invalid_argument with a sentence naming the problem.
// We also require the media size to be a multiple of the sector size, so the data area is
// a whole number of sectors (HAST accepts any `-m` value).
#pragma once

#include <compare>
#include <cstdint>

#include "core/result.h"

namespace hast::meta {

// Bytes of the metadata block at offset 0. Fixed whatever the sector size (HAST's
// METADATA_SIZE; sectors above 4096 bytes cannot hold this layout and are rejected).
inline constexpr std::uint32_t metadata_size = 4096;
// HAST's defaults for `hastctl create` (HAST_EXTENTSIZE, HAST_KEEPDIRTY).
inline constexpr std::uint32_t default_extent_size_bytes = 2 * 1024 * 1024;
inline constexpr std::uint32_t default_keep_dirty = 64;
// FreeBSD numbers extents with an int: a layout with more extents cannot be used by a
// FreeBSD peer, and the in-memory map would be unreasonably large.
inline constexpr std::uint64_t extent_count_max = 0x7fffffff;
// Bits of the activemap are stored in units of this many bytes before the sector rounding
// (sizeof(unsigned long) in FreeBSD's bitstring).
inline constexpr std::uint64_t map_word_bytes = 8;

// Index of an extent of the data area: bit `value` of the activemap, covering device bytes
// [value * extent size, (value + 1) * extent size). Never a byte offset.
struct ExtentIndex {
  std::uint64_t value = 0;
  friend auto operator<=>(const ExtentIndex&, const ExtentIndex&) = default;
};

struct Layout {
  std::uint64_t media_size_bytes = 0;    // what the layout was computed from
  std::uint32_t sector_size_bytes = 0;   // the local component's sector size
  std::uint32_t extent_size_bytes = 0;   // bytes per activemap bit
  std::uint64_t extent_count = 0;        // extents covering media_size - metadata_size
  std::uint64_t map_size_bytes = 0;      // activemap bytes reserved on disk
  std::uint64_t local_offset_bytes = 0;  // where the data area starts ("localoff")
  std::uint64_t data_size_bytes = 0;     // size of the data area, the exported device
  friend bool operator==(const Layout&, const Layout&) = default;
};

// Computes the layout of a component of `media_size_bytes` (the provider's size or
// `hastctl create -m`) with `sector_size_bytes` sectors and `extent_size_bytes` extents.
// Fails with Errc::invalid_argument when: the sector size is 0, not a power of two or above
// metadata_size; the extent size is below the sector size, not a multiple of it, or not a
// power of two; the media size is not a multiple of the sector size or leaves no room for
// a data area; the extent count passes extent_count_max.
Result<Layout> compute_layout(std::uint64_t media_size_bytes, std::uint32_t extent_size_bytes,
                              std::uint32_t sector_size_bytes);

// Extents needed to cover `covered_bytes` (> 0): ceil(covered / extent size).
std::uint64_t extent_count_for(std::uint64_t covered_bytes, std::uint32_t extent_size_bytes);

// Bytes of a bitmap of `extent_count` bits rounded up to map_word_bytes (FreeBSD's
// bitstr_size × sizeof(bitstr_t)); the part of the map that carries bits.
std::uint64_t map_bitmap_bytes(std::uint64_t extent_count);

// On-disk activemap size for a map covering `covered_bytes` (> 0): map_bitmap_bytes rounded
// up to the sector size (activemap_calc_ondisk_size). At create time the map covers
// media_size - metadata_size; a running primary sizes it from the data size, which can
// give a smaller value (never a larger one).
std::uint64_t map_ondisk_bytes(std::uint64_t covered_bytes, std::uint32_t extent_size_bytes,
                               std::uint32_t sector_size_bytes);

constexpr bool is_power_of_two(std::uint64_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

}  // namespace hast::meta

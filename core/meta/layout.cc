// Layout arithmetic (reference/hast-spec.md §4.1). The error sentences reuse HAST's
// `hastctl create` wording where it has one.
#include "core/meta/layout.h"

#include <fmt/format.h>

namespace hast::meta {
namespace {

constexpr std::uint64_t round_up(std::uint64_t value, std::uint64_t unit) {
  return (value + unit - 1) / unit * unit;
}

Unexpected bad(std::string text) {
  return fail(Errc::invalid_argument, std::move(text));
}

// The checks on sector and extent size that do not depend on the media size.
Result<void> check_sizes(std::uint32_t extent_size, std::uint32_t sector_size) {
  if (!is_power_of_two(sector_size)) {
    return bad(fmt::format("Sector size is not power of 2 ({}).", sector_size));
  }
  if (sector_size > metadata_size) {
    return bad(fmt::format("Sector size ({}) is larger than the metadata block ({}).", sector_size,
                           metadata_size));
  }
  if (extent_size < sector_size) {
    return bad(
        fmt::format("Extent size ({}) is less than sector size ({}).", extent_size, sector_size));
  }
  if (extent_size % sector_size != 0) {
    return bad(fmt::format("Extent size ({}) is not multiple of sector size ({}).", extent_size,
                           sector_size));
  }
  if (!is_power_of_two(extent_size)) {
    return bad(fmt::format("Extent size ({}) is not a power of 2.", extent_size));
  }
  return ok();
}

}  // namespace

std::uint64_t extent_count_for(std::uint64_t covered_bytes, std::uint32_t extent_size_bytes) {
  HAST_ASSERT(covered_bytes > 0);
  HAST_ASSERT(extent_size_bytes > 0);
  return (covered_bytes - 1) / extent_size_bytes + 1;
}

std::uint64_t map_bitmap_bytes(std::uint64_t extent_count) {
  HAST_ASSERT(extent_count <= extent_count_max);
  std::uint64_t bytes = round_up(round_up(extent_count, 8) / 8, map_word_bytes);
  HAST_ASSERT(bytes * 8 >= extent_count);
  return bytes;
}

std::uint64_t map_ondisk_bytes(std::uint64_t covered_bytes, std::uint32_t extent_size_bytes,
                               std::uint32_t sector_size_bytes) {
  HAST_ASSERT(is_power_of_two(sector_size_bytes));
  std::uint64_t extents = extent_count_for(covered_bytes, extent_size_bytes);
  std::uint64_t bytes = round_up(map_bitmap_bytes(extents), sector_size_bytes);
  HAST_ASSERT(bytes % sector_size_bytes == 0);
  return bytes;
}

Result<Layout> compute_layout(std::uint64_t media_size_bytes, std::uint32_t extent_size_bytes,
                              std::uint32_t sector_size_bytes) {
  HAST_TRY(check_sizes(extent_size_bytes, sector_size_bytes));
  if (media_size_bytes % sector_size_bytes != 0) {
    return bad(fmt::format("Media size ({}) is not multiple of sector size ({}).", media_size_bytes,
                           sector_size_bytes));
  }
  if (media_size_bytes <= metadata_size) {
    return bad(
        fmt::format("Media size ({}) is too small: the metadata block alone takes {} "
                    "bytes.",
                    media_size_bytes, metadata_size));
  }
  Layout layout;
  layout.media_size_bytes = media_size_bytes;
  layout.sector_size_bytes = sector_size_bytes;
  layout.extent_size_bytes = extent_size_bytes;
  std::uint64_t covered = media_size_bytes - metadata_size;
  layout.extent_count = extent_count_for(covered, extent_size_bytes);
  if (layout.extent_count > extent_count_max) {
    return bad(
        fmt::format("Media size ({}) needs {} extents of {} bytes; at most {} are "
                    "supported.",
                    media_size_bytes, layout.extent_count, extent_size_bytes, extent_count_max));
  }
  layout.map_size_bytes = map_ondisk_bytes(covered, extent_size_bytes, sector_size_bytes);
  if (layout.map_size_bytes >= covered) {
    return bad(
        fmt::format("Media size ({}) is too small: the metadata block ({} bytes) and "
                    "the activemap ({} bytes) leave no room for data.",
                    media_size_bytes, metadata_size, layout.map_size_bytes));
  }
  layout.local_offset_bytes = metadata_size + layout.map_size_bytes;
  layout.data_size_bytes = covered - layout.map_size_bytes;
  HAST_ASSERT(layout.local_offset_bytes + layout.data_size_bytes == media_size_bytes);
  HAST_ASSERT(layout.data_size_bytes % sector_size_bytes == 0);
  HAST_ASSERT(layout.extent_count * extent_size_bytes >= layout.data_size_bytes);
  return layout;
}

}  // namespace hast::meta

// Layout of a local component (reference/hast-spec.md §4.1): golden values, every error,
// and the relations between the numbers for any valid input.
#include <catch2/catch.hpp>

#include "core/meta/layout.h"
#include "tests/support/property.h"

using hast::Errc;
using hast::meta::compute_layout;
using hast::meta::Layout;

namespace {

constexpr std::uint64_t kib = 1024;
constexpr std::uint64_t mib = 1024 * kib;
constexpr std::uint64_t gib = 1024 * mib;

// The error text of a layout that must fail with invalid_argument.
std::string layout_error(std::uint64_t media, std::uint32_t extent, std::uint32_t sector) {
  auto layout = compute_layout(media, extent, sector);
  REQUIRE_FALSE(layout.has_value());
  CHECK(layout.error().code() == Errc::invalid_argument);
  return layout.error().context();
}

}  // namespace

TEST_CASE("Layout: the spec's example (10 GiB, 512-byte sectors, 2 MiB extents)", "[unit][meta]") {
  auto layout = compute_layout(10 * gib, 2 * mib, 512);
  REQUIRE(layout.has_value());
  CHECK(layout->extent_count == 5120);
  CHECK(hast::meta::map_bitmap_bytes(layout->extent_count) == 640);
  CHECK(layout->map_size_bytes == 1024);
  CHECK(layout->local_offset_bytes == 5120);
  CHECK(layout->data_size_bytes == 10'737'413'120);
  CHECK(layout->media_size_bytes == 10 * gib);
  // A primary sizes its map from the data size: here the same 1024 bytes.
  CHECK(hast::meta::map_ondisk_bytes(layout->data_size_bytes, 2 * mib, 512) == 1024);
}

TEST_CASE("Layout: other golden geometries", "[unit][meta]") {
  // 4 KiB sectors: 512 extents -> 64 bytes of bits -> one 4096-byte sector of map.
  auto big_sectors = compute_layout(1 * gib, 2 * mib, 4096);
  REQUIRE(big_sectors.has_value());
  CHECK(big_sectors->extent_count == 512);
  CHECK(big_sectors->map_size_bytes == 4096);
  CHECK(big_sectors->local_offset_bytes == 8192);
  CHECK(big_sectors->data_size_bytes == 1 * gib - 8192);
  // The smallest useful component: two 512-byte extents, one sector of map, one of data.
  auto tiny = compute_layout(4096 + 512 + 512, 512, 512);
  REQUIRE(tiny.has_value());
  CHECK(tiny->extent_count == 2);
  CHECK(tiny->map_size_bytes == 512);
  CHECK(tiny->data_size_bytes == 512);
  // 65 extents need 9 bytes of bits, rounded to 16 (FreeBSD's unsigned longs), then 512.
  CHECK(hast::meta::map_bitmap_bytes(64) == 8);
  CHECK(hast::meta::map_bitmap_bytes(65) == 16);
  CHECK(hast::meta::map_bitmap_bytes(1) == 8);
  CHECK(hast::meta::extent_count_for(1, 512) == 1);
  CHECK(hast::meta::extent_count_for(512, 512) == 1);
  CHECK(hast::meta::extent_count_for(513, 512) == 2);
}

TEST_CASE("Layout: each invalid input is rejected with a clear sentence", "[unit][meta]") {
  CHECK(layout_error(gib, 2 * mib, 520) == "Sector size is not power of 2 (520).");
  CHECK(layout_error(gib, 2 * mib, 0) == "Sector size is not power of 2 (0).");
  CHECK(layout_error(gib, 2 * mib, 8192) ==
        "Sector size (8192) is larger than the metadata block (4096).");
  CHECK(layout_error(gib, 256, 512) == "Extent size (256) is less than sector size (512).");
  CHECK(layout_error(gib, 0, 512) == "Extent size (0) is less than sector size (512).");
  CHECK(layout_error(gib, 2048, 4096) == "Extent size (2048) is less than sector size (4096).");
  CHECK(layout_error(gib, 6144, 4096) ==
        "Extent size (6144) is not multiple of sector size "
        "(4096).");
  CHECK(layout_error(gib, 1536, 512) == "Extent size (1536) is not a power of 2.");
  CHECK(layout_error(gib + 100, 2 * mib, 512) ==
        "Media size (1073741924) is not multiple of sector size (512).");
  CHECK(layout_error(4096, 512, 512) ==
        "Media size (4096) is too small: the metadata block alone takes 4096 bytes.");
  CHECK(layout_error(0, 512, 512).find("too small") != std::string::npos);
  CHECK(layout_error(4096 + 512, 512, 512) ==
        "Media size (4608) is too small: the metadata block (4096 bytes) and the activemap "
        "(512 bytes) leave no room for data.");
  // 2^31 extents of 512 bytes: one more than FreeBSD's int can number.
  std::uint64_t huge = 4096 + (std::uint64_t{1} << 31) * 512;
  CHECK(layout_error(huge, 512, 512).find("at most 2147483647") != std::string::npos);
  CHECK(compute_layout(huge, 1024, 512).has_value());
}

TEST_CASE("Layout: the numbers fit together for any valid input", "[unit][meta]") {
  hast::test::property("layout relations", [](std::uint32_t media_sectors, std::uint8_t sector_log,
                                              std::uint8_t extent_log) {
    std::uint32_t sector = std::uint32_t{512} << (sector_log % 4);  // 512 .. 4096
    std::uint32_t extent = sector << (extent_log % 14);             // sector .. 8192×
    std::uint64_t media = (std::uint64_t{media_sectors} % 50'000'000 + 1) * sector;
    auto layout = compute_layout(media, extent, sector);
    std::uint64_t covered = media > 4096 ? media - 4096 : 0;
    if (!layout) {
      RC_ASSERT(layout.error().code() == Errc::invalid_argument);
      // Only a component too small for a data area is refused here.
      RC_ASSERT(covered <=
                hast::meta::map_ondisk_bytes(std::max<std::uint64_t>(covered, 1), extent, sector));
      return;
    }
    RC_ASSERT(layout->local_offset_bytes + layout->data_size_bytes == media);
    RC_ASSERT(layout->local_offset_bytes == 4096 + layout->map_size_bytes);
    RC_ASSERT(layout->map_size_bytes % sector == 0);
    RC_ASSERT(layout->map_size_bytes * 8 >= layout->extent_count);
    RC_ASSERT(layout->extent_count * extent >= covered);
    RC_ASSERT((layout->extent_count - 1) * extent < covered);
    RC_ASSERT(layout->data_size_bytes % sector == 0);
    // The map a primary sizes from the data area never outgrows the space reserved.
    RC_ASSERT(hast::meta::map_ondisk_bytes(layout->data_size_bytes, extent, sector) <=
              layout->map_size_bytes);
  });
}

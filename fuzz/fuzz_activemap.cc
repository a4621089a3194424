// Fuzz target: bytes as an activemap image (and the peer's map) for a geometry drawn from
// the first bytes, then as a short sequence of map operations (core/meta/activemap.h).
//
// Input layout:
//   byte 0     extent size = 512 << (b % 8)              (512 B .. 64 KiB)
//   byte 1     sector size = 512 << (b % 4), at most the extent size
//   bytes 2-3  extent count = 1 + (little-endian value % 2048)
//   byte 4     sectors in the last extent = 1 + b % (extent / sector)
//   byte 5     keep_dirty = 1 + b % 16
//   then       the image: ondisk_size_bytes() bytes (zero-padded when the input is short)
//   then       operations, 3 bytes each: kind, a, b (at most operations_max of them)
//
// Oracles, beyond "never crashes or asserts": an image of the wrong size is refused with
// Errc::invalid_argument; a loaded image marks exactly its bits below the extent count for
// sync and re-encodes to itself with the padding zeroed; merging the raw bytes succeeds
// when they cover the extents; check_invariants holds after every operation; an extent
// with a write pending is always in the image; a complete sync walk leaves nothing to sync.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/assert.h"
#include "core/meta/activemap.h"

namespace {

namespace meta = hast::meta;

// Each operation is followed by a full invariant scan: keep inputs fast.
constexpr int operations_max = 128;

struct Input {
  std::span<const std::uint8_t> bytes;
  std::size_t at = 0;
  std::uint8_t next() { return at < bytes.size() ? bytes[at++] : 0; }
};

bool image_bit(std::span<const std::byte> image, std::uint64_t extent) {
  return (std::to_integer<unsigned>(image[extent / 8]) >> (extent % 8)) & 1;
}

void check_load(meta::Activemap& map, std::span<const std::byte> image) {
  auto wrong = map.load_image(image.first(image.size() - 1));
  HAST_ASSERT(!wrong.has_value());
  HAST_ASSERT(wrong.error().code() == hast::Errc::invalid_argument);
  HAST_ASSERT(map.load_image(image).has_value());
  map.check_invariants();
  auto encoded = map.encode_image();
  for (std::uint64_t bit = 0; bit < encoded.size() * 8; bit++) {
    bool expected = bit < map.extent_count() && image_bit(image, bit);
    HAST_ASSERT(image_bit(encoded, bit) == expected);
    if (bit < map.extent_count()) HAST_ASSERT(map.needs_sync(meta::ExtentIndex{bit}) == expected);
  }
  HAST_ASSERT(!map.image_changed_since(map.durable_generation()));
}

// Runs the operations, checking the invariants after each; writes stay pending until a
// later operation completes them.
void run_operations(meta::Activemap& map, Input& input) {
  struct Write {
    std::uint64_t offset;
    std::uint64_t length;
  };
  std::vector<Write> pending;
  std::uint64_t max_bytes = 1 + input.next() * 512;
  for (int n = 0; n < operations_max && input.at + 3 <= input.bytes.size(); n++) {
    std::uint8_t kind = input.next();
    std::uint64_t a = input.next() * map.data_size_bytes() / 256;
    std::uint64_t b = 1 + input.next() * std::uint64_t{map.extent_size_bytes()} / 64;
    Write w{a, std::min(b, map.data_size_bytes() - a)};
    switch (kind % 6) {
      case 0:
        if (map.write_start(w.offset, w.length) == meta::NeedsFlush::yes) {
          map.map_flushed(map.generation());
        }
        pending.push_back(w);
        break;
      case 1:
        if (!pending.empty()) {
          Write done = pending.back();
          pending.pop_back();
          auto ack = kind & 0x80 ? meta::RemoteAck::no : meta::RemoteAck::yes;
          HAST_MAYBE(map.write_complete(done.offset, done.length, ack) == meta::NeedsFlush::yes);
        }
        break;
      case 2:
        HAST_MAYBE(map.need_sync(w.offset, w.length) == meta::NeedsFlush::yes);
        break;
      case 3:
        if (auto chunk = map.next_sync_chunk(max_bytes); chunk && chunk->last_in_extent) {
          HAST_MAYBE(map.sync_extent_done(chunk->extent, chunk->pass) == meta::NeedsFlush::yes);
        }
        break;
      case 4:
        map.sync_rewind();
        break;
      default:
        if (pending.empty()) HAST_MAYBE(map.clear_all() == meta::NeedsFlush::yes);
        break;
    }
    map.check_invariants();
    for (const Write& write : pending)
      HAST_ASSERT(map.in_image(map.extent_of(write.offset)));
  }
  for (const Write& write : pending)
    HAST_MAYBE(map.write_complete(write.offset, write.length, meta::RemoteAck::yes) ==
               meta::NeedsFlush::yes);
}

// Walks every extent to sync in one pass: afterwards nothing is left.
void walk_all(meta::Activemap& map) {
  map.sync_rewind();
  while (auto chunk = map.next_sync_chunk(64 * 1024)) {
    HAST_ASSERT(chunk->length > 0);
    HAST_ASSERT(map.extent_of(chunk->offset) == chunk->extent);
    if (chunk->last_in_extent) {
      HAST_MAYBE(map.sync_extent_done(chunk->extent, chunk->pass) == meta::NeedsFlush::yes);
    }
  }
  HAST_ASSERT(!map.sync_pending());
  HAST_ASSERT(map.stats().dirty_extents == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input input{std::span(data, size)};
  std::uint32_t extent_size = std::uint32_t{512} << (input.next() % 8);
  std::uint32_t sector_size = std::min(std::uint32_t{512} << (input.next() % 4), extent_size);
  std::uint32_t low = input.next();
  std::uint64_t extent_count = 1 + (low | std::uint32_t{input.next()} << 8) % 2048;
  std::uint64_t tail_sectors = 1 + input.next() % (extent_size / sector_size);
  std::uint32_t keep_dirty = 1 + input.next() % 16;
  std::uint64_t data_size = (extent_count - 1) * extent_size + tail_sectors * sector_size;
  meta::Activemap map(data_size, extent_size, keep_dirty, sector_size);

  std::size_t image_bytes = std::min<std::size_t>(map.ondisk_size_bytes(), size - input.at);
  std::vector<std::byte> image(map.ondisk_size_bytes(), std::byte{0});
  std::copy_n(reinterpret_cast<const std::byte*>(data) + input.at, image_bytes, image.begin());
  auto raw = std::as_bytes(std::span(data, size)).subspan(input.at, image_bytes);
  input.at += image_bytes;

  check_load(map, image);
  auto merged = map.merge(raw);
  HAST_ASSERT(merged.has_value() == (raw.size() >= (map.extent_count() + 7) / 8));
  map.check_invariants();
  run_operations(map, input);
  walk_all(map);
  return 0;
}
